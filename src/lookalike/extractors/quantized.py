"""Int8 models: ONNX Runtime static quantisation of an extractor, calibrated on the catalogue's own images.

``lookalike extract --model M --precision int8`` saves ``WS/models/M-int8/`` (``model.json`` and
``model.onnx``) and extracts into the store ``M-int8``: a model of its own, so its vectors never mix with
the float model's, ``evaluate --models M,M-int8`` measures what int8 costs, and ``search``/``serve``
embed queries with the same int8 graph. Weights are int8 per channel, activations uint8, with
ranges from MinMax calibration on a seeded sample of the catalogue (QOperator format: measured faster
than QDQ on x86 CPUs, see docs/benchmarks.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from .base import SESSION_LOCK, Extractor, ExtractorConfig, file_sha256, ort_session
from .registry import create_extractor

if TYPE_CHECKING:
    from ..workspace import Workspace

KIND = "quantized"
SUFFIX = "-int8"


class QuantizedExtractor(Extractor):
    """An extractor's ONNX graph with int8 weights and uint8 activations (same preprocessing, same dim)."""


    def __init__(self, directory: str | Path, **_: object):
        self.directory = Path(directory)
        saved = json.loads((self.directory / "model.json").read_text())
        self.source = create_extractor(saved["config"]["source"], models_dir=self.directory.parent)
        cfg = self.source.config
        super().__init__(ExtractorConfig(
            name=saved["config"]["name"], architecture=f"{cfg.architecture}, int8 (ONNX Runtime static)",
            layer=cfg.layer, dim=cfg.dim, preprocess=cfg.preprocess,
            weights=f"{cfg.weights}, quantised to int8 on {saved['calibration']['images']} catalogue images",
            license=cfg.license, description=f"{cfg.description} (int8)",
            extra={**cfg.extra, "precision": "int8", "source_fingerprint": self.source.fingerprint()}))
        self.feature_shape = self.source.feature_shape

    def build_torch(self):
        raise ConfigError(f"{self.name} is an int8 ONNX graph; train or fine-tune {self.source.name} instead")

    def weights_checksum(self) -> str:
        return file_sha256(self.directory / "model.onnx")

    def onnx_path(self) -> Path:
        return self.directory / "model.onnx"

    def session(self):
        if self._session is None:
            with SESSION_LOCK:
                if self._session is None:
                    self._session = ort_session(self.onnx_path())
        return self._session

    def preprocess(self, img) -> np.ndarray:
        return self.source.preprocess(img)


def quantize(workspace: Workspace, model: str, *, images: int = 256, seed: int = 0, overwrite: bool = False,
             log=print) -> QuantizedExtractor:
    """Quantise ``model`` to int8, calibrated on ``images`` seeded catalogue images; returns ``MODEL-int8``.
    An existing one is reused unless ``overwrite``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ..catalogue.readers import sample
    from ..errors import ImageError
    from ..images import load_image

    name = model + SUFFIX
    directory = workspace.models_dir / name
    if (directory / "model.json").is_file() and not overwrite:
        return QuantizedExtractor(directory)
    if model.endswith(SUFFIX):
        raise ConfigError(f"{model} is already int8")
    if images < 1:
        raise ConfigError(f"calibration needs at least 1 image, got {images}")
    source = workspace.create_extractor(model)
    if source.parts:
        raise ConfigError(f"{model} combines several models; quantise its parts and combine those")
    started = time.perf_counter()
    float_graph = source.onnx_path()
    if not float_graph.is_file():
        source.export_onnx(float_graph)
    chosen = sample(list(workspace.catalogue.items()), images, seed)
    arrays = []
    for item in chosen:
        try:
            arrays.append(source.preprocess(load_image(workspace.catalogue.resolve(item.path), item.box)))
        except ImageError:
            continue
    if not arrays:
        raise ConfigError("no readable catalogue images to calibrate on")
    batch = np.stack(arrays).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{"images": batch[s : s + 32]} for s in range(0, len(batch), 32)])

        def get_next(self) -> dict[str, Any] | None:
            return next(self._batches, None)

    directory.mkdir(parents=True, exist_ok=True)
    prepared = directory / "prepared.onnx.tmp"
    quant_pre_process(str(float_graph), str(prepared), skip_symbolic_shape=True)
    tmp = directory / "model.onnx.tmp"
    # 7-bit weights (reduce_range): on CPUs without VNNI (AVX2 only, e.g. AMD Zen 3) the uint8 x int8 products
    # are summed in pairs into int16 and saturate; with full-range weights the vectors' cosine to the float
    # model fell to 0.86 on such a CPU (0.98 on the machine of earlier sessions)
    quantize_static(str(prepared), str(tmp), Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
                    reduce_range=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    prepared.unlink(missing_ok=True)
    tmp.replace(directory / "model.onnx")
    saved = {"kind": KIND, "config": {"name": name, "source": model},
             "calibration": {"images": len(arrays), "seed": seed, "method": "MinMax",
                             "format": "QOperator, per-channel 7-bit int8 weights (reduce_range), uint8 activations"},
             "seconds": round(time.perf_counter() - started, 1)}
    meta = directory / "model.json.tmp"
    meta.write_text(json.dumps(saved, indent=2))
    meta.replace(directory / "model.json")
    log(f"{name}: quantised on {len(arrays)} catalogue images in {saved['seconds']} s, saved in {directory}")
    return QuantizedExtractor(directory)
