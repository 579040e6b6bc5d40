"""The one training loop: a network, an objective, images in memory, a view maker.

    result = train(model, create_objective("simclr"), images, views, TrainConfig(epochs=10, lr=0.3))

Everything a run needs stays on the device as uint8 (moved once). Each epoch
visits the images in a permutation drawn from a generator seeded by
`(config.seed, epoch)`; the views come from the ViewMaker with the loop's own
generator. The learning rate is a function of the step (linear warm-up, then
cosine to `min_lr`). A checkpoint (`out_dir/checkpoint.pt`, written atomically)
holds model, objective (heads, EMA target, memory bank), optimizer, GradScaler,
the position inside the epoch, every RNG state and the hook's state, so a run
killed at any point and resumed ends with the same weights as one that was not.

Strategies that need more than "one loss, one step" (SETN's path sampling and
evaluator step, BossNAS's per-stage paths) plug in through a `StepHook`; the
loop does not know them.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ssnas.data.views import ViewMaker
from ssnas.errors import TrainingDiverged, UserError
from ssnas.objectives.base import Batch, Objective, feature_dim_of, has_per_image_state
from ssnas.training.checkpoint import capture_rng, load_checkpoint, restore_rng, save_atomic
from ssnas.faults import fault_point
from ssnas.objectives.global_batch import across_processes
from ssnas.training.distributed import DataParallel, process_group
from ssnas.training.precision import Precision, cpu_capability, resolve_device, resolve_precision
from ssnas.training.progress import StageProgress
from ssnas.training.seeding import seeded

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
OPTIMIZERS = ("sgd", "lars", "adam", "adamw")
# Fields that may differ between a run and its resumption.
RESUMABLE_CHANGES = ("max_steps", "progress", "log_every", "checkpoint_every")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (all plain values, so it round-trips through TOML)."""

    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "sgd"  # "sgd" | "lars" | "adam" | "adamw"
    lr: float = 0.05
    momentum: float = 0.9  # SGD/LARS momentum, Adam beta1
    weight_decay: float = 5e-4  # never applied to BN parameters and biases
    nesterov: bool = False
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    grad_clip: float | None = None  # max global gradient norm
    precision: str = "auto"  # "auto" | "fp32" | "bf16" | "amp"
    channels_last: bool = True
    device: str = "auto"
    checkpoint_every: int = 0  # steps; 0 = only at epoch end
    seed: int = 0
    max_steps: int | None = None  # stop early; the schedule still spans `epochs`
    progress: bool = True
    log_every: int = 0  # steps between log lines; 0 = none

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; choose from: {', '.join(OPTIMIZERS)}")
        if self.epochs < 1 or self.batch_size < 2:
            raise UserError(f"need epochs >= 1 and batch_size >= 2, got {self.epochs} and {self.batch_size}")


