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


@pytest.mark.parametrize("device", [CPU, torch.device("cuda")])
def test_auto_means_fp32_where_bf16_was_not_shown_to_keep_quality(monkeypatch: pytest.MonkeyPatch, device) -> None:
    monkeypatch.setattr(precision_module, "cpu_bf16_native", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", device, bf16_keeps_quality=False).name == "fp32"
    assert resolve_precision("auto", device, bf16_keeps_quality=True).name == "bf16"
    assert resolve_precision("bf16", device, bf16_keeps_quality=False).name == "bf16"  # asked for: honoured


@pytest.mark.parametrize(("strategy", "expected"), [("setn", "fp32"), ("bossnas", "fp32"), ("tpe", "fp32"),
                                                    ("random", "fp32"), ("two-stage", "fp32"), ("evolution", "bf16")])
def test_search_settings_record_the_quality_precision(monkeypatch: pytest.MonkeyPatch, strategy: str, expected: str) -> None:
    """Strategies whose training decides the rating train in fp32 under `auto` on a native-bf16 CPU
    (what config.yaml records); evolution trains nothing and keeps the fast choice."""
    from ssnas.run import resolve, search_config

    monkeypatch.setattr(precision_module, "cpu_bf16_native", lambda: True)
    config = resolve(search_config(strategy=strategy, data="unused", device="cpu"))
    assert config.run.precision == expected


def test_setn_trains_its_template_in_fp32_under_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Called from Python with precision "auto" (no settings layer), SETN still trains in fp32."""
    from ssnas.strategies import setn as setn_module
    from ssnas.strategies.base import SearchTask
    from ssnas.spaces import create_space
    from ssnas.training.loop import TrainConfig

    monkeypatch.setattr(precision_module, "cpu_bf16_native", lambda: True)
    seen: list[str] = []

    class Stop(Exception):
        pass

    def fake_train(*args, **kwargs):
        seen.append(args[4].precision)
        raise Stop

    monkeypatch.setattr(setn_module, "train", fake_train)
    images = torch.randint(0, 255, (16, 3, 32, 32), dtype=torch.uint8)
    task = SearchTask(space=create_space("nb201"), images=images, holdout_images=images, objective="simclr",
                      train=TrainConfig(precision="auto", device="cpu"), seed=0)
    with pytest.raises(Stop):
        setn_module.SETN(supernet={"C": 4, "N": 1}).train_template(task)
    assert seen == ["fp32"]


def test_pretraining_resolves_auto_to_fp32_until_bf16_quality_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    from ssnas.pretraining import PretrainConfig, resolve

    monkeypatch.setattr(precision_module, "cpu_bf16_native", lambda: True)
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    assert resolve(PretrainConfig(arch=arch, device="cpu")).precision == "fp32"
    assert resolve(PretrainConfig(arch=arch, device="cpu", precision="bf16")).precision == "bf16"
