"""Device and numeric precision for the training loop.

`auto` picks CUDA when present. Precision `auto` picks what is fast on the hardware:
on CUDA, bf16 autocast on GPUs with bf16 (Ampere and later), else fp16 autocast with a
GradScaler (`amp`); on a CPU, bf16 autocast only where the CPU has native bf16
arithmetic (AVX512-BF16 or AMX-BF16), else fp32. On an AVX2-only CPU bf16 is emulated
and was measured 6.2x slower than fp32 (issue 12). `fp32` disables autocast.

Speed is not the only test: training whose outcome *decides a rating* (SETN's supernet,
BossNAS's blocks, the two-stage judge, CSNAS's proxy trials) passes
`bf16_keeps_quality=False`, and `auto` then means fp32 on every device. bf16 training of
SETN's supernet moved signals rated on it by up to 0.13 Spearman, either way (docs/methods/setn.md,
"Precision"); the others were not measured and keep fp32 until they are. An explicit `bf16` is
always honoured.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ssnas.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "amp")
# /proc/cpuinfo flags that mean native bf16 dot products on x86.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


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


def cpu_bf16_native() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX), as torch reports it.

    Falls back to the `/proc/cpuinfo` flags when this torch build lacks the probes.
    """
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(callable(probe) for probe in probes):
        return any(bool(probe()) for probe in probes)  # type: ignore[misc]
    return bool(set(NATIVE_BF16_FLAGS) & cpu_flags())


def cpu_flags() -> set[str]:
    """The CPU's feature flags from `/proc/cpuinfo` (empty where there is no such file)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return set()
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_capability() -> str:
    """torch's CPU kernel level (e.g. "AVX2", "AVX512") plus "+bf16" where bf16 is native."""
    level = torch.backends.cpu.get_cpu_capability()
    return f"{level}+bf16" if cpu_bf16_native() else level


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


def auto_precision(device: torch.device, bf16_keeps_quality: bool = True) -> str:
    """The precision `auto` means on `device`: "bf16", "amp" or "fp32"; always "fp32" where
    reduced precision was not measured to keep the quality of what is trained."""
    if not bf16_keeps_quality:
        return "fp32"
    if device.type == "cuda":
        # bf16 autocast where the GPU has it: fp16 AMP diverged at step 1 for a C=16, N=5 NB201
        # supernet with SimCLR on an H100 (loss NaN despite the GradScaler); bf16 has fp32's range.
        return "bf16" if torch.cuda.is_bf16_supported() else "amp"
    if device.type == "cpu":
        return "bf16" if cpu_bf16_native() else "fp32"
    return "fp32"


def resolve_precision(name: str, device: torch.device, bf16_keeps_quality: bool = True) -> Precision:
    """Map a precision name to autocast settings for `device` (UserError for unknown names);
    `bf16_keeps_quality=False`: `auto` means fp32 (module docstring)."""
    if name not in PRECISIONS:
        raise UserError(f"unknown precision {name!r}; choose from: {', '.join(PRECISIONS)}")
    if name == "auto":
        name = auto_precision(device, bf16_keeps_quality)
    if name == "amp" and device.type != "cuda":
        raise UserError("precision 'amp' (fp16 with a GradScaler) needs a CUDA device; use bf16 or fp32 on a CPU")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "amp": torch.float16}[name]
    return Precision(name=name, device_type=device.type, dtype=dtype)


def resolve_precision_name(name: str, device_name: str, bf16_keeps_quality: bool = True) -> str:
    """`resolve_precision(...).name` on `resolve_device(device_name)`: what to write into config.yaml."""
    return resolve_precision(name, resolve_device(device_name), bf16_keeps_quality).name
