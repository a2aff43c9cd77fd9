"""Catalogue in: readers for common layouts, and the SQLite catalogue they fill."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..summary import skipped_lines
from .readers import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, READERS, ReadResult
from .store import Catalogue, Item

__all__ = ["Catalogue", "Item", "READERS", "ReadResult", "ImportSummary", "import_catalogue",
           "list_readers", "FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR"]


@dataclass
class ImportSummary:
    """What an import did."""

    reader: str
    source: str
    added: int = 0
    updated: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    total: int = 0

    def lines(self, max_named: int = 10) -> list[str]:
        out = [f"imported {self.added} new and {self.updated} existing items from {self.reader} "
               f"{self.source}; skipped {len(self.skipped)}; catalogue now has {self.total} items"]
        return out + skipped_lines(self.skipped, max_named)


def list_readers(pattern: str = "*") -> list[str]:
    return READERS.list(pattern)


def import_catalogue(catalogue: Catalogue, reader: str, source: str | Path | None, *,
                     limit: int | None = None, seed: int = 0, image_dir: Path | None = None) -> ImportSummary:
    """Read ``source`` with the named reader and upsert its items (re-imports never duplicate)."""
    read = READERS.get(reader)
    result: ReadResult = read(Path(source) if source else None, limit=limit, seed=seed, image_dir=image_dir)
    added, updated = catalogue.upsert(result.items, source=reader)
    catalogue.log_import(reader, str(source or ""), added, updated, len(result.skipped))
    return ImportSummary(reader, str(source or ""), added, updated, result.skipped, len(catalogue))
