"""Probes on frozen features: weighted kNN and a linear (logistic-regression) classifier.

The kNN monitor follows InstDisc (Wu et al., CVPR 2018), as used by most SSL code:
cosine similarity to the training features, the top-k neighbours vote for their
class with weight `exp(similarity / T)` (k = 200, T = 0.1). Accuracies are
fractions in [0, 1].
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssnas.objectives.base import forward_features_of
from ssnas.training.loop import ViewMaker


@torch.no_grad()
def extract_features(
    model: nn.Module,
    images: torch.Tensor,
    views: ViewMaker,
    batch_size: int = 256,
    **model_kwargs: Any,
) -> torch.Tensor:
    """`model.forward_features` in eval mode over uint8 `images` (N,3,H,W) -> (N, D) float32 on the CPU.

    `views` is the deterministic evaluation preprocessing (its first view is used;
    it receives a fixed-seed generator). The model's train/eval mode is restored.
    """
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(0)
    was_training = model.training
    model.eval()
    try:
        chunks = []
        for start in range(0, images.shape[0], batch_size):
            x = views(images[start : start + batch_size].to(device), generator)[0]
            chunks.append(forward_features_of(model, x, **model_kwargs).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks)  # (N, D)


@torch.no_grad()
def knn_accuracy(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> float:
    """Temperature-weighted kNN accuracy with cosine similarity.

    Args:
        train_feats: (N, D); train_labels: (N,) int64.
        test_feats: (M, D); test_labels: (M,) int64.
        k: neighbours (capped at N); temperature: vote weight `exp(s / T)`.
    """
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    device = train_feats.device
    train = F.normalize(train_feats.float(), dim=1)  # (N, D)
    train_labels, test_labels = train_labels.to(device), test_labels.to(device)
    k = min(k, train.shape[0])
    correct = 0
    for start in range(0, test_feats.shape[0], chunk_size):
        test = F.normalize(test_feats[start : start + chunk_size].to(device).float(), dim=1)  # (m, D)
        similarity, neighbour = (test @ train.T).topk(k, dim=1)  # (m, k)
        votes = torch.zeros(test.shape[0], num_classes, device=device)
        votes.scatter_add_(1, train_labels[neighbour], (similarity / temperature).exp())  # (m, C)
        correct += int((votes.argmax(1) == test_labels[start : start + chunk_size]).sum())
    return correct / test_feats.shape[0]


def fit_linear_head(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    num_classes: int,
    max_iter: int = 200,
    weight_decay: float = 1e-4,
) -> nn.Linear:
    """Multinomial logistic regression on standardised features, full-batch L-BFGS, returned as one
    `nn.Linear(D, num_classes)` on the raw features (the standardisation folded into its weights).

    Zero initialisation and full batches make it deterministic (no seed needed). Features are
    standardised with the training mean/std; the L2 penalty `weight_decay * ||W||^2 / 2` applies to
    the weights (of the standardised features), not the bias.
    """
    mean, std = train_feats.float().mean(0), train_feats.float().std(0).clamp_min(1e-6)  # (D,), (D,)
    x_train = (train_feats.float() - mean) / std  # (N, D)
    classifier = nn.Linear(x_train.shape[1], num_classes)
    nn.init.zeros_(classifier.weight)
    nn.init.zeros_(classifier.bias)
    optimizer = torch.optim.LBFGS(classifier.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(classifier(x_train), train_labels)
        loss = loss + 0.5 * weight_decay * classifier.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():  # W (x - m) / s + b = (W / s) x + (b - W (m / s))
        weight = classifier.weight / std  # (C, D)
        classifier.bias.sub_(classifier.weight @ (mean / std))
        classifier.weight.copy_(weight)
    return classifier


def linear_probe_accuracy(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    max_iter: int = 200,
    weight_decay: float = 1e-4,
) -> float:
    """Top-1 on the test features of `fit_linear_head` fitted on the training features."""
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    classifier = fit_linear_head(train_feats, train_labels, num_classes, max_iter, weight_decay)
    with torch.no_grad():
        predictions = classifier(test_feats.float()).argmax(1)
    return float((predictions == test_labels).float().mean())
