"""`ssnas finetune`: a pretrained network fine-tuned with few labels, through the CLI and the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import ssnas
from cli_helpers import run_ssnas
from ssnas.data.datasets import load_dataset
from ssnas.errors import UserError
from ssnas.finetuning import preset_recipe
from ssnas.pretraining import PretrainConfig, probe, resolve
from ssnas.retrain import load_model

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
TINY = ["--channels", "4", "--cells", "1", "--batch-size", "16", "--device", "cpu", "--precision", "fp32"]


@pytest.fixture(scope="module")
def pretrained(labelled_cifar: Path, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "pretrain"
    result = run_ssnas("pretrain", ARCH, "--data", str(labelled_cifar), "--epochs", "1", *TINY, "--out", str(out),
                       "--no-progress", env=cli_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_finetune_with_labels_per_class_writes_a_model_and_both_accuracies(
    pretrained: Path, labelled_cifar: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:  # fmt: skip
    out = tmp_path / "ft"
    result = run_ssnas("finetune", str(pretrained), "--data", str(labelled_cifar), "--labels-per-class", "5", "--epochs", "2",
                       "--batch-size", "16", "--device", "cpu", "--precision", "fp32", "--out", str(out), "--json",
                       env=cli_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["train_images"] == 50 and payload["test_images"] == 80 and payload["num_classes"] == 10
    assert payload["steps"] == 2 * (50 // 16) and payload["pretrained_with"] == "simclr"
    assert 0.0 <= payload["linear_probe_accuracy"] <= 1.0 and 0.0 <= payload["test_accuracy"] <= 1.0
    assert {"config.yaml", "checkpoint.pt", "model.pt", "metrics.json"} <= {p.name for p in out.iterdir()}
    model = load_model(out)  # the format of `ssnas train`: it rebuilds, classifies, exports
    with torch.no_grad():
        assert model(torch.zeros(4, 3, 32, 32)).shape == (4, 10)
    exported = run_ssnas("export", payload["arch"], "--checkpoint", str(out), "--out", str(tmp_path / "model.ts"), env=cli_env)
    assert exported.returncode == 0, exported.stderr
    assert torch.jit.load(str(tmp_path / "model.ts"))(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    again = run_ssnas("finetune", str(pretrained), "--data", str(labelled_cifar), "--labels-per-class", "5", "--epochs", "2",
                      "--batch-size", "16", "--device", "cpu", "--precision", "fp32", "--out", str(out), "--json",
                      "--resume", env=cli_env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["test_accuracy"] == payload["test_accuracy"]  # a finished run ends the same


def test_the_fitted_head_is_the_linear_probe(pretrained: Path, labelled_cifar: Path, tmp_path: Path) -> None:
    """Before any fine-tuning step the head is `ssnas probe --linear`'s classifier: the same test accuracy."""
    metrics = ssnas.finetune(pretrained, labelled_cifar, out=tmp_path / "ft", epochs=1, batch_size=16, device="cpu",
                             precision="fp32", threads=1)  # fmt: skip
    accuracy = probe(pretrained, data=str(labelled_cifar), methods=("linear",), device="cpu", precision="fp32")["accuracy"]
    assert metrics["train_images"] == 120
    assert abs(metrics["linear_probe_accuracy"] - accuracy["linear"]) <= 1 / 80 + 1e-9  # one test image at most


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--labels-per-class", "13"], "has 12 image(s), fewer than the 13 labels per class"),
        (["--labels-per-class", "0"], "'--labels-per-class': 0 is not in the range x>=1"),
    ],
)
def test_bad_label_requests_are_refused_in_one_line(
    pretrained: Path, labelled_cifar: Path, cli_env: dict[str, str], tmp_path: Path, args: list[str], fragment: str
) -> None:  # fmt: skip
    out = tmp_path / "ft"
    result = run_ssnas("finetune", str(pretrained), "--data", str(labelled_cifar), *args, "--out", str(out), env=cli_env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and fragment in lines[0], result.stderr
    assert not out.exists()


def test_an_unlabeled_folder_or_a_trained_classifier_is_refused(
    pretrained: Path, labelled_cifar: Path, shared_data: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:  # fmt: skip
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in sorted((labelled_cifar / "train" / "cat").iterdir()):
        (flat / image.name).write_bytes(image.read_bytes())
    with pytest.raises(UserError, match="no labels"):
        ssnas.finetune(pretrained, flat, out=tmp_path / "a")
    trained = tmp_path / "trained"
    result = run_ssnas("train", ARCH, "--data", str(labelled_cifar), "--space-arg", "C=4", "--space-arg", "N=1", "--epochs", "1",
                       "--batch-size", "16", "--max-steps", "1", "--out", str(trained), "--no-progress", env=cli_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    with pytest.raises(UserError, match="trained classifier"):
        ssnas.finetune(trained, labelled_cifar, out=tmp_path / "b")
    with pytest.raises(UserError, match="model file not found"):
        ssnas.finetune(tmp_path / "missing", labelled_cifar, out=tmp_path / "c")
    assert not any((tmp_path / name).exists() for name in "abc")


def test_labels_per_class_are_balanced_and_seeded(labelled_cifar: Path) -> None:
    train = load_dataset(str(labelled_cifar), "train")
    first, again, other = train.per_class(3, seed=0), train.per_class(3, seed=0), train.per_class(3, seed=1)
    assert first.labels is not None and torch.bincount(first.labels).tolist() == [3] * 10
    assert torch.equal(first.images, again.images) and not torch.equal(first.images, other.images)


def test_training_from_scratch_takes_the_same_labelled_subset(labelled_cifar: Path, tmp_path: Path) -> None:
    """The baseline of the 1 % / 10 % protocol: `ssnas train --labels-per-class N` trains on the images
    `ssnas finetune --labels-per-class N` fine-tunes on (same seed, same class-balanced subset)."""
    out = tmp_path / "scratch"
    result = run_ssnas("train", ARCH, "--data", str(labelled_cifar), "--labels-per-class", "5", "--space-arg", "C=4",
                       "--space-arg", "N=1", "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--precision",
                       "fp32", "--out", str(out), "--no-progress", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["train_images"] == 50 and payload["labels_per_class"] == 5 and payload["steps"] == 50 // 16
    both = run_ssnas("train", ARCH, "--data", str(labelled_cifar), "--labels-per-class", "5", "--train-images", "20",
                     "--out", str(tmp_path / "both"))  # fmt: skip
    assert both.returncode != 0 and "not both" in both.stderr and not (tmp_path / "both").exists()


def test_the_paper_preset_takes_the_published_settings_and_options_override_it() -> None:
    """`--preset paper`: SimCLR's CIFAR-10 command (batch 512, 1000 epochs, LARS at 1.0 x B/256, wd 1e-4),
    BYOL's optimisation; fine-tuning at batch 512 with SimCLR's epochs by the share of labels."""
    paper = resolve(PretrainConfig(arch=ARCH, preset="paper", device="cpu"))
    assert (paper.epochs, paper.batch_size, paper.optimizer, paper.weight_decay, paper.warmup_epochs) == (
        1000, 512, "lars", 1e-4, 10.0)  # fmt: skip
    assert paper.lr == pytest.approx(2.0)
    quick = resolve(PretrainConfig(arch=ARCH, device="cpu"))
    assert (quick.epochs, quick.batch_size, quick.optimizer, quick.lr) == (100, 256, "sgd", pytest.approx(0.3))
    mine = resolve(PretrainConfig(arch=ARCH, preset="paper", epochs=20, batch_size=128, device="cpu"))
    assert (mine.epochs, mine.batch_size, mine.optimizer, mine.warmup_epochs) == (20, 128, "lars", 2.0)
    assert mine.lr == pytest.approx(0.5)
    byol = resolve(PretrainConfig(arch=ARCH, objective="byol", preset="paper", device="cpu"))
    assert (byol.optimizer, byol.lr, byol.weight_decay) == ("lars", pytest.approx(0.4), 1.5e-6)
    with pytest.raises(UserError, match="--preset paper is defined for the objectives simclr, byol"):
        resolve(PretrainConfig(arch=ARCH, objective="rotation", preset="paper"))
    with pytest.raises(UserError, match="unknown preset 'gpu'"):
        resolve(PretrainConfig(arch=ARCH, preset="gpu"))
    assert [(r.batch_size, r.epochs, r.lr) for r in (preset_recipe("quick", 0.01), preset_recipe("paper", 0.01),
                                                     preset_recipe("paper", 0.1), preset_recipe("paper", 1.0))] == [
        (128, 60, 0.025), (512, 60, 0.1), (512, 30, 0.1), (512, 30, 0.1)]  # fmt: skip
    assert preset_recipe("paper", 0.01, epochs=5, batch_size=64).lr == pytest.approx(0.0125)


def test_pretrain_and_finetune_run_with_the_paper_preset(
    labelled_cifar: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:  # fmt: skip
    """Through the CLI: the preset's settings reach config.yaml and the metrics (batches capped at the images)."""
    pre = tmp_path / "pre"
    tiny = ["--channels", "4", "--cells", "1", "--device", "cpu", "--precision", "fp32", "--no-progress"]
    result = run_ssnas("pretrain", ARCH, "--data", str(labelled_cifar), "--preset", "paper", "--epochs", "1", *tiny,
                       "--out", str(pre), "--json", env=cli_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert (metrics["preset"], metrics["batch_size"], metrics["optimizer"], metrics["steps"]) == ("paper", 512, "lars", 1)
    assert metrics["lr"] == pytest.approx(2.0)
    out = tmp_path / "ft"
    tuned = run_ssnas("finetune", str(pre), "--data", str(labelled_cifar), "--preset", "paper", "--labels-per-class",
                      "5", "--epochs", "2", "--device", "cpu", "--precision", "fp32", "--out", str(out), "--json",
                      env=cli_env)  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr
    assert json.loads(tuned.stdout)["steps"] == 2  # one batch of the 50 labelled images per epoch
    recipe = yaml.safe_load((out / "config.yaml").read_text())["recipe"]
    assert (recipe["batch_size"], recipe["lr"], recipe["epochs"]) == (512, pytest.approx(0.1), 2)
    refused = run_ssnas("pretrain", ARCH, "--data", str(labelled_cifar), "--objective", "rotation", "--preset", "paper",
                        *tiny, "--out", str(tmp_path / "no"), env=cli_env)  # fmt: skip
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode != 0 and len(lines) == 1 and "--preset paper is defined" in lines[0], refused.stderr
    assert not (tmp_path / "no").exists()
