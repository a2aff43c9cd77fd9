"""Indexes persisted in a workspace, tied to the feature store (extractor, dimension) they were built from."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import FeatureStoreError, IndexMismatchError
from ..metrics import Metric
from .base import VectorIndex
from .registry import INDEXES, create_index


@dataclass(frozen=True)
class IndexMeta:
    """What an index on disk was built from."""

    model: str
    metric: str
    backend: str
    dim: int
    count: int
    features_fingerprint: str


class ItemIndex:
    """A ``VectorIndex`` plus the item ids of its positions and the model that made its vectors."""

    def __init__(self, index: VectorIndex, ids: np.ndarray, meta: IndexMeta):
        if len(ids) != index.ntotal:
            raise ValueError(f"{len(ids)} ids for an index of {index.ntotal} vectors")
        self.index, self.ids, self.meta = index, np.asarray(ids), meta

    @classmethod
    def build(cls, model: str, metric: Metric | str, ids: np.ndarray, vectors: np.ndarray, *,
              backend: str = "faiss-flat", fingerprint: str = "") -> ItemIndex:
        metric = Metric.parse(metric)
        if len(vectors) == 0:
            raise FeatureStoreError(f"no feature vectors for {model}; run: lookalike extract --model {model}")
        from tqdm.auto import tqdm

        index = create_index(backend, vectors.shape[1], metric)
        with tqdm(total=len(vectors), desc=f"index {model} {metric.value}", unit="vec", disable=None) as bar:
            for start in range(0, len(vectors), 65536):
                index.add(vectors[start : start + 65536])
                bar.update(len(vectors[start : start + 65536]))
        meta = IndexMeta(model, metric.value, backend, int(vectors.shape[1]), len(ids), fingerprint)
        return cls(index, ids, meta)

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
        self.index.save(directory)
        np.save(directory / "ids.npy", self.ids.astype(str))
        tmp = directory / "meta.json.tmp"
        tmp.write_text(json.dumps(asdict(self.meta), indent=2))
        tmp.replace(directory / "meta.json")  # written last: its presence marks a complete index

    @classmethod
    def load(cls, directory: Path) -> ItemIndex:
        meta_path = directory / "meta.json"
        if not meta_path.is_file():
            raise FeatureStoreError(f"no index in {directory}")
        meta = IndexMeta(**json.loads(meta_path.read_text()))
        index = INDEXES.get(meta.backend).load(directory, meta.dim, Metric.parse(meta.metric))
        return cls(index, np.load(directory / "ids.npy"), meta)
