"""Nearest-match evaluation, the post's protocol: does a query's nearest item share its category?

Two protocols:

- ``subset`` (the post's): a seeded random subset of the catalogue is the gallery; queries are drawn
  from it and each query is excluded from its own results.
- ``held-out``: queries from one split (default ``test``), gallery from the others, so a model trained on
  the training split is never scored on images it saw.

Beyond top-1 accuracy: category precision@k and recall@k, mean average precision at R (R = number of
gallery items of the query's category), per-category top-1 accuracy, exact-item Recall@k when items
carry product ids (DeepFashion In-shop style: a hit when the same product is among the top k), and a
random-pair baseline computed the same way (plus its expected value).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from .errors import ConfigError
from .index import ItemIndex
from .metrics import Metric
from .workspace import Workspace

Protocol = Literal["subset", "held-out"]


@dataclass
class EvalRow:
    """Scores of one search system (model x metric)."""

    model: str
    metric: str
    top1: float
    precision_at: dict[int, float]
    recall_at: dict[int, float]
    map_at_r: float
    per_category_top1: dict[str, float] = field(default_factory=dict)
    item_recall_at: dict[int, float] | None = None  # exact-item Recall@k (items with product ids)
    box: str | None = None  # query photos: given / auto / none
    backend: str = "faiss-flat"  # the index backend searched (the workspace's stored one for this system)

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        if self.box is None:
            del row["box"]
        for k, v in (self.item_recall_at or {}).items():
            row[f"item_recall@{k}"] = v
        if self.box is not None:
            row.setdefault("item_recall@1", None)
            row.setdefault("item_recall@10", None)
        return row


@dataclass
class EvalReport:
    protocol: str
    gallery: int
    queries: int
    seed: int
    baseline_top1: float
    baseline_expected: float
    rows: list[EvalRow]
    item_queries: int = 0  # queries whose product has another photo in the gallery
    gallery_split: str | None = None
    split: str | None = None
    examples: dict[str, Any] = field(default_factory=dict)  # a few queries' top matches, for pictures
    photos: dict[str, Any] | None = None  # query-photo evaluation: the CSV, box modes, localiser IoU

    def best_metric(self, model: str) -> str:
        """The metric under which ``model`` scores the best top-1."""
        return max((r for r in self.rows if r.model == model), key=lambda r: r.top1).metric

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = [r.to_dict() for r in self.rows]
        if self.photos is None:
            del out["photos"]
        return out

    def table(self) -> str:
        """Models as rows, metrics as columns (top-1 same-category accuracy), like the post's table."""
        if self.photos is not None:
            return self._photo_table()
        metrics = sorted({r.metric for r in self.rows}, key=[m.value for m in Metric].index)
        models = list(dict.fromkeys(r.model for r in self.rows))
        by = {(r.model, r.metric): r.top1 for r in self.rows}
        width = max([len(m) for m in models] + [14])
        lines = [f"{'model':<{width}} " + " ".join(f"{m:>8}" for m in metrics),
                 f"{'random pairs':<{width}} " + " ".join(f"{self.baseline_top1:>8.1%}" for _ in metrics)]
        for model in models:
            lines.append(f"{model:<{width}} " + " ".join(
                f"{by[(model, m)]:>8.1%}" if (model, m) in by else f"{'-':>8}" for m in metrics))
        lines.append(f"({self.protocol} protocol: {self.gallery} gallery items, {self.queries} queries, "
                     f"seed {self.seed}; top-1 same-category accuracy)")
        if self.item_queries:
            lines.append(f"exact-item Recall@k ({self.item_queries} queries with another photo of their product):")
            for r in self.rows:
                lines.append(f"  {r.model:<{width}} {r.metric:>8}  " + "  ".join(
                    f"R@{k} {v:.1%}" for k, v in (r.item_recall_at or {}).items()))
        return "\n".join(lines)


    def _photo_table(self) -> str:
        """Query photos: a row per model x box mode, top-1 and exact-item R@1 / R@10 per metric."""
        metrics = sorted({r.metric for r in self.rows}, key=[m.value for m in Metric].index)
        keys = list(dict.fromkeys((r.model, r.box) for r in self.rows))
        by = {(r.model, r.box, r.metric): r for r in self.rows}
        width = max([len(m) + 8 for m, _ in keys] + [20])
        items = any(r.item_recall_at for r in self.rows)
        head = " ".join(f"{m:>8}" + (f" {'R@1':>6} {'R@10':>6}" if items else "") for m in metrics)
        lines = [f"{'model (box)':<{width}} {head}",
                 f"{'random pairs':<{width}} " + " ".join(f"{self.baseline_top1:>8.1%}" + (" " * 14 if items else "")
                                                          for _ in metrics)]
        for model, box in keys:
            cells = []
            for m in metrics:
                r = by.get((model, box, m))
                cell = f"{r.top1:>8.1%}" if r else f"{'-':>8}"
                if items:
                    rec = (r.item_recall_at or {}) if r else {}
                    cell += "".join(f" {rec[k]:>6.1%}" if k in rec else f" {'-':>6}" for k in (1, 10))
                cells.append(cell)
            lines.append(f"{model + ' (' + str(box) + ')':<{width}} " + " ".join(cells))
        info = self.photos or {}
        lines.append(f"(query photos {info.get('csv')}: {self.queries} photos against {self.gallery} gallery items, "
                     f"seed {self.seed}; top-1 same-category accuracy" + (", exact-item R@1 / R@10" if items else "")
                     + ")")
        iou = info.get("localiser_iou")
        if iou:
            lines.append(f"localiser ({info.get('localiser')}): mean IoU {iou['mean_iou']:.3f} with the given boxes, "
                         f"IoU >= 0.5 on {iou['iou>=0.5']:.1%} of {iou['photos']} photos; an item found in "
                         f"{iou['found']:.1%}")
        return "\n".join(lines)


