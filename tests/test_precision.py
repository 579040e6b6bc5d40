"""`auto` precision follows the hardware: bf16 only where it is native."""

from __future__ import annotations

import pytest
import torch

from ssnas.errors import UserError
from ssnas.training import precision as precision_module
from ssnas.training.precision import resolve_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_on_cpu_uses_bf16_only_where_native(monkeypatch: pytest.MonkeyPatch, native: bool, expected: str) -> None:
    monkeypatch.setattr(precision_module, "cpu_bf16_native", lambda: native)
    chosen = resolve_precision("auto", CPU)
    assert chosen.name == expected
    assert chosen.dtype == (torch.bfloat16 if native else None)


@pytest.mark.parametrize("probe", ["_is_avx512_bf16_supported", "_is_amx_tile_supported"])
def test_either_native_bf16_probe_is_enough(monkeypatch: pytest.MonkeyPatch, probe: str) -> None:
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda name=name: name == probe, raising=False)
    assert precision_module.cpu_bf16_native()
    assert resolve_precision("auto", CPU).name == "bf16"


def test_avx2_only_cpu_gets_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    assert resolve_precision("auto", CPU).name == "fp32"


def test_cpuinfo_flags_decide_when_torch_has_no_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert resolve_precision("auto", CPU).name == "bf16"
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: {"avx2", "fma"})
    assert resolve_precision("auto", CPU).name == "fp32"


@pytest.mark.parametrize(("bf16_gpu", "expected"), [(True, "bf16"), (False, "amp")])
def test_auto_on_cuda(monkeypatch: pytest.MonkeyPatch, bf16_gpu: bool, expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_gpu)
    assert resolve_precision("auto", torch.device("cuda")).name == expected


def test_explicit_precisions_are_kept_and_unknown_ones_refused() -> None:
    assert resolve_precision("fp32", CPU).dtype is None
    assert resolve_precision("bf16", CPU).dtype == torch.bfloat16
    with pytest.raises(UserError, match="choose from"):
        resolve_precision("fp8", CPU)
    with pytest.raises(UserError, match="CUDA"):
        resolve_precision("amp", CPU)
