"""Rating any PyTorch model without labels (`ssnas.rating.models`, `ssnas rank --models`).

The route is the space route: NB201 cells given as plain factories get exactly the values
`score_architectures` gives them. Every ranker either rates an arbitrary network or refuses it
in one line; timm models (where timm imports) and a file of factories go through the real CLI.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from cli_helpers import run_ssnas
from test_cli import assert_one_line_error
from torch import nn

from ssnas.errors import UserError
from ssnas.rating import EngineConfig, ranker_names, score_architectures
from ssnas.rating.models import load_model_factories, score_models
from ssnas.rating.registry import CannotRate, features
from ssnas.spaces import create_space
from ssnas.spaces.budget import Budget

CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
]
ENV = {"OMP_NUM_THREADS": "1"}


def _timm_imports() -> bool:
    try:
        import timm  # noqa: F401
    except Exception:  # noqa: BLE001 - missing, or a torchvision built for another torch
        return False
    return True


TIMM = _timm_imports()
needs_timm = pytest.mark.skipif(not TIMM, reason="timm does not import here (missing, or PyPI's torchvision does "
                                                 "not load beside a CPU-only torch)")  # fmt: skip


def cnn() -> nn.Module:
    """A plain CNN: no forward_features, no feature_layers (every ssnas assumption off)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
    )  # fmt: skip


def mlp() -> nn.Module:
    """No Conv2d, no BN: layer-wise families must refuse it in one line."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 64), nn.ReLU(), nn.Linear(64, 32))


class TimmShaped(nn.Module):
    """timm's contract in miniature: unpooled `forward_features`, `forward_head(pre_logits=True)`
    with a head layer before the classifier, and `feature_info` naming token blocks (B,T,D)."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 16, 8, stride=8)  # (B,16,4,4) at 32x32
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Linear(16, 16), nn.GELU()) for _ in range(3)])
        self.head_norm = nn.LayerNorm(16)
        self.fc = nn.Linear(16, 10)
        self.feature_info = [{"module": f"blocks.{i}", "num_chs": 16, "reduction": 8} for i in range(3)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.patch(x).flatten(2).transpose(1, 2))  # (B, T=16, D=16)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_norm(x[:, 0])  # (B, D): the first token, normed
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@pytest.fixture
def models_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_models.py"
    path.write_text(
        "from torch import nn\n\n"
        "def small() -> nn.Module:\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),\n"
        "                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())\n\n"
        "def wide() -> nn.Module:\n"
        "    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),\n"
        "                         nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU())\n\n"
        "MODELS = {'small': small, 'wide': wide}\n"
    )
    return path


# ----------------------------------------------------------------------------- the route


@pytest.mark.parametrize("ranker", ["az-nas", "meco+naswot+synflow", "zico-ssl"])
def test_nb201_cells_as_plain_factories_score_exactly_as_the_space_route(ranker: str,
                                                                        tiny_images: torch.Tensor) -> None:  # fmt: skip
    """Same network size, images and seed: every signal and the combined score are equal (==).
    (az-nas's `flops` part is the model's own MACs here, the full-size network's there: the
    values differ, their order over these cells does not, so the log-rank score is equal.)"""
    space = create_space("nb201", C=8, N=1)
    config = EngineConfig(batch_size=8, seed=3)
    by_space = score_architectures(space, [space.parse(cell) for cell in CELLS], ranker, tiny_images, config)
    factories: dict[str, Callable[[], nn.Module]] = {
        cell: (lambda cell=cell: space.build(space.parse(cell))) for cell in CELLS
    }
    by_model = score_models(factories, ranker, tiny_images, config)
    signals = [name for name in by_space.columns if name not in ("params", "flops")]
    assert signals and all(by_model.columns[name] == by_space.columns[name] for name in signals)
    assert by_model.score == by_space.score
    assert by_model.names == CELLS and all(v > 0 for v in by_model.costs["params"] + by_model.costs["flops"])


@pytest.mark.parametrize("ranker", ranker_names())
def test_every_ranker_rates_a_plain_cnn_with_finite_values(ranker: str, tiny_images: torch.Tensor) -> None:
    result = score_models({"a": cnn, "b": lambda: nn.Sequential(cnn(), nn.Conv2d(16, 8, 1))}, ranker, tiny_images,
                          EngineConfig(batch_size=8))  # fmt: skip
    assert result.names == ["a", "b"] and not result.nonfinite
    assert all(math.isfinite(v) for values in result.columns.values() for v in values)
    assert all(math.isfinite(v) for v in result.score)


@pytest.mark.parametrize("ranker", ranker_names())
def test_every_ranker_rates_an_mlp_or_says_in_one_line_what_it_needs(ranker: str, tiny_images: torch.Tensor) -> None:
    try:
        result = score_models({"mlp": mlp}, ranker, tiny_images, EngineConfig(batch_size=8))
    except CannotRate as error:
        message = str(error)
        assert "\n" not in message and message.startswith(f"model 'mlp': ranker '{ranker}' cannot rate it: ")
        assert "reads" in message  # what the family needs
        return
    assert all(math.isfinite(v) for values in result.columns.values() for v in values)


