"""Supervised retraining recipes: the papers' final-training settings as frozen data.

A `Recipe` fixes everything the final (labelled) training of a found architecture
needs besides the architecture and the data: optimizer and schedule (turned into a
`TrainConfig` for the one training loop), the network size (`space_args`), and the
DARTS-style extras, which plug into `ssnas.training.loop.train` without touching it:

* `ClassifierObjective`: cross-entropy on the network's *own* classifier (so the
  trained network is self-contained and exportable), plus `aux_weight` times the
  cross-entropy of the auxiliary head (DARTS `--auxiliary_weight 0.4`), and the
  drop-path schedule: `model.drop_path_prob = drop_path * epoch / epochs` at the start
  of each epoch (DARTS `train.py`). The current value is a buffer of the objective,
  so it is checkpointed with it and a resumed run continues the same schedule.
* `Cutout`: a ViewMaker wrapper zeroing one `length` x `length` square per image after
  normalisation (DeVries & Taylor 2017, as in DARTS `utils.Cutout`).

    recipe = RECIPES["darts-cifar"]
    result = train(model, recipe.objective(10), images, recipe.views(), recipe.train_config(), labels=labels)

Differences from the reference code, kept on purpose: weight decay is not applied
to BN parameters and biases (the loop's rule for every run); the cosine schedule is
per step, not per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssnas.data.views import VIEWS, ViewMaker
from ssnas.errors import UserError
from ssnas.objectives.base import Batch, Objective
from ssnas.training.loop import TrainConfig


@dataclass(frozen=True)
class Recipe:
    """One final-training setting. All plain values, so it round-trips through YAML.

    `space_args` are the keyword arguments of `create_space` for the evaluation network
    (e.g. DARTS's 20 cells at C = 36), applied unless the caller gives its own.
    """

    name: str
    reference: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    momentum: float = 0.9
    nesterov: bool = False
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    grad_clip: float | None = None
    label_smoothing: float = 0.0
    views: str = "crop-flip"  # a recipe in ssnas.data.views.VIEWS
    resolution: int = 32
    cutout: int = 0  # side of the Cutout square in pixels; 0 = none
    drop_path: float = 0.0  # final drop-path probability (linear in the epoch from 0)
    aux_weight: float = 0.0  # weight of the auxiliary head's loss; > 0 builds the head
    space_args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise UserError(f"recipe {self.name!r}: need epochs >= 1, batch_size >= 2 and lr > 0")
        if not 0.0 <= self.drop_path < 1.0 or self.aux_weight < 0 or self.cutout < 0:
            raise UserError(f"recipe {self.name!r}: need 0 <= drop_path < 1, aux_weight >= 0 and cutout >= 0")
        object.__setattr__(self, "space_args", dict(self.space_args))

    def with_overrides(self, **overrides: Any) -> Recipe:
        """A copy with the non-None `overrides` (e.g. `epochs=`, `batch_size=`, `lr=`) applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def train_config(self, **loop_settings: Any) -> TrainConfig:
        """The loop's `TrainConfig` (SGD, warm-up + cosine); `loop_settings` adds device, seed, ..."""
        return TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, optimizer="sgd", lr=self.lr, momentum=self.momentum,
            weight_decay=self.weight_decay, nesterov=self.nesterov, warmup_epochs=self.warmup_epochs,
            min_lr=self.min_lr, grad_clip=self.grad_clip, **loop_settings,
        )  # fmt: skip

    def objective(self, num_classes: int) -> ClassifierObjective:
        return ClassifierObjective(num_classes, self.label_smoothing, self.aux_weight, self.drop_path, self.epochs)

    def views_maker(self) -> ViewMaker:
        """Training views: the recipe's augmentation (one view), then Cutout when set."""
        views: ViewMaker = VIEWS.create(self.views, size=self.resolution, num_views=1)
        return Cutout(views, self.cutout) if self.cutout else views

    def build_args(self) -> dict[str, Any]:
        """Extra `space.build` arguments (only DARTS takes them: auxiliary head, drop-path)."""
        if self.aux_weight > 0 or self.drop_path > 0:
            return {"auxiliary": self.aux_weight > 0, "drop_path_prob": 0.0}
        return {}

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["space_args"] = dict(self.space_args)
        return values


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            name="nb201",
            reference="NAS-Bench-201 (Dong & Yang, ICLR 2020), the benchmark's 200-epoch training",
            epochs=200, batch_size=256, lr=0.1, weight_decay=5e-4, nesterov=True,
            space_args={"C": 16, "N": 5},
        ),
        Recipe(
            name="cifar",
            reference="the NAS-Bench-201 CIFAR schedule on the space's own default network (HyTra, NATS, MBConv)",
            epochs=200, batch_size=256, lr=0.1, weight_decay=5e-4, nesterov=True,
        ),
        Recipe(
            name="darts-cifar",
            reference="DARTS (Liu et al., ICLR 2019) CIFAR-10 evaluation: 20 cells, C=36, 600 epochs",
            epochs=600, batch_size=96, lr=0.025, weight_decay=3e-4, grad_clip=5.0,
            cutout=16, drop_path=0.2, aux_weight=0.4, space_args={"C": 36, "layers": 20},
        ),
        Recipe(
            name="setn-cifar",
            reference="SETN (Dong & Yang, ICCV 2019) NAS-CIFAR final training (AutoDL-Projects): 295 + 5 warm-up",
            epochs=300, batch_size=96, lr=0.025, weight_decay=5e-4, nesterov=True, warmup_epochs=5,
            cutout=16, drop_path=0.2, aux_weight=0.4, space_args={"C": 36, "layers": 20},
        ),
        Recipe(
            name="ssl-finetune",
            reference="SimCLR (Chen et al., ICML 2020) appendix B.5, fine-tuning with few labels: Nesterov SGD, "
                      "lr 0.05 x batch / 256, no weight decay, no warm-up, crop and flip, 60 epochs (their 1 % "
                      "setting; 30 for 10 %); `ssnas finetune`'s, after a linear probe fits the fresh head (LP-FT). "
                      "Ours: the gradient norm clipped at 1, since on a briefly pretrained network the fitted "
                      "head's first steps (loss near 10) wrecked it (`docs/benchmarks.md#fine-tuning`)",
            epochs=60, batch_size=128, lr=0.05 * 128 / 256, weight_decay=0.0, nesterov=True, grad_clip=1.0,
        ),
    )
}  # fmt: skip

