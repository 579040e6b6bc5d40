"""`ssnas search` settings per strategy: an option the strategy does not use is refused, config.yaml
says exactly what ran, and a run's config.yaml fed back with --config reproduces it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cli_helpers import copy_cifar_subset, run_ssnas
from ssnas.errors import UserError
from ssnas.run import STRATEGY_SETTINGS, config_dict, resolve, search_config
from ssnas.run.settings import RUN_OPTIONS
from ssnas.strategies.settings import TRAINING

# A search of seconds: 4 architectures rated at initialisation on a C=4, N=1 network, 8 images each.
TINY_EVOLUTION = ["--strategy", "evolution", "--ranker", "meco+synflow", "--ratings", "4", "--population", "2",
                  "--channels", "4", "--cells", "1", "--rating-batch-size", "8", "--num-images", "32",
                  "--holdout-images", "32", "--no-progress", "--json"]  # fmt: skip
SETN_ONLY = ("objective", *TRAINING, "select_num", "evaluator_every", "signals", "trials", "storage", "study")


def one_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssnas: error: "), result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def cifar_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cifar_subset(shared_data, tmp_path_factory.mktemp("cifar"), per_class=10) / "train"


@pytest.fixture(scope="module")
def flat_folder(cifar_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same images in one folder, no class subfolders: no labels."""
    folder = tmp_path_factory.mktemp("flat")
    for image in sorted(cifar_subset.glob("*/*")):
        shutil.copy(image, folder / f"{image.parent.name}_{image.name}")
    return folder


def test_each_strategy_keeps_its_settings_in_its_own_module() -> None:
    """One home per strategy: the settings class sits in the module of the strategy it builds, and every
    registered strategy has settings."""
    from ssnas.strategies import STRATEGIES

    assert sorted(STRATEGY_SETTINGS) == sorted(STRATEGIES.names())
    for name, kind in STRATEGY_SETTINGS.items():
        assert kind.__module__ == STRATEGIES.get(name).__module__, name


def test_a_strategy_added_in_one_file_is_searchable(tmp_path: Path) -> None:
    """A new strategy (code and settings in one file, registered there) is taken by `search_config` and
    refuses the options it does not use, with no line changed elsewhere."""
    from dataclasses import dataclass

    from ssnas.strategies import STRATEGIES
    from ssnas.strategies.settings import ImageFloor, Settings, settings_for

    @dataclass(frozen=True)
    class FirstSettings(Settings):
        bf16_keeps_quality = True
        ratings: int | None = None

        def options(self, space: str) -> tuple[str, ...]:
            return ("ratings",)

        def resolve(self, space: str, preset: str) -> FirstSettings:
            return self if self.ratings is not None else FirstSettings(ratings=3)

        def create(self, name: str, space: str, preset: str) -> object:
            return STRATEGIES.create(name)

        def scored_by(self) -> str:
            return "nothing"

        def image_floor(self, space: str) -> ImageFloor:
            return ImageFloor(0, 1)

    STRATEGIES.register("first-test")(object)
    settings_for("first-test")(FirstSettings)
    try:
        config = resolve(search_config(strategy="first-test", data="cifar10", out=str(tmp_path / "run")))
        assert config.strategy == FirstSettings(ratings=3)
        with pytest.raises(UserError, match="does not use --population; it takes: --ratings"):
            search_config(strategy="first-test", population=5, out=str(tmp_path / "run2"))
    finally:
        STRATEGY_SETTINGS.pop("first-test")
        STRATEGIES._factories.pop("first-test"), STRATEGIES.origins.pop("first-test")


def test_an_option_the_strategy_does_not_use_is_refused_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "run"
    line = one_line(run_ssnas("search", "--strategy", "evolution", "--epochs", "3", "--out", str(out)))
    assert line == ("ssnas: error: strategy 'evolution' does not use --epochs; it takes: --ranker, --ratings, "
                    "--time-budget, --islands, --final-shortlist, --population, --rating-batch-size, --channels, --cells")  # fmt: skip
    assert not out.exists()


@pytest.mark.parametrize(("options", "fragments"), [
    (dict(strategy="evolution", objective="simclr"), ["'evolution' does not use --objective", "--ranker"]),
    (dict(strategy="setn", ranker="meco"), ["'setn' does not use --ranker", "--select-num", "--signals"]),
    (dict(strategy="setn", space="mbconv", channels=8), ["--channels on space 'mbconv'"]),
    (dict(strategy="tpe", trial_objective="rating", epochs=2), ["'tpe' with --trial-objective rating", "--epochs"]),
    (dict(strategy="random", ranker="meco"), ["--trial-objective ssl-proxy does not use --ranker", "--proxy-loss"]),
    (dict(strategy="bossnas", objective="byol", signals=("meco",)), ["--objective, --signals", "--epochs"]),
    (dict(strategy="bossnas", objective="byol", rating=("meco",)), ["--objective, --signals", "--epochs"]),  # old name
    (dict(space="nats-size", channels=8), ["'evolution' does not use --channels on space 'nats-size'"]),
])  # fmt: skip
def test_each_strategy_refuses_what_it_does_not_use(options: dict[str, object], fragments: list[str]) -> None:
    with pytest.raises(UserError) as refused:
        search_config(**options)
    for fragment in fragments:
        assert fragment in str(refused.value), str(refused.value)


