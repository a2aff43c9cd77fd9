"""Named training recipes: one command trains a recommended model (``lookalike train --recipe NAME``).

``photos``: a model for customer photos, street-to-shop. On a frozen EfficientNet-Lite0 (unless
``backbone`` is given), a 1,024-unit L2-normalised layer is trained on the catalogue's clean images and on
synthetic phone photos of each training item (4 per item): CosFace over the categories plus a
contrastive loss that brings each photo to its own item. The best epoch is chosen on photos of
validation items only. The same run trains the workspace's item localiser (``WS/localiser``) on photos of
training items, unless one is there already.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..errors import ConfigError
from ..workspace import Workspace
from .trainer import TrainConfig, TrainResult, train

RECIPES = ("photos",)


def recipe_config(recipe: str, name: str, backbone: str | None = None, **overrides: Any) -> TrainConfig:
    """The settings of a named recipe (``overrides``: any TrainConfig field given explicitly)."""
    if recipe != "photos":
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    config = TrainConfig(backbone=backbone or "efficientnet-lite0", name=name, hidden=1024, epochs=30,
                         batch_size=256, lr=1e-3, dropout=0.1, input_dropout=0.1, label_smoothing=0.0,
                         loss="cosface", photo_views=4, instance_weight=1.0, temperature=0.05, val_photos=500,
                         recipe=recipe)
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def train_recipe(workspace: Workspace, recipe: str, name: str, *, backbone: str | None = None,
                 device: str = "auto", overwrite: bool = False, localiser: bool = True,
                 localiser_photos: int = 2000, log: Callable[[str], None] = print, **overrides: Any) -> tuple[TrainResult, dict | None]:
    """Train the recipe's model (and, for ``photos``, the workspace's localiser); returns both results."""
    from ..extractors import create_extractor
    from ..features import extract_features
    from ..photos.localise import TrainedLocaliser, train_localiser
    from .trainer import resolve_device, training_split

    config = recipe_config(recipe, name, backbone, **overrides)
    config.check()
    if localiser_photos < 1:
        raise ConfigError(f"--localiser-photos must be at least 1, got {localiser_photos}")
    started = time.perf_counter()
    store = workspace.feature_store(config.backbone)
    if len(store) < len(workspace.catalogue):  # the head trains on the backbone's stored vectors
        log(f"{name}: extracting the missing {config.backbone} vectors first")
        summary = extract_features(workspace.catalogue, create_extractor(config.backbone), store)
        for line in summary.lines():
            log(line)
    train_ids, val_ids, _categories, _labels = training_split(workspace, config)
    localiser_meta = None
    directory = workspace.root / "localiser"
    if localiser and (overwrite or not (directory / TrainedLocaliser.META).is_file()):
        log(f"{name}: training the item localiser on synthetic photos of training items")
        localiser_meta = train_localiser(workspace, train_ids, val_ids, directory, seed=config.seed,
                                         photos=localiser_photos, val_photos=max(10, localiser_photos // 7),
                                         device=resolve_device(device), log=log)
    result = train(workspace, config, device=device, overwrite=overwrite, log=log)
    log(f"{name}: recipe {recipe!r} finished in {(time.perf_counter() - started) / 60:.1f} min")
    return result, localiser_meta
