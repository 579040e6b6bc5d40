"""`ssnas search` SIGKILLed in each phase (training, rating, writing results), then `--resume`:
the same result.json as a run that was never killed, for SETN and BossNAS.

The kill comes from the test hook `SSNAS_KILL_AT=point:n` (`ssnas.faults`), so it lands in a
known phase: 'train:6' after the 6th optimizer step (the 2nd epoch, past the epoch-1 checkpoint),
'rate:3' before the 3rd candidate is rated, 'write:1' between result.json and candidates.csv."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import copy_cifar_subset, run_ssnas

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
TINY = ["--num-images", "64", "--holdout-images", "32", "--epochs", "2", "--batch-size", "16", "--channels", "4",
        "--cells", "1", "--select-num", "4", "--precision", "fp32", "--no-progress", "--json"]  # fmt: skip
STRATEGIES = {"setn": ["--strategy", "setn", "--evaluator-every", "1"], "bossnas": ["--strategy", "bossnas"]}
PHASES = ["train:6", "rate:3", "write:1"]
TIMING = ("second",)  # wall-clock fields ('seconds', 'images_per_second'), which no two runs share


@pytest.fixture(scope="module")
def data(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cifar_subset(shared_data, tmp_path_factory.mktemp("cifar"), per_class=10) / "train"


def _search(strategy: str, data: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    return run_ssnas("search", *STRATEGIES[strategy], "--data", str(data), "--out", str(out), *TINY, *extra, env=env,
                     timeout=600)  # fmt: skip


def _without_timing(value: Any) -> Any:
    """`value` less every key naming a wall-clock figure ('seconds', 'images_per_second', ...)."""
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if not any(t in k for t in TIMING)}
    return value


def _result(out: Path) -> dict[str, Any]:
    """result.json less its timings, and candidates.csv (every candidate, score and rank)."""
    return {"result": _without_timing(json.loads((out / "result.json").read_text())),
            "candidates": (out / "candidates.csv").read_text()}  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    results = {}
    for strategy in STRATEGIES:
        out = tmp_path_factory.mktemp(f"{strategy}-whole") / "run"
        done = _search(strategy, data, out)
        assert done.returncode == 0, done.stderr[-3000:]
        results[strategy] = _result(out)
    return results


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_killed_search_resumes_to_the_same_result(
    strategy: str, phase: str, data: Path, tmp_path: Path, uninterrupted: dict[str, dict[str, Any]]
) -> None:
    out = tmp_path / "run"
    killed = _search(strategy, data, out, env={"SSNAS_KILL_AT": phase})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (out / "candidates.csv").exists()  # it died before the end
    resumed = _search(strategy, data, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _result(out) == uninterrupted[strategy]
    assert len(uninterrupted[strategy]["candidates"].splitlines()) == 1 + 4
