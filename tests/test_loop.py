"""The training loop: exact resume (also after SIGKILL), NaN guard, hooks, optimizer details."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_ssl import FlipNoiseViews, TinyEncoder, random_images
from torch import nn

from ssnas.errors import TrainingDiverged, UserError
from ssnas.objectives import Batch, create_objective
from ssnas.training import LARS, StepHook, TrainConfig, train
from ssnas.training.checkpoint import load_checkpoint
from ssnas.training.loop import learning_rate, param_groups

TESTS = Path(__file__).resolve().parent
SMALL_HEADS = {
    "simclr": {"hidden_dim": 32, "out_dim": 16},
    "byol": {"hidden_dim": 32, "out_dim": 16, "pred_hidden_dim": 32},
    "csnas-nce": {"embed_dim": 16},
    "supervised": {"num_classes": 4},
}


def config(**overrides: Any) -> TrainConfig:
    base = dict(epochs=2, batch_size=8, lr=0.05, precision="fp32", progress=False, device="cpu", seed=7)
    return TrainConfig(**{**base, **overrides})


def run(name: str, cfg: TrainConfig, out_dir: Path | None = None, resume: bool = False, **kw: Any) -> dict[str, Any]:
    """Train a fresh seeded tiny encoder; return all final tensors (model + objective)."""
    torch.manual_seed(0)
    model, objective = TinyEncoder(), create_objective(name, **SMALL_HEADS[name])
    labels = torch.arange(32) % 4
    train(model, objective, random_images(32), FlipNoiseViews(3), cfg, labels=labels, out_dir=out_dir,
          resume=resume, **kw)  # fmt: skip
    return {**{f"model.{k}": v for k, v in model.state_dict().items()}, **objective.state_dict()}


def assert_same_tensors(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key


# --- exact resume --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "precision"),
    [("byol", "fp32"), ("csnas-nce", "fp32"), ("supervised", "fp32"), ("simclr", "bf16")],
)
def test_resume_from_a_mid_epoch_checkpoint_is_exact(tmp_path: Path, name: str, precision: str) -> None:
    cfg = config(precision=precision, optimizer="lars", warmup_epochs=1, grad_clip=1.0)
    reference = run(name, cfg)
    run(name, replace(cfg, max_steps=3), tmp_path)  # stops mid-epoch 0 (4 steps per epoch) and checkpoints
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step_in_epoch"] == 3
    assert_same_tensors(run(name, cfg, tmp_path, resume=True), reference)


def test_resume_refuses_changed_settings(tmp_path: Path) -> None:
    run("simclr", config(max_steps=2), tmp_path)
    with pytest.raises(UserError, match="lr: 0.05 -> 0.1"):
        run("simclr", config(lr=0.1), tmp_path, resume=True)


KILL_SCRIPT = """
import sys, time, torch
from pathlib import Path
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
import torch.nn.functional as F
from tiny_ssl import FlipNoiseViews, TinyEncoder, random_images
from ssnas.objectives import create_objective
from ssnas.training import TrainConfig, train

class DropEncoder(TinyEncoder):  # dropout: the global torch RNG must be restored too
    def forward_features(self, x, path=None):
        return F.dropout(super().forward_features(x, path), 0.2, self.training)

class PathHook:  # samples a path per step; sleeps so the parent can kill us mid-run
    def __init__(self, delay):
        self.delay, self.calls = delay, 0
    def model_kwargs(self, step, generator):
        return {{"path": int(torch.randint(0, 2, (), generator=generator))}}
    def after_step(self, step, batch):
        self.calls += 1
        time.sleep(self.delay)
    def state_dict(self):
        return {{"calls": self.calls}}
    def load_state_dict(self, state):
        self.calls = state["calls"]

def run(out_dir, resume, delay):
    torch.manual_seed(0)
    model = DropEncoder()
    objective = create_objective("byol", hidden_dim=32, out_dim=16, pred_hidden_dim=32)
    hook = PathHook(delay)
    cfg = TrainConfig(epochs=3, batch_size=8, optimizer="lars", lr=0.2, warmup_epochs=1, grad_clip=1.0,
                      precision="fp32", device="cpu", checkpoint_every=3, seed=5, progress=False)
    result = train(model, objective, random_images(32, seed=1), FlipNoiseViews(), cfg,
                   out_dir=Path(out_dir), resume=resume, hooks=hook)
    return {{"model": model.state_dict(), "objective": objective.state_dict(), "calls": hook.calls,
            "history": result.history}}

if sys.argv[1] == "killed":
    run(sys.argv[2], False, 0.4)
else:
    torch.save({{"resumed": run(sys.argv[2], True, 0.0), "reference": run(sys.argv[3], False, 0.0)}}, sys.argv[4])
