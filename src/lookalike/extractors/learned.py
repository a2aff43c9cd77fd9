"""Models learned from votes (``lookalike learn``): a base model's distance re-weighted by a taste.

``WS/models/NAME/`` holds ``model.json`` (kind ``learned``: base model and metric, the weights, what
the model learned from) and ``space.npz`` (principal directions and scales). The vector is
``PairSpace.embed(base vector, appearance numbers, weights)``: searched with the model's own metric
(L1 for an L1 base, else L2), its distance is the learned one. Like a combined model, it is built
from its parts' stored vectors when they have them; a space with a category component then gets each
catalogue item's category from the catalogue (``with_labels``), while an image alone leaves it unknown.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..metrics import Metric
from .base import ExtractorConfig
from .combined import PartsExtractor
from .registry import create_extractor

KIND = "learned"


class LearnedExtractor(PartsExtractor):
    """``[base, appearance] -> learned vector`` (see ``lookalike.taste.space``)."""

    def __init__(self, directory: str | Path, **_: object):
        from ..taste.space import PairSpace

        self.directory = Path(directory)
        saved = json.loads((self.directory / "model.json").read_text())
        cfg = saved["config"]
        self.saved = saved
        self._set_parts([create_extractor(cfg["base"], models_dir=self.directory.parent), create_extractor("appearance")])
        with np.load(self.directory / "space.npz") as arrays:
            self.space = PairSpace.from_arrays(Metric.parse(cfg["base_metric"]), dict(arrays))
        self.weights = np.asarray(saved["weights"], np.float64)
        self.metric = self.space.learned_metric
        learned = saved.get("learned_from", {})
        super().__init__(ExtractorConfig(
            name=cfg["name"], architecture=f"{cfg['base']} ({cfg['base_metric']}) re-weighted by a learned taste",
            layer=f"base vector, {len(self.space.directions)} principal directions, appearance numbers and "
                  f"their sides of {len(self.space.thresholds)} quantiles"
                  + (", the catalogue category" if self.space.categories else "") + f", weighted ({self.metric.value})",
            dim=self.space.vector_dim(self.parts[0].dim),
            preprocess=self.parts[0].config.preprocess,
            weights=f"learned from {learned.get('votes', 0)} votes" + (" (the base alone: the votes taught "
                                                                        "nothing beyond it)" if saved.get("is_base") else ""),
            license="same as the base model", description=f"{cfg['base']} with a taste learned from Dope-or-Nope votes",
            extra={"base": cfg["base"], "base_metric": cfg["base_metric"], "metric": self.metric.value}))

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """The metrics this model's vectors mean something under (just its own)."""
        return (self.metric,)

    @property
    def uses_labels(self) -> bool:  # type: ignore[override]
        return bool(self.space.categories)

    def with_labels(self, vectors: np.ndarray, categories) -> np.ndarray:
        """The category block of catalogue items' vectors set from their categories (images leave it zero)."""
        if not self.space.categories:
            return vectors
        out = np.array(vectors, np.float32, copy=True)
        out[:, self.dim - len(self.space.categories) :] = self.space.category_block(
            self.space.category_codes(categories), self.weights)
        return out

    def hide_labels(self, vectors: np.ndarray) -> np.ndarray:
        return self.space.hide_categories(vectors, self.parts[0].dim)

    @property
    def personal(self) -> bool:
        """One player's taste (``--session``): served to that player only."""
        return bool(self.saved.get("personal"))

    def weights_checksum(self) -> str:
        if getattr(self, "_checksum", None) is None:
            digest = hashlib.sha256()
            digest.update(json.dumps([[p.fingerprint() for p in self.parts], self.saved["weights"]]).encode())
            digest.update((self.directory / "space.npz").read_bytes())
            self._checksum = digest.hexdigest()
        return self._checksum

    def combine(self, vectors: list[np.ndarray]) -> np.ndarray:
        base, appearance = vectors
        return self.space.embed(base, appearance, self.weights)