def test_features_of_models_without_the_ssnas_contract() -> None:
    x = torch.randn(4, 3, 32, 32)
    timm_like = TimmShaped()
    assert torch.equal(features(timm_like, x), timm_like.forward_head(timm_like.forward_features(x), pre_logits=True))
    plain = cnn()
    assert torch.equal(features(plain, x), plain(x).mean(dim=(2, 3)))  # (B,C,H,W) pooled to (B,C)
    assert features(mlp(), x).shape == (4, 32)

    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    with pytest.raises(UserError, match="returns tuple, not a tensor"):
        features(Pair(), x)


def test_az_nas_reads_the_blocks_a_timm_model_declares(tiny_images: torch.Tensor) -> None:
    """feature_info's token blocks (B,T,D) are the AZ-NAS layers (one Conv2d alone would be refused)."""
    result = score_models({"tokens": TimmShaped}, "az-nas", tiny_images, EngineConfig(batch_size=8))
    assert all(math.isfinite(values[0]) for values in result.columns.values())
    assert result.columns["az-expressivity"][0] > 0


def test_budget_leaves_models_out_and_refuses_when_none_is_left(tiny_images: torch.Tensor) -> None:
    factories = {"mlp": mlp, "cnn": cnn}  # 198,752 and 3,792 parameters
    result = score_models(factories, "synflow", tiny_images, EngineConfig(batch_size=8), budget=Budget(max_params=0.01),
                          latency=True)  # fmt: skip
    assert result.names == ["cnn"] and result.excluded[0]["name"] == "mlp"
    assert result.excluded[0]["over"] == ["--max-params 0.01 (0.1988 M parameters)"]
    assert result.costs["latency_ms"][0] > 0 and set(result.records()[0]) == {"name", "score", "synflow", "params_M",
                                                                               "mflops", "latency_ms"}  # fmt: skip
    with pytest.raises(UserError, match=r"no model meets --max-params 0.001: the smallest is 0.003792 M param"):
        score_models(factories, "synflow", tiny_images, EngineConfig(batch_size=8), budget=Budget(max_params=0.001))


def test_image_size_resizes_the_rating_batch_and_the_counted_flops(tiny_images: torch.Tensor) -> None:
    at_32 = score_models({"cnn": cnn}, "flops", tiny_images, EngineConfig(batch_size=8))
    at_64 = score_models({"cnn": cnn}, "flops+naswot", tiny_images, EngineConfig(batch_size=8), image_size=64)
    assert at_64.image_size == 64 and at_64.costs["flops"][0] == pytest.approx(4 * at_32.costs["flops"][0])


# ----------------------------------------------------------------------------- loading


