"""Label-free statistics of a trained network's representation.

* alignment and uniformity: Wang & Isola, "Understanding Contrastive Representation Learning
  through Alignment and Uniformity on the Hypersphere", ICML 2020 (alpha = 2, t = 2), on
  L2-normalised features of two augmented views of the same images;
* RankMe: Garrido, Balestriero, Najman, LeCun, "RankMe: Assessing the Downstream Performance
  of Pretrained Self-Supervised Representations by Their Rank", ICML 2023: the exponential of
  the entropy of the normalised singular values of the (M, D) feature matrix;
* neighbour agreement: the fraction of images whose nearest neighbour (cosine) among the
  second views' features is their own second view.

All take float features (M, D) (M images, D feature dimensions) and return Python floats.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def alignment(first: torch.Tensor, second: torch.Tensor) -> float:
    """E ||f(x) - f(x')||^2 over the pairs (rows) of L2-normalised (M, D) features; lower is better."""
    a, b = F.normalize(first.double(), dim=1), F.normalize(second.double(), dim=1)
    return float((a - b).pow(2).sum(dim=1).mean())


def uniformity(features: torch.Tensor, t: float = 2.0) -> float:
    """log E exp(-t ||f(x) - f(y)||^2) over distinct pairs of L2-normalised (M, D) features; lower is better."""
    z = F.normalize(features.double(), dim=1)
    distances = torch.pdist(z).pow(2)  # (M(M-1)/2,)
    return float(torch.logsumexp(-t * distances, dim=0) - torch.log(torch.tensor(float(distances.numel()))))


def rankme(features: torch.Tensor, eps: float = 1e-7) -> float:
    """exp(entropy of p), p = singular values of the (M, D) features / their sum (+ eps); in [1, min(M, D)]."""
    singular = torch.linalg.svdvals(features.double())
    p = singular / singular.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


def neighbour_agreement(first: torch.Tensor, second: torch.Tensor) -> float:
    """Fraction of rows i whose most cosine-similar row of `second` (M, D) is row i; in [0, 1]."""
    similarity = F.normalize(first.double(), dim=1) @ F.normalize(second.double(), dim=1).T  # (M, M)
    return float((similarity.argmax(dim=1) == torch.arange(first.shape[0])).double().mean())


__all__ = ["alignment", "neighbour_agreement", "rankme", "uniformity"]
