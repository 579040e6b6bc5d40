"""Supervised retraining: recipes, the DARTS extras (auxiliary loss, drop-path schedule, Cutout), `ssnas train`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from _labelled_folder import NB201_ARCH, make_labelled_folder
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ssnas.cli.main import main
from ssnas.data.views import VIEWS
from ssnas.errors import UserError
from ssnas.objectives.base import Batch
from ssnas.retrain import load_model, retrain
from ssnas.spaces import create_space
from ssnas.spaces.darts import DARTS_V2
from ssnas.training.loop import train
from ssnas.training.recipes import RECIPES, ClassifierObjective, Cutout, get_recipe

torch.set_num_threads(1)
TINY_DARTS = {"C": 4, "layers": 5}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_labelled_folder(tmp_path_factory.mktemp("data"))


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSNAS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def ssnas(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "ssnas.cli.main", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


# --------------------------------------------------------------------------- recipes


def test_recipes_hold_the_papers_settings() -> None:
    nb201, darts = RECIPES["nb201"], RECIPES["darts-cifar"]
    assert (nb201.lr, nb201.momentum, nb201.nesterov, nb201.weight_decay, nb201.batch_size, nb201.epochs) == (
        0.1, 0.9, True, 5e-4, 256, 200)  # fmt: skip
    assert (darts.lr, darts.weight_decay, darts.batch_size, darts.epochs) == (0.025, 3e-4, 96, 600)
    assert (darts.cutout, darts.drop_path, darts.aux_weight, darts.space_args) == (16, 0.2, 0.4, {"C": 36, "layers": 20})
    config = darts.with_overrides(epochs=3, lr=None).train_config(device="cpu")
    assert (config.epochs, config.lr, config.optimizer, config.grad_clip, config.device) == (3, 0.025, "sgd", 5.0, "cpu")


def test_default_recipe_per_space_and_unknown_names() -> None:
    assert get_recipe(None, "darts").name == "darts-cifar"
    assert get_recipe(None, "nb201").name == "nb201"
    assert get_recipe(None, "hytra").name == "cifar" and get_recipe(None, "hytra").space_args == {}
    with pytest.raises(UserError, match="unknown recipe"):
        get_recipe("imagenet-deit", "nb201")
    with pytest.raises(UserError, match="only the darts space"):
        get_recipe("darts-cifar", "nb201")


# --------------------------------------------------------------------------- DARTS extras


class FixedOutputs(nn.Module):
    """Returns given (logits, aux_logits) in training mode; records its drop_path_prob at each call."""

    def __init__(self, logits: torch.Tensor, aux_logits: torch.Tensor) -> None:
        super().__init__()
        self.logits, self.aux_logits = logits, aux_logits
        self.drop_path_prob, self.seen = 0.0, []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen.append(self.drop_path_prob)
        return self.logits, self.aux_logits


def test_loss_adds_the_weighted_auxiliary_loss() -> None:
    generator = torch.Generator().manual_seed(0)
    logits, aux = torch.randn(6, 3, generator=generator), torch.randn(6, 3, generator=generator)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    batch = Batch(views=[torch.zeros(6, 3, 4, 4)], index=torch.arange(6), labels=labels)
    loss = ClassifierObjective(3, aux_weight=0.4)(FixedOutputs(logits, aux), batch)
    expected = F.cross_entropy(logits, labels) + 0.4 * F.cross_entropy(aux, labels)
    assert torch.allclose(loss, expected)


def test_drop_path_grows_linearly_per_epoch_from_zero() -> None:
    epochs, steps_per_epoch = 4, 3
    objective = ClassifierObjective(3, drop_path=0.2, epochs=epochs)
    model = FixedOutputs(torch.zeros(2, 3), torch.zeros(2, 3))
    batch = Batch(views=[torch.zeros(2, 3, 4, 4)], index=torch.arange(2), labels=torch.tensor([0, 1]))
    total = epochs * steps_per_epoch
    for step in range(total):
        objective(model, batch)
        objective.on_step_end(model, (step + 1) / total)
    expected = [0.2 * (step // steps_per_epoch) / epochs for step in range(total)]
    assert model.seen == pytest.approx(expected)


@settings(max_examples=25, deadline=None)
@given(length=st.integers(1, 20), seed=st.integers(0, 2**31 - 1))
def test_cutout_zeroes_one_clipped_square_per_image(length: int, seed: int) -> None:
    images = torch.full((4, 3, 16, 16), 255, dtype=torch.uint8)
    views = Cutout(VIEWS.create("identity", mean=(0, 0, 0), std=(1, 1, 1)), length)
    (view,) = views(images, torch.Generator().manual_seed(seed))
    zero = view == 0  # (4,3,16,16); unmasked pixels are 1
    assert torch.equal(zero[:, 0], zero[:, 2])  # the same square in every channel
    for mask in zero[:, 0]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        if length >= 2:
            assert len(rows) >= 1
        if len(rows):
            assert len(rows) <= 2 * (length // 2) and len(cols) <= 2 * (length // 2)
            assert int(mask.sum()) == len(rows) * len(cols)  # a rectangle (square clipped by the border)


def test_darts_step_trains_auxiliary_head_with_drop_path(tmp_path: Path) -> None:
    """Two epochs of one step each: the second forward runs at drop-path 0.1, the aux head learns."""
    recipe = RECIPES["darts-cifar"].with_overrides(epochs=2, batch_size=8)
    space = create_space("darts", **TINY_DARTS)
    model = space.build(space.from_genotype(DARTS_V2), num_classes=2, **recipe.build_args())
    before = {k: v.clone() for k, v in model.auxiliary_head.state_dict().items()}
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    objective = recipe.objective(2)
    config = recipe.train_config(device="cpu", precision="fp32", progress=False)
    result = train(model, objective, images, recipe.views_maker(), config, labels=torch.tensor([0, 1] * 4))
    assert result.steps == 2
    assert model.drop_path_prob == pytest.approx(0.1)
    assert float(objective.drop_prob) == pytest.approx(0.2)
    assert any(not torch.equal(before[k], v) for k, v in model.auxiliary_head.state_dict().items())


def test_darts_resume_continues_the_drop_path_schedule(data: Path, tmp_path: Path) -> None:
    """Stopped after one step and resumed, the run ends with the weights of an uninterrupted run."""
    common = dict(space="darts", data=str(data), epochs=2, batch_size=24, space_args=TINY_DARTS,
                  device="cpu", precision="fp32", progress=False)  # fmt: skip
    retrain(str(DARTS_V2), out_dir=tmp_path / "full", **common)
    retrain(str(DARTS_V2), out_dir=tmp_path / "cut", max_steps=3, **common)
    retrain(str(DARTS_V2), out_dir=tmp_path / "cut", resume=True, **common)
    full, cut = load_model(tmp_path / "full").state_dict(), load_model(tmp_path / "cut").state_dict()
    assert all(torch.equal(full[k], cut[k]) for k in full)


# --------------------------------------------------------------------------- retrain and `ssnas train`


def test_train_command_writes_the_run_folder(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = ssnas("train", NB201_ARCH, "--space", "nb201", "--space-arg", "C=8", "--space-arg", "N=1",
                 "--data", str(data), "--epochs", "1", "--batch-size", "16", "--device", "cpu",
                 "--precision", "fp32", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["test_images"] == 16
    assert len(metrics["history"]) == 1 and metrics["steps"] == 3 and metrics["seconds"] > 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["space_args"] == {"C": 8, "N": 1} and config["recipe"]["name"] == "nb201"
    assert config["recipe"]["epochs"] == 1 and config["recipe"]["lr"] == 0.1
    assert (out / "checkpoint.pt").is_file()
    saved = torch.load(out / "model.pt", weights_only=False)
    assert (saved["arch"], saved["space"], saved["num_classes"]) == (NB201_ARCH, "nb201", 2)

    model = load_model(out)  # the saved network reproduces the reported accuracy
    from ssnas.data.datasets import load_dataset
    from ssnas.retrain import evaluate

    test = load_dataset(str(data), "test")
    assert evaluate(model, test.images, test.labels) == pytest.approx(metrics["test_accuracy"])


def test_train_command_json_and_darts_genotype_file(data: Path, tmp_path: Path) -> None:
    genotype = tmp_path / "genotype.txt"
    genotype.write_text(f"DARTS_V2 = {DARTS_V2}\n")
    done = ssnas("train", str(genotype), "--space", "darts", "--space-arg", "C=4", "--space-arg", "layers=5",
                 "--data", str(data), "--epochs", "1", "--batch-size", "24", "--max-steps", "1",
                 "--device", "cpu", "--precision", "fp32", "--out", str(tmp_path / "run"), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["recipe"] == "darts-cifar" and payload["steps"] == 1 and 0 <= payload["test_accuracy"] <= 1


@pytest.mark.parametrize(
    ("space", "arch"),
    [
        ("hytra", "conv@4:conv@4:conv@8:conv@8:conv@8:conv@8:att@16:conv@16:att@16:att@16:att@16:conv@16:conv@32:att@32:att@32:att@32"),
        ("nats-size", "8:16:8:24:8"),
    ],
)
def test_train_command_defaults_to_the_cifar_recipe_on_other_spaces(
    data: Path, tmp_path: Path, space: str, arch: str
) -> None:
    """A found HyTra / NATS architecture retrains without naming a recipe: the space's own network."""
    done = ssnas("train", arch, "--space", space, "--data", str(data), "--epochs", "1", "--batch-size", "16",
                 "--max-steps", "1", "--device", "cpu", "--precision", "fp32", "--out", str(tmp_path / "run"),
                 "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["recipe"] == "cifar" and payload["steps"] == 1 and 0 <= payload["test_accuracy"] <= 1
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=False)
    assert (saved["arch"], saved["space"], saved["space_args"]) == (arch, space, {})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "unknown op 'bogus'"),
        ([NB201_ARCH, "--recipe", "nope"], "unknown recipe 'nope'"),
        ([NB201_ARCH, "--space-arg", "C"], "KEY=VALUE"),
        ([NB201_ARCH, "--space-arg", "width=8"], "bad arguments for space 'nb201'"),
        ([NB201_ARCH, "--data", "/no/such/folder"], "/no/such/folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["train", *args, "--out", str(tmp_path / "run"), "--device", "cpu"])
    stderr = capsys.readouterr().err
    assert exited.value.code == 1
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # a refused start leaves no run folder


def test_existing_run_folder_needs_resume(data: Path, tmp_path: Path) -> None:
    common = dict(space="nb201", data=str(data), epochs=1, batch_size=16, space_args={"C": 8, "N": 1},
                  device="cpu", precision="fp32", progress=False, max_steps=1)  # fmt: skip
    retrain(NB201_ARCH, out_dir=tmp_path, **common)
    with pytest.raises(UserError, match="--resume"):
        retrain(NB201_ARCH, out_dir=tmp_path, **common)
    with pytest.raises(UserError, match="different settings: recipe"):
        retrain(NB201_ARCH, out_dir=tmp_path, resume=True, **{**common, "batch_size": 8})


def test_unlabelled_or_unsplit_data_is_refused(tmp_path: Path) -> None:
    make_labelled_folder(tmp_path / "data")
    with pytest.raises(UserError, match="train/ and test/"):
        retrain(NB201_ARCH, data=str(tmp_path / "data" / "train"), out_dir=tmp_path / "run", progress=False)