@runtime_checkable
class StepHook(Protocol):
    """How a strategy steers the loop without the loop knowing it."""

    def model_kwargs(self, step: int, generator: torch.Generator) -> dict[str, Any]:
        """Keyword arguments for `model.forward_features` this step (e.g. `arch=` a sampled path)."""
        ...

    def after_step(self, step: int, batch: Batch) -> None:
        """Called after the optimizer step (e.g. SETN's evaluator update with its own optimizer)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class TrainResult:
    """What a run produced. `final_loss` is the mean loss of the last epoch run (possibly partial)."""

    history: list[float]  # mean loss per completed epoch
    steps: int
    images_per_second: float
    final_loss: float
    checkpoint: Path | None = None
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)  # every step's loss, in order (the training curve)


# --- optimizer --------------------------------------------------------------------------------------


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al. 2017, as used by BYOL).

    For groups with `lars=True` the update of each tensor is scaled by the trust ratio
    `eta * ||w|| / ||g + wd * w||` (1 when either norm is zero); other groups are plain SGD.
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001, nesterov: bool = False) -> None:  # fmt: skip
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, nesterov=nesterov, lars=True)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad.add(p, alpha=group["weight_decay"])
                if group["lars"]:
                    w_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
                    trust = torch.where((w_norm > 0) & (u_norm > 0), group["eta"] * w_norm / u_norm, 1.0)
                    update = update.mul(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = update.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(update)
                buf = state["momentum_buffer"]
                p.add_(update.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf, alpha=-group["lr"])
        return loss


def param_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters in two groups: weights (decay, LARS) and BN/bias/1-d (neither)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in modules:
        for p in module.parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (decay if p.ndim > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "lars": True},
        {"params": no_decay, "weight_decay": 0.0, "lars": False},
    ]


def build_optimizer(modules: Iterable[nn.Module], config: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(modules, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.optimizer == "lars":
        return LARS(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    adam = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return adam(groups, lr=config.lr, betas=(config.momentum, 0.999))


def learning_rate(step: int, total_steps: int, warmup_steps: int, config: TrainConfig) -> float:
    """Linear warm-up to `lr` over `warmup_steps`, then cosine decay to `min_lr` at `total_steps`."""
    if step < warmup_steps:
        return config.lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return config.min_lr + (config.lr - config.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


# --- the loop ---------------------------------------------------------------------------------------


def epoch_order(num_images: int, seed: int, epoch: int) -> torch.Tensor:
    """(N,) permutation for `epoch`, a pure function of `(seed, epoch)` (regenerated on resume)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_images, generator=generator)


def train(
    model: nn.Module,
    objective: Objective,
    images: torch.Tensor,
    views: ViewMaker,
    config: TrainConfig,
    labels: torch.Tensor | None = None,
    out_dir: Path | None = None,
    resume: bool = False,
    hooks: StepHook | None = None,
) -> TrainResult:
    """Train `model` (and the objective's heads) on `images` with the objective's loss.

    Args:
        model: network with `feature_dim` and `forward_features(x, **model_kwargs) -> (B, D)`.
        objective: set up here (`objective.setup(model, model.feature_dim, N)`), on the device.
        images: (N, 3, H, W) uint8, the whole training set (moved to the device once).
        views: ViewMaker `(uint8 batch, generator) -> list of (B, 3, H', W') float views`.
        labels: (N,) int64; required when `objective.needs_labels`.
        out_dir: where `checkpoint.pt` goes; None = no checkpoints.
        resume: continue from `out_dir/checkpoint.pt` when it exists.
        hooks: optional `StepHook` (path sampling, extra per-step updates).

    Raises:
        TrainingDiverged: the loss became NaN/Inf; the last good checkpoint is left untouched.
        UserError: bad inputs (dtype/shape, missing labels, incompatible checkpoint).
    """
    _check_inputs(images, objective, labels)
    run = _set_up(model, objective, images, views, config, labels, out_dir, hooks)
    at = _start(run, resume)
    model.train()
    objective.train()
    last_saved_step: int | None = at.step if at.step > 0 else None  # None: no checkpoint of this run yet
    images_seen, started = 0, time.perf_counter()
    stop_at = run.total_steps if config.max_steps is None else min(run.total_steps, config.max_steps)
    if run.is_main:
        log.info("training: %d images, batch %d, %d epochs of %d steps, precision %s on %s%s", run.num_images,
                 run.batch_size, config.epochs, run.steps_per_epoch, run.precision.name, run.device.type,
                 f" ({cpu_capability()})" if run.device.type == "cpu" else "")  # fmt: skip
    progress = StageProgress("train", stop_at, bar=config.progress and run.is_main, completed=at.step,
                             images_per_unit=run.batch_size)  # fmt: skip
    with progress, across_processes(run.parallel, [model, objective]):  # global-batch loss and BatchNorm
        while at.epoch < config.epochs and at.step < stop_at:
            progress.stage = f"train epoch {at.epoch + 1}/{config.epochs}"
            order = epoch_order(run.num_images, config.seed, at.epoch)
            while at.step_in_epoch < run.steps_per_epoch and at.step < stop_at:
                loss_value = _train_step(run, at, order, last_saved_step)
                images_seen += run.batch_size
                if run.is_main:
                    progress.update(at.step, status=f"loss {loss_value:.4f}")
                if config.log_every and at.step % config.log_every == 0:
                    ips = images_seen / (time.perf_counter() - started)
                    log.info("epoch %d step %d loss %.4f %.0f img/s", at.epoch, at.step, loss_value, ips)
                if config.checkpoint_every and at.step % config.checkpoint_every == 0 \
                        and at.step_in_epoch < run.steps_per_epoch:  # fmt: skip
                    _save(run, at)
                    last_saved_step = at.step
            if at.step_in_epoch == run.steps_per_epoch:  # epoch complete
                at.end_epoch()
                if run.is_main:
                    progress.update(at.step, status=f"epoch mean loss {at.history[-1]:.4f}", force_line=True)
            if at.step != last_saved_step:  # epoch end, or stopped by max_steps
                _save(run, at)
                last_saved_step = at.step
    return _finish(run, at, images_seen, started)


