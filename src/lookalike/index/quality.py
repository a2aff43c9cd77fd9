"""How good and how fast an index is: recall@k against exact search, latency, throughput, memory.

Exact neighbours are computed shard by shard from the memory-mapped feature store, so measuring an
index of a million vectors never holds a second copy of them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..metrics import Metric
from .registry import create_index

if TYPE_CHECKING:
    from ..features import FeatureStore
    from .store import ItemIndex


@dataclass
class IndexReport:
    """What ``lookalike index`` prints after a build."""

    backend: str
    metric: str
    items: int
    params: dict[str, Any]
    build_seconds: float
    memory_bytes: int
    queries: int
    recall_at_k: float
    k: int
    single_p50_ms: float
    single_p99_ms: float
    batch_qps: float

    def line(self) -> str:
        params = ",".join(f"{k}={v}" for k, v in self.params.items()) or "-"
        return (f"{self.backend} {self.metric} ({params}): {self.items:,} items, built in {self.build_seconds:.1f} s, "
                f"{self.memory_bytes / 2**20:,.1f} MiB; recall@{self.k} {self.recall_at_k:.3f} vs exact on "
                f"{self.queries} of the catalogue's own items; single query p50 {self.single_p50_ms:.2f} ms, "
                f"p99 {self.single_p99_ms:.2f} ms; batch {self.batch_qps:,.0f} queries/s")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def exact_neighbours(store: FeatureStore, queries: np.ndarray, metric: Metric | str, k: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(distances, item ids)`` of the exact ``k`` nearest stored vectors, streamed shard by shard."""
    metric = Metric.parse(metric)
    best_d = np.full((len(queries), 0), np.inf, np.float32)
    best_i = np.empty((len(queries), 0), dtype=object)
    for _name, ids, vectors in store.iter_shards():
        index = create_index("faiss-flat", queries.shape[1], metric)
        index.add(np.asarray(vectors))
        d, p = index.search(queries, min(k, len(ids)))
        shard_ids = np.asarray(ids, dtype=object)
        cand_d = np.concatenate([best_d, d], 1)
        cand_i = np.concatenate([best_i, shard_ids[p]], 1)
        order = np.argsort(cand_d, axis=1, kind="stable")[:, :k]
        best_d, best_i = np.take_along_axis(cand_d, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_d, best_i


def tie_aware_recall(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Share of the true ``k`` nearest found, counting a result as right when its distance is within the true
    k-th distance (Hamming distances tie constantly, so ids alone would undercount)."""
    kth = exact[:, k - 1 : k]
    hits = (found[:, :k] <= kth + 1e-4 * np.maximum(1.0, np.abs(kth))) & np.isfinite(found[:, :k])
    return float(hits.sum() / (len(found) * k))


def measure_index(index: ItemIndex, store: FeatureStore, *, build_seconds: float = 0.0, queries: int = 1000,
                  k: int = 10, seed: int = 0, single: int = 200) -> IndexReport:
    """Recall@k of ``index`` against exact search on a seeded sample of its own items (each query's own item
    left out), single-query latency and batch throughput."""
    live = index.index.live_positions()
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(live, min(queries, len(live)), replace=False))
    query_ids = [str(i) for i in index.ids[chosen]]
    vectors = store.vectors_for(query_ids)
    started = time.perf_counter()
    d_found, _ = index.index.search(vectors, k + 1)
    batch_seconds = time.perf_counter() - started
    d_exact, _ = exact_neighbours(store, vectors, index.meta.metric, k + 1)
    # leave out each query's own vector: the first result at distance 0 in both lists
    recall = tie_aware_recall(d_found[:, 1:], d_exact[:, 1:], min(k, len(live) - 1)) if len(live) > 1 else 1.0
    times = []
    for row in vectors[:single]:
        t0 = time.perf_counter()
        index.index.search(row[None, :], k)
        times.append((time.perf_counter() - t0) * 1000)
    return IndexReport(index.meta.backend, index.meta.metric, index.live_count, dict(index.meta.params),
                       build_seconds, index.index.memory_bytes(), len(query_ids), recall, k,
                       float(np.percentile(times, 50)), float(np.percentile(times, 99)),
                       len(vectors) / max(batch_seconds, 1e-9))
