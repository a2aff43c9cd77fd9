"""Query a workspace: by catalogue item or by photo, under one model and metric."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, FeatureStoreError, ImageError
from .index import ItemIndex, SyncSummary
from .metrics import Metric
from .workspace import Workspace

DEFAULT_BACKEND = "faiss-flat"
#: what an image query is: a customer's photo (searched with the model's photo model) or a catalogue image
QUERY_KINDS = ("photo", "catalogue")


@dataclass(frozen=True)
class Match:
    item_id: str
    distance: float
    category: str
    path: str


@dataclass
class SearchResult:
    model: str
    metric: str
    query: dict[str, Any]
    results: list[Match]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "metric": self.metric, "query": self.query,
                "results": [asdict(m) for m in self.results]}


def saved_model(workspace: Workspace, model: str) -> dict[str, Any] | None:
    """A workspace model's saved ``model.json`` (``None`` for built-in models, or one that cannot be read)."""
    import json

    path = workspace.models_dir / model / "model.json"
    try:
        saved = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None
    return saved if isinstance(saved, dict) else None


def learned_model(workspace: Workspace, model: str) -> dict[str, Any] | None:
    """The saved ``model.json`` of a model learned from votes (``None`` for every other model)."""
    saved = saved_model(workspace, model)
    return saved if saved and saved.get("kind") == "learned" else None


def photo_model(workspace: Workspace, model: str) -> str:
    """The model that answers searches by photo for ``model``: the photo model a combined model names (its
    parts trained on photos, as the ``photos`` recipe saves it), else ``model`` itself."""
    saved = saved_model(workspace, model)
    if not saved or saved.get("kind") != "combined":
        return model
    return saved["config"].get("photo_model") or model


def with_photo_model(workspace: Workspace, model: str) -> list[str]:
    """``model``, then the model that answers its searches by photo when that is another one (kept in step)."""
    other = photo_model(workspace, model)
    return [model] if other == model else [model, other]


def declared_metrics(workspace: Workspace, model: str) -> list[Metric]:
    """The metrics a model's vectors mean something under: its own for a model learned from votes (L1 for an
    L1 base, else L2), every metric for the others."""
    saved = learned_model(workspace, model)
    if saved is None:
        return list(Metric)
    return [Metric.L1 if saved["config"]["base_metric"] == "l1" else Metric.L2]


def default_index_spec(workspace: Workspace, model: str, metric: Metric | str) -> tuple[str, dict[str, Any]]:
    """The index a model gets when none is stored: what the model declares (a model learned from votes
    re-ranks its base's shortlist under its own metric), else exact ``faiss-flat``."""
    saved = learned_model(workspace, model)
    if saved is not None and "index" in saved and Metric.parse(metric) in declared_metrics(workspace, model):
        return saved["index"]["backend"], dict(saved["index"]["params"])
    return DEFAULT_BACKEND, {}