@pytest.mark.parametrize("strategy", sorted(STRATEGY_SETTINGS))
@pytest.mark.parametrize("space", ["nb201", "darts", "nats-size"])
def test_resolved_settings_hold_every_used_option_and_no_other(strategy: str, space: str) -> None:
    config = resolve(search_config(space=space, strategy=strategy))
    saved = config_dict(config)
    used = config.strategy.options(space)
    assert [k for k, v in saved.items() if v is None] == ["num_images", "holdout_images"]  # fixed with the data
    # no storage given: the run folder's journal; two-stage's shortlist and judge budget follow from the
    # speed measured when the run starts (judge/plan.json has them); no time budget given: none (evolution, tpe);
    # nb201's evolution plans its ratings from its time budget (evolution.json has the plan)
    assert set(used) - {"storage", "shortlist", "judge_budget", "time_budget", "ratings"} <= set(saved)
    assert set(saved) - set(RUN_OPTIONS) <= set(used)
    assert not {"resume", "progress", "extra"} & set(saved)


def test_proxy_loss_train_is_settable() -> None:
    config = resolve(search_config(strategy="tpe", proxy_loss="train"))
    assert config.create_strategy().proxy.loss == "train"  # type: ignore[attr-defined]


def test_rating_trials_take_a_rating_batch_size() -> None:
    config = resolve(search_config(strategy="random", trial_objective="rating", rating_batch_size=16))
    assert config.create_strategy().proxy.rating_batch_size == 16  # type: ignore[attr-defined]
    default = resolve(search_config(strategy="tpe", trial_objective="rating"))
    assert default.create_strategy().proxy.rating_batch_size == 64  # type: ignore[attr-defined]  # nb201's search default


def test_setn_signals_are_read_under_their_old_name_rating(tmp_path: Path) -> None:
    """`rating` (SETN's signals before they were `signals`) from the Python API, --config and the
    config.yaml of an older run to --resume; the ranker of a rating trial is `ranker` inside too."""
    from ssnas.run.jobs import prepare_run_folder

    old = search_config(strategy="setn", rating=("meco",), out=str(tmp_path / "run"))
    assert old == search_config(strategy="setn", signals=("meco",), out=str(tmp_path / "run"))
    with pytest.raises(UserError, match="give --signals only"):
        search_config(strategy="setn", signals=("meco",), rating=("naswot",))
    saved = {("rating" if k == "signals" else k): v for k, v in config_dict(resolve(old)).items()}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    prepare_run_folder(resolve(search_config(strategy="setn", signals=("meco",), out=str(tmp_path / "run"),
                                             resume=True)))  # fmt: skip
    assert "signals" in yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    with pytest.raises(UserError, match="signals"):
        prepare_run_folder(resolve(search_config(strategy="setn", signals=("naswot",), out=str(tmp_path / "run"),
                                                 resume=True)))  # fmt: skip
    trials = resolve(search_config(strategy="tpe", trial_objective="rating", ranker="synflow"))
    assert trials.create_strategy().proxy.ranker == "synflow"  # type: ignore[attr-defined]


def test_supervised_objective_on_a_flat_folder_is_refused(flat_folder: Path, tmp_path: Path) -> None:
    env = {"SSNAS_CACHE": str(tmp_path / "cache")}
    for strategy, fragment in (("setn", "needs labels"), ("tpe", "needs labels"), ("evolution", "does not use")):
        out = tmp_path / strategy
        done = run_ssnas("search", "--strategy", strategy, "--objective", "supervised", "--data", str(flat_folder),
                         "--out", str(out), env=env)  # fmt: skip
        one_line(done, "--objective", fragment)
        assert not out.exists()


