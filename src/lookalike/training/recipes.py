"""Named training recipes: one command trains a recommended model (``lookalike train --recipe NAME``).

``photos``: a model for customer photos, street-to-shop, with an asymmetric search. Heads on frozen
backbones, each chosen on validation data only:

- ``NAME-lite0``: a 1,024-unit L2-normalised layer on EfficientNet-Lite0's R-MAC vectors (ImageNet);
- ``NAME-pixels``: a small CNN + 4,096-unit layer on the 32x32 pixels (mirror-averaged);
- ``NAME-clean``: the same CNN trained on the clean catalogue images alone.

The two photo parts train on the catalogue's clean images and on synthetic phone photos of each training
item, with CosFace over the categories plus a contrastive loss that brings each photo to its own item, and
are chosen on photos of validation items. ``NAME-photos`` joins them (``lookalike combine``) with weights
chosen on clean validation items and fresh validation photos (``choose_part_weights``): it answers searches by
photo. ``NAME`` adds the clean part, with a share chosen on clean validation items under every metric
(``choose_clean_share``), and names ``NAME-photos`` as its photo model: catalogue items are compared with all
three parts, photos with the photo parts only (the clean part is at chance on a photo and adds noise to its
vector). Where the clean part does not help, ``NAME`` is the two photo parts. With ``backbone`` given, one
head on it is trained instead. The same run trains the workspace's item localiser (``WS/localiser``) on
photos of training items, unless one is there already.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..workspace import Workspace
from .trainer import TrainConfig, TrainResult, train

RECIPES = ("photos",)
#: settings that only photo-trained parts take (the clean part ignores them when given for the whole recipe)
PHOTO_SETTINGS = ("photo_views", "val_photos", "instance_weight", "temperature", "real_backgrounds")


def recipe_parts(recipe: str, name: str, backbone: str | None = None, *, models_dir: Path | None = None,
                 **overrides: Any) -> list[TrainConfig]:
    """The models a recipe trains: with ``backbone`` (built-in, or saved in ``models_dir``), one on it; else its
    default parts (``overrides``: any TrainConfig field given explicitly, applied to every part)."""
    if recipe != "photos":
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    if backbone is not None:
        return [recipe_config(recipe, name, backbone, models_dir=models_dir, **overrides)]
    clean = {k: v for k, v in overrides.items() if k not in PHOTO_SETTINGS}
    return [recipe_config(recipe, f"{name}-lite0", "efficientnet-lite0-rmac", **overrides),
            recipe_config(recipe, f"{name}-pixels", "pixels", **overrides),
            recipe_config(recipe, f"{name}-clean", "pixels", clean_only=True, models_dir=models_dir, **clean)]


def recipe_config(recipe: str, name: str, backbone: str | None = None, *, models_dir: Path | None = None,
                  clean_only: bool = False, **overrides: Any) -> TrainConfig:
    """The settings of a named recipe on one backbone (``overrides``: any TrainConfig field given explicitly).

    Image-shaped backbones (``pixels``) get the conv head, the others the dense head. Two synthetic photos
    per training item and 10 epochs for the pixel CNN: the settings that trained the recommended
    ``photo-full`` on all 54,000 Fashion-MNIST training items on 2 cores (docs/results.md). ``clean_only``:
    the same head trained on the clean images alone (no photos; the trainer's default regularisation), the
    part that sharpens catalogue-to-catalogue matches.
    """
    from ..extractors import create_extractor

    if recipe != "photos":
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    backbone = backbone or "efficientnet-lite0-rmac"
    if create_extractor(backbone, models_dir=models_dir).feature_shape is not None:  # a small CNN on the image-shaped vectors
        config = TrainConfig(backbone=backbone, name=name, hidden=4096, epochs=10, batch_size=256, lr=1e-3,
                             dropout=0.5, input_dropout=0.0, label_smoothing=0.0, loss="cosface", head="conv",
                             conv_depth=2, flip_tta=True, photo_views=2, instance_weight=1.0, temperature=0.05,
                             val_photos=500, recipe=recipe)
    else:
        config = TrainConfig(backbone=backbone, name=name, hidden=1024, epochs=30, batch_size=256, lr=1e-3,
                             dropout=0.1, input_dropout=0.1, label_smoothing=0.0, loss="cosface", photo_views=2,
                             instance_weight=1.0, temperature=0.05, val_photos=500, recipe=recipe)
    if clean_only:
        config = TrainConfig(backbone=backbone, name=name, hidden=config.hidden, epochs=config.epochs,
                             batch_size=config.batch_size, lr=config.lr, loss=config.loss, head=config.head,
                             conv_depth=config.conv_depth, flip_tta=config.flip_tta, recipe=recipe)
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def train_recipe(workspace: Workspace, recipe: str, name: str, *, backbone: str | None = None,
                 device: str = "auto", overwrite: bool = False, localiser: bool = True,
                 localiser_photos: int = 6000, log: Callable[[str], None] = print,
                 **overrides: Any) -> tuple[list[TrainResult], dict | None]:
    """Train the recipe's models (for ``photos``: the item localiser too, unless the workspace has one) and,
    when there are several, combine them as ``name`` (and its photo model ``name-photos``, when the clean part
    joins). Returns the parts' results and the localiser's metadata."""
    from ..features import extract_features
    from ..photos.localise import TrainedLocaliser, train_localiser
    from .trainer import resolve_device, training_split

    parts = recipe_parts(recipe, name, backbone, models_dir=workspace.models_dir, **overrides)
    for config in parts:
        config.check()
    if localiser_photos < 1:
        raise ConfigError(f"--localiser-photos must be at least 1, got {localiser_photos}")
    started = time.perf_counter()
    for config in parts:
        store = workspace.feature_store(config.backbone)
        if len(store.stored_ids() & set(workspace.catalogue.ids())) < len(workspace.catalogue):
            log(f"{name}: extracting the missing {config.backbone} vectors first (heads train on them)")
            summary = extract_features(workspace.catalogue, workspace.create_extractor(config.backbone), store)
            for line in summary.lines():
                log(line)
    train_ids, val_ids, _categories, labels = training_split(workspace, parts[0])
    localiser_meta = None
    directory = workspace.root / "localiser"
    if localiser and (overwrite or not (directory / TrainedLocaliser.META).is_file()):
        log(f"{name}: training the item localiser on synthetic photos of training items")
        localiser_meta = train_localiser(workspace, train_ids, val_ids, directory, seed=parts[0].seed,
                                         photos=localiser_photos, val_photos=max(10, localiser_photos // 7),
                                         device=resolve_device(device), log=log)
    results = []
    for config in parts:
        part_started = time.perf_counter()
        results.append(train(workspace, config, device=device, overwrite=overwrite, log=log))
        log(f"{config.name}: trained in {(time.perf_counter() - part_started) / 60:.1f} min")
    for config in parts:  # the catalogue's vectors, from the backbones' stores: seconds
        extract_features(workspace.catalogue, workspace.create_extractor(config.name), workspace.feature_store(config.name),
                         overwrite=overwrite, backbone_store=workspace.feature_store(config.backbone), progress=False)
    clean_parts = [c for c in parts if c.name == f"{name}-clean"]
    photo_parts = [c for c in parts if c not in clean_parts]
    if len(parts) > 1:
        weights, selection = choose_part_weights(workspace, photo_parts, train_ids, val_ids, labels, log=log)
        joined, photo_model = list(zip(photo_parts, weights)), None
        if clean_parts:
            share, clean_selection = choose_clean_share(workspace, photo_parts, weights, clean_parts[0], train_ids,
                                                        val_ids, labels, log=log)
            if share > 0:  # NAME-photos answers photos; NAME adds the clean part for catalogue items
                photo_model = f"{name}-photos"
                _save_joined(workspace, photo_model, joined, selection, log)
                joined.append((clean_parts[0], share * sum(weights)))
            selection = {**(selection or {}), "clean_share": clean_selection}
        _save_joined(workspace, name, joined, selection, log, photo_model=photo_model)
    log(f"{name}: recipe {recipe!r} finished in {(time.perf_counter() - started) / 60:.1f} min")
    return results, localiser_meta


def _save_joined(workspace: Workspace, name: str, joined: list[tuple[TrainConfig, float]], selection: dict | None,
                 log: Callable[[str], None], *, photo_model: str | None = None) -> None:
    """Save the combined model of the weighted parts and extract its catalogue vectors from theirs (seconds)."""
    from ..extractors.combined import save_combined
    from ..features import extract_features

    model = save_combined(workspace.models_dir, name, [c.name for c, _ in joined], [w for _, w in joined],
                          overwrite=True, selection=selection, photo_model=photo_model)
    extract_features(workspace.catalogue, model, workspace.feature_store(name), overwrite=True,
                     part_stores=[workspace.feature_store(c.name) for c, _ in joined], progress=False)
    searches = f"; searches by photo use {photo_model}" if photo_model else ""
    log(f"{name}: {model.config.architecture} ({model.dim}-d), catalogue vectors extracted{searches}")


#: clean validation items that score a weighting (a seeded sample of them beyond this)
MAX_CLEAN_QUERIES = 10_000
#: fresh validation photos that score the parts' weights, per validation photo that chose an epoch
CHOICE_PHOTOS_PER_VAL_PHOTO = 2
#: the parts' weights (shares of the squared L2 distance) a recipe's combined model may take; the first wins ties
WEIGHT_CANDIDATES: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.0, 2.0), (2.0, 1.0), (1.0, 4.0), (4.0, 1.0))
#: the clean part's weight in the catalogue model, as a share of the photo parts' weights (0: left out; the
#: first wins ties)
CLEAN_SHARES: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)
#: metrics a clean share is scored under: catalogue items are searched under each
CLEAN_SHARE_METRICS = ("l2", "l1", "hamming")
#: training items the clean validation items are searched among (a seeded sample of them beyond this)
MAX_CLEAN_GALLERY = 10_000


def choose_part_weights(workspace: Workspace, parts: list[TrainConfig], train_ids: list[str], val_ids: list[str],
                        labels: dict[str, str], *, candidates=WEIGHT_CANDIDATES,
                        log: Callable[[str], None] = print) -> tuple[list[float], dict | None]:
    """The weights that join two trained parts best on validation data only, and the scores that chose them.

    Each candidate is scored under L2 by the mean of two numbers: top-1 same category of the clean validation
    items (up to ``MAX_CLEAN_QUERIES``) among 10,000 training items, and the validation photos' score (the mean
    of their top-1 and their exact-item Recall@10), so each catalogue gets its own weights. The photos are
    fresh ones (``CHOICE_PHOTOS_PER_VAL_PHOTO`` x ``val_photos``, of other validation items where there are
    enough): the photos that chose each part's epoch flatter the part fitted to them. Parts that cannot be
    scored on the same photos (fine-tuned, trained without photos, or with different seeds or backgrounds)
    keep 1:1.
    """
    from ..evaluation import RetrievalEvaluator
    from ..extractors.combined import weighted_join
    from .trainer import fresh_validation_photo_items, validation_photo_items, validation_photo_vectors

    extractors = [workspace.create_extractor(c.name) for c in parts]
    if (len(parts) != 2 or not all(e.embeds_backbone_features for e in extractors)
            or not all(c.photo_views for c in parts)
            or len({(c.seed, c.val_photos, c.real_backgrounds) for c in parts}) != 1):  # the same photos
        log("parts' weights: 1:1 (they cannot be compared on the same validation photos)")
        return [1.0] * len(parts), None
    epoch_items, gallery_ids = validation_photo_items(parts[0], train_ids, val_ids)
    photo_items = fresh_validation_photo_items(parts[0], val_ids, CHOICE_PHOTOS_PER_VAL_PHOTO * parts[0].val_photos,
                                               set(epoch_items))
    val_set = set(val_ids)
    if len(val_ids) > MAX_CLEAN_QUERIES:  # bounded time and memory on a large catalogue (seeded)
        rng = np.random.default_rng([parts[0].seed, 12])
        val_ids = sorted(val_ids[i] for i in rng.choice(len(val_ids), MAX_CLEAN_QUERIES, replace=False))
    # the photos' gallery holds every validation item and the training sample: the clean queries and their
    # gallery are its rows
    row = {item: n for n, item in enumerate(gallery_ids)}
    query_rows = [row[i] for i in val_ids]
    training_rows = [n for n, i in enumerate(gallery_ids) if i not in val_set]
    training_ids = [gallery_ids[n] for n in training_rows]
    photos, gallery = [], []
    for config, extractor in zip(parts, extractors):
        backbone = workspace.create_extractor(config.backbone)
        photo_backbone = validation_photo_vectors(workspace, backbone, config, photo_items,
                                                  workspace.models_dir / config.name, log, fresh=True)
        photos.append(extractor.embed_backbone_features(photo_backbone))
        gallery.append(workspace.feature_store(config.name).vectors_for(gallery_ids))
    rows = []
    for weights in candidates:
        w = list(weights)
        joined = weighted_join(gallery, w)
        on_photos = RetrievalEvaluator(weighted_join(photos, w), [labels[i] for i in photo_items], joined,
                                       gallery_ids, [labels[i] for i in gallery_ids], photo_items,
                                       name="validation photos")()
        clean = RetrievalEvaluator(joined[query_rows], [labels[i] for i in val_ids], joined[training_rows],
                                   training_ids, [labels[i] for i in training_ids], name="validation items")()
        score = (clean["top1"] + on_photos["score"]) / 2
        rows.append({"weights": w, "clean_top1": clean["top1"], "photo_top1": on_photos["top1"],
                     "photo_item_recall@10": on_photos.get("item_recall@10"), "score": score})
        log(f"parts' weights {weights[0]:g}:{weights[1]:g}: clean validation top-1 {clean['top1']:.2%}, "
            f"validation photos top-1 {on_photos['top1']:.2%}, item R@10 {on_photos.get('item_recall@10', 0):.2%}"
            f" -> score {score:.2%}")
    best = max(range(len(rows)), key=lambda n: (rows[n]["score"], -n))
    chosen = rows[best]["weights"]
    log(f"parts' weights: {chosen[0]:g}:{chosen[1]:g} ({', '.join(c.name for c in parts)}), chosen on validation data")
    return chosen, {"chosen_on": "mean of clean validation top-1 (val items vs 10,000 training items) and the "
                                 "score (top-1 and item Recall@10) of fresh validation photos, not the ones that "
                                 "chose the epochs, L2",
                    "clean_queries": len(val_ids), "photos": len(photo_items), "candidates": rows}


def choose_clean_share(workspace: Workspace, photo_parts: list[TrainConfig], weights: list[float],
                       clean_part: TrainConfig, train_ids: list[str], val_ids: list[str], labels: dict[str, str], *,
                       shares: tuple[float, ...] | None = None, log: Callable[[str], None] = print
                       ) -> tuple[float, dict]:
    """The clean part's share in the catalogue model (0: left out), chosen on clean validation items only.

    The catalogue model compares catalogue items only (photos are searched with the photo parts), so each share
    is scored by the top-1 same category of the clean validation items (up to ``MAX_CLEAN_QUERIES``) among the
    training items (up to ``MAX_CLEAN_GALLERY``), averaged over L2, L1 and Hamming: a share must pay under every
    metric a catalogue is searched with.
    """
    from ..evaluation import RetrievalEvaluator
    from ..extractors.combined import weighted_join

    shares = CLEAN_SHARES if shares is None else shares
    rng = np.random.default_rng([clean_part.seed, 13])
    queries = sorted(val_ids[i] for i in rng.choice(len(val_ids), min(len(val_ids), MAX_CLEAN_QUERIES), replace=False))
    gallery = sorted(train_ids[i] for i in rng.choice(len(train_ids), min(len(train_ids), MAX_CLEAN_GALLERY),
                                                      replace=False))
    stores = [workspace.feature_store(c.name) for c in [*photo_parts, clean_part]]
    query_parts = [s.vectors_for(queries) for s in stores]
    gallery_parts = [s.vectors_for(gallery) for s in stores]
    rows = []
    for share in shares:
        w = [*weights, share * sum(weights)]
        keep = [n for n, x in enumerate(w) if x > 0]
        q = weighted_join([query_parts[n] for n in keep], [w[n] for n in keep])
        g = weighted_join([gallery_parts[n] for n in keep], [w[n] for n in keep])
        top1 = {metric: RetrievalEvaluator(q, [labels[i] for i in queries], g, gallery, [labels[i] for i in gallery],
                                           metric=metric, name="validation items")()["top1"]
                for metric in CLEAN_SHARE_METRICS}
        rows.append({"share": share, "clean_top1": top1, "score": float(np.mean(list(top1.values())))})
        log(f"clean part's share {share:g}: clean validation top-1 "
            + ", ".join(f"{m} {v:.2%}" for m, v in top1.items()) + f" -> score {rows[-1]['score']:.2%}")
    best = max(range(len(rows)), key=lambda n: (rows[n]["score"], -n))
    chosen = rows[best]["share"]
    log(f"clean part's share: {chosen:g} ({clean_part.name}; "
        + ("left out" if chosen == 0 else "catalogue items only; photos are searched without it") + ")")
    return chosen, {"chosen_on": "mean over L2, L1 and Hamming of clean validation top-1 (validation items vs "
                                 "training items); photos are searched without the clean part",
                    "clean_queries": len(queries), "gallery": len(gallery), "candidates": rows}
