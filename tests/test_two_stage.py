"""The two-stage default search: rotation labels, the judge's statistics, stage 2 through the real CLI,
SIGKILL during stage 2 then --resume, the time budget, and one-line refusals of bad settings."""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from cli_helpers import copy_cifar_subset, run_ssnas
from ssnas.data.views import VIEWS
from ssnas.judging import JudgeConfig, judge_network
from ssnas.judging.statistics import alignment, neighbour_agreement, rankme, uniformity
from ssnas.objectives import create_objective
from ssnas.objectives.rotation import rotated_batch
from ssnas.spaces import create_space
from ssnas.training.loop import TrainConfig, train

# --- the pretext task's labels, by hand ---------------------------------------------------------------


def test_rotation_labels_match_quarter_turns_by_hand() -> None:
    image = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)  # rows top to bottom: [1 2], [3 4]
    turned, labels = rotated_batch(torch.cat([image, image + 10]))  # two images
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    # counter-clockwise quarter turns of [[1, 2], [3, 4]]
    expected = {0: [[1, 2], [3, 4]], 1: [[2, 4], [1, 3]], 2: [[4, 3], [2, 1]], 3: [[3, 1], [4, 2]]}
    for row, label in enumerate(labels.tolist()):
        offset = 10 * (row % 2)
        assert turned[row, 0].tolist() == [[v + offset for v in line] for line in expected[label]]


def test_rotation_needs_square_images() -> None:
    with pytest.raises(ValueError, match="square"):
        rotated_batch(torch.zeros(2, 3, 4, 6))


# --- representation statistics ---------------------------------------------------------------------------


def test_representation_statistics_on_known_features() -> None:
    basis = torch.eye(8)  # 8 orthonormal features
    assert alignment(basis, basis) == pytest.approx(0.0)
    assert alignment(basis, -basis) == pytest.approx(4.0)  # ||x - (-x)||^2 = 4 for unit x
    assert neighbour_agreement(basis, basis) == 1.0
    assert neighbour_agreement(basis, basis.roll(1, dims=0)) == 0.0
    assert rankme(basis) == pytest.approx(8.0, rel=1e-5)  # equal singular values: full effective rank
    assert rankme(torch.ones(8, 8)) == pytest.approx(1.0, rel=1e-4)  # rank one
    two = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # one pair at squared distance 2
    assert uniformity(two) == pytest.approx(-4.0)  # log exp(-2 * 2)


# --- the judge on one network ---------------------------------------------------------------------------------


