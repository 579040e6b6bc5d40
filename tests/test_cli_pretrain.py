"""`ssnas pretrain` and `ssnas probe` as a user runs them: real subprocesses on a tiny image folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
TINY = ["--channels", "4", "--cells", "1", "--batch-size", "16", "--device", "cpu", "--precision", "fp32"]


def ssnas(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SSNAS_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ssnas.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssnas: error:"), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/ and test/, each with 2 class folders of 32 random 32x32 PNGs (class 1 brighter)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label, name in enumerate(("dark", "bright")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(32):
                pixels = rng.integers(0, 128, (32, 32, 3)) + 127 * label
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def run_dir(image_folder: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "simclr"
    result = ssnas("pretrain", ARCH, "--data", str(image_folder), "--epochs", "1", *TINY, "--out", str(out),
                   "--json", cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["completed"] and metrics["steps"] == 64 // 16
    return out


def test_pretrain_writes_run_folder(run_dir: Path) -> None:
    for name in ("config.yaml", "checkpoint.pt", "model.pt", "metrics.json"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["history"]) == 1 and metrics["images_per_second"] > 0


def test_probe_knn_json_gives_accuracy(run_dir: Path, image_folder: Path, cache: Path) -> None:
    result = ssnas("probe", str(run_dir), "--knn", "--data", str(image_folder), "--train-images", "64",
                   "--test-images", "32", "--device", "cpu", "--json", cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert 0.0 <= payload["accuracy"]["knn"] <= 1.0
    assert payload["train_images"] == 64 and payload["test_images"] == 32
    assert payload["same_images_as_pretraining"] and not payload["random_init"]


def test_probe_random_init_and_linear(run_dir: Path, image_folder: Path, cache: Path) -> None:
    result = ssnas("probe", str(run_dir), "--knn", "--linear", "--random-init", "--data", str(image_folder),
                   "--device", "cpu", "--json", cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["random_init"] and set(payload["accuracy"]) == {"knn", "linear"}
    # brightness separates the classes, so even random features beat chance on this folder
    assert payload["accuracy"]["linear"] > 0.5


def test_resume_after_completed_run_does_not_retrain(run_dir: Path, image_folder: Path, cache: Path) -> None:
    before = (run_dir / "model.pt").stat().st_mtime_ns
    result = ssnas("pretrain", ARCH, "--data", str(image_folder), "--epochs", "1", *TINY, "--out", str(run_dir),
                   "--resume", "--json", cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["already_complete"] is True
    assert (run_dir / "model.pt").stat().st_mtime_ns == before


def test_rerun_without_resume_and_changed_resume_are_refused(run_dir: Path, image_folder: Path, cache: Path) -> None:
    base = ["pretrain", ARCH, "--data", str(image_folder), *TINY, "--out", str(run_dir)]
    assert "--resume" in one_line_error(ssnas(*base, "--epochs", "1", cache=cache))
    assert "epochs" in one_line_error(ssnas(*base, "--epochs", "2", "--resume", cache=cache))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data", "{tmp}/missing"], "missing"),
        (["--objective", "nope"], "nope"),
    ],
)
def test_bad_pretrain_inputs_give_one_line(args: list[str], expected: str, tmp_path: Path, image_folder: Path) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    defaults = ["--data", str(image_folder)] if "--data" not in args else []
    result = ssnas("pretrain", ARCH, *defaults, *args, *TINY, "--out", str(tmp_path / "run"), cache=tmp_path)
    assert expected in one_line_error(result)
    assert not (tmp_path / "run" / "config.yaml").exists()  # nothing half-written


def test_malformed_arch_gives_one_line(tmp_path: Path, image_folder: Path) -> None:
    result = ssnas("pretrain", "|nor_conv_3x3~0|+|bogus~0|", "--data", str(image_folder), *TINY,
                   "--out", str(tmp_path / "run"), cache=tmp_path)  # fmt: skip
    assert "bad NB201 architecture" in one_line_error(result)


def test_probe_without_model_gives_one_line(tmp_path: Path, image_folder: Path) -> None:
    result = ssnas("probe", str(tmp_path), "--data", str(image_folder), cache=tmp_path)
    assert "model.pt" in one_line_error(result)


def test_divergence_stops_with_one_line(tmp_path: Path, image_folder: Path) -> None:
    result = ssnas("pretrain", ARCH, "--data", str(image_folder), "--epochs", "3", *TINY, "--lr", "1e30",
                   "--out", str(tmp_path / "run"), "--no-progress", cache=tmp_path)  # fmt: skip
    assert "loss is" in one_line_error(result)


def test_config_file_sets_options_and_flags_win(tmp_path: Path, image_folder: Path, cache: Path) -> None:
    config = tmp_path / "byol.yaml"
    config.write_text("objective: byol\nnum-images: 32\nepochs: 3\nbatch_size: 16\n")
    result = ssnas("pretrain", ARCH, "--config", str(config), "--epochs", "1", "--data", str(image_folder), *TINY,
                   "--out", str(tmp_path / "run"), "--json", cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert (metrics["objective"], metrics["num_images"], metrics["epochs"]) == ("byol", 32, 1)
    assert metrics["lr"] == pytest.approx(0.12 * 16 / 256)  # BYOL's base lr scaled to the batch