def test_a_models_file_declares_factories_by_models_or_all(tmp_path: Path, models_file: Path) -> None:
    assert list(load_model_factories(str(models_file))) == ["small", "wide"]
    assert list(load_model_factories(f"{models_file}:wide")) == ["wide"]
    listed = tmp_path / "listed.py"
    listed.write_text("from torch import nn\n__all__ = ['tiny']\n\ndef tiny():\n    return nn.Conv2d(3, 4, 3)\n\n"
                      "def helper():\n    return None\n")  # fmt: skip
    factories = load_model_factories(f"{listed},{models_file}:small")
    assert list(factories) == ["tiny", "small"] and isinstance(factories["tiny"](), nn.Conv2d)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("def broken(:\n", "syntax error"),
        ("import torch\n", "declares no models: give it MODELS"),
        ("MODELS = {}\n", "declares no models: its MODELS / __all__ is empty"),
        ("MODELS = {'a': 3}\n", "must name factories"),
        ("__all__ = ['gone']\n", "__all__ names gone"),
        ("raise RuntimeError('no GPU here')\n", "failed on import: RuntimeError: no GPU here"),
    ],
)
def test_bad_models_files_are_one_line_user_errors(tmp_path: Path, source: str, fragment: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(UserError, match=None) as caught:
        load_model_factories(str(path))
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("missing.py", "models file not found: missing.py"),
        ("resnet18", "neither timm:NAME nor a Python file"),
        ("a.py,,b.py", "malformed --models"),
    ],
)
def test_bad_specs_are_user_errors(spec: str, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        load_model_factories(spec)


def test_factories_that_fail_or_return_no_module_are_named(tiny_images: torch.Tensor) -> None:
    def raises() -> nn.Module:
        raise RuntimeError("out of memory")

    with pytest.raises(UserError, match="model 'bad': building it failed: RuntimeError: out of memory"):
        score_models({"bad": raises}, "naswot", tiny_images, EngineConfig(batch_size=8))
    with pytest.raises(UserError, match="model 'bad': its factory returned str, not a torch.nn.Module"):
        not_a_module: Callable[[], nn.Module] = lambda: "resnet"  # type: ignore[assignment, return-value]
        score_models({"bad": not_a_module}, "naswot", tiny_images, EngineConfig(batch_size=8))


def test_timm_missing_or_broken_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError
    with pytest.raises(UserError, match='timm models need timm: pip install "ssnas\\[timm\\]"'):
        load_model_factories("timm:resnet18")
    broken = tmp_path / "site" / "timm"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    monkeypatch.delitem(sys.modules, "timm")
    monkeypatch.syspath_prepend(str(broken.parent))
    with pytest.raises(UserError, match="timm is installed but does not import .*torchvision::nms.*matches torch"):
        load_model_factories("timm:resnet18")


# ----------------------------------------------------------------------------- the command


def test_rank_models_file_prints_the_table_and_writes_scores(image_folder: Path, models_file: Path,
                                                            tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "run"
    result = run_ssnas("rank", "--models", str(models_file), "--data", str(image_folder), "--batch-size", "8",
                       "--out", str(out), "--no-progress", env={**ENV, "COLUMNS": "160"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 models, az-nas-ssl" in result.stdout and "small" in result.stdout and "wide" in result.stdout
    assert "params (M)" in result.stdout and "MFLOPs" in result.stdout
    with (out / "scores.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows] == ["small", "wide"]
    assert list(rows[0]) == ["model", "score", "az-expressivity", "az-progressivity", "zico-ssl", "params_M", "mflops"]
    assert float(rows[0]["params_M"]) < float(rows[1]["params_M"])
    report = json.loads((out / "report.json").read_text())
    assert report["count"] == 2 and report["image_size"] == 32 and report["excluded"] == []


def test_rank_models_applies_the_budget(image_folder: Path, models_file: Path) -> None:
    result = run_ssnas("rank", "--models", str(models_file), "--data", str(image_folder), "--batch-size", "8",
                       "--ranker", "meco+naswot", "--max-params", "0.01", "--max-latency-ms", "1000", "--json",
                       env=ENV)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [m["name"] for m in report["models"]] == ["small"] and report["best"] == "small"
    assert report["excluded"][0]["name"] == "wide" and report["excluded"][0]["over"][0].startswith("--max-params 0.01")
    assert report["budget"] == {"params": 0.01, "latency_ms": 1000.0}
    assert report["models"][0]["latency_ms"] > 0 and set(report["models"][0]) >= {"meco", "naswot", "mflops"}


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--models", "missing.py"], "models file not found: missing.py"),
        (["--models", "{empty}"], "declares no models"),
        (["--models", "{file}", "--archs", "cells.txt"], "--models rates models, not architectures: drop --archs"),
        (["--models", "{file}", "--max-params", "0.0001"], "no model meets --max-params 0.0001"),
        (["--sample", "3", "--max-params", "1"], "apply to --models"),
    ],
)
def test_rank_models_errors_are_one_line(extra: list[str], fragment: str, image_folder: Path, models_file: Path,
                                         tmp_path: Path) -> None:  # fmt: skip
    empty = tmp_path / "empty.py"
    empty.write_text("import torch\n")
    args = [a.format(empty=empty, file=models_file) for a in extra]
    result = run_ssnas("rank", *args, "--data", str(image_folder), "--batch-size", "8", "--no-progress", env=ENV)
    assert_one_line_error(result, fragment)


@needs_timm
def test_rank_timm_models(image_folder: Path) -> None:
    result = run_ssnas("rank", "--models", "timm:resnet18,timm:mobilenetv3_small_100", "--data", str(image_folder),
                       "--batch-size", "8", "--json", env=ENV)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [m["name"] for m in report["models"]] == ["resnet18", "mobilenetv3_small_100"]
    assert all(math.isfinite(m["score"]) and m["params_M"] > 1 for m in report["models"])
    assert not report["nonfinite"]


@needs_timm
def test_a_fixed_size_timm_model_is_built_for_the_rated_size(tiny_images: torch.Tensor) -> None:
    factories = load_model_factories("timm:vit_tiny_patch16_224", image_size=32)
    result = score_models(factories, "az-nas+naswot", tiny_images, EngineConfig(batch_size=8))
    assert all(math.isfinite(values[0]) for values in result.columns.values())


@needs_timm
def test_unknown_timm_name_is_one_line_with_close_matches(image_folder: Path) -> None:
    result = run_ssnas("rank", "--models", "timm:resnet181", "--data", str(image_folder), env=ENV)
    assert_one_line_error(result, "unknown timm model 'resnet181'; close matches: resnet18")


@pytest.mark.skipif(TIMM, reason="timm imports here: the route itself is tested")
def test_timm_route_without_a_working_timm_is_one_line(image_folder: Path) -> None:
    result = run_ssnas("rank", "--models", "timm:resnet18", "--data", str(image_folder), env=ENV)
    assert_one_line_error(result, "timm")
