"""Extractor base: a registered model whose intermediate layer is the feature vector.

An extractor carries its own preprocessing config (timm style), builds a torch module that maps
normalised images to feature vectors, exports it once to ONNX, and runs inference with ONNX
Runtime. Torch is only used to define, export and train models.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
import os
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from ..errors import ConfigError

if TYPE_CHECKING:
    import onnxruntime
    import torch

ResizeMode = Literal["pad", "squash", "crop"]


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes the network's input tensor.

    ``resize``: ``pad`` keeps the whole item (letterbox on the mean colour), ``squash`` stretches
    to a square, ``crop`` resizes the short side to ``input_size / crop_pct`` then centre-crops.
    """

    input_size: int
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    resize: ResizeMode = "pad"
    interpolation: Literal["bilinear", "bicubic"] = "bicubic"
    crop_pct: float = 0.875

    def __post_init__(self) -> None:
        if self.resize not in ("pad", "squash", "crop"):
            raise ConfigError(f"resize must be one of pad, squash, crop; got {self.resize!r}")


@dataclass(frozen=True)
class ExtractorConfig:
    """Everything that identifies an extractor's feature vectors."""

    name: str
    architecture: str
    layer: str
    dim: int
    preprocess: PreprocessConfig
    weights: str  # where the weights come from, in words
    license: str = ""
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_CHECKSUMS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, memoised by (path, size, mtime)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _CHECKSUMS:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _CHECKSUMS[key] = digest.hexdigest()
    return _CHECKSUMS[key]


#: Held while a model is exported or its ONNX Runtime session made: torch.onnx.export is not thread-safe, and
#: each session is made once. (Running a session is thread-safe: searches run in parallel.)
SESSION_LOCK = threading.RLock()


def cache_dir() -> Path:
    """Where exported ONNX models are cached: ``$LOOKALIKE_CACHE_DIR`` or ``~/.cache/lookalike``."""
    return Path(os.environ.get("LOOKALIKE_CACHE_DIR") or Path.home() / ".cache" / "lookalike")


def ort_threads() -> int:
    """ONNX Runtime intra-op threads: ``$LOOKALIKE_ORT_THREADS`` or every core."""
    return int(os.environ.get("LOOKALIKE_ORT_THREADS") or os.cpu_count() or 1)


def ort_spinning() -> bool:
    """Whether ONNX Runtime's idle threads busy-wait for the next work: only with ``$LOOKALIKE_ORT_SPIN=1``.

    Off by default: a photo search runs two sessions in turn (the localiser, then the model), and the first's
    spinning threads held the cores the second needed (a photo search 1.2-1.9x slower on 2 cores; docs/benchmarks.md).
    On, one session extracting large batches gains a little (about 8% here).
    """
    return os.environ.get("LOOKALIKE_ORT_SPIN", "0") == "1"


def ort_session(path: Path) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session with the project's thread settings (``ort_threads``, ``ort_spinning``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = ort_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if ort_spinning() else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def group_means(vectors: np.ndarray, sizes: list[int]) -> np.ndarray:
    """The mean of each run of ``sizes[i]`` consecutive rows (every size at least 1)."""
    if any(n < 1 for n in sizes):
        raise ValueError("every group of views needs at least one image")
    ends = np.cumsum(sizes)
    return np.ascontiguousarray(np.add.reduceat(np.asarray(vectors, np.float64), ends - sizes, axis=0)
                                / np.asarray(sizes)[:, None], np.float32)


