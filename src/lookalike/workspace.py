"""A workspace: one folder holding a catalogue, its images, feature stores, indexes and models.

::

    WS/
      catalogue.sqlite        items (id, path, category, split, box, attributes)
      images/                 images written by readers (e.g. Fashion-MNIST PNGs)
      features/<model>/       feature store: shards + ids + manifest.json
      indexes/<model>/<metric>/  persisted nearest-neighbour indexes
      models/<name>/          models made here (train, combine, learn, int8), opened by name
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .catalogue import Catalogue

if TYPE_CHECKING:
    from .extractors.base import Extractor

DEFAULT_WORKSPACE = "lookalike-workspace"


def default_workspace() -> Path:
    """``$LOOKALIKE_WORKSPACE`` or ``./lookalike-workspace``."""
    return Path(os.environ.get("LOOKALIKE_WORKSPACE") or DEFAULT_WORKSPACE)


class Workspace:
    """Paths and lazily opened parts of one workspace folder."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_workspace()
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    def features_dir(self, model: str) -> Path:
        return self.root / "features" / model

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def create_extractor(self, name: str, *, weights: str | Path | None = None) -> Extractor:
        """The built-in extractor ``name``, else the model of that name saved in this workspace."""
        from .extractors.registry import create_extractor

        return create_extractor(name, weights=weights, models_dir=self.models_dir)

    def list_models(self, pattern: str = "*") -> list[str]:
        """Built-in extractors and this workspace's saved models whose names match a glob."""
        from .extractors.registry import list_extractors

        return list_extractors(pattern, models_dir=self.models_dir)

    def index_dir(self, model: str, metric: str) -> Path:
        return self.root / "indexes" / model / metric

    @cached_property
    def catalogue(self) -> Catalogue:
        return Catalogue(self.root / "catalogue.sqlite", root=self.root)

    def feature_store(self, model: str):
        """The feature store of ``model``; one object per model, so its loaded vectors are reused."""
        from .features import FeatureStore

        stores = self.__dict__.setdefault("_stores", {})
        if model not in stores:
            stores[model] = FeatureStore(self.features_dir(model))
        return stores[model]

    def extracted_models(self) -> list[str]:
        """Models with a feature store in this workspace."""
        base = self.root / "features"
        return sorted(p.name for p in base.iterdir() if (p / "manifest.json").is_file()) if base.is_dir() else []

    def close(self) -> None:
        if "catalogue" in self.__dict__:
            self.catalogue.close()
