"""`ssnas search` end to end on real CIFAR-10 images, and exact resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cli_helpers import SSNAS, copy_cifar_subset, run_ssnas

TINY = ["--num-images", "256", "--holdout-images", "64", "--epochs", "3", "--batch-size", "32",
        "--channels", "8", "--cells", "1", "--select-num", "6", "--evaluator-every", "1", "--no-progress"]


@pytest.fixture(scope="module")
def cifar_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cifar_subset(shared_data, tmp_path_factory.mktemp("cifar"), per_class=32)


def search(data: Path, out: Path, *extra: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_ssnas("search", "--data", str(data / "train"), "--out", str(out), *TINY, *extra, env=env)


def test_search_writes_a_complete_run_folder(cifar_subset: Path, tmp_path: Path, nb201_csv: Path) -> None:
    env = {"SSNAS_CACHE": str(tmp_path / "cache"), "SSNAS_NB201_TABLE": str(nb201_csv)}
    result = search(cifar_subset, tmp_path / "run", "--json", env=env)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"result.json", "candidates.csv", "config.yaml", "search.log", "op_distribution.png", "checkpoint.pt"} <= files
    on_disk = json.loads((tmp_path / "run" / "result.json").read_text())
    assert on_disk["best"]["arch"] == payload["best"]["arch"]
    assert on_disk["ground_truth"]["cifar10_test"] > 10.0  # found in the benchmark table
    candidates = (tmp_path / "run" / "candidates.csv").read_text().splitlines()
    assert len(candidates) == 1 + 6 and candidates[1].split(",")[1] == payload["best"]["arch"]
    # The run folder is never silently overwritten.
    again = search(cifar_subset, tmp_path / "run", env=env)
    assert again.returncode == 1 and "--resume" in again.stderr


def test_killed_search_resumes_to_the_same_result(cifar_subset: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SSNAS_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    reference = search(cifar_subset, tmp_path / "reference", env=env)
    assert reference.returncode == 0, reference.stderr

    killed = tmp_path / "killed"
    process = subprocess.Popen([*SSNAS, "search", "--data", str(cifar_subset / "train"), "--out", str(killed), *TINY],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = killed / "checkpoint.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed; make it longer"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "result.json").exists()

    resumed = search(cifar_subset, killed, "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    expected = json.loads((tmp_path / "reference" / "result.json").read_text())
    got = json.loads((killed / "result.json").read_text())
    assert got["best"] == expected["best"]
    assert (killed / "candidates.csv").read_text() == (tmp_path / "reference" / "candidates.csv").read_text()


def test_resume_refuses_changed_settings(cifar_subset: Path, tmp_path: Path) -> None:
    env = {"SSNAS_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("space: nb201\nstrategy: setn\nseed: 5\n")
    result = search(cifar_subset, out, "--resume", env=env)
    assert result.returncode == 1 and "different settings" in result.stderr
