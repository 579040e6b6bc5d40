"""`--time-budget` on evolution: the ratings that fit are planned once, the run ends on time, the
best so far is on disk at every checkpoint, and a run killed at a random moment resumes to the
result of one that was never killed (the same plan, the same proposals)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from cli_helpers import SSNAS, copy_cifar_subset, run_ssnas
from ssnas.spaces import Architecture, create_space
from ssnas.strategies.base import SearchTask
from ssnas.strategies.evolution import BEST_FILE, FINISH_SECONDS, STATE_FILE, Evolution
from ssnas.strategies.raters import Columns

NB201 = create_space("nb201")
TARGET = NB201.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")


class SlowMatches:
    """Rating = decisions equal to a target's, taking `seconds` per architecture (after `slow_after`
    architectures: `slow_seconds`, a machine that got busy)."""

    name = "slow-matches"

    def __init__(self, seconds: float, slow_after: int | None = None, slow_seconds: float = 0.0) -> None:
        self.seconds, self.slow_after, self.slow_seconds, self.calls = seconds, slow_after, slow_seconds, 0

    def columns(self, archs: Sequence[Architecture]) -> Columns:
        for _ in archs:
            self.calls += 1
            busy = self.slow_after is not None and self.calls > self.slow_after
            time.sleep(self.slow_seconds if busy else self.seconds)
        same = [float(sum(a == b for a, b in zip(arch.choices, TARGET.choices))) for arch in archs]
        return {"same": same, "same-again": same}

    def combine(self, columns: Columns) -> list[float]:
        return [a + b for a, b in zip(columns["same"], columns["same-again"])]


def task(out_dir: Path | None = None, resume: bool = False) -> SearchTask:
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    return SearchTask(space=NB201, images=images, holdout_images=images, out_dir=out_dir, resume=resume,
                      started=time.monotonic())  # fmt: skip


BUDGET = (FINISH_SECONDS + 3.0) / 60  # three seconds of rating after the time kept for the results


def test_the_plan_fills_the_budget_and_the_run_ends_on_time(tmp_path: Path) -> None:
    started = time.monotonic()
    result = Evolution(rater=SlowMatches(0.03), ratings=None, time_budget=BUDGET, population=10).search(task(tmp_path))
    took = time.monotonic() - started
    plan = result.info["plan"]
    assert took <= BUDGET * 60 - FINISH_SECONDS + 0.5
    assert result.info["rated"] == plan["ratings"] and plan["calibrated_on"] == 10
    assert 0.5 * 3.0 / 0.03 < plan["ratings"] < 3.0 / 0.03 + 10  # about the 3 s of rating the budget leaves
    assert not result.info["stopped_at_deadline"]
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["plan"] == plan
    best = json.loads((tmp_path / BEST_FILE).read_text())
    assert best["arch"] == result.best.arch.key
    trace = result.info["best_so_far"]
    assert trace[-1]["arch"] == result.best.arch.key
    assert [t["rated"] for t in trace] == sorted(t["rated"] for t in trace)


def test_a_machine_that_gets_busy_stops_at_the_deadline() -> None:
    rater = SlowMatches(0.01, slow_after=20, slow_seconds=0.1)  # ten times slower once the plan is made
    started = time.monotonic()
    result = Evolution(rater=rater, ratings=None, time_budget=BUDGET, population=10).search(task())
    assert time.monotonic() - started <= BUDGET * 60 - FINISH_SECONDS + 0.5
    assert result.info["stopped_at_deadline"] and result.info["rated"] < result.info["plan"]["ratings"]


def test_resume_keeps_the_saved_plan_and_ends_the_same(tmp_path: Path) -> None:
    whole = Evolution(rater=SlowMatches(0.03), ratings=None, time_budget=BUDGET, population=10,
                      checkpoint_every=5).search(task(tmp_path / "whole"))  # fmt: skip
    assert not whole.info["stopped_at_deadline"]
    saved = json.loads((tmp_path / "whole" / STATE_FILE).read_text())
    planned = saved["plan"]["ratings"]
    saved["ratings"] = saved["ratings"][: planned // 2]  # killed half way
    saved["trace"] = [t for t in saved["trace"] if t[0] <= planned // 2]
    (tmp_path / "killed").mkdir()
    (tmp_path / "killed" / STATE_FILE).write_text(json.dumps(saved))
    rater = SlowMatches(0.036)  # a slower machine: the saved plan holds, not a new one
    resumed = Evolution(rater=rater, ratings=None, time_budget=BUDGET * 10, population=10, checkpoint_every=5)
    with pytest.raises(Exception, match="other settings"):  # another budget is another search
        resumed.search(task(tmp_path / "killed", resume=True))
    again = Evolution(rater=rater, ratings=None, time_budget=BUDGET, population=10, checkpoint_every=5)
    result = again.search(task(tmp_path / "killed", resume=True))
    assert rater.calls == planned - planned // 2
    assert [c.arch for c in result.candidates] == [c.arch for c in whole.candidates]
    assert result.info["plan"] == whole.info["plan"]


def test_islands_pool_independent_evolutions() -> None:
    one = Evolution(rater=SlowMatches(0.0), ratings=60, population=10).search(task())
    three = Evolution(rater=SlowMatches(0.0), ratings=60, population=10, islands=3).search(task())
    assert three.info["rated"] == 60 and three.info["islands"] == 3
    assert {c.arch for c in three.candidates} != {c.arch for c in one.candidates}
    plain = Evolution(rater=SlowMatches(0.0), ratings=60, population=10, islands=1).search(task())
    assert [c.arch for c in plain.candidates] == [c.arch for c in one.candidates]  # islands=1 is plain REA


# --- the real command: killed at a random moment after its plan is saved, then resumed -------------------

TINY = ["--ranker", "meco", "--population", "8", "--num-images", "64", "--holdout-images", "64", "--channels", "8",
        "--cells", "1", "--islands", "2", "--final-shortlist", "4", "--no-progress", "--json"]  # fmt: skip
CLI_BUDGET = 0.3  # minutes


@pytest.fixture(scope="module")
def cifar_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cifar_subset(shared_data, tmp_path_factory.mktemp("cifar"), per_class=16)


@pytest.mark.realdata
def test_killed_budgeted_search_resumes_to_the_planned_result(cifar_subset: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SSNAS_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    command = [*SSNAS, "search", "--data", str(cifar_subset / "train"), *TINY, "--time-budget", str(CLI_BUDGET)]
    killed = tmp_path / "killed"
    started = time.monotonic()
    process = subprocess.Popen([*command, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    state = killed / STATE_FILE
    while process.poll() is None and not (state.exists() and json.loads(state.read_text()).get("plan")):
        time.sleep(0.05)
    assert process.poll() is None, "the search ended before its plan was saved"
    planned = json.loads(state.read_text())["plan"]["ratings"]
    time.sleep(random.Random().uniform(0.0, 4.0))  # a random moment of the planned ratings
    if process.poll() is not None:
        pytest.fail("the search ended before it could be killed; give it a longer budget")
    process.send_signal(signal.SIGKILL)
    process.wait()

    resumed = run_ssnas("search", "--data", str(cifar_subset / "train"), *TINY, "--time-budget", str(CLI_BUDGET),
                        "--out", str(killed), "--resume", env=env, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads((killed / "result.json").read_text())
    assert result["info"]["plan"]["ratings"] == planned  # the saved plan, not a new one
    # all of it, unless the resumed process itself ran past the deadline (a machine far busier than at the start)
    assert result["info"]["rated"] == planned or result["info"]["stopped_at_deadline"]
    assert json.loads((killed / BEST_FILE).read_text()) | {"elapsed_seconds": 0} == {
        "arch": result["best"]["arch"], "score": result["best"]["score"], "rated": result["info"]["rated"],
        "elapsed_seconds": 0, "final": True}  # the pick once the search ended

    # the same search never killed, told the count it rated: the same proposals, ratings and pick
    whole = tmp_path / "whole"
    done = run_ssnas("search", "--data", str(cifar_subset / "train"), *TINY, "--ratings", str(result["info"]["rated"]),
                     "--out", str(whole), env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((whole / "result.json").read_text())["best"] == result["best"]
    assert (whole / "candidates.csv").read_text() == (killed / "candidates.csv").read_text()
    # the shortlist rated again under more seeds decides the pick: its four lead candidates.csv
    rows = (killed / "candidates.csv").read_text().splitlines()
    column = rows[0].split(",").index("final_rank_score")
    assert all(row.split(",")[column] for row in rows[1:5]) and not any(row.split(",")[column] for row in rows[5:])
    assert "final rating: the best 4 rated again under 2 more seeds" in (killed / "search.log").read_text()


@pytest.mark.realdata
def test_budgeted_search_ends_within_its_budget(cifar_subset: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    done = run_ssnas("search", "--data", str(cifar_subset / "train"), *TINY, "--time-budget", str(CLI_BUDGET),
                     "--out", str(tmp_path / "run"), timeout=300)  # fmt: skip
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    assert took <= CLI_BUDGET * 60 + 2.0, took  # the interpreter's own start is the only time outside the budget
    log = (tmp_path / "run" / "search.log").read_text()
    assert "ratings planned" in log and "best so far" in log, log


def test_time_budget_is_taken_by_the_rating_searches_and_refused_in_one_line_elsewhere() -> None:
    from ssnas.errors import UserError
    from ssnas.run import search_config

    for strategy in ("evolution", "two-stage", "tpe", "random"):
        assert search_config(strategy=strategy, time_budget=2.0, out="unused").strategy.time_budget == 2.0  # type: ignore[attr-defined]
    for strategy in ("setn", "bossnas"):
        with pytest.raises(UserError, match="time-budget"):
            search_config(strategy=strategy, time_budget=2.0, out="unused")
    assert "--time-budget" in run_ssnas("search", "--help", timeout=60).stdout
