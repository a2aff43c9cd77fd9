"""The new top of a backbone: standardise -> dense hidden layer (the feature vector) -> softmax."""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingHead(nn.Module):
    """``x -> (x - mean) / std -> Linear -> ReLU -> Dropout -> Linear -> logits``.

    The ReLU output of the hidden layer is the feature vector (``embed``); the standardisation
    statistics are buffers, so they travel with the weights and into the ONNX graph.
    """

    def __init__(self, in_dim: int, hidden: int, classes: int, *, dropout: float = 0.5, input_dropout: float = 0.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.input_dropout = nn.Dropout(input_dropout)
        self.hidden = nn.Linear(in_dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, classes)

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-6))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden layer's activations: the trained model's feature vector."""
        return torch.relu(self.hidden(self.input_dropout((x - self.mean) / self.std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.embed(x)))


class HiddenLayerOf(nn.Module):
    """Backbone followed by the head's hidden layer: images -> trained feature vectors (for ONNX)."""

    def __init__(self, backbone: nn.Module, head: EmbeddingHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.embed(self.backbone(x))


class Classifier(nn.Module):
    """Backbone followed by the whole head: images -> logits (for fine-tuning)."""

    def __init__(self, backbone: nn.Module, head: EmbeddingHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
