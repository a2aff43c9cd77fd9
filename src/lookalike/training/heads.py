"""The new top of a backbone: standardise -> dense hidden layer (the feature vector) -> softmax.

Two classifiers on the hidden layer: ``softmax`` (the post's: ReLU hidden layer, linear logits) and
``cosface`` (large-margin cosine softmax, Wang et al. 2018: the hidden layer is L2-normalised and the
logits are scaled cosines to normalised class weights, so items of one category gather in one
direction and nearest neighbours under L1/L2/Hamming follow the classifier closely).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("softmax", "cosface")
DEFAULT_CONV_WIDTHS = (32, 64, 128)  # channels of the conv head's stages


class EmbeddingHead(nn.Module):
    """``x -> (x - mean) / std -> Linear -> ReLU -> Dropout -> Linear -> logits``.

    The ReLU output of the hidden layer is the feature vector (``embed``); the standardisation
    statistics are buffers, so they travel with the weights and into the ONNX graph. With
    ``loss="cosface"`` the hidden layer is linear and L2-normalised instead, and the logits are
    ``scale * cos(feature, class weight)`` (the margin is subtracted by the training loss).
    """

    def __init__(self, in_dim: int, hidden: int, classes: int, *, dropout: float = 0.5, input_dropout: float = 0.0,
                 loss: str = "softmax", scale: float = 16.0):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of: {', '.join(LOSSES)}")
        self.cosine = loss == "cosface"
        self.scale = float(scale)
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.input_dropout = nn.Dropout(input_dropout)
        self.hidden = nn.Linear(in_dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, classes, bias=not self.cosine)

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-dimension statistics of the training vectors; near-constant dimensions (an image's
        always-black corner) get a floor of a tenth of the median spread, so they cannot explode."""
        std = torch.nan_to_num(std, nan=1.0)  # a single training item has no spread
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(max(float(std.median()) * 0.1, 1e-6)))

    def activate(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden-layer pre-activations -> the feature vector (ReLU, or L2-normalised for cosface)."""
        return F.normalize(h, dim=1) if self.cosine else torch.relu(h)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden layer's activations: the trained model's feature vector."""
        return self.activate(self.hidden(self.input_dropout((x - self.mean) / self.std)))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Feature vectors (from ``embed``) -> category logits."""
        features = self.dropout(features)
        if self.cosine:
            return self.scale * F.normalize(features, dim=1) @ F.normalize(self.classifier.weight, dim=1).T
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.embed(x))


class OnBackbone(nn.Module):
    """Backbone followed by a head: images -> hidden-layer features (for ONNX) or logits (fine-tuning)."""

    def __init__(self, backbone: nn.Module, head: EmbeddingHead, output: str = "features"):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        return self.head.embed(features) if self.output == "features" else self.head(features)


class ConvEmbeddingHead(EmbeddingHead):
    """For backbones whose vectors are images (``pixels``): a small CNN, then the dense hidden layer.

    ``(x - mean) / std -> reshape (C, H, W) -> [(conv-BN-ReLU) x depth, max-pool] per width -> Linear -> ReLU
    -> Dropout -> Linear``. The dense layer's output is the feature vector, as in ``EmbeddingHead``.
    With ``flip_average`` the feature vector of an image, outside training, is the mean of its own and
    its mirror image's (renormalised for cosface): a shirt and its mirror image get one vector.
    """

    def __init__(self, in_shape: tuple[int, int, int], hidden: int, classes: int, *, dropout: float = 0.5,
                 input_dropout: float = 0.0, widths: tuple[int, ...] = DEFAULT_CONV_WIDTHS, depth: int = 1,
                 loss: str = "softmax", scale: float = 16.0, flip_average: bool = False):
        channels, height, width = in_shape
        if not widths or min(widths) < 1 or min(height, width) < 2 ** len(widths):
            raise ValueError(f"conv widths {tuple(widths)}: need at least one stage, each of at least one channel, "
                             f"and at most {int(math.log2(min(height, width)))} stages for {height}x{width} images")
        super().__init__(channels * height * width, hidden, classes, dropout=dropout, input_dropout=input_dropout,
                         loss=loss, scale=scale)
        self.in_shape = tuple(in_shape)
        self.flip_average = flip_average
        layers: list[nn.Module] = []
        c = channels
        for w in widths:
            for _ in range(depth):
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
            layers.append(nn.MaxPool2d(2))
        self.convs = nn.Sequential(*layers)
        scale = 2 ** len(widths)
        self.hidden = nn.Linear(c * (height // scale) * (width // scale), hidden)

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """One mean and spread for the whole image (per-pixel statistics would distort shapes)."""
        spread = float(torch.nan_to_num(std, nan=1.0).mean())
        self.mean.fill_(float(mean.mean()))
        self.std.fill_(max(spread, 1e-6))

    def _embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.activate(self.hidden(self.input_dropout(torch.flatten(self.convs(images), 1))))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        images = ((x - self.mean) / self.std).reshape(-1, *self.in_shape)
        if not self.flip_average or self.training:
            return self._embed_images(images)
        both = self._embed_images(torch.cat([images, images.flip(-1)]))
        mean = both.reshape(2, -1, both.shape[-1]).mean(0)  # batch size stays dynamic in the ONNX graph
        return F.normalize(mean, dim=1) if self.cosine else mean


def build_head(kind: str, in_dim: int, hidden: int, classes: int, *, dropout: float = 0.5,
               input_dropout: float = 0.0, in_shape: tuple[int, int, int] | None = None, conv_depth: int = 1,
               loss: str = "softmax", scale: float = 16.0, flip_average: bool = False,
               conv_widths: tuple[int, ...] = DEFAULT_CONV_WIDTHS) -> EmbeddingHead:
    """``mlp``: the post's dense layer on any vector; ``conv``: a CNN first, for image-shaped vectors
    (``conv_widths``: channels per stage; ``flip_average``: average each image's vector with its mirror
    image's, outside training)."""
    if kind == "mlp":
        if flip_average:
            raise ValueError("flip averaging needs image-shaped vectors: use it with the conv head")
        return EmbeddingHead(in_dim, hidden, classes, dropout=dropout, input_dropout=input_dropout, loss=loss,
                             scale=scale)
    if kind == "conv":
        if in_shape is None:
            raise ValueError("a conv head needs a backbone whose vectors are images (e.g. pixels)")
        return ConvEmbeddingHead(tuple(in_shape), hidden, classes, dropout=dropout, input_dropout=input_dropout,
                                 widths=tuple(conv_widths), depth=conv_depth, loss=loss, scale=scale, flip_average=flip_average)
    raise ValueError(f"unknown head {kind!r}; choose mlp or conv")
