"""TPE / random search: sampler settings, seeding, failures, duplicates, rating, a real proxy trial."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from _fake_worker import FakeEvaluate, fake_loss, tiny_task

from ssnas.errors import TrainingDiverged, UserError
from ssnas.spaces import Architecture
from ssnas.strategies import STRATEGIES, SearchResult, SearchTask, SupportsRating, create_strategy
from ssnas.strategies.proxy import Evaluate, ProxyConfig, TrialOutcome
from ssnas.strategies.tpe import HyperoptGamma, OptunaSearch, make_sampler
from ssnas.studies import StudyConfig, open_storage
from ssnas.training.loop import TrainConfig


def _search(kind: str, task: SearchTask, evaluate: Evaluate, n_trials: int = 30, **settings: object) -> SearchResult:
    return create_strategy(kind, n_trials=n_trials, evaluate=evaluate, **settings).search(task)


# --- sampler settings --------------------------------------------------------------------------------


def test_tpe_sampler_has_hyperopts_defaults() -> None:
    search = create_strategy("tpe")
    assert isinstance(search, OptunaSearch) and isinstance(search, SupportsRating)
    sampler = make_sampler(search.sampler, search.tpe, seed=1)
    assert sampler._n_startup_trials == 20
    assert sampler._n_ei_candidates == 24
    parzen = sampler._parzen_estimator_parameters
    assert parzen.prior_weight == 1.0
    assert parzen.consider_endpoints is False and parzen.consider_magic_clip is True
    assert sampler._multivariate is False  # hyperopt samples each hp.choice independently
    # hyperopt's good set: ceil(0.25 * sqrt(n)), capped by linear_forgetting = 25
    assert [sampler._gamma(n) for n in (1, 16, 17, 100, 101, 10_000, 10**6)] == [1, 1, 2, 3, 3, 25, 25]
    # hyperopt's linear-forgetting weights: flat for the newest 25, a ramp before them
    weights = parzen.weights(30)
    assert np.allclose(weights[-25:], 1.0) and weights[0] == pytest.approx(1 / 30) and np.all(np.diff(weights) >= 0)


def test_tpe_settings_are_configurable() -> None:
    search = create_strategy(
        "tpe", n_startup_trials=5, gamma=0.2, n_ei_candidates=20000, prior_weight=0.5, multivariate=True
    )
    sampler = make_sampler(search.sampler, search.tpe, seed=0)
    assert (sampler._n_startup_trials, sampler._n_ei_candidates) == (5, 20000)
    assert sampler._parzen_estimator_parameters.prior_weight == 0.5
    assert sampler._multivariate is True
    assert sampler._gamma(100) == 2  # ceil(0.2 * 10)


def test_flat_settings_are_routed_and_checked() -> None:
    search = create_strategy("random", n_trials=7, study_name="x", proxy_loss="train", proxy_num_images=500)
    assert isinstance(search, OptunaSearch)
    assert search.study == StudyConfig(n_trials=7, study_name="x")
    assert search.proxy == ProxyConfig(loss="train", num_images=500)
    with pytest.raises(UserError, match="unknown tpe setting 'gama'"):
        create_strategy("tpe", gama=0.25)
    with pytest.raises(UserError, match="random search takes no TPE settings"):
        create_strategy("random", gamma=0.25)
    with pytest.raises(UserError, match="unknown proxy loss"):
        create_strategy("tpe", proxy_loss="valid")
    assert {"tpe", "random"} <= set(STRATEGIES.names())


def test_hyperopt_gamma_matches_the_formula() -> None:
    gamma = HyperoptGamma(0.25, 25)
    for n in range(0, 2000, 7):
        assert gamma(n) == min(math.ceil(0.25 * math.sqrt(n)), 25)


# --- search behaviour --------------------------------------------------------------------------------


def test_search_is_seeded() -> None:
    runs = []
    for seed in (3, 3, 4):
        task = tiny_task()
        task.seed = seed
        evaluate = FakeEvaluate(task.space)
        _search("tpe", task, evaluate, n_trials=25)
        runs.append([a.key for a in evaluate.seen])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_best_is_the_minimum_loss_over_any_space(space_name: str) -> None:
    task = tiny_task(space_name)
    evaluate = FakeEvaluate(task.space)
    result = _search("tpe", task, evaluate, n_trials=25)
    losses = {a: fake_loss(task.space, a) for a in evaluate.seen}
    assert all(a.space == space_name for a in losses)
    assert -result.best.score == min(losses.values())
    assert result.best.arch == min(losses, key=losses.__getitem__)
    assert {c.arch for c in result.candidates} == set(losses)
    assert all(c.score == -losses[c.arch] for c in result.candidates)
    assert result.info["complete"] == 25


def test_tpe_beats_random_search_on_a_learnable_loss() -> None:
    """After the 20 random start-up trials TPE concentrates on low-index options."""
    best: dict[str, list[float]] = {"tpe": [], "random": []}
    for kind in best:
        for seed in range(3):
            task = tiny_task()
            task.seed = seed
            best[kind].append(-_search(kind, task, FakeEvaluate(task.space), n_trials=60).best.score)
    assert np.mean(best["tpe"]) < np.mean(best["random"]) - 1.0, best


class _Flaky:
    """Fails in three ways depending on the first decision; otherwise the fake loss."""

    def __init__(self, task: SearchTask) -> None:
        self.space = task.space
        self.first = list(task.space.choices().values())[0]

    def __call__(self, arch: Architecture) -> TrialOutcome:
        if arch.choices[0] == self.first[0]:
            raise RuntimeError("out of memory (simulated)")
        if arch.choices[0] == self.first[1]:
            raise TrainingDiverged("loss is nan at step 3")
        if arch.choices[0] == self.first[2]:
            return TrialOutcome(float("nan"))
        return TrialOutcome(fake_loss(self.space, arch))


def test_failed_trials_are_recorded_and_do_not_count() -> None:
    task = tiny_task()
    result = _search("random", task, _Flaky(task), n_trials=12)
    assert result.info["complete"] == 12
    assert result.info["failed"] > 0
    reasons = result.info["fail_reasons"]
    assert set(reasons) <= {"RuntimeError", "diverged"} and "RuntimeError" in reasons and "diverged" in reasons
    first = list(task.space.choices().values())[0]
    assert all(c.arch.choices[0] not in first[:3] for c in result.candidates)


def test_configuration_errors_stop_the_search(tmp_path: Path) -> None:
    task = tiny_task(out_dir=tmp_path)

    def broken(arch: Architecture) -> TrialOutcome:
        raise UserError("objective 'supervised' needs labels")

    with pytest.raises(UserError, match="needs labels"):
        _search("tpe", task, broken)
    storage, _ = open_storage(str(tmp_path / "study.journal"), StudyConfig())
    (trial,) = storage.get_all_trials(storage.get_study_id_from_name("ssnas"))
    assert trial.state.name == "FAIL" and "needs labels" in trial.user_attrs["ssnas:fail_reason"]
    task = tiny_task()

    def always_oom(arch: Architecture) -> TrialOutcome:
        raise RuntimeError("out of memory")

    with pytest.raises(UserError, match="4 trials in a row failed; the last: RuntimeError: out of memory"):
        _search("tpe", task, always_oom, max_consecutive_failures=4)


class _ToySpace:
    """Four architectures: two binary decisions."""

    name = "toy"

    def choices(self) -> Mapping[str, Sequence[str]]:
        return {"a": ("0", "1"), "b": ("0", "1")}

    def make(self, choices: Sequence[str]) -> Architecture:
        return Architecture(self.name, tuple(choices), "".join(choices))

    def parse(self, text: str) -> Architecture:
        return self.make(list(text))

    def sample(self, rng: random.Random) -> Architecture:
        return self.make([rng.choice("01") for _ in range(2)])

    def build(self, arch: Architecture, num_classes: int | None = None) -> torch.nn.Module:
        raise NotImplementedError


def test_an_architecture_is_trained_once() -> None:
    task = tiny_task()
    task.space = _ToySpace()
    evaluate = FakeEvaluate(task.space)
    result = _search("random", task, evaluate, n_trials=12)
    assert len(evaluate.seen) == len(set(evaluate.seen)) <= 4
    assert result.info["complete"] == 12
    assert result.info["duplicates"] == 12 - len(evaluate.seen)
    assert len(result.candidates) == len(evaluate.seen)


def test_rate_scores_each_architecture_by_minus_its_loss() -> None:
    task = tiny_task()
    archs = [task.space.sample(random.Random(i)) for i in range(5)]
    flaky = _Flaky(task)
    search = create_strategy("tpe", evaluate=flaky)
    rated = search.rate(task, archs)
    assert [r.arch for r in rated] == archs
    first = list(task.space.choices().values())[0]
    for r in rated:  # raised, diverged or NaN: -inf; otherwise minus the loss
        failed = r.arch.choices[0] in first[:3]
        assert r.score == (float("-inf") if failed else -fake_loss(task.space, r.arch))
    assert any(math.isinf(r.score) for r in rated) and any(math.isfinite(r.score) for r in rated)


# --- the real proxy -----------------------------------------------------------------------------------


def _real_task(space: str, objective: str, **space_kwargs: object) -> SearchTask:
    from ssnas.spaces import create_space

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (96, 3, 32, 32), dtype=torch.uint8, generator=generator)
    config = TrainConfig(epochs=1, batch_size=32, device="cpu", precision="fp32", channels_last=False, progress=False)
    return SearchTask(
        space=create_space(space, **space_kwargs),
        images=images[:64],
        holdout_images=images[64:],
        objective=objective,
        train=config,
    )


def test_real_proxy_trial_runs_end_to_end() -> None:
    torch.set_num_threads(1)
    task = _real_task("nb201", "simclr", C=8, N=1)
    result = create_strategy("random", n_trials=2).search(task)
    assert result.info["complete"] == 2
    for c in result.candidates:
        assert math.isfinite(c.score)
        assert c.details["holdout_loss"] == -c.score
        assert c.details["images_per_second"] > 0 and c.details["seconds"] > 0
        assert c.details["num_parameters"] > 0


def test_memory_bank_objective_needs_the_training_loss() -> None:
    torch.set_num_threads(1)
    task = _real_task("darts", "csnas-nce", C=8, layers=2, steps=2, multiplier=2)
    with pytest.raises(UserError, match="memory bank"):
        create_strategy("tpe", n_trials=1).search(task)
    result = create_strategy("tpe", n_trials=1, proxy_loss="train").search(task)
    (only,) = result.candidates
    assert -only.score == only.details["train_loss"]
