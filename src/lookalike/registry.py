"""A tiny registry + factory, one instance per pluggable family (timm style).

Plugins register with a decorator; callers build by name and list with a glob::

    READERS = Registry("catalogue reader")

    @READERS.register("folder")
    class FolderReader: ...

    READERS.create("folder", **kwargs)
    READERS.list("f*")
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories (classes or functions) of one family."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator that registers a factory under ``name``."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = factory
            return factory

        return decorator

    def add(self, name: str, factory: Callable[..., T], *, replace: bool = False) -> None:
        """Register ``factory`` under ``name`` (``replace`` allows re-registration)."""
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = factory

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``; the error lists the valid names."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        """Build the plugin registered as ``name``."""
        return self.get(name)(*args, **kwargs)

    def list(self, pattern: str = "*") -> list[str]:
        """Registered names matching a glob pattern, sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries
