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

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ssnas.data.views import ViewMaker
from ssnas.errors import TrainingDiverged, UserError
from ssnas.objectives.base import Batch, Objective, has_per_image_state
from ssnas.training.checkpoint import capture_rng, load_checkpoint, restore_rng, save_atomic
from ssnas.faults import fault_point
from ssnas.objectives.global_batch import across_processes
from ssnas.training.distributed import process_group
from ssnas.training.precision import cpu_capability, resolve_device, resolve_precision
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
    decay, no_decay, seen = [], [], set()
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
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise UserError(f"images must be uint8 (N,3,H,W), got {images.dtype} {tuple(images.shape)}")
    if images.shape[0] < 2:
        raise UserError(f"need at least 2 training images, got {images.shape[0]}")
    if objective.needs_labels and labels is None:
        raise UserError(f"objective {type(objective).__name__} needs labels")
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    num_images = images.shape[0]
    batch_size = min(config.batch_size, num_images)
    steps_per_epoch = num_images // batch_size  # the last incomplete batch is dropped
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    parallel = process_group()  # None unless launched by torchrun with several processes
    if parallel is not None and batch_size % parallel.world_size:
        raise UserError(f"batch size {batch_size} must be a multiple of the {parallel.world_size} processes")
    is_main = parallel is None or parallel.is_main
    checkpoint_path = out_dir / CHECKPOINT_NAME if out_dir is not None else None

    images = images.to(device)
    labels = labels.to(device) if labels is not None else None
    model.to(device=device, memory_format=memory_format)
    with seeded(config.seed):  # heads start the same in every process with this seed
        objective.setup(model, model.feature_dim, num_images)
    objective.to(device=device, memory_format=memory_format)
    if parallel is not None:
        if has_per_image_state(objective, num_images):
            raise UserError(f"{type(objective).__name__} keeps one state row per image; train it in one process")
        parallel.broadcast([model, objective])  # identical start everywhere
    optimizer = build_optimizer([model, objective], config)
    trained = [p for g in optimizer.param_groups for p in g["params"]]
    scaler = precision.grad_scaler()
    view_generator = torch.Generator(device=device).manual_seed(config.seed)
    hook_generator = torch.Generator().manual_seed(config.seed + 1)
    generators = {"views": view_generator, "hook": hook_generator}

    epoch, step_in_epoch, step = 0, 0, 0
    history: list[float] = []
    losses: list[float] = []
    epoch_loss_sum, epoch_batches = 0.0, 0
    if resume and checkpoint_path is not None and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        _check_compatible(state["config"], config, checkpoint_path)
        model.load_state_dict(state["model"])
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
        if hooks is not None and state["hook"] is not None:
            hooks.load_state_dict(state["hook"])
        epoch, step_in_epoch, step = state["epoch"], state["step_in_epoch"], state["step"]
        history, epoch_loss_sum, epoch_batches = state["history"], state["epoch_loss_sum"], state["epoch_batches"]
        losses = list(state.get("losses", []))
        restore_rng(state["rng"], generators)
        log.info("resumed from %s at epoch %d, step %d", checkpoint_path, epoch, step)
    else:
        torch.manual_seed(config.seed)  # for ops that use the global RNG (dropout)

    def save() -> None:
        if checkpoint_path is None:
            return
        if parallel is not None:
            parallel.broadcast([model, objective], buffers_only=True)  # process 0's BN statistics
            if not is_main:
                return
        save_atomic(
            {
                "config": asdict(config),
                "model": model.state_dict(),
                "objective": objective.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "hook": hooks.state_dict() if hooks is not None else None,
                "epoch": epoch, "step_in_epoch": step_in_epoch, "step": step,
                "history": history, "epoch_loss_sum": epoch_loss_sum, "epoch_batches": epoch_batches,
                "losses": losses,
                "rng": capture_rng(generators),
            },
            checkpoint_path,
        )  # fmt: skip
        log.debug("checkpoint at step %d -> %s", step, checkpoint_path)

    model.train()
    objective.train()
    last_saved_step: int | None = step if step > 0 else None  # None: no checkpoint of this run yet
    images_seen, started = 0, time.perf_counter()
    stop_at = total_steps if config.max_steps is None else min(total_steps, config.max_steps)
    if is_main:
        log.info("training: %d images, batch %d, %d epochs of %d steps, precision %s on %s%s", num_images,
                 batch_size, config.epochs, steps_per_epoch, precision.name, device.type,
                 f" ({cpu_capability()})" if device.type == "cpu" else "")  # fmt: skip
    progress = StageProgress("train", stop_at, bar=config.progress and is_main, completed=step,
                             images_per_unit=batch_size)  # fmt: skip
    with progress, across_processes(parallel, [model, objective]):  # global-batch loss and BatchNorm
        while epoch < config.epochs and step < stop_at:
            progress.stage = f"train epoch {epoch + 1}/{config.epochs}"
            order = epoch_order(num_images, config.seed, epoch)
            while step_in_epoch < steps_per_epoch and step < stop_at:
                index = order[step_in_epoch * batch_size : (step_in_epoch + 1) * batch_size].to(device)  # (B,)
                made = views(images[index], view_generator)  # every process draws the global batch's views
                if parallel is not None:
                    index, made = parallel.shard(index), [parallel.shard(v) for v in made]  # (B / processes, ...)
                batch = Batch(
                    views=[v.contiguous(memory_format=memory_format) for v in made],
                    index=index,
                    labels=labels[index] if labels is not None else None,
                )
                model_kwargs = hooks.model_kwargs(step, hook_generator) if hooks is not None else {}

                for g in optimizer.param_groups:
                    g["lr"] = learning_rate(step, total_steps, warmup_steps, config)
                with precision.autocast():
                    loss = objective(model, batch, **model_kwargs)
                loss_value = loss.item() if parallel is None else parallel.mean(loss.item())
                if not math.isfinite(loss_value):
                    where = "no checkpoint was written"
                    if checkpoint_path is not None and last_saved_step is not None:
                        where = f"last good checkpoint: {checkpoint_path} (step {last_saved_step})"
                    raise TrainingDiverged(
                        f"loss is {loss_value} at step {step} (epoch {epoch}, lr "
                        f"{optimizer.param_groups[0]['lr']:.3g}); stopped; {where}"
                    )
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                else:
                    loss.backward()
                if parallel is not None:
                    parallel.average_gradients(trained)
                if scaler is not None:
                    scaler.unscale_(optimizer)
                if config.grad_clip is not None:
                    nn.utils.clip_grad_norm_(trained, config.grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                objective.on_step_end(model, (step + 1) / total_steps)
                if hooks is not None:
                    hooks.after_step(step, batch)
                fault_point("train")  # tests only: SIGKILL here when $SSNAS_KILL_AT says so

                step, step_in_epoch = step + 1, step_in_epoch + 1
                epoch_loss_sum, epoch_batches = epoch_loss_sum + loss_value, epoch_batches + 1
                losses.append(loss_value)
                images_seen += batch_size
                ips = images_seen / (time.perf_counter() - started)
                if is_main:
                    progress.update(step, status=f"loss {loss_value:.4f}")
                if config.log_every and step % config.log_every == 0:
                    log.info("epoch %d step %d loss %.4f %.0f img/s", epoch, step, loss_value, ips)
                if config.checkpoint_every and step % config.checkpoint_every == 0 and step_in_epoch < steps_per_epoch:
                    save()
                    last_saved_step = step

            if step_in_epoch == steps_per_epoch:  # epoch complete
                history.append(epoch_loss_sum / epoch_batches)
                if is_main:
                    progress.update(step, status=f"epoch mean loss {history[-1]:.4f}", force_line=True)
                epoch, step_in_epoch = epoch + 1, 0
                epoch_loss_sum, epoch_batches = 0.0, 0
            if step != last_saved_step:  # epoch end, or stopped by max_steps
                save()
                last_saved_step = step

    if parallel is not None:
        parallel.broadcast([model, objective], buffers_only=True)  # every process ends with process 0's model
    seconds = time.perf_counter() - started
    final_loss = epoch_loss_sum / epoch_batches if epoch_batches else (history[-1] if history else float("nan"))
    return TrainResult(
        history=list(history),
        steps=step,
        images_per_second=images_seen / seconds if seconds > 0 else 0.0,
        final_loss=final_loss,
        checkpoint=checkpoint_path,
        seconds=seconds,
        losses=list(losses),
    )


def _check_compatible(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    """A checkpoint may only be resumed with the same settings (except `RESUMABLE_CHANGES`)."""
    current = asdict(config)
    changed = [k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k]]
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise UserError(f"cannot resume {path}: the run's settings changed ({details})")
