"""Evaluation with query photos: customer photos searched against the catalogue, per model x metric x box.

Box modes: ``given`` (the CSV's box, as a user would draw it), ``auto`` (the box the localiser finds) and
``none`` (the whole photo). A photo without a CSV box is left out of ``given``. Scores are the clean
protocol's (top-1 same category, P@k, R@k, mAP@R) plus exact-item Recall@k for photos naming their item.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError, ImageError
from ..evaluation import EvalReport, _choose, _score, gallery_index_spec
from ..search import declared_metrics, photo_model
from ..index import ItemIndex
from ..metrics import Metric
from .localise import box_iou
from .sets import QueryPhoto, read_query_photos

BOX_MODES = ("given", "auto", "none")


def parse_box_modes(text: str | Sequence[str]) -> list[str]:
    modes = [m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    bad = [m for m in modes if m not in BOX_MODES]
    if bad or not modes:
        raise ConfigError(f"--box: choose any of {', '.join(BOX_MODES)} (comma-separated), got {text!r}")
    return list(dict.fromkeys(modes))


def photo_views(photos: list[QueryPhoto], mode: str, localiser=None, *, progress: bool | None = None
                ) -> tuple[list, list[dict]]:
    """The query views of every photo under ``mode`` (a list of images whose vectors are averaged, as
    ``search --image`` does; None where the mode does not apply or the photo is unreadable), with what was
    used: ``{"box": ..., "box_source": given|auto|none}``."""
    from ..images import MAX_PHOTO_SIDE, crop_to_box, load_photo

    out, used = [], []
    for photo in tqdm(photos, desc=f"photos ({mode} box)", unit="photo", disable=None if progress is None
                      else not progress, leave=False):
        try:
            img, scale, _ = load_photo(photo.path, max_side=MAX_PHOTO_SIDE)
        except ImageError as error:
            out.append(None)
            used.append({"box": None, "box_source": None, "error": str(error)})
            continue
        if mode == "given":
            if photo.box is None:
                out.append(None)
                used.append({"box": None, "box_source": None})
                continue
            out.append([crop_to_box(img, [v * scale for v in photo.box], name=str(photo.path))])
            used.append({"box": list(photo.box), "box_source": "given"})
        elif mode == "auto":
            crops, box, source, _ = localiser.views(img)
            out.append(crops)
            used.append({"box": [v / scale for v in box] if box else None, "box_source": source})
        else:
            out.append([img])
            used.append({"box": None, "box_source": "none"})
    return out, used


def evaluate_photos(workspace, models: list[str], metrics: list[Metric | str], query_photos: str | Path, *,
                    boxes: Sequence[str] = BOX_MODES, subset: int | None = 20000, seed: int = 0,
                    protocol: str = "held-out", split: str = "test", gallery_split: str | None = None,
                    ks: tuple[int, ...] = (1, 5, 10), localiser=None, progress: bool | None = None) -> EvalReport:
    """Score every model x metric x box mode on the photos of a query-photo CSV.

    The gallery is a seeded ``subset`` of the catalogue items every model has (held-out protocol: outside
    ``split``, or in ``gallery_split``), plus every item a photo names, so its exact item can be found. A model
    that names a photo model is scored as a search by photo runs it: with its photo model's vectors
    (``report.photos["searched_with"]``).
    """
    from .localise import workspace_localiser

    if not models or not metrics:
        raise ConfigError("give at least one model and one metric")
    metrics = [Metric.parse(m) for m in metrics]
    boxes = parse_box_modes(boxes)
    photos = read_query_photos(query_photos)
    catalogue = workspace.catalogue
    searched = {m: photo_model(workspace, m) for m in models}  # a photo is searched with the model's photo model
    stores = {m: workspace.feature_store(searched[m]) for m in models}
    common = set.intersection(*(set(s.ids()) for s in stores.values()))
    items = {i.id: i for i in catalogue.items() if i.id in common}
    named = [p.item for p in photos if p.item is not None]
    missing = sorted({i for i in named if i not in items})
    if missing:
        raise ConfigError(f"{len(missing)} item ids in {query_photos} are not in the catalogue with features of "
                          f"every model (e.g. {missing[0]!r}); extract them, or drop the item column")
    if protocol == "held-out":
        pool = [i for i, it in items.items() if it.split != split and (gallery_split is None or it.split == gallery_split)]
    elif protocol == "subset":
        pool = list(items)
    else:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of: held-out, subset")
    rng = np.random.default_rng(seed)
    gallery_ids = sorted(set(_choose(rng, pool, subset)) | set(named))
    gallery_cats = np.array([items[i].category for i in gallery_ids])
    if len(set(gallery_cats.tolist())) < 2:
        raise ConfigError("the gallery has a single category: same-category accuracy would be meaningless")
    unknown = sorted({p.category for p in photos} - set(gallery_cats.tolist()))
    if unknown:
        raise ConfigError(f"photo categories not in the gallery: {unknown[:5]}; gallery categories: "
                          f"{sorted(set(gallery_cats.tolist()))[:10]}")
    counts = Counter(gallery_cats.tolist())
    product = {i: items[i].product or i for i in gallery_ids}  # the same product: same id, or same product id

    if "auto" in boxes and localiser is None:
        localiser = workspace_localiser(workspace)
    views, used = {}, {}
    for mode in boxes:
        views[mode], used[mode] = photo_views(photos, mode, localiser, progress=progress)
    iou = None
    if "auto" in boxes:
        pairs = [(u["box"], p.box) for u, p in zip(used["auto"], photos) if p.box is not None]
        if pairs:
            values = np.array([box_iou(tuple(a), b) if a else 0.0 for a, b in pairs])
            iou = {"photos": len(values), "mean_iou": float(values.mean()), "iou>=0.5": float((values >= 0.5).mean()),
                   "found": float(np.mean([a is not None for a, _ in pairs]))}

    rows, n_queries, item_queries = [], 0, 0
    max_k = max(ks)
    for model in models:
        extractor = workspace.create_extractor(searched[model])
        vectors = stores[model].vectors_for(gallery_ids)
        usable = [m for m in metrics if m in declared_metrics(workspace, model)]  # a learned model: its own only
        specs = {metric: gallery_index_spec(workspace, searched[model], metric) for metric in usable}
        indexes = {metric: ItemIndex.build(model, metric, np.asarray(gallery_ids), vectors, backend=specs[metric][0],
                                           params=specs[metric][1]) for metric in usable}
        for mode in boxes:
            keep = [n for n, v in enumerate(views[mode]) if v is not None]
            if not keep:
                continue
            queries = extractor.embed_views([views[mode][n] for n in keep])
            query_cats = np.array([photos[n].category for n in keep])
            relevant = np.array([counts[c] for c in query_cats])
            query_items = [photos[n].item for n in keep]
            item_mask = np.array([i is not None for i in query_items])
            for metric, index in indexes.items():
                k = max(max_k, int(relevant.max()))
                hits = np.zeros((len(keep), k), bool)
                item_hits = np.zeros((len(keep), max_k), bool)
                for start in range(0, len(keep), 256):
                    found = index.search(queries[start : start + 256], k, model=model)
                    for row, matches in enumerate(found, start):
                        cats = [items[i].category for i, _ in matches]
                        hits[row, : len(cats)] = np.array(cats) == query_cats[row]
                        if item_mask[row]:
                            wanted = product[query_items[row]]
                            top = [product[i] for i, _ in matches[:max_k]]
                            item_hits[row, : len(top)] = np.array(top, dtype=object) == wanted
                score = _score(model, metric.value, hits, relevant, query_cats, ks)
                score.box, score.backend = mode, specs[metric][0]
                if item_mask.any():
                    score.item_recall_at = {k_: float(np.mean(item_hits[item_mask, :k_].any(1))) for k_ in ks}
                rows.append(score)
            n_queries = max(n_queries, len(keep))
            item_queries = max(item_queries, int(item_mask.sum()))
    picks = rng.integers(len(gallery_ids), size=len(photos))
    baseline = float(np.mean(gallery_cats[picks] == np.array([p.category for p in photos])))
    expected = float(np.mean([counts[p.category] / len(gallery_ids) for p in photos]))
    report = EvalReport("photos", len(gallery_ids), n_queries, seed, baseline, expected, rows,
                        item_queries=item_queries, gallery_split=gallery_split,
                        split=split if protocol == "held-out" else None)
    report.photos = {"csv": str(query_photos), "photos": len(photos), "boxes": boxes, "localiser_iou": iou,
                     "localiser": getattr(localiser, "description", None) if "auto" in boxes else None,
                     "unreadable": sum(1 for u in used[boxes[0]] if u.get("error")),
                     "searched_with": {m: r for m, r in searched.items() if r != m}}
    return report