def _choose(rng: np.random.Generator, ids: list[str], n: int | None) -> list[str]:
    if n is None or n >= len(ids):
        return sorted(ids)
    return sorted(ids[i] for i in rng.choice(len(ids), size=n, replace=False))


def evaluate(workspace: Workspace, models: list[str], metrics: list[Metric | str], *, subset: int | None = 20000,
             queries: int = 1000, seed: int = 0, protocol: Protocol = "subset", split: str = "test",
             gallery_split: str | None = None, ks: tuple[int, ...] = (1, 5, 10), examples: int = 8,
             example_k: int = 5) -> EvalReport:
    """Score every model x metric on the same seeded gallery and queries.

    ``gallery_split`` (held-out protocol) takes the gallery from that split only, e.g. In-shop's
    ``gallery``; by default it is every item outside ``split``. ``examples`` queries keep their top
    ``example_k`` matches for the report's pictures.
    """
    if not models or not metrics:
        raise ConfigError("give at least one model and one metric")
    metrics = [Metric.parse(m) for m in metrics]
    if queries < 1:
        raise ConfigError(f"--queries must be at least 1, got {queries}")
    catalogue = workspace.catalogue
    stores = {m: workspace.feature_store(m) for m in models}
    common = set.intersection(*(set(s.ids()) for s in stores.values()))  # items every model has
    items = {i.id: i for i in catalogue.items() if i.id in common}
    rng = np.random.default_rng(seed)
    if protocol == "subset":
        gallery_ids = _choose(rng, list(items), subset)
        if queries > len(gallery_ids):
            raise ConfigError(f"--queries {queries} is larger than the subset of {len(gallery_ids)} items")
        query_ids = _choose(rng, gallery_ids, queries)
    elif protocol == "held-out":
        held = [i for i, it in items.items() if it.split == split]
        rest = [i for i, it in items.items() if it.split != split
                and (gallery_split is None or it.split == gallery_split)]
        if not held:
            raise ConfigError(f"no items in split {split!r} with features of every model; splits: "
                              f"{sorted({str(it.split) for it in items.values()})}")
        if not rest:
            raise ConfigError(f"held-out protocol needs gallery items outside split {split!r}"
                              + (f" in split {gallery_split!r}" if gallery_split else "") + "; there are none")
        gallery_ids = _choose(rng, rest, subset)
        if queries > len(held):
            raise ConfigError(f"--queries {queries} is larger than the {len(held)} items of split {split!r}")
        query_ids = _choose(rng, held, queries)
    else:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of: held-out, subset")

    gallery_cats = np.array([items[i].category for i in gallery_ids])
    query_cats = np.array([items[i].category for i in query_ids])
    if len(set(gallery_cats)) < 2:
        raise ConfigError("the gallery has a single category: same-category accuracy would be meaningless")
    counts = Counter(gallery_cats.tolist())
    in_gallery = protocol == "subset"
    relevant = np.array([counts[c] - (1 if in_gallery else 0) for c in query_cats])  # R per query

    # random-pair baseline: each query paired with a random other gallery item
    position = {g: n for n, g in enumerate(gallery_ids)}
    picks = []
    for q in query_ids:
        while True:
            p = int(rng.integers(len(gallery_ids)))
            if gallery_ids[p] != q:
                break
        picks.append(p)
    baseline = float(np.mean(gallery_cats[picks] == query_cats))
    expected = float(np.mean(relevant / (len(gallery_ids) - (1 if in_gallery else 0))))

    # exact-item retrieval: queries whose product has another photo in the gallery
    gallery_products = Counter(items[g].product for g in gallery_ids if items[g].product is not None)
    query_products = [items[q].product for q in query_ids]
    item_mask = np.array([p is not None and gallery_products[p] - (1 if in_gallery else 0) > 0
                          for p in query_products])
    example_rows = (sorted(rng.choice(len(query_ids), size=min(examples, len(query_ids)), replace=False).tolist())
                    if examples else [])
    shown: dict[str, list] = {}

    from .search import declared_metrics, learned_model

    rows = []
    max_r = int(relevant.max())
    for model in models:
        vectors = stores[model].vectors_for(gallery_ids)
        qvectors = vectors[[position[q] for q in query_ids]] if in_gallery else stores[model].vectors_for(query_ids)
        if learned_model(workspace, model) is not None:  # a query's own category must not help find it
            qvectors = workspace.create_extractor(model).hide_labels(qvectors)
        for metric in metrics:
            if metric not in declared_metrics(workspace, model):
                continue  # e.g. a model learned from votes: searched under its own metric only
            backend, params = gallery_index_spec(workspace, model, metric)
            index = ItemIndex.build(model, metric, np.asarray(gallery_ids), vectors, backend=backend, params=params)
            k = max(max(ks), max_r)
            hits = np.zeros((len(query_ids), k), bool)
            item_hits = np.zeros((len(query_ids), max(ks)), bool)
            system = f"{model}/{metric.value}"
            shown[system] = []
            for start in range(0, len(query_ids), 256):  # chunks bound memory at 4096-d
                chunk = slice(start, start + 256)
                exclude = list(query_ids[chunk]) if in_gallery else None
                found = index.search(qvectors[chunk], k, model=model, exclude=exclude)
                for row, matches in enumerate(found, start):
                    cats = [items[i].category for i, _ in matches]
                    hits[row, : len(cats)] = np.array(cats) == query_cats[row]
                    if item_mask[row]:
                        top = [items[i].product for i, _ in matches[: max(ks)]]
                        item_hits[row, : len(top)] = np.array(top, dtype=object) == query_products[row]
                    if row in example_rows:
                        shown[system].append([[i, float(d)] for i, d in matches[:example_k]])
            score = _score(model, metric.value, hits, relevant, query_cats, ks)
            score.backend = backend
            if item_mask.any():
                score.item_recall_at = {k_: float(np.mean(item_hits[item_mask, :k_].any(1))) for k_ in ks}
            rows.append(score)
    return EvalReport(protocol, len(gallery_ids), len(query_ids), seed, baseline, expected, rows,
                      item_queries=int(item_mask.sum()), gallery_split=gallery_split if protocol == "held-out" else None,
                      split=split if protocol == "held-out" else None,
                      examples={"queries": [query_ids[r] for r in example_rows], "matches": shown})


