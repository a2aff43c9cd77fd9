"""The floor every table needs: resized raw pixels as the feature vector."""

from __future__ import annotations

import hashlib

from .base import Extractor, ExtractorConfig, PreprocessConfig
from .registry import register_extractor

PIXELS_SIZE = 32


@register_extractor("pixels")
class PixelsExtractor(Extractor):
    """Raw pixels of the image letterboxed to 32x32 RGB, centred on 0 (3,072-d)."""

    feature_shape = (3, PIXELS_SIZE, PIXELS_SIZE)

    def __init__(self, **_: object):
        super().__init__(ExtractorConfig(
            name="pixels", architecture="identity", layer="pixels", dim=3 * PIXELS_SIZE * PIXELS_SIZE,
            preprocess=PreprocessConfig(input_size=PIXELS_SIZE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                                        resize="pad", interpolation="bilinear"),
            weights="none (no learned weights)", license="n/a",
            description="baseline: resized raw pixels, scaled to [-1, 1]"))

    def build_torch(self):
        import torch

        return torch.nn.Flatten().eval()

    def weights_checksum(self) -> str:
        return hashlib.sha256(b"pixels-32-v1").hexdigest()
