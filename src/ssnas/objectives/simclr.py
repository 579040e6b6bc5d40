"""SimCLR's NT-Xent objective (Chen et al., "A Simple Framework for Contrastive
Learning of Visual Representations", ICML 2020).

Two augmented views per image, a 2-layer MLP projector, and for each of the 2B
embeddings a softmax over the other 2B-1 with the other view of the same image
as the positive. Temperature 0.5 is the paper's CIFAR setting.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssnas.objectives import OBJECTIVES
from ssnas.objectives.base import Batch, Objective
from ssnas.objectives.heads import ProjectionHead


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross-entropy over in-batch negatives.

    Args:
        z1, z2: (B, D) embeddings of the two views; row i of each comes from image i.
        temperature: softmax temperature applied to cosine similarities.

    Returns:
        Scalar mean over the 2B anchors.
    """
    batch_size = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2B, D)
    logits = z @ z.T / temperature  # (2B, 2B)
    self_mask = torch.eye(2 * batch_size, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    anchors = torch.arange(batch_size, device=z.device)
    targets = torch.cat([anchors + batch_size, anchors])  # (2B,) index of the other view
    return F.cross_entropy(logits, targets)


@OBJECTIVES.register("simclr")
class SimCLR(Objective):
    """NT-Xent on projected features of views[0] and views[1]."""

    view_recipe = "simclr"

    def __init__(self, temperature: float = 0.5, hidden_dim: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        self.temperature = temperature
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
        self.projector: nn.Module | None = None

    def setup(self, model: nn.Module, feature_dim: int, num_images: int) -> None:
        self.projector = ProjectionHead(feature_dim, self.hidden_dim, self.out_dim)

    def forward(self, model: nn.Module, batch: Batch, **model_kwargs: Any) -> torch.Tensor:
        assert self.projector is not None, "call setup() first"
        z1 = self.projector(model.forward_features(batch.views[0], **model_kwargs))  # (B, out_dim)
        z2 = self.projector(model.forward_features(batch.views[1], **model_kwargs))  # (B, out_dim)
        return nt_xent_loss(z1, z2, self.temperature)
