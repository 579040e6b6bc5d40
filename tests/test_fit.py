"""`ssnas fit`: an unlabeled folder plus a few labels to an exported model, through the CLI and `ssnas.fit`."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
import torch

import ssnas
from cli_helpers import flat_cifar_subset, run_ssnas
from ssnas.errors import UserError
from ssnas.faults import KILL_ENV
from ssnas import fitting
from ssnas.finetuning import labelled_sets
from ssnas.fitting import SHARES

# A small network, few ratings and epochs: the whole path in seconds on one thread.
SMALL = ["--search-option", "ratings=4", "--search-option", "population=2", "--channels", "4", "--cells", "1",
         "--batch-size", "32", "--finetune-batch-size", "16", "--device", "cpu", "--precision", "fp32"]  # fmt: skip
EPOCHS = ["--pretrain-epochs", "2", "--finetune-epochs", "2"]
STAGES = ["search", "pretrain", "probe", "finetune", "export"]
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"


@pytest.fixture(scope="module")
def unlabeled(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 real CIFAR-10 JPEGs in one flat folder (no classes), as a user's own."""
    return flat_cifar_subset(shared_data, tmp_path_factory.mktemp("unlabeled"), per_class=30)


def fit_args(unlabeled: Path, labelled_cifar: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", "--data", str(unlabeled), "--labels", str(labelled_cifar), "--labels-per-class", "5", *SMALL, *extra,
            "--out", str(out), "--no-progress"]  # fmt: skip


