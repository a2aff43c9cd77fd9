"""Indexes persisted in a workspace, tied to the feature store (extractor, dimension, shards) they hold.

An index's identity is its backend and parameters, stored beside it (``meta.json``): whatever later reads
the index searches it as built, and updates it in place when the feature store changes. The store's shards
are its unit of change: a new shard is added to the index, a shard that went (rewritten without removed
items) has its positions removed. Nothing is rebuilt unless the weights changed or most of it is removed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FeatureStoreError, IndexMismatchError
from ..metrics import Metric
from .base import VectorIndex
from .registry import INDEXES, create_index

if TYPE_CHECKING:
    from ..features import FeatureStore

COMPACT_WHEN_REMOVED = 0.5  # rebuild once half of the positions are removed ones


@dataclass(frozen=True)
class IndexMeta:
    """What an index on disk was built from, and how (backend and parameters)."""

    model: str
    metric: str
    backend: str
    dim: int
    count: int
    features_fingerprint: str
    params: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""
    shards: list[list] = field(default_factory=list)  # [shard file, first position, count] in position order


@dataclass
class SyncSummary:
    """What bringing an index up to date with its feature store did."""

    added: int = 0
    removed: int = 0
    rebuilt: bool = False

    def __str__(self) -> str:
        return "rebuilt" if self.rebuilt else f"+{self.added} / -{self.removed} items"


class ItemIndex:
    """A ``VectorIndex`` plus the item ids of its positions and the model that made its vectors."""

    def __init__(self, index: VectorIndex, ids: np.ndarray, meta: IndexMeta):
        if len(ids) != index.ntotal:
            raise ValueError(f"{len(ids)} ids for an index of {index.ntotal} vectors")
        self.index, self.ids, self.meta = index, np.asarray(ids), meta

    @classmethod
    def build(cls, model: str, metric: Metric | str, ids: np.ndarray, vectors: np.ndarray, *,
              backend: str = "faiss-flat", params: dict[str, Any] | None = None, fingerprint: str = "",
              seed: int = 0) -> ItemIndex:
        """An index of ``vectors`` (rows aligned with ``ids``); backends that need training learn from a seeded
        sample first."""
        metric = Metric.parse(metric)
        if len(vectors) == 0:
            raise FeatureStoreError(f"no feature vectors for {model}; run: lookalike extract --model {model}")
        index = create_index(backend, vectors.shape[1], metric, **(params or {}))
        if not index.is_trained:
            index.train(_sample(vectors, index.training_size(len(vectors)), seed), total=len(vectors))
        _add_in_chunks(index, vectors, f"index {model} {metric.value}")
        meta = IndexMeta(model, metric.value, backend, int(vectors.shape[1]), len(ids), fingerprint,
                         dict(index.params))
        return cls(index, np.asarray(ids).astype(str), meta)

    @classmethod
    def from_store(cls, store: FeatureStore, model: str, metric: Metric | str, *, backend: str = "faiss-flat",
                   params: dict[str, Any] | None = None, seed: int = 0) -> ItemIndex:
        """An index of every vector in ``store``, shard by shard (the store is never loaded whole)."""
        metric = Metric.parse(metric)
        manifest = store.manifest()
        if manifest["count"] == 0:
            raise FeatureStoreError(f"no feature vectors for {model}; run: lookalike extract --model {model}")
        index = create_index(backend, manifest["dim"], metric, **(params or {}))
        if not index.is_trained:
            total = manifest["count"]
            index.train(_store_sample(store, index.training_size(total), seed), total=total)
        meta = IndexMeta(model, metric.value, backend, manifest["dim"], 0, store.fingerprint(), dict(index.params),
                         manifest["weights_sha256"], [])
        built = cls(index, np.empty(0, dtype=str), meta)
        built._add_shards(store, None, desc=f"index {model} {metric.value}")
        return built

    def _add_shards(self, store: FeatureStore, names: list[str] | None, desc: str) -> int:
        from tqdm.auto import tqdm

        added, ids, shards = 0, [self.ids], list(self.meta.shards)
        todo = [s for s in store.manifest()["shards"] if names is None or s["file"] in names]
        with tqdm(total=sum(s["count"] for s in todo), desc=desc, unit="vec", disable=None) as bar:
            for name, shard_ids, vectors in store.iter_shards([s["file"] for s in todo]):
                shards.append([name, self.index.ntotal, len(shard_ids)])
                self.index.add(np.asarray(vectors))
                ids.append(np.asarray(shard_ids, dtype=str))
                added += len(shard_ids)
                bar.update(len(shard_ids))
        self.ids = np.concatenate(ids) if len(ids) > 1 else self.ids
        self._set_meta(shards=shards, count=self.index.ntotal)
        return added

    def _set_meta(self, **changes: Any) -> None:
        self.meta = IndexMeta(**{**asdict(self.meta), **changes})

    def sync(self, store: FeatureStore) -> SyncSummary:
        """Bring the index up to date with ``store``, in place: add new shards; for a shard rewritten without
        some items (``from`` names its origin), remove just those; for a shard that went, its positions.

        Rebuilt (same backend and parameters) only when the store's weights changed, the index predates shard
        tracking, or half of its positions would be removed ones.
        """
        manifest = store.manifest()
        if self.meta.features_fingerprint == store.fingerprint():
            return SyncSummary()
        if (not self.meta.shards or manifest["weights_sha256"] != self.meta.weights_sha256
                or manifest["dim"] != self.meta.dim):
            return self._rebuild(store)
        mine = {s[0]: s for s in self.meta.shards}
        claimed: set[str] = set()
        entries, new, doomed = [], [], []
        for shard in manifest["shards"]:
            name = shard["file"]
            origin = name if name in mine else next((n for n in shard.get("from", []) if n in mine
                                                     and n not in claimed), None)
            if origin is None:
                new.append(name)
                continue
            claimed.add(origin)
            _, start, count = mine[origin]
            entries.append([name, start, count])
            if origin != name:  # rewritten without some items: remove those
                kept = set(json.loads((store.directory / shard["ids"]).read_text()))
                positions = np.arange(start, start + count)
                doomed.append(positions[~np.isin(self.ids[positions], list(kept))])
        doomed += [np.arange(s[1], s[1] + s[2]) for name, s in mine.items() if name not in claimed]
        doomed_positions = np.setdiff1d(np.concatenate(doomed) if doomed else np.empty(0, np.int64),
                                        self.index.removed)
        if len(self.index.removed) + len(doomed_positions) > COMPACT_WHEN_REMOVED * max(1, self.index.ntotal):
            return self._rebuild(store)
        if len(doomed_positions):
            self.index.remove(doomed_positions)
        self._set_meta(shards=entries)
        added = self._add_shards(store, new, desc=f"update {self.meta.model}") if new else 0
        self._set_meta(features_fingerprint=store.fingerprint(), count=self.index.ntotal)
        return SyncSummary(added=added, removed=len(doomed_positions))

    def _rebuild(self, store: FeatureStore) -> SyncSummary:
        fresh = ItemIndex.from_store(store, self.meta.model, self.meta.metric, backend=self.meta.backend,
                                     params=self.meta.params)
        self.index, self.ids, self.meta = fresh.index, fresh.ids, fresh.meta
        return SyncSummary(added=len(self.ids), rebuilt=True)

    @property
    def live_count(self) -> int:
        return self.index.nlive

    def search(self, queries: np.ndarray, k: int, *, model: str,
               exclude: list[str | None] | None = None) -> list[list[tuple[str, float]]]:
        """Nearest items of each query as ``[(item_id, distance), ...]``, nearest first.

        ``model`` must be the extractor that made the query vectors. ``exclude[i]`` (an item id)
        is removed from query ``i``'s results, e.g. the query item itself.
        """
        if model != self.meta.model:
            raise IndexMismatchError(
                f"query vectors come from {model!r} but this index holds {self.meta.model!r} vectors")
        queries = np.asarray(queries)
        n_extra = 1 if exclude is not None else 0
        distances, positions = self.index.search(queries, k + n_extra)
        out = []
        for row, (d_row, p_row) in enumerate(zip(distances, positions)):
            skip = exclude[row] if exclude is not None else None
            hits = [(str(self.ids[p]), float(d)) for d, p in zip(d_row, p_row) if p >= 0 and self.ids[p] != skip]
            out.append(hits[:k])
        return out

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "meta.json").unlink(missing_ok=True)  # absent while the files below are replaced
        self.index.save(directory)
        tmp = directory / "ids.npy.tmp"
        with open(tmp, "wb") as fh:
            np.save(fh, self.ids.astype(str))
        tmp.replace(directory / "ids.npy")
        tmp = directory / "meta.json.tmp"
        tmp.write_text(json.dumps(asdict(self.meta), indent=2))
        tmp.replace(directory / "meta.json")  # written last: its presence marks a complete index

    @staticmethod
    def read_meta(directory: Path) -> IndexMeta | None:
        """The stored index's meta, or None when there is no complete index in ``directory``."""
        path = directory / "meta.json"
        if not path.is_file():
            return None
        raw = json.loads(path.read_text())
        known = IndexMeta.__dataclass_fields__
        return IndexMeta(**{k: v for k, v in raw.items() if k in known})

    @classmethod
    def load(cls, directory: Path) -> ItemIndex:
        meta = cls.read_meta(directory)
        if meta is None:
            raise FeatureStoreError(f"no index in {directory}")
        backend = INDEXES.get(meta.backend)
        index = backend.load(directory, meta.dim, Metric.parse(meta.metric), meta.params)
        return cls(index, np.load(directory / "ids.npy"), meta)


