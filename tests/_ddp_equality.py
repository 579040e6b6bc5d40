"""One step of an objective on a fixed global batch, in one process or split over torchrun's.

    python tests/_ddp_equality.py OUT            # one process, the whole batch
    torchrun --nproc_per_node 2 tests/_ddp_equality.py OUT

For each objective (simclr, byol, ensemble-byol with two paths) and network (BN-free, with
BatchNorm) it records the loss (mean over processes), the averaged gradients and the BatchNorm
running statistics after one forward/backward, then trains 3 steps with `train` on random
images and records the weights. Process 0 saves everything to OUT/result.pt
(tests/test_distributed_equality.py compares the two files)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssnas.data.views import VIEWS
from ssnas.objectives import Batch, create_objective
from ssnas.objectives.global_batch import across_processes
from ssnas.training.distributed import end_process, process_group
from ssnas.training.loop import TrainConfig, train
from ssnas.training.seeding import seeded

OBJECTIVES = {
    "simclr": dict(hidden_dim=16, out_dim=8),
    "byol": dict(hidden_dim=16, out_dim=8, pred_hidden_dim=16),
    "ensemble-byol": dict(hidden_dim=16, out_dim=8, pred_hidden_dim=16),
}
BATCH = 16


class TwoPath(nn.Module):
    """conv (one of two, chosen by `path`) [-> BatchNorm] -> ReLU -> mean: (B,3,H,W) -> (B, 8)."""

    feature_dim = 8

    def __init__(self, batchnorm: bool) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 3, padding=1)])
        self.norm = nn.BatchNorm2d(8) if batchnorm else nn.Identity()

    def forward_features(self, x: torch.Tensor, path: int = 0) -> torch.Tensor:
        return torch.relu(self.norm(self.convs[path](x))).mean(dim=(2, 3))  # (B, 8)


def one_step(name: str, batchnorm: bool) -> dict[str, Any]:
    group = process_group()
    with seeded(0):
        model = TwoPath(batchnorm)
        objective = create_objective(name, **OBJECTIVES[name])
        objective.setup(model, model.feature_dim, BATCH)
    generator = torch.Generator().manual_seed(1)
    views = [torch.randn(BATCH, 3, 8, 8, generator=generator) for _ in range(2)]  # (B,3,8,8) each
    index = torch.arange(BATCH)
    if group is not None:
        views, index = [group.shard(v) for v in views], group.shard(index)
    kwargs: dict[str, Any] = {"paths": [{"path": 0}, {"path": 1}]} if name == "ensemble-byol" else {}
    model.train(), objective.train()
    with across_processes(group, [model, objective]):
        loss = objective(model, Batch(views, index), **kwargs)
    loss.backward()
    parameters = [p for m in (model, objective) for p in m.parameters() if p.requires_grad]
    value = float(loss.detach())
    if group is not None:
        group.average_gradients(parameters)
        value = group.mean(value)
    named = {**{f"model.{k}": p for k, p in model.named_parameters()},
             **{f"objective.{k}": p for k, p in objective.named_parameters()}}  # fmt: skip
    grads = {k: p.grad.clone() for k, p in named.items() if p.grad is not None}
    buffers = {k: b.clone() for k, b in objective.named_buffers() if "running" in k}
    buffers.update({f"model.{k}": b.clone() for k, b in model.named_buffers() if "running" in k})
    return {"loss": value, "grads": grads, "buffers": buffers}


def trained(name: str, batchnorm: bool) -> dict[str, torch.Tensor]:
    """Weights after 3 steps of `train` at global batch 16 on random images (views sharded)."""
    images = torch.randint(0, 256, (48, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    with seeded(0):
        model = TwoPath(batchnorm)
    objective = create_objective(name, **OBJECTIVES[name])
    config = TrainConfig(epochs=1, batch_size=BATCH, lr=0.1, device="cpu", precision="fp32", channels_last=False,
                         progress=False, seed=0)  # fmt: skip
    train(model, objective, images, VIEWS.create("simclr", size=8), config)
    return {**model.state_dict(), **{f"objective.{k}": v for k, v in objective.state_dict().items()}}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    result = {(name, bn): one_step(name, bn) for name in OBJECTIVES for bn in (False, True)}
    result["trained"] = trained("simclr", True)  # type: ignore[index]
    group = process_group()
    if group is None or group.is_main:
        out.mkdir(parents=True, exist_ok=True)
        torch.save(result, out / "result.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    end_process()