def images_per_second(model: nn.Module, objective: Objective, images: torch.Tensor, views: ViewMaker,
                      config: TrainConfig, labels: torch.Tensor | None = None, steps: int = 3) -> float:
    """Training images per second of `config` here: one untimed step (kernel choice, caches), then
    `steps` timed ones of this loop on copies of `model` and `objective` (both are left untouched).
    What a time budget plans its epochs with (`ssnas.fitting`)."""
    count = min(len(images), config.batch_size * max(2, steps))
    quick = replace(config, epochs=1, progress=False, checkpoint_every=0, log_every=0)
    subset = labels[:count] if labels is not None else None
    model, objective = copy.deepcopy(model), copy.deepcopy(objective)
    train(model, objective, images[:count], views, replace(quick, max_steps=1), labels=subset)
    timed = train(model, objective, images[:count], views, replace(quick, max_steps=steps), labels=subset)
    return timed.images_per_second


@dataclass
class _Run:
    """What one training run holds fixed: the inputs on the device, the optimizer, the sizes."""

    model: nn.Module
    objective: Objective
    images: torch.Tensor  # (N, 3, H, W) uint8 on the device
    labels: torch.Tensor | None
    views: ViewMaker
    config: TrainConfig
    hooks: StepHook | None
    device: torch.device
    precision: Precision
    memory_format: torch.memory_format
    batch_size: int
    steps_per_epoch: int
    warmup_steps: int
    parallel: DataParallel | None  # None: one process
    checkpoint_path: Path | None
    optimizer: torch.optim.Optimizer
    trained: list[torch.Tensor]
    scaler: torch.amp.GradScaler | None
    generators: dict[str, torch.Generator]  # "views", "hook"

    @property
    def num_images(self) -> int:
        return self.images.shape[0]

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    @property
    def is_main(self) -> bool:
        return self.parallel is None or self.parallel.is_main


@dataclass
class _Position:
    """Where a run stands: what a checkpoint saves besides weights and RNG states."""

    epoch: int = 0
    step_in_epoch: int = 0
    step: int = 0
    history: list[float] = field(default_factory=list)  # mean loss per completed epoch
    epoch_loss_sum: float = 0.0
    epoch_batches: int = 0
    losses: list[float] = field(default_factory=list)  # every step's loss

    def count(self, loss_value: float) -> None:
        self.step, self.step_in_epoch = self.step + 1, self.step_in_epoch + 1
        self.epoch_loss_sum, self.epoch_batches = self.epoch_loss_sum + loss_value, self.epoch_batches + 1
        self.losses.append(loss_value)

    def end_epoch(self) -> None:
        self.history.append(self.epoch_loss_sum / self.epoch_batches)
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.epoch_loss_sum, self.epoch_batches = 0.0, 0


