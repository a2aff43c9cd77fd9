"""Every error Lookalike raises on purpose.

::

    LookalikeError                 base class; the CLI prints its message and exits 1
    ├── ConfigError                bad parameter value (also a ValueError)
    │   └── UnknownNameError       unknown model / metric / reader / index name (also a KeyError)
    ├── CatalogueError             catalogue source unreadable or inconsistent
    │   └── ItemNotFoundError      an item id that is not in the catalogue (also a KeyError)
    ├── ImageError                 an image that cannot be decoded safely
    ├── WeightsNotFoundError       model weights neither local nor downloadable
    ├── FeatureStoreError          feature store missing, stale or made by another extractor
    ├── IndexMismatchError         query from another extractor or dimension than the index
    └── TrainingDivergedError      non-finite training loss; the last good checkpoint is kept
"""

from __future__ import annotations

from collections.abc import Iterable


class LookalikeError(Exception):
    """Base class of all Lookalike errors."""


class ConfigError(LookalikeError, ValueError):
    """A parameter has a value that cannot work."""


class UnknownNameError(ConfigError, KeyError):
    """A name (model, metric, reader, backend) that is not registered."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(self.choices)}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class CatalogueError(LookalikeError):
    """A catalogue source cannot be read, or the catalogue is inconsistent."""


class ItemNotFoundError(CatalogueError, KeyError):
    """An item id that is not in the catalogue."""

    def __str__(self) -> str:
        return self.args[0]


class ImageError(LookalikeError):
    """An image that cannot be decoded (corrupt, truncated, not an image, too large)."""


class WeightsNotFoundError(LookalikeError):
    """Model weights are neither on disk nor downloadable."""


class FeatureStoreError(LookalikeError):
    """Feature store missing, incomplete, or made by another extractor."""


class IndexMismatchError(LookalikeError, ValueError):
    """A query vector from another extractor or of another dimension than the index."""


class TrainingDivergedError(LookalikeError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""