def gallery_index_spec(workspace: Workspace, model: str, metric: Metric) -> tuple[str, dict[str, Any]]:
    """The backend and parameters an evaluation gallery is searched with: those of the workspace's stored index
    of ``(model, metric)`` (what search and serve use), with data-chosen ones (IVF's ``nlist``) chosen again
    for the gallery; exact ``faiss-flat`` when none is stored."""
    from .index import INDEXES
    from .search import default_index_spec

    meta = ItemIndex.read_meta(workspace.index_dir(model, metric.value))
    if meta is None:
        return default_index_spec(workspace, model, metric)
    declared = INDEXES.get(meta.backend).PARAMS
    return meta.backend, {k: v for k, v in meta.params.items()
                          if k in declared and (declared[k].default is not None or declared[k].required)}


def _score(model: str, metric: str, hits: np.ndarray, relevant: np.ndarray, query_cats: np.ndarray,
           ks: tuple[int, ...]) -> EvalRow:
    precision = {k: float(hits[:, :k].mean()) for k in ks}
    recall = {k: float(np.mean(hits[:, :k].sum(1) / np.maximum(relevant, 1))) for k in ks}
    ranks = np.arange(1, hits.shape[1] + 1)
    ap = []
    for row, r in zip(hits, relevant):
        if r == 0:
            ap.append(0.0)
            continue
        top = row[:r]
        ap.append(float((np.cumsum(top) / ranks[:r] * top).sum() / r))
    per_cat = {c: float(hits[query_cats == c, 0].mean()) for c in sorted(set(query_cats.tolist()))}
    return EvalRow(model, metric, float(hits[:, 0].mean()), precision, recall, float(np.mean(ap)), per_cat)


