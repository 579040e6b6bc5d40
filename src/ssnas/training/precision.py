"""Device and numeric precision for the training loop.

`auto` picks CUDA when present. Precision `auto` means bf16 autocast on CPU and on
GPUs with bf16 (Ampere and later), else fp16 autocast with a GradScaler (`amp`);
`fp32` disables autocast.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ssnas.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "amp")


def resolve_device(name: str) -> torch.device:
    """`"auto"` -> cuda if available else cpu; otherwise `torch.device(name)` (UserError if unusable)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise UserError(f"unknown device {name!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


@dataclass(frozen=True)
class Precision:
    """What `train` does for one precision setting on one device."""

    name: str  # resolved: "fp32" | "bf16" | "amp"
    device_type: str
    dtype: torch.dtype | None  # autocast dtype; None = no autocast

    @property
    def uses_scaler(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device_type) if self.uses_scaler else None


def resolve_precision(name: str, device: torch.device) -> Precision:
    """Map a precision name to autocast settings for `device` (UserError for unknown names)."""
    if name not in PRECISIONS:
        raise UserError(f"unknown precision {name!r}; choose from: {', '.join(PRECISIONS)}")
    if name == "auto":
        # bf16 autocast where the GPU has it: fp16 AMP diverged at step 1 for a C=16, N=5 NB201
        # supernet with SimCLR on an H100 (loss NaN despite the GradScaler); bf16 has fp32's range.
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        name = "amp" if device.type == "cuda" and not cuda_bf16 else "bf16"
    dtype = {"fp32": None, "bf16": torch.bfloat16, "amp": torch.float16}[name]
    return Precision(name=name, device_type=device.type, dtype=dtype)