def test_config_yaml_holds_what_evolution_used_and_reproduces_the_run(cifar_subset: Path, tmp_path: Path) -> None:
    env = {"SSNAS_CACHE": str(tmp_path / "cache")}
    first = run_ssnas("search", "--data", str(cifar_subset), "--out", str(tmp_path / "run"), *TINY_EVOLUTION, env=env)
    assert first.returncode == 0, first.stderr
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert {k: saved[k] for k in ("strategy", "ranker", "ratings", "population", "rating_batch_size", "channels",
                                  "cells", "num_images", "holdout_images")} == {
        "strategy": "evolution", "ranker": "meco+synflow", "ratings": 4, "population": 2, "rating_batch_size": 8,
        "channels": 4, "cells": 1, "num_images": 32, "holdout_images": 32}  # fmt: skip
    assert None not in saved.values() and not set(SETN_ONLY) & set(saved)
    assert saved["precision"] != "auto"  # resolved

    again = run_ssnas("search", "--config", str(tmp_path / "run" / "config.yaml"), "--out", str(tmp_path / "again"),
                      "--json", "--no-progress", env=env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["best"] == json.loads(first.stdout)["best"]
    assert (tmp_path / "again" / "candidates.csv").read_text() == (tmp_path / "run" / "candidates.csv").read_text()
    resaved = yaml.safe_load((tmp_path / "again" / "config.yaml").read_text())
    assert {**resaved, "out": saved["out"]} == saved


def test_resume_compares_only_what_the_search_computes_with(cifar_subset: Path, tmp_path: Path) -> None:
    env = {"SSNAS_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    assert run_ssnas("search", "--data", str(cifar_subset), "--out", str(out), *TINY_EVOLUTION, env=env).returncode == 0
    elsewhere = run_ssnas("search", "--data", str(cifar_subset), "--out", str(out), *TINY_EVOLUTION, "--resume",
                          "--device", "cpu", env=env)  # fmt: skip
    assert elsewhere.returncode == 0, elsewhere.stderr
    one_line(run_ssnas("search", "--data", str(cifar_subset), "--out", str(out), *TINY_EVOLUTION, "--resume",
                       "--max-flops", "100", env=env), "different settings", "max_flops")  # fmt: skip


@pytest.fixture(scope="module")
def flat_300(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 CIFAR-10 images (30 per class) in one folder, no labels: below setn's floor (768)."""
    classes = copy_cifar_subset(shared_data, tmp_path_factory.mktemp("cifar300"), per_class=30) / "train"
    folder = tmp_path_factory.mktemp("flat300")
    for image in sorted(classes.glob("*/*")):
        shutil.copy(image, folder / f"{image.parent.name}_{image.name}")
    return folder


def test_the_default_search_runs_on_a_300_image_folder_and_setn_is_refused(flat_300: Path, tmp_path: Path) -> None:
    """Issue 22.1: the default strategy (evolution on nb201) needs one rating batch, not SETN's 768 images."""
    env = {"SSNAS_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    done = run_ssnas("search", "--data", str(flat_300), "--out", str(out), "--ratings", "4", "--population", "2",
                     "--channels", "4", "--cells", "1", "--no-progress", "--json", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["strategy"] == "evolution" and (out / "report.html").is_file()
    log = (out / "search.log").read_text()
    assert "of 300 images: 236 training (80% of the folder, floor 0, cap 5,000), 64 held-out (20% of the folder, " \
           "floor 64, cap 1,024)" in log
    for strategy, floor in (("setn", 768), ("bossnas", 768), ("tpe", 384)):
        refused = tmp_path / strategy
        one_line(run_ssnas("search", "--strategy", strategy, "--data", str(flat_300), "--out", str(refused), env=env),
                 f"strategy {strategy!r} needs at least {floor} images", "has 300 images",
                 "'evolution' runs on it: drop --strategy or pass --strategy evolution")  # fmt: skip
        assert not refused.exists()


def test_a_folder_below_evolutions_floor_is_refused_naming_it(flat_folder: Path, tmp_path: Path) -> None:
    """100 images: evolution's floor is its rating batch (64 on nb201), so --rating-batch-size 128 is refused."""
    out = tmp_path / "run"
    one_line(run_ssnas("search", "--data", str(flat_folder), "--out", str(out), "--rating-batch-size", "128",
                       env={"SSNAS_CACHE": str(tmp_path / "cache")}),
             "strategy 'evolution' needs at least 128 images (0 training + 128 held-out)", "has 100 images",
             "use a larger folder or a smaller --rating-batch-size")  # fmt: skip
    assert not out.exists()


@pytest.mark.realdata
@pytest.mark.slow
def test_plain_ssnas_search_on_a_300_image_folder(flat_300: Path, tmp_path: Path) -> None:
    """The acceptance as a user types it: the folder and a short budget (the default plan of nb201: four
    islands, the final rating of the best 10; the default 2-minute budget is too long for the suite)."""
    out = tmp_path / "run"
    done = run_ssnas("search", "--data", str(flat_300), "--out", str(out), "--time-budget", "1.5",  # one thread: xdist runs 2 workers
                     env={"SSNAS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr
    info = json.loads((out / "result.json").read_text())["info"]
    assert info["islands"] == 4 and info["rated"] >= 80 and info["rated"] == info["plan"]["ratings"] or info["stopped_at_deadline"]
    assert "final rating: the best 10" in (out / "search.log").read_text()