class Evaluator(ABC):
    """Scores a model on fixed data, built once and called at every checkpoint (sentence-transformers style).

    ``__call__(model)`` returns named scores; ``primary`` names the one that chooses checkpoints, and
    ``greater_is_better`` its direction. ``train`` chooses epochs with a ``RetrievalEvaluator``, ``learn``
    chooses how far a taste moves from its base with ``VoteEvaluator``s (``lookalike.taste.fit``).
    """

    name: str = "evaluator"
    primary: str = ""
    greater_is_better: bool = True

    @abstractmethod
    def __call__(self, model) -> dict[str, float]:  # noqa: ANN001 - each evaluator knows its kind of model
        """Named scores of ``model`` on this evaluator's data."""


class RetrievalEvaluator(Evaluator):
    """Scores a vector transform on fixed queries and gallery: built once, called every epoch.

    Queries and gallery are vectors in one base space (e.g. a frozen backbone's); ``__call__(transform)``
    maps both through ``transform`` (a trained head's ``embed``; identity when None), searches the gallery
    under ``metric`` and returns top-1 same-category accuracy and, for queries naming their item,
    exact-item Recall@1 and @10 (as in sentence-transformers' evaluators: one object, used by training to
    choose its checkpoint and by scripts alike).
    """

    def __init__(self, queries: np.ndarray, query_categories: list[str], gallery: np.ndarray,
                 gallery_ids: list[str], gallery_categories: list[str], query_items: list[str | None] | None = None,
                 metric: Metric | str = "l2", name: str = "retrieval"):
        if len(queries) != len(query_categories) or len(gallery) != len(gallery_ids) != len(gallery_categories):
            raise ConfigError("queries, gallery and their labels must have matching lengths")
        if len(queries) == 0 or len(gallery) == 0:
            raise ConfigError(f"{name}: needs at least one query and one gallery item")
        self.queries, self.gallery = queries, gallery
        self.query_categories = np.asarray(query_categories)
        self.gallery_ids = np.asarray(gallery_ids)
        self.gallery_categories = np.asarray(gallery_categories)
        self.query_items = query_items
        self.metric = Metric.parse(metric)
        self.name = name
        self.primary = "score"  # top-1, averaged with item Recall@10 when queries name their item

    def __call__(self, transform=None) -> dict[str, float]:
        queries = self.queries if transform is None else transform(self.queries)
        gallery = self.gallery if transform is None else transform(self.gallery)
        index = ItemIndex.build(self.name, self.metric, self.gallery_ids, np.ascontiguousarray(gallery, np.float32))
        found = index.search(np.ascontiguousarray(queries, np.float32), 10, model=self.name)
        position = {g: n for n, g in enumerate(self.gallery_ids.tolist())}
        top1 = [self.gallery_categories[position[row[0][0]]] == c if row else False
                for row, c in zip(found, self.query_categories)]
        scores = {"top1": float(np.mean(top1))}
        if self.query_items is not None and any(i is not None for i in self.query_items):
            named = [(row, i) for row, i in zip(found, self.query_items) if i is not None]
            for k in (1, 10):
                scores[f"item_recall@{k}"] = float(np.mean([i in [g for g, _ in row[:k]] for row, i in named]))
        scores["score"] = (scores["top1"] + scores.get("item_recall@10", scores["top1"])) / 2
        return scores
