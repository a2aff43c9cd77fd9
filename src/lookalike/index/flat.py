"""Exact (brute-force) indexes: faiss ``IndexFlat`` / ``IndexBinaryFlat``, and a plain numpy reference."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..metrics import Metric, hamming_codes
from .base import VectorIndex
from .registry import register_index


def faiss_threads(n_queries: int) -> int:
    """Threads for a faiss search: ``$LOOKALIKE_FAISS_THREADS``, else 1 for small batches.

    Measured on a 2-core machine (docs/benchmarks.md): OpenMP start-up and contention make
    multi-threaded single queries several times slower, while large batches gain from all cores.
    """
    if os.environ.get("LOOKALIKE_FAISS_THREADS"):
        return max(1, int(os.environ["LOOKALIKE_FAISS_THREADS"]))
    return 1 if n_queries < 32 else (os.cpu_count() or 1)


@register_index("faiss-flat")
class FaissFlatIndex(VectorIndex):
    """Exact search with faiss: ``IndexFlat(METRIC_L1)``, ``IndexFlatL2`` (sqrt taken), ``IndexBinaryFlat``."""

    backend = "faiss-flat"

    def __init__(self, dim: int, metric: Metric | str, _index=None):
        super().__init__(dim, metric)
        import faiss

        self._faiss = faiss
        if _index is not None:
            self._index = _index
        elif self.metric is Metric.HAMMING:
            self._index = faiss.IndexBinaryFlat(self.code_bits)
        elif self.metric is Metric.L1:
            self._index = faiss.IndexFlat(self.dim, faiss.METRIC_L1)
        else:
            self._index = faiss.IndexFlatL2(self.dim)

    @property
    def code_bits(self) -> int:
        """Bits per Hamming code: ``dim`` rounded up to whole bytes (the padding bits are always 0)."""
        return (self.dim + 7) // 8 * 8

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def _add(self, vectors: np.ndarray) -> None:
        self._index.add(hamming_codes(vectors) if self.metric is Metric.HAMMING else vectors)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._faiss.omp_set_num_threads(faiss_threads(len(queries)))
        if self.metric is Metric.HAMMING:
            d, i = self._index.search(hamming_codes(queries), k)
            return d.astype(np.float32), i.astype(np.int64)
        d, i = self._index.search(queries, k)
        if self.metric is Metric.L2:
            d = np.sqrt(np.maximum(d, 0.0))
        return d.astype(np.float32), i.astype(np.int64)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / "index.faiss.tmp"
        if self.metric is Metric.HAMMING:
            self._faiss.write_index_binary(self._index, str(tmp))
        else:
            self._faiss.write_index(self._index, str(tmp))
        tmp.replace(directory / "index.faiss")

    @classmethod
    def load(cls, directory: Path, dim: int, metric: Metric) -> FaissFlatIndex:
        import faiss

        path = str(directory / "index.faiss")
        raw = faiss.read_index_binary(path) if Metric.parse(metric) is Metric.HAMMING else faiss.read_index(path)
        return cls(dim, metric, _index=raw)


@register_index("numpy-flat")
class NumpyFlatIndex(VectorIndex):
    """Plain numpy brute force, chunked to bound memory. The reference that faiss is checked against."""

    backend = "numpy-flat"

    def __init__(self, dim: int, metric: Metric | str, chunk: int = 4096):
        super().__init__(dim, metric)
        self.chunk = chunk
        self._vectors = np.empty((0, self.dim), np.float32)

    @property
    def ntotal(self) -> int:
        return len(self._vectors)

    def _add(self, vectors: np.ndarray) -> None:
        self._vectors = np.concatenate([self._vectors, vectors])
        self._codes = hamming_codes(self._vectors) if self.metric is Metric.HAMMING else None

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

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "vectors.npy", self._vectors)

    @classmethod
    def load(cls, directory: Path, dim: int, metric: Metric) -> NumpyFlatIndex:
        index = cls(dim, metric)
        index._add(np.load(directory / "vectors.npy"))
        return index