def _check_inputs(images: torch.Tensor, objective: Objective, labels: torch.Tensor | None) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise UserError(f"images must be uint8 (N,3,H,W), got {images.dtype} {tuple(images.shape)}")
    if images.shape[0] < 2:
        raise UserError(f"need at least 2 training images, got {images.shape[0]}")
    if objective.needs_labels and labels is None:
        raise UserError(f"objective {type(objective).__name__} needs labels")


def _set_up(model: nn.Module, objective: Objective, images: torch.Tensor, views: ViewMaker, config: TrainConfig,
            labels: torch.Tensor | None, out_dir: Path | None, hooks: StepHook | None) -> _Run:  # fmt: skip
    """Move everything to the device, set the objective up, build the optimizer and the generators."""
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    num_images = images.shape[0]
    batch_size = min(config.batch_size, num_images)
    steps_per_epoch = num_images // batch_size  # the last incomplete batch is dropped
    parallel = process_group()  # None unless launched by torchrun with several processes
    if parallel is not None and batch_size % parallel.world_size:
        raise UserError(f"batch size {batch_size} must be a multiple of the {parallel.world_size} processes")
    images = images.to(device)
    labels = labels.to(device) if labels is not None else None
    # the ignores: torch's `Module.to` overloads lack the memory_format keyword that it takes
    model.to(device=device, memory_format=memory_format)  # type: ignore[call-overload]
    with seeded(config.seed):  # heads start the same in every process with this seed
        objective.setup(model, feature_dim_of(model), num_images)
    objective.to(device=device, memory_format=memory_format)  # type: ignore[call-overload]
    if parallel is not None:
        if has_per_image_state(objective, num_images):
            raise UserError(f"{type(objective).__name__} keeps one state row per image; train it in one process")
        parallel.broadcast([model, objective])  # identical start everywhere
    optimizer = build_optimizer([model, objective], config)
    trained = [p for g in optimizer.param_groups for p in g["params"]]
    scaler = precision.grad_scaler()
    generators = {"views": torch.Generator(device=device).manual_seed(config.seed),
                  "hook": torch.Generator().manual_seed(config.seed + 1)}  # fmt: skip
    return _Run(model, objective, images, labels, views, config, hooks, device, precision, memory_format, batch_size,
                steps_per_epoch, round(config.warmup_epochs * steps_per_epoch), parallel,
                out_dir / CHECKPOINT_NAME if out_dir is not None else None, optimizer, trained, scaler,
                generators)  # fmt: skip


