"""The objective of the global batch when a batch is split over processes (torchrun).

Under `torchrun` each of W processes holds b = B/W rows of a global batch of B images.
Inside `across_processes(group, modules)` (entered by the training loop):

* `gather(x)` concatenates a tensor over the processes, (b, ...) -> (B, ...) in process order,
  with gradients flowing back to the process that made each row (its backward all-reduces the
  gradient and keeps this process's rows). SimCLR contrasts its anchors with the gathered
  embeddings (Chen et al. 2020, appendix B.9: negatives and BN statistics over all devices).
* every BatchNorm1d/2d of the given modules (backbone, projector, predictor, EMA target)
  normalises with the global batch's per-channel mean and variance: one all-reduce of
  (sum, sum of squares, count) in float64 per layer forward, and one of their gradients
  backward. This is SyncBatchNorm's arithmetic, which torch offers on GPUs only; running
  statistics are updated from the global moments, so they are the same in every process.

Each process's loss is the mean over its own rows and the loop averages gradients over the
processes, which is the gradient of the global mean: loss and gradients equal one process's
on the whole batch, up to float rounding (tests/test_distributed_equality.py). Outside the
block both are plain: `gather` is the identity and BatchNorm uses the local batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn


class Group(Protocol):
    """This process's place among the processes (`ssnas.training.distributed.DataParallel`)."""

    @property
    def rank(self) -> int: ...

    @property
    def world_size(self) -> int: ...


# The group whose processes compute one global batch right now (set by `across_processes`).
_ACTIVE: Group | None = None


class _Gather(torch.autograd.Function):
    """all_gather along dim 0 whose backward returns each process the summed gradient of its rows."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # (b, ...) -> (W b, ...)
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)  # every process's loss depends on every row
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


class _SumOverProcesses(torch.autograd.Function):
    """all_reduce(sum) whose backward is the all_reduce(sum) of the gradients."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        total = x.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def gather(x: torch.Tensor) -> torch.Tensor:
    """The global batch of `x`: (b, ...) -> (W b, ...) rows of process 0, then 1, ... inside
    `across_processes`; `x` itself otherwise. Gradients reach the process that made each row."""
    return x if _ACTIVE is None else _Gather.apply(x)


def batch_offset(rows: int) -> int:
    """Where this process's `rows` rows start in `gather`'s output (0 outside `across_processes`)."""
    return 0 if _ACTIVE is None else _ACTIVE.rank * rows


def _global_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per-channel mean and biased variance of `x` (B, C, ...) over the global batch, and its count."""
    dims = [d for d in range(x.ndim) if d != 1]
    count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)
    local = torch.cat([x.sum(dims, dtype=torch.float64), (x * x).sum(dims, dtype=torch.float64), count])  # (2C+1,)
    total = _SumOverProcesses.apply(local) if _ACTIVE is not None else local
    channels, n = x.shape[1], float(total[-1].detach())
    mean = total[:channels] / n  # (C,)
    var = (total[channels : 2 * channels] / n - mean * mean).clamp_min(0.0)  # (C,)
    return mean, var, n


class _GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training-mode statistics are those of the global batch inside
    `across_processes` (plain BatchNorm everywhere else). Same parameters, buffers and state_dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _ACTIVE is None or not self.training:
            return super().forward(x)
        self._check_input_dim(x)
        mean, var, n = _global_moments(x)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                assert self.num_batches_tracked is not None
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
                unbiased = var * n / max(n - 1.0, 1.0)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        shape = [1, -1] + [1] * (x.ndim - 2)  # broadcast (C,) over (B, C, ...)
        scale = torch.rsqrt(var + self.eps).to(x.dtype)
        if self.weight is not None:
            scale = scale * self.weight
        y = (x - mean.to(x.dtype).view(shape)) * scale.view(shape)
        return y + self.bias.view(shape) if self.bias is not None else y


class GlobalBatchNorm1d(_GlobalBatchNorm, nn.BatchNorm1d):
    pass


class GlobalBatchNorm2d(_GlobalBatchNorm, nn.BatchNorm2d):
    pass


_GLOBAL_OF: dict[type[nn.Module], type[nn.Module]] = {
    nn.BatchNorm1d: GlobalBatchNorm1d,
    nn.BatchNorm2d: GlobalBatchNorm2d,
}


@contextmanager
def across_processes(group: Group | None, modules: Iterable[nn.Module]) -> Iterator[None]:
    """Within the block, `gather` concatenates over `group` and every BatchNorm1d/2d inside
    `modules` uses global-batch statistics (the instances change class in place, so every
    reference, optimizer and state_dict stays valid; restored on exit). No-op for None."""
    global _ACTIVE
    if group is None:
        yield
        return
    swapped = [m for module in modules for m in module.modules() if type(m) in _GLOBAL_OF]
    for m in swapped:
        m.__class__ = _GLOBAL_OF[type(m)]
    _ACTIVE = group
    try:
        yield
    finally:
        _ACTIVE = None
        plain = {v: k for k, v in _GLOBAL_OF.items()}
        for m in swapped:
            m.__class__ = plain[type(m)]


__all__ = ["GlobalBatchNorm1d", "GlobalBatchNorm2d", "Group", "across_processes", "batch_offset", "gather"]