# The recipe `ssnas train` uses when none is named. BossNAS gives only an ImageNet
# (DeiT) recipe; HyTra and the other spaces get the plain NB201 CIFAR schedule ("cifar").
DEFAULT_RECIPES = {"nb201": "nb201", "darts": "darts-cifar"}


def get_recipe(name: str | None, space: str) -> Recipe:
    """The named recipe, or the space's default (UserError for an unknown name)."""
    name = name or DEFAULT_RECIPES.get(space, "cifar")
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}; choose from: {', '.join(sorted(RECIPES))}")
    recipe = RECIPES[name]
    if space != "darts" and (recipe.aux_weight > 0 or recipe.drop_path > 0):
        raise UserError(f"recipe {name!r} needs an auxiliary head and drop-path, which only the darts space builds")
    return recipe


class ClassifierObjective(Objective):
    """`CE(logits) + aux_weight * CE(aux_logits)` with the network's own classifier(s).

    The network is built with `num_classes`; in training mode a DARTS network with an
    auxiliary head returns `(logits, aux_logits)`, others return logits (B, classes).
    Only views[0] is used.

    Drop-path: the network's `drop_path_prob` attribute is set before each forward to
    `drop_path * epoch / epochs` (DARTS), where `epoch` is the epoch of the next step.
    """

    view_recipe = "crop-flip"
    passes_per_image = 1
    needs_labels = True
    drop_prob: torch.Tensor  # () buffer

    def __init__(
        self, num_classes: int, label_smoothing: float = 0.0, aux_weight: float = 0.0, drop_path: float = 0.0,
        epochs: int = 1,
    ) -> None:  # fmt: skip
        super().__init__()
        self.num_classes, self.label_smoothing = num_classes, label_smoothing
        self.aux_weight, self.drop_path, self.epochs = aux_weight, drop_path, epochs
        self.register_buffer("drop_prob", torch.zeros(()))  # current value, checkpointed

    def setup(self, model: nn.Module, feature_dim: int, num_images: int) -> None:
        if self.drop_path > 0 and not hasattr(model, "drop_path_prob"):
            raise UserError(f"{type(model).__name__} has no drop-path; use a recipe without drop_path")

    def forward(self, model: nn.Module, batch: Batch, **model_kwargs: Any) -> torch.Tensor:
        if batch.labels is None:
            raise UserError("supervised retraining needs labels")
        if self.drop_path > 0:
            setattr(model, "drop_path_prob", float(self.drop_prob))  # a plain float attribute of the network
        output = model(batch.views[0], **model_kwargs)
        logits, aux_logits = output if isinstance(output, tuple) else (output, None)  # (B, classes) each
        if logits.shape[-1] != self.num_classes:
            raise UserError(f"the network gives {logits.shape[-1]} logits, expected {self.num_classes} classes")
        loss = F.cross_entropy(logits.float(), batch.labels, label_smoothing=self.label_smoothing)
        if aux_logits is not None and self.aux_weight > 0:
            aux = F.cross_entropy(aux_logits.float(), batch.labels, label_smoothing=self.label_smoothing)
            loss = loss + self.aux_weight * aux
        return loss

    def on_step_end(self, model: nn.Module, progress: float) -> None:
        # progress = steps done / total steps, and total = epochs * steps per epoch, so
        # floor(progress * epochs) is the epoch of the next step.
        epoch = math.floor(progress * self.epochs + 1e-9)
        self.drop_prob.fill_(self.drop_path * min(epoch, self.epochs) / self.epochs)


class Cutout:
    """ViewMaker wrapper: in every view, zero one `length` x `length` square per image.

    The square's centre is uniform over the image (it may stick out of the border), as
    in DARTS `utils.Cutout`, applied after normalisation. Draws from the loop's generator.
    """

    def __init__(self, views: ViewMaker, length: int) -> None:
        if length < 1:
            raise UserError(f"cutout length must be >= 1, got {length}")
        self.views, self.length = views, length

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        out = []
        for view in self.views(images, generator):
            batch, _, height, width = view.shape
            centre = torch.rand(batch, 2, generator=generator, device=view.device)  # (B, 2)
            cy = torch.floor(centre[:, 0] * height).view(-1, 1, 1)  # (B,) -> (B,1,1)
            cx = torch.floor(centre[:, 1] * width).view(-1, 1, 1)
            rows = torch.arange(height, device=view.device).view(1, -1, 1)  # (1,H,1)
            cols = torch.arange(width, device=view.device).view(1, 1, -1)  # (1,1,W)
            half = self.length // 2
            inside = (rows >= cy - half) & (rows < cy + half) & (cols >= cx - half) & (cols < cx + half)  # (B,H,W)
            out.append(view.masked_fill(inside.unsqueeze(1), 0.0))  # (B,H,W) -> (B,1,H,W)
        return out

    def __repr__(self) -> str:
        return f"Cutout({self.views!r}, length={self.length})"
