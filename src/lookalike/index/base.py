"""The index interface every backend implements: ``add(X)``, ``search(Q, k) -> (D, I)``.

Vectors go in as float32 for every metric (a Hamming index binarises them itself). ``search``
returns float32 ``(nq, k)`` distances (L2 is the true Euclidean distance, not squared) and
int64 ``(nq, k)`` positions, nearest first, padded with ``inf`` / ``-1`` when ``k`` exceeds the count.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ..errors import ConfigError, IndexMismatchError
from ..metrics import Metric


def as_matrix(x: np.ndarray, dim: int | None = None, *, what: str = "vectors") -> np.ndarray:
    """C-contiguous float32 ``(n, d)``; a clear error for wrong shapes, dimensions and NaNs."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (n, d), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise IndexMismatchError(f"{what} have dimension {x.shape[1]}, but the index holds {dim}-d vectors")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return x


class VectorIndex(ABC):
    """Exact or approximate nearest-neighbour index over float vectors under one metric."""

    backend: str = ""

    def __init__(self, dim: int, metric: Metric | str):
        if dim <= 0:
            raise ConfigError(f"dim must be positive, got {dim}")
        self.dim = int(dim)
        self.metric = Metric.parse(metric)

    @property
    @abstractmethod
    def ntotal(self) -> int:
        """Number of vectors in the index."""

    @abstractmethod
    def _add(self, vectors: np.ndarray) -> None: ...

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the index into ``directory``."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, dim: int, metric: Metric) -> VectorIndex:
        """Read an index written by ``save``."""

    def add(self, vectors: np.ndarray) -> None:
        """Append vectors; they get positions ``ntotal .. ntotal + n - 1``."""
        self._add(as_matrix(vectors, self.dim))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored vectors of each query: ``(distances, positions)``."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        queries = as_matrix(queries, self.dim, what="query vectors")
        n_found = min(k, self.ntotal)
        distances = np.full((len(queries), k), np.inf, np.float32)
        positions = np.full((len(queries), k), -1, np.int64)
        if n_found and len(queries):
            d, i = self._search(queries, n_found)
            distances[:, :n_found], positions[:, :n_found] = d, i
        return distances, positions
