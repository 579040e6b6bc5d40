"""The one training loop and the frozen-feature probes."""

from __future__ import annotations

from ssnas.training.loop import LARS, StepHook, TrainConfig, TrainResult, ViewMaker, train
from ssnas.training.probes import extract_features, knn_accuracy, linear_probe_accuracy

__all__ = [
    "LARS",
    "StepHook",
    "TrainConfig",
    "TrainResult",
    "ViewMaker",
    "extract_features",
    "knn_accuracy",
    "linear_probe_accuracy",
    "train",
]
