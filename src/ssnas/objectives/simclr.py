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
from ssnas.objectives.base import Batch, Objective, forward_features_of
from ssnas.objectives.heads import ProjectionHead
from ssnas.objectives.global_batch import batch_offset, gather


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross-entropy over in-batch negatives.

    Args:
        z1, z2: (B, D) embeddings of the two views; row i of each comes from image i.
        temperature: softmax temperature applied to cosine similarities.

    Returns:
        Scalar mean over the 2B anchors. Under torchrun (inside `across_processes`) z1, z2 are this
        process's b rows: its 2b anchors are contrasted with the 2Wb embeddings of all processes
        (SimCLR's gathered negatives), so the mean of the processes' losses is the global loss.
    """
    rows = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2b, D) this process's anchors
    everyone = torch.cat([F.normalize(gather(z1).float(), dim=1), F.normalize(gather(z2).float(), dim=1)])  # (2B, D)
    batch_size, offset = everyone.shape[0] // 2, batch_offset(rows)
    logits = z @ everyone.T / temperature  # (2b, 2B)
    own = torch.arange(rows, device=z.device) + offset  # global row of each local image
    anchors_at = torch.cat([own, own + batch_size])  # (2b,) each anchor's own column
    logits[torch.arange(2 * rows, device=z.device), anchors_at] = float("-inf")
    targets = torch.cat([own + batch_size, own])  # (2b,) the column of the other view
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
        z1 = self.projector(forward_features_of(model, batch.views[0], **model_kwargs))  # (B, out_dim)
        z2 = self.projector(forward_features_of(model, batch.views[1], **model_kwargs))  # (B, out_dim)
        return nt_xent_loss(z1, z2, self.temperature)