"""


def test_run_killed_by_sigkill_resumes_to_identical_weights(tmp_path: Path) -> None:
    script = tmp_path / "train_tiny.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT.format(tests=str(TESTS))))
    killed_dir, reference_dir, result = tmp_path / "killed", tmp_path / "reference", tmp_path / "result.pt"
    checkpoint = killed_dir / "checkpoint.pt"

    process = subprocess.Popen([sys.executable, str(script), "killed", str(killed_dir)])
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the training script ended before it was killed"
    killed_at = load_checkpoint(checkpoint)["step"]
    assert 0 < killed_at < 12

    subprocess.run(
        [sys.executable, str(script), "resume", str(killed_dir), str(reference_dir), str(result)], check=True
    )
    runs = torch.load(result, weights_only=False)
    resumed, reference = runs["resumed"], runs["reference"]
    assert resumed["calls"] == reference["calls"] == 12
    assert resumed["history"] == reference["history"]
    assert_same_tensors(resumed["model"], reference["model"])
    assert_same_tensors(resumed["objective"], reference["objective"])


# --- divergence ----------------------------------------------------------------------------------


class NaNAtStep(TinyEncoder):
    """Returns NaN features from training step `step` on (SimCLR calls forward_features twice a step)."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.nan_step, self.calls = step, 0

    def forward_features(self, x: torch.Tensor, path: int | None = None) -> torch.Tensor:
        self.calls += 1
        features = super().forward_features(x, path)
        return features * math.nan if self.calls > 2 * self.nan_step else features


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    model = NaNAtStep(step=5)
    objective = create_objective("simclr", hidden_dim=32, out_dim=16)
    with pytest.raises(TrainingDiverged, match=r"nan at step 5 \(epoch 1.*checkpoint\.pt \(step 4\)"):
        train(model, objective, random_images(32), FlipNoiseViews(), config(checkpoint_every=2), out_dir=tmp_path)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file of the atomic write left
    fresh = TinyEncoder()
    fresh.load_state_dict(state["model"])


def test_divergence_without_checkpoints_says_so() -> None:
    objective = create_objective("simclr", hidden_dim=32, out_dim=16)
    with pytest.raises(TrainingDiverged, match="step 0.*no checkpoint"):
        train(NaNAtStep(step=0), objective, random_images(16), FlipNoiseViews(), config())


# --- hooks ---------------------------------------------------------------------------------------


class FirstPathHook:
    def __init__(self) -> None:
        self.steps: list[int] = []

    def model_kwargs(self, step: int, generator: torch.Generator) -> dict[str, Any]:
        return {"path": 0}

    def after_step(self, step: int, batch: Batch) -> None:
        self.steps.append(step)
        assert len(batch.views) == 2 and batch.index.shape == (8,)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]


def test_hook_kwargs_reach_the_model_and_after_step_sees_every_step() -> None:
    torch.manual_seed(0)
    model, hook = TinyEncoder(), FirstPathHook()
    assert isinstance(hook, StepHook)
    unused_before = model.branches[1].weight.clone()
    used_before = model.branches[0].weight.clone()
    train(model, create_objective("simclr", hidden_dim=32, out_dim=16), random_images(32), FlipNoiseViews(),
          config(), hooks=hook)  # fmt: skip
    assert hook.steps == list(range(8))
    assert torch.equal(model.branches[1].weight, unused_before)  # path 1 never ran
    assert not torch.equal(model.branches[0].weight, used_before)


# --- inputs, optimizer, schedule, precision --------------------------------------------------------


def test_bad_inputs_are_user_errors() -> None:
    objective = create_objective("supervised", num_classes=4)
    with pytest.raises(UserError, match="needs labels"):
        train(TinyEncoder(), objective, random_images(16), FlipNoiseViews(), config())
    with pytest.raises(UserError, match="uint8"):
        train(TinyEncoder(), objective, random_images(16).float(), FlipNoiseViews(), config(), labels=torch.zeros(16))
    with pytest.raises(UserError, match="optimizer"):
        config(optimizer="rmsprop")


def test_bn_and_bias_are_excluded_from_weight_decay() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    decay, no_decay = param_groups([model], weight_decay=0.1)
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert {id(p) for p in no_decay["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias),
                                                    id(model[2].bias)}  # fmt: skip
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0 and not no_decay["lars"]


def test_lars_scales_by_the_trust_ratio_only_where_asked() -> None:
    w = nn.Parameter(torch.tensor([3.0, 4.0]))  # ||w|| = 5
    b = nn.Parameter(torch.tensor([1.0]))
    w.grad, b.grad = torch.tensor([0.0, 1.0]), torch.tensor([2.0])
    optimizer = LARS([{"params": [w], "weight_decay": 1.0}, {"params": [b], "lars": False}], lr=0.1, eta=0.01)
    optimizer.step()
    update = torch.tensor([3.0, 5.0])  # g + wd * w
    trust = 0.01 * 5.0 / update.norm()
    torch.testing.assert_close(w.detach(), torch.tensor([3.0, 4.0]) - 0.1 * trust * update)
    torch.testing.assert_close(b.detach(), torch.tensor([1.0 - 0.1 * 2.0]))


def test_schedule_warms_up_linearly_then_follows_the_cosine() -> None:
    cfg = config(lr=1.0, min_lr=0.1)
    assert [learning_rate(s, 12, 4, cfg) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert learning_rate(8, 12, 4, cfg) == pytest.approx(0.1 + 0.9 * 0.5)
    assert learning_rate(12, 12, 4, cfg) == pytest.approx(0.1)


def test_channels_last_and_history(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TinyEncoder()
    result = train(model, create_objective("simclr", hidden_dim=32, out_dim=16), random_images(32),
                   FlipNoiseViews(), config(epochs=3, precision="auto"))  # fmt: skip
    assert model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert len(result.history) == 3 and result.steps == 12 and result.final_loss == result.history[-1]
    assert result.images_per_second > 0
