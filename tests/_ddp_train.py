"""Train a tiny BN-free network with the supervised objective and save its weights.

Run directly (one process) or under torchrun (several): with the same global batch both
must end with the same weights (tests/test_distributed.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from ssnas.data.views import VIEWS
from ssnas.objectives import create_objective
from ssnas.training.distributed import end_process, is_main_process
from ssnas.training.loop import TrainConfig, train
from ssnas.training.seeding import seeded


class Tiny(nn.Module):
    feature_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3))  # (B, 8)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 4, (64,), generator=generator)
    with seeded(0):
        model = Tiny()
    config = TrainConfig(epochs=2, batch_size=16, optimizer="sgd", lr=0.5, weight_decay=1e-3, device="cpu",
                         precision="fp32", channels_last=False, progress=False, seed=0)  # fmt: skip
    objective = create_objective("supervised", num_classes=4)
    result = train(model, objective, images, VIEWS.create("identity"), config, labels=labels, out_dir=out, resume=False)
    if is_main_process():
        torch.save({"model": model.state_dict(), "objective": objective.state_dict(), "loss": result.final_loss,
                    "steps": result.steps}, out / "weights.pt")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    end_process()
