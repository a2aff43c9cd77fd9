"""Plain numpy brute force: the reference every other backend is checked against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import Metric, hamming_codes
from .base import VectorIndex
from .registry import register_index


class VectorsOnDisk:
    """For backends that keep the raw vectors (``self._vectors``): saved as ``vectors.npy``, re-added on load."""

    _vectors: np.ndarray

    def _save(self, directory: Path) -> None:
        tmp = directory / "vectors.npy.tmp"
        with open(tmp, "wb") as fh:
            np.save(fh, self._vectors)
        tmp.replace(directory / "vectors.npy")

    @classmethod
    def _load(cls, directory: Path, dim: int, metric: Metric, params: dict[str, Any]):
        index = cls(dim, metric, **params)
        index._add(np.load(directory / "vectors.npy"))
        return index


@register_index("numpy-flat")
class NumpyFlatIndex(VectorsOnDisk, VectorIndex):
    """Exact search in plain numpy, chunked to bound memory (slow; for checking and tiny catalogues)."""

    backend = "numpy-flat"
    exact = True

    def __init__(self, dim: int, metric: Metric | str, chunk: int = 4096, **params: Any):
        super().__init__(dim, metric, **params)
        self.chunk = chunk
        self._vectors = np.empty((0, self.dim), np.float32)
        self._codes = np.empty((0, (self.dim + 7) // 8), np.uint8)

    @property
    def ntotal(self) -> int:
        return len(self._vectors)

    def _add(self, vectors: np.ndarray) -> None:
        self._vectors = np.concatenate([self._vectors, vectors])
        if self.metric is Metric.HAMMING:
            self._codes = np.concatenate([self._codes, hamming_codes(vectors)])

    def _distances(self, queries: np.ndarray, block: slice) -> np.ndarray:
        x = self._vectors[block]
        if self.metric is Metric.HAMMING:
            q = hamming_codes(queries)
            return np.bitwise_count(q[:, None, :] ^ self._codes[block][None, :, :]).sum(-1, dtype=np.float32)
        if self.metric is Metric.L1:
            return np.abs(queries[:, None, :] - x[None, :, :]).sum(-1, dtype=np.float32)
        sq = (queries.astype(np.float64) ** 2).sum(1)[:, None] + (x.astype(np.float64) ** 2).sum(1)[None, :]
        sq -= 2.0 * queries.astype(np.float64) @ x.T.astype(np.float64)
        return np.sqrt(np.maximum(sq, 0.0)).astype(np.float32)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        out_d = np.empty((len(queries), k), np.float32)
        out_i = np.empty((len(queries), k), np.int64)
        # queries in small groups so (group x chunk x dim) temporaries stay small
        group = max(1, 2**22 // max(1, self.chunk * self.dim)) if self.metric is Metric.L1 else 256
        for q0 in range(0, len(queries), group):
            q = queries[q0 : q0 + group]
            best_d = np.full((len(q), 0), np.inf, np.float32)
            best_i = np.empty((len(q), 0), np.int64)
            for start in range(0, self.ntotal, self.chunk):
                d = self._distances(q, slice(start, start + self.chunk))
                cand_d = np.concatenate([best_d, d], axis=1)
                cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + d.shape[1]), d.shape)], 1)
                order = np.argsort(cand_d, axis=1, kind="stable")[:, :k]
                best_d = np.take_along_axis(cand_d, order, 1)
                best_i = np.take_along_axis(cand_i, order, 1)
            out_d[q0 : q0 + group], out_i[q0 : q0 + group] = best_d, best_i
        return out_d, out_i

    def memory_bytes(self) -> int:
        return self._vectors.nbytes + self._codes.nbytes