def _sample(vectors: np.ndarray, size: int, seed: int) -> np.ndarray:
    if len(vectors) <= size:
        return np.asarray(vectors)
    rows = np.sort(np.random.default_rng(seed).choice(len(vectors), size, replace=False))
    return np.asarray(vectors[rows])


def _store_sample(store: FeatureStore, size: int, seed: int) -> np.ndarray:
    """A seeded sample of ``size`` vectors, read shard by shard from the memory-mapped store."""
    total = store.manifest()["count"]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(total, min(total, size), replace=False))
    parts, start = [], 0
    for _name, ids, vectors in store.iter_shards():
        mine = rows[(rows >= start) & (rows < start + len(ids))] - start
        if len(mine):
            parts.append(np.asarray(vectors[mine]))
        start += len(ids)
    return np.concatenate(parts)


def _add_in_chunks(index: VectorIndex, vectors: np.ndarray, desc: str, chunk: int = 65536) -> None:
    from tqdm.auto import tqdm

    with tqdm(total=len(vectors), desc=desc, unit="vec", disable=None) as bar:
        for start in range(0, len(vectors), chunk):
            index.add(np.asarray(vectors[start : start + chunk]))
            bar.update(len(vectors[start : start + chunk]))


def parse_params(text: str | None) -> dict[str, Any]:
    """``"M=32,efSearch=64"`` -> ``{"M": "32", "efSearch": "64"}`` (the backend checks names and values)."""
    from ..errors import ConfigError

    out: dict[str, Any] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"index parameters are NAME=VALUE,...; got {part.strip()!r}")
        out[name.strip()] = value.strip()
    return out


def describe_backends(names: Iterable[str] | None = None, echo: Callable[[str], None] = print) -> None:
    """One line per backend: exact or approximate, and its parameters."""
    for name in names or INDEXES.list():
        cls = INDEXES.get(name)
        params = ", ".join(f"{p}={'(required)' if spec.required else spec.default if spec.default is not None else 'auto'}"
                           for p, spec in cls.PARAMS.items()) or "no parameters"
        note = "" if cls.general else "  (for models learned from votes: their base's nearest items, re-ranked)"
        echo(f"{name:<12} {'exact' if cls.exact else 'approximate':<12} {params}{note}")
