"""``shortlist``: the base model's nearest items first, then the full distance re-ranks them.

For vectors laid out as ``[base block | extra]`` (models learned from votes: the base vector scaled by a
positive weight, then weighted taste components), the first ``base_dim`` numbers rank every item as the
base does (a positive scale changes no ranking; a Hamming base's block is its +-1 code, ranked alike by
L2), and the ``shortlist`` nearest of them are re-ranked by the distance over the whole vector. This is
what the votes that taught the taste saw (the base's top matches), and it keeps the model at the base's
neighbourhood where the votes say nothing. Not exact over the whole vector, by design.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from ..errors import ConfigError
from ..metrics import Metric
from .base import Param, VectorIndex
from .flat import VectorsOnDisk
from .registry import register_index


@register_index("shortlist")
class ShortlistIndex(VectorsOnDisk, VectorIndex):
    """Exact search on the base block for ``shortlist`` candidates, re-ranked by the whole vector."""

    backend = "shortlist"
    exact = False
    general = False  # for vectors laid out as [base block | extra], under L1 or L2
    PARAMS = {"base_dim": Param(None, "leading dimensions that rank candidates (the base block)", required=True),
              "shortlist": Param(30, "candidates re-ranked per query", search_time=True)}

    def __init__(self, dim: int, metric: Metric | str, **params: Any):
        super().__init__(dim, metric, **params)
        if self.metric is Metric.HAMMING:
            raise ConfigError("the shortlist backend re-ranks by L1 or L2 (a learned model's own metric)")
        self.base_dim = int(self.params["base_dim"])
        if not 1 <= self.base_dim <= self.dim:
            raise ConfigError(f"base_dim must lie in 1..{self.dim}, got {self.base_dim}")
        kind = faiss.METRIC_L1 if self.metric is Metric.L1 else faiss.METRIC_L2
        self._base = faiss.IndexFlat(self.base_dim, kind)
        self._vectors = np.empty((0, self.dim), np.float32)

    @property
    def ntotal(self) -> int:
        return len(self._vectors)

    def _add(self, vectors: np.ndarray) -> None:
        self._base.add(np.ascontiguousarray(vectors[:, : self.base_dim]))
        self._vectors = np.concatenate([self._vectors, vectors])

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        depth = min(self.ntotal, max(k, int(self.params["shortlist"])))
        _, candidates = self._base.search(np.ascontiguousarray(queries[:, : self.base_dim]), depth)
        out_d = np.full((len(queries), k), np.inf, np.float32)
        out_i = np.full((len(queries), k), -1, np.int64)
        for n, (query, row) in enumerate(zip(queries, candidates)):
            row = row[row >= 0]
            diff = self._vectors[row].astype(np.float64) - query
            d = np.abs(diff).sum(1) if self.metric is Metric.L1 else np.sqrt((diff * diff).sum(1))
            order = np.argsort(d, kind="stable")[:k]
            out_d[n, : len(order)], out_i[n, : len(order)] = d[order], row[order]
        return out_d, out_i

    def memory_bytes(self) -> int:
        return 2 * self._vectors.nbytes
