"""Objectives: each loss against a hand computation, heads, EMA, the CSNAS memory bank."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tiny_ssl import FlipNoiseViews, TinyEncoder, random_images
from torch import nn

from ssnas.objectives import OBJECTIVES, Batch, Objective, create_objective
from ssnas.objectives.byol import byol_loss
from ssnas.objectives.csnas_nce import memory_nce_loss, sample_negatives
from ssnas.objectives.heads import PredictionHead, ProjectionHead, cosine_momentum, update_momentum
from ssnas.objectives.simclr import nt_xent_loss


def make_batch(num_views: int, batch_size: int = 6, labels: bool = False) -> Batch:
    images = random_images(batch_size)
    views = FlipNoiseViews(num_views)(images, torch.Generator().manual_seed(1))
    label = torch.arange(batch_size) % 3 if labels else None
    return Batch(views=views, index=torch.arange(batch_size), labels=label)


def built(name: str, num_images: int = 6, **kwargs: object) -> tuple[TinyEncoder, Objective]:
    """A seeded tiny encoder and the named objective, set up for it."""
    torch.manual_seed(0)
    model = TinyEncoder()
    objective = create_objective(name, **kwargs)
    objective.setup(model, model.feature_dim, num_images=num_images)
    return model, objective


# --- registry -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_every_objective_trains_the_backbone(name: str) -> None:
    model, objective = built(name, **({"num_classes": 3} if name == "supervised" else {}))
    batch = make_batch(3, labels=objective.needs_labels)
    loss = objective(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.stem.parameters())
    objective.on_step_end(model, progress=0.5)


def test_unknown_objective_is_a_user_error() -> None:
    from ssnas.errors import UserError

    with pytest.raises(UserError, match="simclr"):
        create_objective("nope")


# --- heads and EMA ------------------------------------------------------------------------------


def test_projection_head_is_linear_bn_relu_linear() -> None:
    head = ProjectionHead(16, 32, 8)
    assert [type(m) for m in head] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert head(torch.randn(4, 16)).shape == (4, 8)
    assert PredictionHead(8, 32)(torch.randn(4, 8)).shape == (4, 8)
    assert isinstance(ProjectionHead(16, 32, 8, num_layers=3, last_bn=True)[-1], nn.BatchNorm1d)


def test_update_momentum_is_an_exact_ema_and_copies_buffers() -> None:
    torch.manual_seed(0)
    online, target = ProjectionHead(4, 6, 2), ProjectionHead(4, 6, 2)
    online[1].running_mean.fill_(3.0)
    before = [p.clone() for p in target.parameters()]
    update_momentum(online, target, 0.9)
    for p_t, p_o, p_b in zip(target.parameters(), online.parameters(), before, strict=True):
        torch.testing.assert_close(p_t, 0.9 * p_b + 0.1 * p_o, rtol=1e-6, atol=0)
    assert torch.equal(target[1].running_mean, online[1].running_mean)


def test_cosine_momentum_runs_from_base_to_one() -> None:
    assert cosine_momentum(0.99, 0.0) == pytest.approx(0.99)
    assert cosine_momentum(0.99, 0.5) == pytest.approx(0.995)
    assert cosine_momentum(0.99, 1.0) == pytest.approx(1.0)


# --- SimCLR -------------------------------------------------------------------------------------


def nt_xent_by_loops(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    z = [F.normalize(v, dim=0) for v in torch.cat([z1, z2]).detach()]
    n, b = len(z), len(z1)
    total = 0.0
    for a in range(n):
        positive = (a + b) % n
        denominator = sum(math.exp(float(z[a] @ z[k]) / t) for k in range(n) if k != a)
        total += -math.log(math.exp(float(z[a] @ z[positive]) / t) / denominator)
    return total / n


def test_nt_xent_matches_explicit_loops() -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    assert nt_xent_loss(z1, z2, 0.5).item() == pytest.approx(nt_xent_by_loops(z1, z2, 0.5), rel=1e-5)


def test_nt_xent_prefers_matched_positives() -> None:
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(16, 8, generator=g)
    z2 = z1 + 0.1 * torch.randn(16, 8, generator=g)
    shuffled = z2[torch.randperm(16, generator=g)]
    assert nt_xent_loss(z1, z2, 0.5) < nt_xent_loss(z1, shuffled, 0.5)


def test_simclr_objective_is_nt_xent_of_projected_views() -> None:
    torch.manual_seed(0)
    model, objective = built("simclr", temperature=0.2)
    batch = make_batch(2)
    z = [objective.projector(model.forward_features(v)) for v in batch.views]
    assert objective(model, batch).item() == pytest.approx(nt_xent_by_loops(z[0], z[1], 0.2), rel=1e-5)


# --- BYOL ---------------------------------------------------------------------------------------


def test_byol_loss_hand_values() -> None:
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0], [3.0, 0.0]])
    z = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0]])
    expected = ((2 - 0) + (2 - 2 / math.sqrt(2)) + (2 - 2)) / 3
    assert byol_loss(p, z).item() == pytest.approx(expected, rel=1e-6)


def test_byol_objective_symmetrised_loss_and_frozen_target() -> None:
    model, objective = built("byol", hidden_dim=32, out_dim=8, pred_hidden_dim=32)
    batch = make_batch(2)
    v1, v2 = batch.views
    loss = objective(model, batch, path=1)

    def online(v: torch.Tensor) -> torch.Tensor:
        return objective.predictor(objective.projector(model.forward_features(v, path=1)))

    def target(v: torch.Tensor) -> torch.Tensor:
        return objective.target_projector(objective.target_model.forward_features(v, path=1))

    expected = byol_loss(online(v1), target(v2)) + byol_loss(online(v2), target(v1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is None for p in objective.target_model.parameters())
    # the optimizer must never see the target
    assert not any(p.requires_grad for p in objective.target_projector.parameters())


def test_byol_on_step_end_moves_target_by_the_scheduled_momentum() -> None:
    model, objective = built("byol", hidden_dim=32, out_dim=8, pred_hidden_dim=32, base_momentum=0.9)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    old = objective.target_model.stem[0].weight.clone()
    objective.on_step_end(model, progress=0.5)  # m = 1 - 0.1 * (cos(pi/2) + 1) / 2 = 0.95
    expected = 0.95 * old + 0.05 * model.stem[0].weight
    torch.testing.assert_close(objective.target_model.stem[0].weight, expected, rtol=1e-6, atol=1e-7)


# --- CSNAS memory-bank NCE -----------------------------------------------------------------------


def nce_by_loops(f: torch.Tensor, bank: torch.Tensor, index: list[int], negatives: list[list[int]], t: float) -> float:
    def cos(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a @ b / (a.norm() * b.norm())).detach())

    total = 0.0
    for i, row in enumerate(negatives):
        pos = math.exp(cos(f[i], bank[index[i]]) / t)
        neg = sum(math.exp(cos(f[i], bank[j]) / t) for j in row)
        total += -math.log(pos / (pos + neg))
    return total / len(negatives)


def test_memory_nce_matches_explicit_loops_with_a_fixed_bank() -> None:
    g = torch.Generator().manual_seed(0)
    bank, f = torch.randn(5, 3, generator=g), torch.randn(2, 3, generator=g)
    index, negatives = [1, 3], [[0, 2, 4, 4], [0, 1, 2, 4]]
    loss = memory_nce_loss(f, bank[index], bank[torch.tensor(negatives)], 0.5)
    assert loss.item() == pytest.approx(nce_by_loops(f, bank, index, negatives, 0.5), rel=1e-5)


def test_negatives_exclude_the_positive_and_cover_the_rest() -> None:
    index = torch.tensor([0, 3, 6])
    negatives = sample_negatives(index, 7, 2000, torch.Generator().manual_seed(0))
    assert negatives.shape == (3, 2000)
    for row, i in zip(negatives, index, strict=True):
        assert set(row.tolist()) == set(range(7)) - {int(i)}


def test_csnas_objective_loss_and_bank_update_follow_the_spec() -> None:
    model, objective = built("csnas-nce", num_images=10, embed_dim=8, seed=3)
    assert objective.bank.shape == (10, 8)
    bank = torch.randn(10, 8)
    objective.bank.copy_(bank)
    objective.filled.fill_(True)
    batch = make_batch(3, batch_size=4)
    batch.index = torch.tensor([7, 2, 5, 0])

    loss = objective(model, batch)

    original, patch_a, patch_b = batch.views
    f_img = objective.image_features(model, original)
    f_patch = objective.patch_head(
        torch.cat([objective.image_head(model.forward_features(v)) for v in (patch_a, patch_b)], dim=1)
    )
    negatives = sample_negatives(batch.index, 10, 2 * (4 - 1), torch.Generator().manual_seed(3)).tolist()
    index = batch.index.tolist()
    expected = 0.5 * nce_by_loops(f_patch, bank, index, negatives, 0.07) + 0.5 * nce_by_loops(
        f_img, bank, index, negatives, 0.07
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)

    objective.on_step_end(model, progress=0.1)
    torch.testing.assert_close(objective.bank[batch.index], 0.5 * bank[batch.index] + 0.5 * f_img.detach())
    untouched = [i for i in range(10) if i not in index]
    assert torch.equal(objective.bank[untouched], bank[untouched])


def test_csnas_bank_is_filled_at_first_sight_and_checkpointed() -> None:
    model, objective = built("csnas-nce", embed_dim=8)
    batch = make_batch(3)
    objective(model, batch)
    objective.on_step_end(model, progress=0.0)
    f_img = objective.image_features(model, batch.views[0]).detach()
    torch.testing.assert_close(objective.bank, f_img)  # 0.5 f + 0.5 f
    state = objective.state_dict()
    assert {"bank", "filled", "_extra_state"} <= set(state)

    fresh = create_objective("csnas-nce", embed_dim=8)
    fresh.setup(model, model.feature_dim, num_images=6)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.bank, objective.bank)
    assert torch.equal(
        torch.randint(0, 100, (5,), generator=fresh.generator),
        torch.randint(0, 100, (5,), generator=objective.generator),
    )


def test_csnas_initialize_bank_uses_the_untrained_network() -> None:
    model, objective = built("csnas-nce", embed_dim=8)
    batch = make_batch(3)
    objective.initialize_bank(model, [batch])
    model.eval()
    torch.testing.assert_close(objective.bank, objective.image_features(model, batch.views[0]).detach())
    assert bool(objective.filled.all())


# --- supervised ---------------------------------------------------------------------------------


def test_supervised_is_cross_entropy_of_the_linear_classifier() -> None:
    model, objective = built("supervised", num_classes=3)
    batch = make_batch(1, labels=True)
    logits = objective.classifier(model.forward_features(batch.views[0]))
    expected = -sum(
        float(torch.log_softmax(row, 0)[y].detach()) for row, y in zip(logits, batch.labels, strict=True)
    ) / len(logits)
    assert objective(model, batch).item() == pytest.approx(expected, rel=1e-5)
    batch.labels = None
    with pytest.raises(ValueError, match="labels"):
        objective(model, batch)
