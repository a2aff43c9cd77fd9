"""Torch modules behind the extractors (imported only when a model is built or trained)."""

from __future__ import annotations

import torch
from torch import nn

#: torchvision's VGG-16 ("configuration D"): conv widths, "M" = 2x2 max-pool.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


POOLINGS = ("avg", "gem", "rmac")


class GlobalPooledFeatures(nn.Module):
    """A network's ``extract_features`` map pooled to a vector, optionally L2-normalised.

    ``avg``: global average. ``gem``: generalised mean with power 3 (Radenovic et al. 2018), between
    average and max, so the strongest (item) activations count more than a cluttered background.
    ``rmac``: regional maximum activations (Tolias et al. 2016): max-pooled square regions at three
    scales, each L2-normalised, then summed, so no single region (clutter) dominates.

    Normalising removes "hub" vectors: images with weak activations (plain textures) have small
    norms and would otherwise be near every query under L1 / L2.
    """

    def __init__(self, net: nn.Module, normalize: bool = False, pooling: str = "avg", gem_power: float = 3.0):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        self.net = net
        self.normalize = normalize
        self.pooling = pooling
        self.gem_power = gem_power

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.net.extract_features(x)
        if self.pooling == "gem":
            mean = fmap.clamp_min(0).pow(self.gem_power).mean(dim=(2, 3))
            # a channel silent everywhere stays exactly 0, so sign bits (Hamming codes) mean "active somewhere"
            pooled = torch.where(mean > 0, mean.clamp_min(1e-30).pow(1.0 / self.gem_power), torch.zeros_like(mean))
        elif self.pooling == "rmac":
            pooled = rmac(fmap)
        else:
            pooled = fmap.mean(dim=(2, 3))
        if self.normalize:
            pooled = pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return pooled


def rmac(fmap: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """R-MAC on a square map: at scale l, square regions of side 2*S/(l+1) on an (l x l) grid (about 40%
    overlap), each max-pooled and L2-normalised, summed with the whole map's."""
    size = int(fmap.shape[-1])  # fixed by the input size (a constant when traced)
    total = nn.functional.normalize(fmap.amax(dim=(2, 3)), dim=1)
    for level in range(2, scales + 1):
        side = max(1, int(round(2 * size / (level + 1))))
        step = (size - side) / (level - 1) if level > 1 else 0
        for i in range(level):
            for j in range(level):
                top, left = int(round(i * step)), int(round(j * step))
                region = fmap[:, :, top : top + side, left : left + side].amax(dim=(2, 3))
                total = total + nn.functional.normalize(region, dim=1)
    return total


def vgg16_features() -> nn.Sequential:
    """VGG-16's 13 conv layers + 5 max-pools, named like torchvision's ``features``."""
    layers: list[nn.Module] = []
    channels = 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = int(v)
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """VGG-16 up to a named layer: ``pool5`` (global-average-pooled, 512-d), ``fc6`` or ``fc7`` (4096-d).

    FC6 and FC7 are taken after their ReLU, as Keras' ``fc1`` / ``fc2`` outputs are in the post.
    Parameter names match torchvision's ``vgg16`` state dict, so its checkpoint loads as is.
    """

    def __init__(self, layer: str = "pool5"):
        super().__init__()
        if layer not in ("pool5", "fc6", "fc7"):
            raise ValueError(f"layer must be pool5, fc6 or fc7; got {layer!r}")
        self.layer = layer
        self.features = vgg16_features()
        if layer != "pool5":
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            head: list[nn.Module] = [nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True)]
            if layer == "fc7":
                head += [nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(inplace=True)]
            self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.layer == "pool5":
            return x.mean(dim=(2, 3))
        return self.classifier(torch.flatten(self.avgpool(x), 1))