class Extractor(ABC):
    """Base class. Subclasses implement ``build_torch`` and ``weights_checksum``."""

    config: ExtractorConfig
    #: ``(C, H, W)`` when the feature vector is a flattened image (lets a conv head train on it)
    feature_shape: tuple[int, int, int] | None = None
    #: the shape of one preprocessed input (``None``: ``(3, S, S)``, S the preprocessing's input size)
    input_shape: tuple[int, ...] | None = None
    #: the extractor whose vectors this one is computed from (a trained head's frozen or fine-tuned backbone)
    backbone: Extractor | None = None
    #: the extractors whose vectors this one combines (see ``PartsExtractor.combine``)
    parts: Sequence[Extractor] = ()
    #: some dimensions come from the catalogue's category labels, not the image (``with_labels``)
    uses_labels: bool = False

    def __init__(self, config: ExtractorConfig):
        self.config = config
        self._session: onnxruntime.InferenceSession | None = None

    # -- to implement ------------------------------------------------------------------------
    @abstractmethod
    def build_torch(self) -> torch.nn.Module:
        """A module in eval mode mapping a normalised ``(n, 3, S, S)`` batch to ``(n, dim)``."""

    @abstractmethod
    def weights_checksum(self) -> str:
        """SHA-256 of the weights, recorded in feature-store manifests."""

    def trainable_blocks(self, module: torch.nn.Module) -> list[torch.nn.Module]:
        """The blocks of ``module`` (from ``build_torch``) that fine-tuning may train, input to output."""
        raise ConfigError(f"{self.name} has no blocks to fine-tune; train a head on its stored features instead")

    # -- preprocessing -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def dim(self) -> int:
        return self.config.dim

    def preprocess(self, img: Image.Image) -> np.ndarray:
        """RGB image -> normalised float32 ``(3, S, S)`` array, following ``config.preprocess``."""
        cfg = self.config.preprocess
        size = cfg.input_size
        resample = Image.Resampling.BICUBIC if cfg.interpolation == "bicubic" else Image.Resampling.BILINEAR
        if cfg.resize == "squash":
            img = img.resize((size, size), resample)
        elif cfg.resize == "crop":
            scale = size / cfg.crop_pct / min(img.size)
            w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
            img = img.resize((w, h), resample)
            left, top = (w - size) // 2, (h - size) // 2
            img = img.crop((left, top, left + size, top + size))
        else:  # pad
            scale = size / max(img.size)
            w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
            fill = tuple(round(m * 255) for m in cfg.mean)
            canvas = Image.new("RGB", (size, size), fill)
            canvas.paste(img.resize((w, h), resample), ((size - w) // 2, (size - h) // 2))
            img = canvas
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = (arr - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def preprocess_batch(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            return np.empty((0, *self.array_shape), np.float32)
        return np.stack([self.preprocess(img) for img in images])

    @property
    def array_shape(self) -> tuple[int, ...]:
        """The shape of ``preprocess``'s output for one image."""
        size = self.config.preprocess.input_size
        return self.input_shape or (3, size, size)

    @property
    def embeds_backbone_features(self) -> bool:
        """True when ``embed_backbone_features`` turns the backbone's stored vectors into this model's."""
        return False

    def embed_backbone_features(self, vectors: np.ndarray) -> np.ndarray:
        """The backbone's vectors -> this model's (where ``embeds_backbone_features``)."""
        raise ConfigError(f"{self.name} is not computed from a backbone's stored vectors")

    def with_labels(self, vectors: np.ndarray, categories: Sequence[str | None]) -> np.ndarray:
        """Catalogue items' vectors completed with their category labels (where ``uses_labels``; an image alone
        leaves those dimensions as if the category were unknown)."""
        return vectors

    def hide_labels(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors with the label dimensions as if the category were unknown: how an evaluation queries, so a
        query's own category never helps find its category."""
        return vectors

    # -- inference ---------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """Identifies the exact function images -> vectors: config (layer, preprocessing) + weights."""
        import json

        key = json.dumps([self.config.to_dict(), self.weights_checksum()], sort_keys=True, default=str)
        return hashlib.sha256(key.encode()).hexdigest()

    def onnx_path(self) -> Path:
        return cache_dir() / "onnx" / f"{self.name}-{self.fingerprint()[:16]}.onnx"

    def export_onnx(self, path: Path | None = None) -> Path:
        """Export the torch module to ONNX (dynamic batch); returns the file."""
        import torch

        path = path or self.onnx_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        module = self.build_torch().eval()
        size = self.config.preprocess.input_size
        dummy = torch.zeros(1, 3, size, size)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (dummy,), str(tmp), input_names=["images"], output_names=["features"],
                              dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                              opset_version=17, dynamo=False)
        tmp.replace(path)
        return path

    def session(self) -> onnxruntime.InferenceSession:
        """The ONNX Runtime session, exporting the model on first use (once, whatever the threads)."""
        if self._session is None:
            with SESSION_LOCK:
                if self._session is None:
                    path = self.onnx_path()
                    if not path.is_file():
                        self.export_onnx(path)
                    self._session = ort_session(path)
        return self._session

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Preprocessed ``(n, 3, S, S)`` batch -> ``(n, dim)`` float32 features (ONNX Runtime)."""
        if len(batch) == 0:
            return np.empty((0, self.dim), np.float32)
        session = self.session()
        out = [session.run(["features"], {"images": np.ascontiguousarray(batch[s : s + 32], np.float32)})[0]
               for s in range(0, len(batch), 32)]  # bounded activation memory whatever the batch size
        return np.ascontiguousarray(np.concatenate(out), np.float32).reshape(len(batch), self.dim)

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """RGB images -> ``(n, dim)`` float32 feature vectors."""
        return self.embed_arrays(self.preprocess_batch(images))

    def embed_views(self, groups: list[list[Image.Image]]) -> np.ndarray:
        """One vector per group of views of one query (e.g. crops of a photo at several margins): the mean of
        the views' vectors, ``(len(groups), dim)``."""
        return group_means(self.embed([img for group in groups for img in group]), [len(g) for g in groups])

    def embed_torch(self, batch: np.ndarray, module: torch.nn.Module | None = None) -> np.ndarray:
        """Same as ``embed_arrays`` but through torch eager (for parity tests and benchmarks)."""
        import torch

        module = module or self.build_torch().eval()
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(batch, np.float32))).numpy()

    def info(self) -> dict[str, Any]:
        cfg = self.config
        return {"name": cfg.name, "dim": cfg.dim, "input_size": cfg.preprocess.input_size, "layer": cfg.layer,
                "weights": cfg.weights, "license": cfg.license, "description": cfg.description}
