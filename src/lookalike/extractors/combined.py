"""Late fusion: one extractor whose vector is several models' L2-normalised vectors, side by side.

``lookalike combine --models A,B --name N`` saves ``WS/models/N/model.json``; the workspace then
registers ``N`` like a trained model. Its vector is ``[sqrt(w_A) * a / |a|, sqrt(w_B) * b / |b|]``, so
the squared L2 distance is the weighted sum of the models' squared cosine distances. Each part keeps
its own preprocessing and ONNX graph; ``extract`` builds the vectors from the parts' stores when they
have them, which takes seconds.

A combined model may name a **photo model** (``--photo-model``): the model that answers searches by photo
in its place. The ``photos`` recipe uses it for an asymmetric search: catalogue items are compared with every
part, photos only with the parts trained on photos (a part trained on clean images alone adds noise to a
photo's vector, and sharpens catalogue-to-catalogue matches).
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError
from .base import Extractor, ExtractorConfig, group_means
from .registry import create_extractor, is_builtin

KIND = "combined"


class PartsExtractor(Extractor):
    """An extractor whose vector is a function (``combine``) of other extractors' vectors (its parts).

    Each part keeps its own preprocessing and graph; an image's input is every part's preprocessed
    array, flattened and laid end to end.
    """

    parts: list[Extractor]

    def _set_parts(self, parts: list[Extractor]) -> None:
        self.parts = parts
        self._shapes = [p.array_shape for p in parts]
        self._sizes = [math.prod(s) for s in self._shapes]
        self.input_shape = (sum(self._sizes),)

    @abstractmethod
    def combine(self, vectors: list[np.ndarray]) -> np.ndarray:
        """The parts' vectors (same rows, one array per part) -> this model's vectors."""

    def build_torch(self):
        raise ConfigError(f"{self.name} is made of models with their own inputs; it has no single torch module "
                          "(its parts do)")

    def preprocess(self, img: Image.Image) -> np.ndarray:
        return np.concatenate([p.preprocess(img).ravel() for p in self.parts])

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.empty((0, self.dim), np.float32)
        batch = np.asarray(batch, np.float32).reshape(len(batch), -1)
        parts, start = [], 0
        for part, shape, size in zip(self.parts, self._shapes, self._sizes):
            parts.append(part.embed_arrays(batch[:, start : start + size].reshape(-1, *shape)))
            start += size
        return self.combine(parts)

    def embed_views(self, groups: list[list[Image.Image]]) -> np.ndarray:
        """Each part's vectors averaged over a query's views, then combined."""
        images, sizes = [img for group in groups for img in group], [len(g) for g in groups]
        return self.combine([group_means(self.view_vectors(part.embed(images)), sizes) for part in self.parts])

    def view_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """A part's vectors as they enter a query's average of views (as they are)."""
        return vectors


class CombinedExtractor(PartsExtractor):
    """Weighted concatenation of L2-normalised vectors from other extractors (the parts)."""

    def __init__(self, directory: str | Path, **_: object):
        self.directory = Path(directory)
        saved = json.loads((self.directory / "model.json").read_text())
        cfg = saved["config"]
        self._set_parts([create_extractor(name, models_dir=self.directory.parent) for name in cfg["models"]])
        self.part_weights = [float(w) for w in cfg["weights"]]
        self.photo_model: str | None = cfg.get("photo_model")
        terms = " + ".join(f"{w:g} x {p.name}" for p, w in zip(self.parts, self.part_weights))
        super().__init__(ExtractorConfig(
            name=cfg["name"], architecture=f"combined: {terms}",
            layer="L2-normalised vectors of each part, weighted and concatenated",
            dim=sum(p.dim for p in self.parts), preprocess=self.parts[0].config.preprocess,
            weights="the parts' weights: " + ", ".join(p.name for p in self.parts),
            license="those of the parts", description=f"late fusion of {', '.join(cfg['models'])}",
            extra={"parts": [p.config.to_dict() for p in self.parts], "part_weights": self.part_weights,
                   **({"photo_model": self.photo_model} if self.photo_model else {})}))

    def weights_checksum(self) -> str:
        key = json.dumps([[p.fingerprint() for p in self.parts], self.part_weights])
        return hashlib.sha256(key.encode()).hexdigest()

    def view_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Normalised, as each part is compared by its direction: every view weighs the same in the average."""
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def combine(self, vectors: list[np.ndarray]) -> np.ndarray:
        """The parts' vectors (same rows, one array per part) -> this model's vectors."""
        if len(vectors) != len(self.parts):
            raise ValueError(f"{self.name} has {len(self.parts)} parts, got {len(vectors)} arrays")
        return weighted_join(vectors, self.part_weights)


