"""What a user sees: the README quick start on a flat folder, with progress in a piped log."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from cli_helpers import SSNAS, flat_cifar_subset

# Only the networks are made small so the tests are quick; no size option (the preset fits the folder).
# The default strategy (evolution on nb201) rates networks at initialisation; SETN trains a supernet.
SMALL = {
    "default": ["--ratings", "12", "--population", "4", "--channels", "4", "--cells", "1", "--precision", "fp32"],
    "setn": ["--strategy", "setn", "--epochs", "2", "--channels", "4", "--cells", "1", "--batch-size", "64",
             "--select-num", "4", "--evaluator-every", "4", "--precision", "fp32"],
    "two-stage": ["--strategy", "two-stage", "--ratings", "12", "--population", "4", "--channels", "4", "--cells",
                  "1", "--precision", "fp32", "--shortlist", "2", "--judge-budget", "2000"],
}  # fmt: skip


@pytest.fixture(scope="module")
def flat_folder(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 real CIFAR-10 JPEGs (200 per class) in one flat folder: unlabeled, as a user's own."""
    return flat_cifar_subset(shared_data, tmp_path_factory.mktemp("flat"), per_class=200)


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["default", "setn", "two-stage"])
def test_quick_start_on_a_flat_folder_with_progress_piped_to_a_file(strategy: str, flat_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "SSNAS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with (tmp_path / "stderr.log").open("w") as stderr:  # a pipe to a file, as under a job scheduler
        done = subprocess.run([*SSNAS, "search", "--data", str(flat_folder), "--out", str(out), *SMALL[strategy]],
                              stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, timeout=900)  # fmt: skip
    piped = (tmp_path / "stderr.log").read_text()
    assert done.returncode == 0, piped[-3000:]
    for log in (piped, (out / "search.log").read_text()):
        if strategy == "setn":
            for epoch in (1, 2):  # at least one progress line per epoch, with loss, speed and ETA
                lines = [line for line in log.splitlines() if f"train epoch {epoch}/2:" in line]
                assert lines and all(re.search(r"loss [\d.]+, \d+ img/s, elapsed \S+, ETA \S+", line) for line in lines)
            assert "rating:" in log  # the rating stage reports too
        else:  # the last line of the evolution stage, with what is best so far, elapsed time and ETA
            assert re.search(r"evolution: 12/12 architectures rated \(100%\), best so far \|\S+\|, elapsed \S+, ETA", log)
            assert "rating:" not in log  # no lines per rated architecture: evolution's own lines say it
        if strategy == "two-stage":  # stage 2: one line per judged candidate (training, signals), then the pick
            assert re.search(r"judge: 2/2 candidates judged \(100%\), \|\S+\| stage-1 #2: \d+ steps in \S+ "
                             r"\(\d+ passes/s\), trained-az-trainability [-\d.e]+", log), log[-2000:]  # fmt: skip
            assert "stage 2 picked" in log
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["strategy"] == {"default": "evolution"}.get(strategy, strategy)
    assert (config["num_images"], config["holdout_images"], config["precision"]) == (1600, 400, "fp32")
    assert "1,600 training (80% of the folder" in (out / "search.log").read_text()
    result = json.loads((out / "result.json").read_text())
    assert result["ground_truth"] is None and "no ground truth is known" in result["ground_truth_note"]
    assert "none known" in done.stdout and "NAS-Bench-201" not in done.stdout
    assert (out / "report.html").is_file()
