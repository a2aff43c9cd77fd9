"""The index-backend registry: ``create_index(backend, dim, metric)``."""

from __future__ import annotations

from ..registry import Registry

INDEXES: Registry = Registry("index backend")


def register_index(name: str):
    return INDEXES.register(name)


def create_index(backend: str, dim: int, metric, **params):
    """A new empty index of the named backend (``params``: its settings, checked by the backend)."""
    return INDEXES.create(backend, dim, metric, **params)


def list_indexes(pattern: str = "*") -> list[str]:
    return INDEXES.list(pattern)
