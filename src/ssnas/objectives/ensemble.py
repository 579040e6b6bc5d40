"""Ensemble bootstrapping (BossNAS, Li et al., ICCV 2021, §3.2; siamese_supernets_*.py of changlin31/BossNAS).

BYOL's online/target pair, with p sampled paths of one weight-sharing network per
step. The target of every path is the *ensemble* of all p paths' target
embeddings of the other view:

    T1 = mean_j normalize(t_j(v1_j)),   T2 = mean_j normalize(t_j(v2_j))
    loss = sum_i  head(o_i(v1_i), T2) + head(o_i(v2_i), T1)

with `head(z, T) = -2 cos(pred(z), T)` (BYOL's `2 - 2cos` up to a constant), `o_i` the
online network + neck on path i and `t_j` the EMA target network + EMA neck on path j.
The per-path losses are summed, as BossNAS backpropagates each `loss_i` separately.

Paths arrive as `paths=[kwargs_1, ..., kwargs_p]`, each the keyword arguments of
`model.forward_features` that select one path (e.g. `{"path": ("16", "32")}` for a
`BlockStage`, `{"arch": a}` for an NB201 supernet). Views: either one pair shared by all
paths (2 views, BossNAS's NATS setting) or one pair per path (2p views, `[v1_1, v2_1,
v1_2, v2_2, ...]`, its ImageNet setting).

The neck, predictor, EMA target and cosine momentum schedule (0.99 -> 1 over one
`train(...)` call, so it restarts at every block stage) are BYOL's (`ssnas.objectives.byol`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssnas.objectives import OBJECTIVES
from ssnas.objectives.base import Batch, forward_features_of
from ssnas.objectives.byol import BYOL, byol_loss


def cosine_head(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BossNAS's loss head `mean_b -2 cos(prediction_b, target_b)`; (B, D) each, no grad to target."""
    return byol_loss(prediction, target) - 2.0


def ensemble_target(embeddings: Sequence[torch.Tensor]) -> torch.Tensor:
    """`mean_j normalize(e_j)` over p tensors (B, D) -> (B, D); the head normalises it again."""
    return torch.stack([F.normalize(e.float(), dim=1) for e in embeddings]).mean(dim=0)  # (p, B, D) -> (B, D)


def view_pairs(views: Sequence[torch.Tensor], num_paths: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One (v1, v2) pair per path: 2 views shared by all paths, or 2p views in pairs
    (a single path takes the first two views, like the other two-view objectives)."""
    if len(views) == 2 or (num_paths == 1 and len(views) > 2):
        return [(views[0], views[1])] * num_paths
    if len(views) == 2 * num_paths:
        return [(views[2 * i], views[2 * i + 1]) for i in range(num_paths)]
    raise ValueError(f"{len(views)} views for {num_paths} paths; need 2 (shared pair) or {2 * num_paths}")


@OBJECTIVES.register("ensemble-byol")
class EnsembleBootstrap(BYOL):
    """BossNAS's ensemble bootstrapping loss over the paths given in `forward(..., paths=...)`.

    Args (as BYOL): `hidden_dim`/`out_dim` of the neck (BossNAS: 4096 / 256),
    `pred_hidden_dim` of the predictor (4096), `base_momentum` of the EMA target (0.99).
    """

    def forward(  # type: ignore[override]
        self, model: nn.Module, batch: Batch, paths: Sequence[Mapping[str, Any]] = ({},)
    ) -> torch.Tensor:
        """`paths`: one dict of `forward_features` kwargs per sampled path; the default, a single
        plain path, is BYOL with an ensemble of one (so it also trains standalone networks)."""
        if not paths:
            raise ValueError("ensemble bootstrapping needs at least one path")
        pairs = view_pairs(batch.views, len(paths))
        with torch.no_grad():
            t1 = ensemble_target([self.target_projection(v1, **kw) for (v1, _), kw in zip(pairs, paths)])
            t2 = ensemble_target([self.target_projection(v2, **kw) for (_, v2), kw in zip(pairs, paths)])
        loss = torch.zeros((), device=batch.views[0].device)
        for (v1, v2), kw in zip(pairs, paths):
            loss = loss + cosine_head(self.online_prediction(model, v1, **kw), t2)
            loss = loss + cosine_head(self.online_prediction(model, v2, **kw), t1)
        return loss

    def online_prediction(self, model: nn.Module, x: torch.Tensor, **path: Any) -> torch.Tensor:
        """`pred(neck(model(x)))` on one path: (B,3,H,W) -> (B, out_dim)."""
        assert self.projector is not None and self.predictor is not None, "call setup() first"
        return self.predictor(self.projector(forward_features_of(model, x, **path)))

    def target_projection(self, x: torch.Tensor, **path: Any) -> torch.Tensor:
        """`neck_ema(model_ema(x))` on one path: (B,3,H,W) -> (B, out_dim), raw (not normalised)."""
        assert self.target_model is not None and self.target_projector is not None, "call setup() first"
        return self.target_projector(forward_features_of(self.target_model, x, **path))


__all__ = ["EnsembleBootstrap", "cosine_head", "ensemble_target", "view_pairs"]
