"""Transfer learning: train a new hidden layer + softmax on a backbone (``lookalike train``)."""

from .trainer import EpochStats, TrainConfig, TrainResult, choose_training_items, train

__all__ = ["EpochStats", "TrainConfig", "TrainResult", "choose_training_items", "train"]
