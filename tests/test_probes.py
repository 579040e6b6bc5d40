"""Probes: weighted kNN by hand, linear probe on separable data, feature extraction semantics."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_ssl import TinyEncoder, identity_view, random_images

from ssnas.training.probes import extract_features, knn_accuracy, linear_probe_accuracy


def blobs(n: int, seed: int, dim: int = 8, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs around orthogonal directions: separable by angle and linearly."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = 5.0 * torch.eye(dim)[:classes]
    return centres[labels] + torch.randn(n, dim, generator=g), labels


def test_knn_separates_hand_made_clusters() -> None:
    train_x, train_y = blobs(60, seed=0)
    test_x, test_y = blobs(30, seed=1)
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=200) == 1.0
    assert knn_accuracy(train_x, (train_y + 1) % 3, test_x, test_y, k=5) == 0.0


def test_knn_votes_are_temperature_weighted() -> None:
    # Test point along x. Class 0: two neighbours at 60 degrees; class 1: one at 10 degrees.
    def unit(degrees: float) -> list[float]:
        return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]

    train_x = torch.tensor([unit(60), unit(-60), unit(10), unit(180)])
    train_y = torch.tensor([0, 0, 1, 1])
    test_x, test_y = torch.tensor([[2.0, 0.0]]), torch.tensor([1])
    # 2 exp(0.5 / T) vs exp(cos 10 / T): class 1 wins iff T < (0.985 - 0.5) / ln 2 = 0.70
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=3, temperature=0.1) == 1.0
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=3, temperature=5.0) == 0.0
    # k = 1 ignores the two distant class-0 neighbours whatever the temperature
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=1, temperature=5.0) == 1.0


def test_linear_probe_learns_separable_data_and_not_noise() -> None:
    train_x, train_y = blobs(90, seed=0)
    test_x, test_y = blobs(60, seed=1)
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y) == 1.0
    shuffled = train_y[torch.randperm(90, generator=torch.Generator().manual_seed(0))]
    assert linear_probe_accuracy(train_x, shuffled, test_x, test_y) < 0.7
    again = linear_probe_accuracy(train_x, shuffled, test_x, test_y)
    assert again == linear_probe_accuracy(train_x, shuffled, test_x, test_y)  # deterministic


def test_extract_features_is_eval_mode_batched_and_restores_the_mode() -> None:
    torch.manual_seed(0)
    model = TinyEncoder()
    images = random_images(10)
    running_mean = model.bn.running_mean.clone()
    features = extract_features(model, images, identity_view, batch_size=3)
    assert features.shape == (10, model.feature_dim) and not features.requires_grad
    assert model.training  # restored
    assert torch.equal(model.bn.running_mean, running_mean)  # eval mode: BN statistics untouched
    torch.testing.assert_close(features, extract_features(model, images, identity_view, batch_size=16))
    model.eval()
    torch.testing.assert_close(features, model.forward_features(identity_view(images)[0]).detach())
    assert not torch.equal(features, extract_features(model, images, identity_view, batch_size=4, path=0))


@pytest.mark.parametrize("k", [1, 10, 1000])
def test_knn_accepts_any_k(k: int) -> None:
    train_x, train_y = blobs(20, seed=0)
    assert 0.0 <= knn_accuracy(train_x, train_y, train_x, train_y, k=k) <= 1.0