def _start(run: _Run, resume: bool) -> _Position:
    """The position to start from: the checkpoint's (weights, optimizer, RNG states restored), or 0."""
    path = run.checkpoint_path
    if not (resume and path is not None and path.exists()):
        torch.manual_seed(run.config.seed)  # for ops that use the global RNG (dropout)
        return _Position()
    state = load_checkpoint(path)
    _check_compatible(state["config"], run.config, path)
    run.model.load_state_dict(state["model"])
    run.objective.load_state_dict(state["objective"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scaler is not None and state["scaler"] is not None:
        run.scaler.load_state_dict(state["scaler"])
    if run.hooks is not None and state["hook"] is not None:
        run.hooks.load_state_dict(state["hook"])
    at = _Position(state["epoch"], state["step_in_epoch"], state["step"], state["history"], state["epoch_loss_sum"],
                   state["epoch_batches"], list(state.get("losses", [])))  # fmt: skip
    restore_rng(state["rng"], run.generators)
    log.info("resumed from %s at epoch %d, step %d", path, at.epoch, at.step)
    return at


def _save(run: _Run, at: _Position) -> None:
    """Write the checkpoint atomically (process 0 only, with its BN statistics)."""
    if run.checkpoint_path is None:
        return
    if run.parallel is not None:
        run.parallel.broadcast([run.model, run.objective], buffers_only=True)  # process 0's BN statistics
        if not run.is_main:
            return
    save_atomic(
        {
            "config": asdict(run.config),
            "model": run.model.state_dict(),
            "objective": run.objective.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scaler": run.scaler.state_dict() if run.scaler is not None else None,
            "hook": run.hooks.state_dict() if run.hooks is not None else None,
            "epoch": at.epoch, "step_in_epoch": at.step_in_epoch, "step": at.step,
            "history": at.history, "epoch_loss_sum": at.epoch_loss_sum, "epoch_batches": at.epoch_batches,
            "losses": at.losses,
            "rng": capture_rng(run.generators),
        },
        run.checkpoint_path,
    )  # fmt: skip
    log.debug("checkpoint at step %d -> %s", at.step, run.checkpoint_path)


def _next_batch(run: _Run, at: _Position, order: torch.Tensor) -> Batch:
    """The batch of this step: the images `order` puts here, their views drawn with the views generator."""
    start = at.step_in_epoch * run.batch_size
    index = order[start : start + run.batch_size].to(run.device)  # (B,)
    made = run.views(run.images[index], run.generators["views"])  # every process draws the global batch's views
    if run.parallel is not None:
        index, made = run.parallel.shard(index), [run.parallel.shard(v) for v in made]  # (B / processes, ...)
    return Batch(
        views=[v.contiguous(memory_format=run.memory_format) for v in made],
        index=index,
        labels=run.labels[index] if run.labels is not None else None,
    )


def _train_step(run: _Run, at: _Position, order: torch.Tensor, last_saved_step: int | None) -> float:
    """One optimizer step on the next batch; moves `at` on and returns the step's loss."""
    batch = _next_batch(run, at, order)
    model_kwargs = run.hooks.model_kwargs(at.step, run.generators["hook"]) if run.hooks is not None else {}
    optimizer, scaler = run.optimizer, run.scaler
    for g in optimizer.param_groups:
        g["lr"] = learning_rate(at.step, run.total_steps, run.warmup_steps, run.config)
    with run.precision.autocast():
        loss = run.objective(run.model, batch, **model_kwargs)
    loss_value = loss.item() if run.parallel is None else run.parallel.mean(loss.item())
    if not math.isfinite(loss_value):
        where = "no checkpoint was written"
        if run.checkpoint_path is not None and last_saved_step is not None:
            where = f"last good checkpoint: {run.checkpoint_path} (step {last_saved_step})"
        raise TrainingDiverged(f"loss is {loss_value} at step {at.step} (epoch {at.epoch}, lr "
                               f"{optimizer.param_groups[0]['lr']:.3g}); stopped; {where}")  # fmt: skip
    optimizer.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    if run.parallel is not None:
        run.parallel.average_gradients(run.trained)
    if scaler is not None:
        scaler.unscale_(optimizer)
    if run.config.grad_clip is not None:
        nn.utils.clip_grad_norm_(run.trained, run.config.grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    run.objective.on_step_end(run.model, (at.step + 1) / run.total_steps)
    if run.hooks is not None:
        run.hooks.after_step(at.step, batch)
    fault_point("train")  # tests only: SIGKILL here when $SSNAS_KILL_AT says so
    at.count(loss_value)
    return loss_value


def _finish(run: _Run, at: _Position, images_seen: int, started: float) -> TrainResult:
    if run.parallel is not None:
        run.parallel.broadcast([run.model, run.objective], buffers_only=True)  # every process ends with process 0's
    seconds = time.perf_counter() - started
    final_loss = at.epoch_loss_sum / at.epoch_batches if at.epoch_batches else (at.history[-1] if at.history
                                                                                 else float("nan"))  # fmt: skip
    return TrainResult(
        history=list(at.history),
        steps=at.step,
        images_per_second=images_seen / seconds if seconds > 0 else 0.0,
        final_loss=final_loss,
        checkpoint=run.checkpoint_path,
        seconds=seconds,
        losses=list(at.losses),
    )


def _check_compatible(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    """A checkpoint may only be resumed with the same settings (except `RESUMABLE_CHANGES`)."""
    current = asdict(config)
    changed = [k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k]]
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise UserError(f"cannot resume {path}: the run's settings changed ({details})")
