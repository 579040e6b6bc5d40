"""The scripts in examples/ run as users run them, on tiny real data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import copy_cifar_subset

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def cifar_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cifar_subset(shared_data, tmp_path_factory.mktemp("cifar"), per_class=8)


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSNAS_CACHE": str(cwd / "cache")}
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)  # fmt: skip


MODELS_FILE = """
from torch import nn

def _layers(width, depth):
    layers, channels = [], 3
    for _ in range(depth):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    return [*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)]

MODELS = {f"cnn{w}x{d}": (lambda w=w, d=d: nn.Sequential(*_layers(w, d))) for w, d in
          [(8, 2), (16, 2), (16, 3), (32, 3), (32, 4)]}
"""


def test_rate_models_example_prints_a_table_of_five(cifar_subset: Path, tmp_path: Path) -> None:
    """With timm (the `[timm]` extra), the five timm models; without it (CI: PyPI has no CPU
    torchvision for torch 2.13), the same script on a file of five plain CNN factories."""
    try:
        import timm  # noqa: F401

        models, expected = [], ["timm:resnet18", "timm:mobilenetv3_small_100", "timm:efficientnet_b0",
                                "timm:convnext_atto", "timm:regnetx_002"]  # fmt: skip
    except (ImportError, RuntimeError):
        (tmp_path / "models.py").write_text(MODELS_FILE)
        models, expected = ["--models", str(tmp_path / "models.py")], ["cnn8x2", "cnn16x2", "cnn16x3", "cnn32x3", "cnn32x4"]
    done = run_example("01_rate_timm_models.py", "--data", str(cifar_subset / "train"), "--images", "64", *models,
                       cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].split() == ["model", "score", "params", "(M)", "MFLOPs"]
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(expected)
    scores = [float(line.split()[1]) for line in lines[1:]]
    assert scores == sorted(scores, reverse=True)  # best first


def test_search_nb201_from_python_plots_the_rated_cells(cifar_subset: Path, tmp_path: Path) -> None:
    done = run_example("02_search_nb201.py", "--data", str(cifar_subset / "train"), "--out", str(tmp_path / "run"),
                       "--set", "ratings=8", "population=4", "channels=4", "cells=1", "num_images=32",
                       "holdout_images=32", "rating_batch_size=16", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "found |" in done.stdout and "cifar10_test" in done.stdout
    assert (tmp_path / "run" / "score_vs_truth.png").stat().st_size > 5000
    assert (tmp_path / "run" / "report.html").exists()