def weighted_join(vectors: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Rows of several parts -> one vector each: every part L2-normalised and scaled by the square root of
    its weight, then concatenated (so a part's weight is its share of the squared L2 distance)."""
    out = []
    for v, w in zip(vectors, weights):
        v = np.asarray(v, np.float32)
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        out.append(v * (math.sqrt(w) / np.maximum(norm, 1e-12)))
    return np.ascontiguousarray(np.concatenate(out, axis=1), np.float32)


def save_combined(models_dir: Path, name: str, models: list[str], weights: list[float] | None = None,
                  *, overwrite: bool = False, selection: dict | None = None,
                  photo_model: str | None = None) -> CombinedExtractor:
    """Check and save a combined model in ``models_dir/name``; returns it (``selection``: how the weights were
    chosen, kept in model.json; ``photo_model``: the model that answers searches by photo in its place)."""
    weights = [1.0] * len(models) if weights is None else [float(w) for w in weights]
    if len(models) < 2:
        raise ConfigError("--models: give at least two models to combine, e.g. --models pixels-cnn,lite0-head")
    if len(set(models)) != len(models):
        raise ConfigError(f"--models lists a model twice: {','.join(models)}")
    if len(weights) != len(models):
        raise ConfigError(f"--weights has {len(weights)} values for {len(models)} models")
    if not all(w > 0 and math.isfinite(w) for w in weights):
        raise ConfigError(f"--weights must be positive numbers, got {weights}")
    directory = check_new_model(models_dir, name, models, overwrite=overwrite)
    if photo_model is not None:
        if photo_model == name:
            raise ConfigError(f"--photo-model {photo_model!r} is the model itself; name another model")
        create_extractor(photo_model, models_dir=models_dir)  # unknown names fail here, with the known ones
    directory.mkdir(parents=True, exist_ok=True)
    config = {"name": name, "models": list(models), "weights": weights}
    saved = {"kind": KIND, "config": {**config, "photo_model": photo_model} if photo_model else config}
    if selection is not None:
        saved["weights_selection"] = selection
    tmp = directory / "model.json.tmp"
    tmp.write_text(json.dumps(saved, indent=2))
    tmp.replace(directory / "model.json")
    return CombinedExtractor(directory)


def check_new_model(models_dir: Path, name: str, parts: list[str], *, overwrite: bool = False) -> Path:
    """Refuse a bad or taken name for a model made of ``parts``; returns its folder (not yet made)."""
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise ConfigError(f"--name {name!r}: use letters, digits, '-', '_' or '.' (no spaces or slashes)")
    if name in parts:
        raise ConfigError(f"--name {name!r} is one of the parts; choose another name")
    if is_builtin(name):
        raise ConfigError(f"--name {name!r} is a built-in model; choose another name")
    for model in parts:
        create_extractor(model, models_dir=models_dir)  # unknown names fail here, with the list of known ones
    directory = models_dir / name
    if (directory / "model.json").is_file() and not overwrite:
        raise ConfigError(f"model {name!r} already exists in {models_dir}; pass --overwrite to replace it")
    return directory
