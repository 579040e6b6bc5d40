"""The one training loop and the frozen-feature probes."""

from __future__ import annotations

from ssnas.training.loop import LARS, StepHook, TrainConfig, TrainResult, ViewMaker, train

__all__ = ["LARS", "StepHook", "TrainConfig", "TrainResult", "ViewMaker", "train"]