def outcome(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a run computed (not how long it took)."""
    return {"arch": metrics["arch"], "test_accuracy": metrics["test_accuracy"],
            "linear_probe_accuracy": metrics["linear_probe_accuracy"], "probes": metrics["probes"],
            "pretrain_history": metrics["pretrain"]["history"], "finetune_history": metrics["finetune"]["history"],
            "params": metrics["export"]["params"], "flops": metrics["export"]["flops"]}  # fmt: skip


@pytest.fixture(scope="module")
def finished(unlabeled: Path, labelled_cifar: Path, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "fit"
    result = run_ssnas(*fit_args(unlabeled, labelled_cifar, out, *EPOCHS), "--onnx", "--json", env=cli_env)
    assert result.returncode == 0, result.stderr
    return out


def test_fit_ends_with_a_torchscript_model_a_report_and_every_stage_recorded(finished: Path) -> None:
    metrics = json.loads((finished / "metrics.json").read_text())
    assert metrics["unlabeled_images"] == 300 and metrics["labelled_images"] == 50 and metrics["test_images"] == 80
    assert metrics["pretrain"]["epochs"] == 2 and metrics["pretrain"]["num_images"] == 300
    assert metrics["finetune"]["epochs"] == 2 and metrics["finetune"]["train_images"] == 50
    assert metrics["search"]["rated"] == 4 and metrics["search"]["strategy"] == "evolution"
    assert metrics["probes"]["train_images"] == 50  # the probes see the same labelled_cifar subset as fine-tuning
    for key in ("knn_at_initialisation", "knn_after_pretraining"):
        assert 0.0 <= metrics["probes"][key] <= 1.0
    state = json.loads((finished / "fit.json").read_text())
    assert list(state["stages"]) == STAGES and all(entry["done"] for entry in state["stages"].values())
    for folder in ("search", "pretrain", "finetune"):  # each stage wrote its own command's run folder
        assert (finished / folder / "config.yaml").is_file()
    model = torch.jit.load(str(finished / "model.ts"))
    with torch.no_grad():
        assert model(torch.zeros(3, 3, 32, 32)).shape == (3, 10)
    assert metrics["export"]["params"] == sum(p.numel() for p in model.parameters())
    assert metrics["export"]["flops"] > 0 and metrics["export"]["latency_ms"] > 0
    assert (finished / "model.onnx").is_file() and metrics["export"]["onnx"]["onnx_opset"] == 17
    page = (finished / "report.html").read_text()
    for text in (metrics["arch"], "test accuracy after fine-tuning", "kNN top-1 after pretraining", "pretraining loss",
                 "fine-tuning loss", "latency"):  # fmt: skip
        assert text in page


def test_a_fit_killed_in_pretraining_resumes_to_the_same_metrics(
    finished: Path, unlabeled: Path, labelled_cifar: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:  # fmt: skip
    out = tmp_path / "fit"
    # 300 images in batches of 32: 9 steps per epoch; the 12th step is in the second epoch, after the first's checkpoint
    killed = run_ssnas(*fit_args(unlabeled, labelled_cifar, out, *EPOCHS), env={**cli_env, KILL_ENV: "train:12"})
    assert killed.returncode == -9
    assert (out / "pretrain" / "checkpoint.pt").is_file() and not (out / "metrics.json").exists()
    state = json.loads((out / "fit.json").read_text())
    assert state["stages"]["search"]["done"] and not state["stages"]["pretrain"]["done"]
    resumed = run_ssnas(*fit_args(unlabeled, labelled_cifar, out, *EPOCHS), "--resume", env=cli_env)
    assert resumed.returncode == 0, resumed.stderr
    expected = outcome(json.loads((finished / "metrics.json").read_text()))
    assert outcome(json.loads((out / "metrics.json").read_text())) == expected
    again = run_ssnas(*fit_args(unlabeled, labelled_cifar, out, *EPOCHS), "--resume", env=cli_env)  # an ended run ends the same
    assert again.returncode == 0, again.stderr
    assert outcome(json.loads((out / "metrics.json").read_text())) == expected


def test_a_time_budget_plans_every_stage_and_the_plan_survives_a_resume(
    unlabeled: Path, labelled_cifar: Path, tmp_path: Path
) -> None:  # fmt: skip
    out = tmp_path / "fit"
    settings = dict(labels_per_class=5, time_budget=0.5, out=out, device="cpu", precision="fp32", threads=1,
                    search_options={"population": 2}, channels=4, cells=1, batch_size=32, finetune_batch_size=16)
    metrics = ssnas.fit(unlabeled, labelled_cifar, **settings)  # type: ignore[arg-type]
    plans = metrics["plans"]
    assert plans["search"]["minutes"] == pytest.approx(SHARES.search * 0.5, abs=1e-4)
    for name in ("pretrain", "finetune"):
        assert plans[name]["images_per_second"] > 0 and plans[name]["seconds"] > 0
        assert metrics[name]["epochs"] == plans[name]["epochs"] >= 1
    assert plans["finetune"]["epochs"] <= 60  # never more than the fine-tuning recipe
    assert metrics["search"]["rated"] >= 2
    again = ssnas.fit(unlabeled, labelled_cifar, resume=True, **settings)  # type: ignore[arg-type]
    assert again["plans"] == plans and outcome(again) == outcome(metrics)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"--labels-per-class": "13"}, "has 12 image(s), fewer than the 13 labels per class"),
        ({"--labels-per-class": "1"}, "'--labels-per-class': 1 is not in the range x>=2"),
        ({"--search-option": "ratingz=4"}, "unknown setting(s) ratingz"),
        ({"--search-option": "seed=3"}, "search option 'seed' is a setting of the fit itself"),
        ({"--data": "/no/such/folder"}, "unknown dataset '/no/such/folder'"),
    ],
)
def test_what_cannot_work_is_refused_in_one_line_before_anything_is_written(
    unlabeled: Path, labelled_cifar: Path, cli_env: dict[str, str], tmp_path: Path, change: dict[str, str], fragment: str
) -> None:  # fmt: skip
    out = tmp_path / "fit"
    args = fit_args(unlabeled, labelled_cifar, out, *EPOCHS)
    for option, value in change.items():
        if option in args and option != "--search-option":
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    result = run_ssnas(*args, env=cli_env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and fragment in lines[0], result.stderr
    assert not out.exists()


def test_labels_that_cannot_train_a_classifier_are_refused(unlabeled: Path, labelled_cifar: Path, tmp_path: Path) -> None:
    single = tmp_path / "single"  # one class with a single labelled_cifar image: under the floor
    shutil.copytree(labelled_cifar, single)
    for image in sorted((single / "train" / "cat").iterdir())[1:]:
        image.unlink()
    mismatched = tmp_path / "mismatched"  # test/ has a class train/ does not
    shutil.copytree(labelled_cifar, mismatched)
    shutil.rmtree(mismatched / "train" / "truck")
    cases = [(unlabeled, "has no labels"), (single, "class 'cat' of"), (mismatched, "are not those of its train/")]
    for index, (labels, fragment) in enumerate(cases):
        with pytest.raises(UserError, match=fragment.replace("(", r"\(")):
            ssnas.fit(unlabeled, labels, out=tmp_path / f"out{index}", device="cpu")
        assert not (tmp_path / f"out{index}").exists()


def test_pretraining_that_cannot_fit_one_epoch_takes_the_images_that_do(
    monkeypatch: pytest.MonkeyPatch, unlabeled: Path, labelled_cifar: Path
) -> None:  # fmt: skip
    """At 10 images/s a 30 s budget leaves 0.75 x 28.5 s ~ 21 s for pretraining (less the evaluations, timed,
    and this test's own steps): about 200 of the 300 images, once. At 1,000 images/s, whole epochs of all."""
    monkeypatch.setattr(fitting, "pretrain_speed", lambda config, steps=3: 10.0)
    config = fitting.FitConfig(data=str(unlabeled), labels=str(labelled_cifar), time_budget=0.5, batch_size=32,
                               channels=4, cells=1)  # fmt: skip
    pretraining = fitting._pretrain_config(config, Path("unused"), ARCH)
    labelled, test, _ = labelled_sets(str(labelled_cifar), None, 0)
    plan = fitting._pretrain_plan(config, pretraining, fitting._Clock(0.5, 0.0, time.monotonic()), 300, labelled, test)
    assert plan["epochs"] == 1 and 150 <= plan["num_images"] <= 214 and plan["images_per_second"] == 10.0
    assert 0 < plan["evaluation_seconds"] < 5
    monkeypatch.setattr(fitting, "pretrain_speed", lambda config, steps=3: 1000.0)
    fast = fitting._pretrain_plan(config, pretraining, fitting._Clock(0.5, 0.0, time.monotonic()), 300, labelled, test)
    assert fast["num_images"] is None and 50 <= fast["epochs"] <= 21_375 // (9 * 32)  # every image, whole epochs


def test_the_paper_preset_reaches_every_stage(unlabeled: Path, labelled_cifar: Path, cli_env: dict[str, str],
                                              tmp_path: Path) -> None:  # fmt: skip
    """`ssnas fit --preset paper`: the search's paper preset, SimCLR's LARS recipe, the paper fine-tuning
    preset; the options given (batches, epochs) still win."""
    out = tmp_path / "fit"
    result = run_ssnas(*fit_args(unlabeled, labelled_cifar, out, *EPOCHS), "--preset", "paper", env=cli_env)
    assert result.returncode == 0, result.stderr
    search = yaml.safe_load((out / "search" / "config.yaml").read_text())
    pretrain = yaml.safe_load((out / "pretrain" / "config.yaml").read_text())
    finetune = yaml.safe_load((out / "finetune" / "config.yaml").read_text())
    assert search["preset"] == "paper" and pretrain["preset"] == "paper" and finetune["preset"] == "paper"
    assert (pretrain["optimizer"], pretrain["batch_size"], pretrain["epochs"]) == ("lars", 32, 2)
    assert pretrain["lr"] == pytest.approx(1.0 * 32 / 256)
    assert (finetune["recipe"]["batch_size"], finetune["recipe"]["epochs"]) == (16, 2)