def _images(count: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_judge_resumed_from_its_checkpoint_ends_the_same(tmp_path: Path) -> None:
    space = create_space("nb201", C=4, N=1)
    arch = space.parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|")
    config = JudgeConfig(image_passes=1024, batch_passes=64, precision="fp32", trained_signals=False)
    images, holdout = _images(96, 0), _images(32, 1)

    def fresh() -> torch.nn.Module:
        torch.manual_seed(0)
        return space.build(arch)

    whole = judge_network(fresh(), images, holdout, config, device="cpu")
    assert whole.steps == 16 and len(whole.losses) == 16  # 1024 passes / (16 images x 4 rotations)
    assert 0.0 <= whole.signals["pretext-accuracy"] <= 1.0 and all(math.isfinite(v) for v in whole.signals.values())
    # stopped after the first epoch (6 steps of 16 images) with the judge's own training settings,
    # then judged with resume from that checkpoint
    partial = fresh()
    train(partial, create_objective("rotation"), images, VIEWS.create("crop-flip"),
          TrainConfig(epochs=3, batch_size=16, lr=config.lr, momentum=config.momentum, nesterov=True,
                      weight_decay=config.weight_decay, warmup_epochs=config.warmup_fraction * 16 / 6,
                      precision="fp32", device="cpu", max_steps=6, progress=False), out_dir=tmp_path)  # fmt: skip
    resumed = judge_network(fresh(), images, holdout, config, out_dir=tmp_path, resume=True, device="cpu")
    assert resumed.losses == whole.losses
    assert resumed.signals == whole.signals


# --- the search through the CLI ---------------------------------------------------------------------------------

TINY = ["--strategy", "two-stage", "--num-images", "256", "--holdout-images", "64", "--ratings", "8", "--population", "4", "--channels", "4",
        "--cells", "1", "--rating-batch-size", "16", "--precision", "fp32", "--no-progress"]  # fmt: skip
FIXED_PLAN = ["--shortlist", "3", "--judge-budget", "2000", "--judge-objective", "rotation", "--judge-signal",
              "pretext-accuracy", "--judge-combine", "stage1"]  # fmt: skip
TIMING = ("second",)


@pytest.fixture(scope="module")
def data(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cifar_subset(shared_data, tmp_path_factory.mktemp("cifar"), per_class=32) / "train"


def _search(data: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    return run_ssnas("search", "--data", str(data), "--out", str(out), *TINY, *extra, env=env, timeout=600)


def _without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if not any(t in k for t in TIMING)}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _result(out: Path) -> dict[str, Any]:
    return {"result": _without_timing(json.loads((out / "result.json").read_text())),
            "candidates": (out / "candidates.csv").read_text()}  # fmt: skip


@pytest.fixture(scope="module")
def whole_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("two-stage") / "run"
    done = _search(data, out, *FIXED_PLAN, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.realdata
def test_stage_two_judges_the_shortlist_and_reports_each_candidate(whole_run: Path) -> None:
    result = json.loads((whole_run / "result.json").read_text())
    assert result["strategy"] == "two-stage"
    judge = result["info"]["judge"]
    assert judge["signal"] == "pretext-accuracy" and judge["combine"] == ["stage1"]
    assert judge["objective"] == "rotation" and judge["image_passes"] == 2000 and len(judge["shortlist"]) == 3
    assert [c["arch"] for c in judge["candidates"]] == judge["shortlist"]  # each judged, in stage-1 order
    assert result["best"]["arch"] in judge["shortlist"]
    for entry in judge["candidates"]:
        assert 0.0 <= entry["signals"]["pretext-accuracy"] <= 1.0
        assert len(entry["curve"]) > 0
    # the pick is the best mean rank of (pretext accuracy, stage-1 score) among the judged
    accuracy = [c["signals"]["pretext-accuracy"] for c in judge["candidates"]]
    stage1 = [c["stage1_score"] for c in judge["candidates"]]

    def rank(values: list[float], i: int) -> float:
        return sum(v < values[i] for v in values) + (sum(v == values[i] for v in values) + 1) / 2

    means = [rank(accuracy, i) + rank(stage1, i) for i in range(3)]
    assert result["best"]["arch"] == judge["shortlist"][max(range(3), key=lambda i: (means[i], -i))]
    report = (whole_run / "report.html").read_text()
    assert "Stage 2: the judged shortlist" in report and "picked" in report
    log = (whole_run / "search.log").read_text()
    assert log.count("judge: ") >= 3 and "stage 2 picked" in log
    assert not list((whole_run / "judge").glob("*/checkpoint.pt"))  # judged units keep no weights


@pytest.mark.realdata
@pytest.mark.slow
def test_kill_during_stage_two_then_resume_gives_the_same_result(data: Path, whole_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # 'train' points: 2 calibration trainings (1 + 4 steps) at the start, 5 per shortlisted candidate after
    # stage 1, then 16 steps per judged candidate: the 40th lands in the second candidate's training
    killed = _search(data, out, *FIXED_PLAN, "--json", env={"SSNAS_KILL_AT": "train:40"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (out / "judge" / "plan.json").exists() and not (out / "result.json").exists()
    resumed = _search(data, out, *FIXED_PLAN, "--json", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _result(out) == _result(whole_run)


@pytest.mark.realdata
@pytest.mark.slow
def test_time_budget_is_respected_within_ten_percent(data: Path, tmp_path: Path) -> None:
    budget_minutes = 1.5
    started = time.monotonic()
    # one thread: under pytest-xdist other tests share the cores, and oversubscribed threads would
    # make the speed measured at the start meaningless
    done = _search(data, tmp_path / "run", "--time-budget", str(budget_minutes), "--judge-objective", "rotation",
                   "--judge-signal", "pretext-accuracy", "--json", env={"OMP_NUM_THREADS": "1"})  # fmt: skip
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    assert wall <= 1.1 * budget_minutes * 60, wall
    judge = json.loads((tmp_path / "run" / "result.json").read_text())["info"]["judge"]
    assert judge["judged"] >= 2
    assert judge["image_passes"] >= 2000
    assert wall >= 0.5 * budget_minutes * 60  # the plan fills the budget rather than stopping early


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--time-budget", "0"], "--time-budget must be a positive number"),
        (["--time-budget", "-2"], "--time-budget must be a positive number"),
        (["--shortlist", "-3"], "--shortlist must be at least 2"),
        (["--judge-budget", "10"], "--judge-budget must be at least"),
    ],
)
def test_bad_stage_two_settings_are_refused_in_one_line(flags: list[str], message: str, tmp_path: Path) -> None:
    done = run_ssnas("search", "--strategy", "two-stage", "--data", str(tmp_path / "nowhere"), "--out",
                     str(tmp_path / "run"), *flags)  # fmt: skip
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.realdata
def test_a_budget_too_small_for_one_candidate_is_refused_before_any_work(data: Path, tmp_path: Path) -> None:
    done = _search(data, tmp_path / "run", "--time-budget", "0.02")
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--time-budget 0.02 min is too small" in lines[0], done.stderr
    assert not (tmp_path / "run" / "evolution.json").exists()


# --- the plan: shortlist and training per candidate fitted to the measured speed ---------------------------


def _plan_with(monkeypatch: pytest.MonkeyPatch, seconds_left: float, speed: float, **settings: Any) -> Any:
    """`TwoStage._plan` with every candidate training at `speed` passes/s and `seconds_left` to go."""
    from ssnas.strategies import two_stage
    from ssnas.strategies.base import ScoredArch, SearchResult

    space = create_space("nb201", C=4, N=1)
    archs = [space.parse(k) for k in ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
                                      "|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
                                      "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
                                      "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")]  # fmt: skip
    first = SearchResult(ScoredArch(archs[0], 4.0), [ScoredArch(a, 4.0 - i) for i, a in enumerate(archs)])
    monkeypatch.setattr(two_stage, "_passes_per_second", lambda *args: speed)
    task = type("Task", (), {"space": space})()
    strategy = two_stage.TwoStage(two_stage.TwoStageConfig(**settings))
    judge = JudgeConfig(image_passes=32_000)
    deadline = time.monotonic() + seconds_left
    return strategy._plan(task, first, space, judge, deadline, max_shortlist=4)  # type: ignore[arg-type]


def test_plan_keeps_the_default_when_it_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan_with(monkeypatch, seconds_left=1000, speed=1000)  # 4 x (32 s + 2 s) fits 900 s
    assert (len(plan.shortlist), plan.image_passes) == (4, 32_000)


def test_plan_shortens_the_shortlist_then_the_training_when_time_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan_with(monkeypatch, seconds_left=80, speed=1000)  # 72 s to fill: two candidates of 32 s + 2 s
    assert (len(plan.shortlist), plan.image_passes) == (2, 32_000)
    plan = _plan_with(monkeypatch, seconds_left=40, speed=1000)  # 36 s: two candidates, less training each
    assert len(plan.shortlist) == 2 and 2_000 <= plan.image_passes < 32_000
    assert plan.estimated_seconds <= 0.9 * 40


def test_plan_keeps_what_is_given_and_refuses_what_cannot_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan_with(monkeypatch, seconds_left=1000, speed=1000, shortlist=3)
    assert (len(plan.shortlist), plan.image_passes) == (3, 32_000)
    plan = _plan_with(monkeypatch, seconds_left=1000, speed=1000, judge_budget=4_000)
    assert (len(plan.shortlist), plan.image_passes) == (4, 4_000)
    from ssnas.errors import UserError

    with pytest.raises(UserError, match="lower --shortlist and --judge-budget"):
        _plan_with(monkeypatch, seconds_left=60, speed=1000, shortlist=4, judge_budget=32_000)
