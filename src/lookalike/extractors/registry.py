"""The extractor registry: ``create_extractor(name)``, ``list_extractors(pattern)``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..registry import Registry

if TYPE_CHECKING:
    from .base import Extractor

EXTRACTORS: Registry = Registry("model")


def register_extractor(name: str):
    """Decorator registering an extractor factory (class or function) under ``name``."""
    return EXTRACTORS.register(name)


def create_extractor(name: str, *, weights: str | Path | None = None) -> Extractor:
    """Build the extractor registered as ``name`` (``weights`` overrides where weights come from)."""
    return EXTRACTORS.create(name, weights=weights)


def list_extractors(pattern: str = "*") -> list[str]:
    """Registered extractor names matching a glob, e.g. ``list_extractors("vgg16*")``."""
    return EXTRACTORS.list(pattern)