class SearchEngine:
    """Loads (or builds) indexes of a workspace once and answers queries; safe to share between threads.

    A stored index is searched with the backend and parameters it was built with; when its feature store
    changed it is updated in place (new shards added, removed ones taken out) and saved. ``backend`` and
    ``params`` only apply to indexes that do not exist yet (default: exact ``faiss-flat``).
    """

    def __init__(self, workspace: Workspace, *, backend: str | None = None, params: dict[str, Any] | None = None):
        self.workspace = workspace
        self.backend = backend
        self.params = params
        self._indexes: dict[tuple[str, Metric], ItemIndex] = {}
        self._extractors: dict[str, tuple[str, Any]] = {}  # model -> (its store's fingerprint, extractor)
        self._localiser = None
        self._lock = threading.RLock()  # loading, building and updating; searches run in parallel

    # -- indexes -----------------------------------------------------------------------------
    def index_spec(self, model: str, metric: Metric | str) -> tuple[str, dict[str, Any]]:
        """The backend and parameters of ``(model, metric)``'s index: the stored one's, else the engine's."""
        meta = ItemIndex.read_meta(self.workspace.index_dir(model, Metric.parse(metric).value))
        if meta is not None:
            return meta.backend, dict(meta.params)
        if self.backend is None:
            return default_index_spec(self.workspace, model, metric)
        return self.backend, dict(self.params or {})

    def build_index(self, model: str, metric: Metric | str, *, backend: str | None = None,
                    params: dict[str, Any] | None = None) -> ItemIndex:
        """Build the index of ``model`` under ``metric`` from its feature store and save it (``backend``:
        default the stored index's backend and parameters, else the engine's)."""
        metric = Metric.parse(metric)
        if backend is None:
            backend, stored = self.index_spec(model, metric)
            params = stored if params is None else params
        from .index import INDEXES

        if "table" in INDEXES.get(backend).PARAMS and not (params or {}).get("table"):
            from .index.pgvector import table_name  # a stored index's rows kept in a database: named after it

            params = {**(params or {}), "table": table_name(model, metric)}
        store = self.workspace.feature_store(model)
        with self._lock:
            index = ItemIndex.from_store(store, model, metric, backend=backend, params=params)
            index.save(self.workspace.index_dir(model, metric.value))
            self._indexes[(model, metric)] = index
        return index

    def index_is_fresh(self, model: str, metric: Metric | str) -> bool:
        """Whether the stored index holds exactly the feature store's current vectors."""
        meta = ItemIndex.read_meta(self.workspace.index_dir(model, Metric.parse(metric).value))
        return meta is not None and meta.features_fingerprint == self.workspace.feature_store(model).fingerprint()

    def get_index(self, model: str, metric: Metric | str) -> ItemIndex:
        """The index for ``(model, metric)``: loaded from disk and brought up to date, or built when missing."""
        metric = Metric.parse(metric)
        store = self.workspace.feature_store(model)
        fingerprint = store.fingerprint()  # also: a clear error when the model was never extracted
        cached = self._indexes.get((model, metric))
        if cached is not None and cached.meta.features_fingerprint == fingerprint:
            return cached
        with self._lock:
            cached = self._indexes.get((model, metric))
            if cached is not None and cached.meta.features_fingerprint == fingerprint:
                return cached
            directory = self.workspace.index_dir(model, metric.value)
            if ItemIndex.read_meta(directory) is None:
                return self.build_index(model, metric)
            index = ItemIndex.load(directory)
            if index.meta.features_fingerprint != fingerprint:
                index.sync(store)
                index.save(directory)
            self._indexes[(model, metric)] = index
            return index

    def update_indexes(self, model: str) -> dict[str, SyncSummary]:
        """Bring every stored index of ``model`` up to date with its feature store (after extract or remove)."""
        out = {}
        for metric in Metric:
            directory = self.workspace.index_dir(model, metric.value)
            if ItemIndex.read_meta(directory) is None:
                continue
            with self._lock:
                index = ItemIndex.load(directory)
                store = self.workspace.feature_store(model)
                out[metric.value] = summary = index.sync(store) if store.exists() else None
                if summary is None:  # the model's vectors are gone: so is its index
                    import shutil

                    shutil.rmtree(directory)
                    self._indexes.pop((model, metric), None)
                    continue
                index.save(directory)
                self._indexes[(model, metric)] = index
        return out

    # -- queries -----------------------------------------------------------------------------
    def search_vectors(self, vectors: np.ndarray, model: str, metric: Metric | str, k: int = 10,
                       exclude: list[str | None] | None = None) -> list[list[Match]]:
        """Nearest catalogue items of each query vector (made by ``model``)."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        hits = self.get_index(model, metric).search(vectors, k, model=model, exclude=exclude)
        catalogue = self.workspace.catalogue
        items = catalogue.get_many([i for row in hits for i, _ in row])
        return [[Match(i, d, items[i].category if i in items else "", str(catalogue.resolve(items[i].path))
                       if i in items else "") for i, d in row] for row in hits]

    def search_item(self, item_id: str, model: str, metric: Metric | str, k: int = 10) -> SearchResult:
        """Items nearest to a catalogue item (the item itself excluded)."""
        metric = Metric.parse(metric)
        item = self.workspace.catalogue.get(item_id)
        vector = self.workspace.feature_store(model).vectors_for([item.id])
        matches = self.search_vectors(vector, model, metric, k, exclude=[item.id])[0]
        query = {"item_id": item.id, "category": item.category, "path": str(self.workspace.catalogue.resolve(item.path))}
        return SearchResult(model, metric.value, query, matches)

    def search_image(self, image: str | Path | bytes, model: str, metric: Metric | str, k: int = 10, *,
                     box: tuple[float, float, float, float] | str | None = None,
                     weights: str | Path | None = None, kind: str = "photo") -> SearchResult:
        """Items nearest to a photo.

        ``box``: ``(x1, y1, x2, y2)`` in pixels (clipped to the photo), ``"auto"`` (the localiser finds the item;
        the whole photo when it finds none) or ``"none"``/``None`` (the whole photo). The query records the box
        used and its source (``given``, ``auto`` or ``none``); with ``"auto"`` also every candidate box found.
        ``kind``: ``"photo"`` searches with the model's photo model where it names one (``searched_with`` in the
        query says which), ``"catalogue"`` with the model itself, for a clean product image.
        """
        from .images import MAX_PHOTO_SIDE, crop_to_box, load_photo

        if kind not in QUERY_KINDS:
            raise ConfigError(f"query kind must be one of {', '.join(QUERY_KINDS)}; got {kind!r}")
        metric = Metric.parse(metric)
        searched = photo_model(self.workspace, model) if kind == "photo" else model
        extractor = self._extractor(searched, weights)
        img, scale, full = load_photo(image, max_side=MAX_PHOTO_SIDE)  # a huge photo is decoded at reduced size
        name = "<upload>" if isinstance(image, bytes) else str(image)
        query: dict[str, Any] = {"image": name, "size": list(full)}
        if searched != model:
            query["searched_with"] = searched

        def original(b) -> list[float]:  # a box in the reduced image -> full-size pixels
            return [round(min(v / scale, full[n % 2]), 1) for n, v in enumerate(b)]

        if isinstance(box, str) and box not in ("auto", "none"):
            raise ConfigError(f"box must be x1,y1,x2,y2, 'auto' or 'none'; got {box!r}")
        if box == "auto":
            views, used, source, found = self.localiser().views(img)
            query["candidates"] = [{"box": original(d.box), "score": round(d.score, 4)} for d in found]
        elif box is None or box == "none":
            used, views, source = None, [img], "none"
        else:
            if len(box) != 4:
                raise ImageError(f"{name}: a box needs 4 numbers x1,y1,x2,y2, got {len(box)}")
            views = [crop_to_box(img, [float(v) * scale for v in box], name=name)]
            x1, y1, x2, y2 = (float(v) * scale for v in box)
            used, source = (max(0.0, x1), max(0.0, y1), min(float(img.width), x2), min(float(img.height), y2)), "given"
        query["box"] = original(used) if used is not None else None
        query["box_source"] = source
        vector = extractor.embed_views([views])
        matches = self.search_vectors(vector, searched, metric, k)[0]
        return SearchResult(model, metric.value, query, matches)

    def localiser(self):
        """The workspace's item localiser (trained by ``train --recipe photos``, else SCDA), loaded once."""
        with self._lock:
            if self._localiser is None:
                from .photos.localise import workspace_localiser

                self._localiser = workspace_localiser(self.workspace)
            return self._localiser

    def _extractor(self, model: str, weights: str | Path | None):
        store = self.workspace.feature_store(model)
        stamp = store.fingerprint()  # a stat; it changes when the model's vectors are made again (a re-learned taste)
        with self._lock:
            cached = self._extractors.get(model)
            if cached is None or cached[0] != stamp:
                extractor = self.workspace.create_extractor(model, weights=weights)
                wanted = store.manifest()["weights_sha256"]
                if extractor.weights_checksum() != wanted:
                    raise FeatureStoreError(
                        f"{model}: the catalogue's features were made with weights {wanted[:12]}, but the weights "
                        f"found now are {extractor.weights_checksum()[:12]}; pass the same --weights or re-extract")
                self._extractors[model] = (stamp, extractor)
            return self._extractors[model][1]
