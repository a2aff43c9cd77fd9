"""faiss backends: exact (``faiss-flat``) and approximate (``faiss-ivf``, ``faiss-hnsw``), for L1, L2 and Hamming.

L1 and L2 use faiss's float indexes with ``METRIC_L1`` / ``METRIC_L2`` (the square root is taken, so L2
distances are Euclidean); Hamming uses the binary indexes on sign-binarised codes. Removed positions are
filtered inside faiss's search with an ``IDSelector`` where faiss supports it.
"""

from __future__ import annotations

import math
import os
from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..metrics import Metric, hamming_codes
from .base import Param, VectorIndex
from .registry import register_index


def faiss_threads(n_queries: int) -> int:
    """Threads for a faiss search: ``$LOOKALIKE_FAISS_THREADS``, else 1 for small batches.

    Measured on a 2-core machine (docs/benchmarks.md): OpenMP start-up and contention make
    multi-threaded single queries several times slower, while large batches gain from all cores.
    """
    chosen = os.environ.get("LOOKALIKE_FAISS_THREADS")
    if chosen:
        return max(1, int(chosen))
    return 1 if n_queries < 32 else (os.cpu_count() or 1)


class _FaissIndex(VectorIndex):
    """What the faiss backends share: codes for Hamming, threads, removal filters, files."""

    filters_removed = True

    def __init__(self, dim: int, metric: Metric | str, _index: Any = None, **params: Any):
        super().__init__(dim, metric, **params)
        import faiss

        self._faiss = faiss
        self._selector: Any = None
        self._index = _index if _index is not None else self._new_index()
        self._configure()

    @property
    def binary(self) -> bool:
        return self.metric is Metric.HAMMING

    @property
    def code_bits(self) -> int:
        """Bits per Hamming code: ``dim`` rounded up to whole bytes (the padding bits are always 0)."""
        return (self.dim + 7) // 8 * 8

    @property
    def faiss_metric(self) -> int:
        return self._faiss.METRIC_L1 if self.metric is Metric.L1 else self._faiss.METRIC_L2

    @abstractmethod
    def _new_index(self) -> Any:
        """The empty faiss index (``None`` while its shape depends on training data)."""

    def _configure(self) -> None:  # noqa: B027 - search-time settings (nprobe, efSearch) where a backend has them
        """Apply search-time parameters to the faiss index."""

    def _search_parameters(self) -> Any:
        """faiss ``SearchParameters`` carrying the removal filter (with the backend's search settings)."""
        return self._faiss.SearchParameters(sel=self._selector)

    @property
    def ntotal(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def _codes(self, vectors: np.ndarray) -> np.ndarray:
        return hamming_codes(vectors) if self.binary else vectors

    def _add(self, vectors: np.ndarray) -> None:
        self._index.add(self._codes(vectors))

    def _removed_changed(self) -> None:
        inner = self._faiss.IDSelectorBatch(self._removed)
        self._selector = self._faiss.IDSelectorNot(inner) if len(self._removed) else None
        self._selector_inner = inner  # faiss keeps a raw pointer: keep the object alive

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._faiss.omp_set_num_threads(faiss_threads(len(queries)))
        params = self._search_parameters() if self._selector is not None else None
        d, i = self._index.search(self._codes(queries), k, params=params)  # i: faiss's int64 labels
        d = d.astype(np.float32, copy=False)  # Hamming: int32 counts
        if self.metric is Metric.L2:
            np.sqrt(np.maximum(d, 0.0, out=d), out=d)
        return d, i

    def _save(self, directory: Path) -> None:
        tmp = directory / "index.faiss.tmp"
        if self.binary:
            self._faiss.write_index_binary(self._index, str(tmp))
        else:
            self._faiss.write_index(self._index, str(tmp))
        tmp.replace(directory / "index.faiss")

    @classmethod
    def _load(cls, directory: Path, dim: int, metric: Metric, params: dict[str, Any]) -> VectorIndex:
        import faiss

        path = str(directory / "index.faiss")
        raw = faiss.read_index_binary(path) if metric is Metric.HAMMING else faiss.read_index(path)
        return cls(dim, metric, _index=raw, **params)

    def memory_bytes(self) -> int:
        per_vector = self.code_bits // 8 if self.binary else 4 * self.dim
        return self.ntotal * per_vector


@register_index("faiss-flat")
class FaissFlatIndex(_FaissIndex):
    """Exact search: ``IndexFlat(METRIC_L1)``, ``IndexFlatL2``, ``IndexBinaryFlat``."""

    backend = "faiss-flat"
    exact = True

    def _new_index(self) -> Any:
        if self.binary:
            return self._faiss.IndexBinaryFlat(self.code_bits)
        return self._faiss.IndexFlat(self.dim, self.faiss_metric)


@register_index("faiss-ivf")
class FaissIVFIndex(_FaissIndex):
    """Inverted lists: k-means cells, each query scans the ``nprobe`` nearest cells (``IndexIVFFlat``,
    ``IndexBinaryIVF``). Needs training; ``nlist`` defaults to about 4 sqrt(n) of the training data."""

    backend = "faiss-ivf"
    exact = False
    PARAMS = {"nlist": Param(None, "number of k-means cells; default about 4 sqrt(n)"),
              "nprobe": Param(32, "cells scanned per query", search_time=True),
              # faiss's k-means wants at least 39 vectors a cell and samples at most 256 a cell
              "train_per_cell": Param(50, "training vectors a cell (at least 100,000 in all): more gives better "
                                          "balanced cells, so fewer vectors scanned at the same recall, and a "
                                          "slower build", low=39, high=256)}

    def _new_index(self) -> Any:
        return None  # its cells depend on the training data

    @property
    def is_trained(self) -> bool:
        return self._index is not None and bool(self._index.is_trained)

    @staticmethod
    def default_nlist(total: int) -> int:
        """About 4 sqrt(n) cells for n vectors, with at least 39 of them a cell (faiss's k-means minimum)."""
        return max(1, min(int(4 * math.sqrt(total)), total // 39))

    def training_size(self, total: int) -> int:
        """``train_per_cell`` vectors a cell, at least 100,000 when there are that many."""
        nlist = self.params["nlist"] or self.default_nlist(total)
        return min(total, max(100_000, self.params["train_per_cell"] * nlist))

    def _train(self, vectors: np.ndarray, total: int) -> None:
        faiss = self._faiss
        nlist = self.params["nlist"] or min(self.default_nlist(total), max(1, len(vectors) // 39))
        if nlist > len(vectors):
            raise ConfigError(f"faiss-ivf with nlist={nlist} needs at least {nlist} training vectors, "
                              f"got {len(vectors)}")
        self.params["nlist"] = nlist
        if self.binary:
            index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(self.code_bits), self.code_bits, nlist)
        else:
            quantizer = faiss.IndexFlat(self.dim, self.faiss_metric)
            index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, self.faiss_metric)
        index.cp.seed = 1234  # reproducible cells
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        index.train(self._codes(vectors))
        self._index = index
        self._configure()

    def _configure(self) -> None:
        if self._index is not None:
            self._index.nprobe = min(self.params["nprobe"], self._index.nlist)

    def _search_parameters(self) -> Any:
        return self._faiss.SearchParametersIVF(sel=self._selector, nprobe=int(self._index.nprobe))

    @property
    def filters_removed(self) -> bool:  # type: ignore[override]
        return not self.binary  # faiss's binary IVF takes no search parameters: filtered afterwards

    def _removed_changed(self) -> None:
        if not self.binary:
            super()._removed_changed()

    def memory_bytes(self) -> int:
        cells = 0 if self._index is None else self._index.nlist * (self.code_bits // 8 if self.binary else 4 * self.dim)
        return super().memory_bytes() + 8 * self.ntotal + cells  # vectors, their ids, the centroids


@register_index("faiss-hnsw")
class FaissHNSWIndex(_FaissIndex):
    """A navigable small-world graph (``IndexHNSWFlat``, ``IndexBinaryHNSW``): fast, no training, more memory."""

    backend = "faiss-hnsw"
    exact = False
    PARAMS = {"M": Param(32, "graph neighbours per node"),
              "efConstruction": Param(80, "candidate list while building"),
              "efSearch": Param(64, "candidate list while searching", search_time=True)}

    def _new_index(self) -> Any:
        if self.binary:
            index = self._faiss.IndexBinaryHNSW(self.code_bits, self.params["M"])
        else:
            index = self._faiss.IndexHNSWFlat(self.dim, self.params["M"], self.faiss_metric)
        index.hnsw.efConstruction = self.params["efConstruction"]
        return index

    def _configure(self) -> None:
        self._index.hnsw.efSearch = self.params["efSearch"]

    def _add(self, vectors: np.ndarray) -> None:
        self._faiss.omp_set_num_threads(os.cpu_count() or 1)
        super()._add(vectors)

    def _search_parameters(self) -> Any:
        return self._faiss.SearchParametersHNSW(sel=self._selector, efSearch=self.params["efSearch"])

    def memory_bytes(self) -> int:
        return super().memory_bytes() + self.ntotal * 2 * self.params["M"] * 4  # level-0 links dominate
