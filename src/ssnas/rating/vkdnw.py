"""VKDNW: the spread of the Fisher information spectrum of a few weights, without labels.

Týbl & Neumann, "Training-free Neural Architecture Search through Variance of Knowledge of Deep
Network Weights", CVPR 2025 (arXiv 2502.04975); the authors' code (github.com/ondratybl/VKDNW,
`NB201/ZeroShotProxy/compute_vkdnw_score.py`, tables from `NB201/paper_preparation.ipynb`) fixes
what the text leaves open. On a batch of B images at initialisation:

* theta (m,): from each of the first `TENSORS` (128) parameter tensors that reach the output, in
  registration order, `PER_TENSOR` (8) evenly spaced entries of the flattened tensor, first and
  last included (the paper's table: 1, the first entry), so m <= min(L, 128) * 8 for L such tensors;
* z_b = W f_b + c (K,): the features f_b (D,) (`registry.features`) through a K = `CLASSES` (10)
  way linear classifier drawn as `nn.Linear` initialises it (U(-1/sqrt D, 1/sqrt D)) from a
  generator seeded with `seed`: the classifier the network has at initialisation;
* J_b = dz_b / dtheta (K, m), per image: BN normalises with this batch's statistics held fixed,
  so every image's output depends on that image alone (the authors run BN in eval mode);
* F = (1/B) sum_b J_b^T (diag(p_b) - p_b p_b^T) J_b (m, m), p_b = softmax(z_b): the Fisher
  information of theta under the network's own predictive distribution (expectation over
  y ~ p_b in closed form, no labels). The authors' code multiplies J_b by the Cholesky factor L_b
  of diag(p_b) - p_b p_b^T from the wrong side (J^T L^T L J, not J^T L L^T J) and smooths p_b
  with 5% of the uniform distribution; the Fisher information of the paper's text is used here;
* lambda: the eigenvalues of F; q_j = quantile(lambda, j/10), j = 1..9 (the deciles);
  VKDNW = H = -sum_j qt_j log qt_j with qt = q / sum(q), in [0, ln 9] (0 where every decile is 0);
* aleph: the number of parameter tensors that reach the output (the paper's "No. of trainable
  layers", there `len(model.named_parameters())`: the same on a standalone network, where NB201's
  `none` multiplies by zero and so still reaches; on a supernet path the ops off the path are not
  counted).

Columns: `vkdnw-entropy` H (the size-free "shape" term), `vkdnw-layers` aleph, and `vkdnw` =
aleph + H / ln 10, the paper's VKDNW_single: its dense rank of (aleph, H) ordered
lexicographically, as one value (H / ln 10 < 1). The paper's VKDNW_agg is the composite
`vkdnw-agg` (`ssnas.rating.aggregate`).

Settings chosen on the NB201 development half (300 cells, C=8, N=1, 32 images; Spearman of
`vkdnw` with cifar10_valid, of H within cells of equal aleph in brackets): BN held at the batch's
statistics 0.731 (0.47) against the authors' eval-mode BN, at initialisation the identity, 0.663
(0.08); the authors' J^T L^T L J 0.730 (0.45), no better than F (these three with 1 entry per
tensor); entries per tensor 1 / 2 / 4 / 8 / 16: 0.731 / 0.749 / 0.758 / 0.778 / 0.782, H alone
0.18 / 0.26 / 0.32 / 0.32 / -0.06 (where m far exceeds F's rank B(K-1), the zero eigenvalues fill
the lower deciles by size alone): 8.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.autograd.graph import Node
from torch.func import functional_call, jacrev, vmap

from ssnas.rating.registry import SIGNALS, CannotRate, features

VKDNW_COLUMNS = ("vkdnw", "vkdnw-entropy", "vkdnw-layers")
TENSORS = 128  # parameter tensors read, from the input side (the paper's params_grad_len)
PER_TENSOR = 8  # entries read per tensor (the paper's p; its table used 1, the first entry): development half
CLASSES = 10  # outputs of the classifier drawn on the features (CIFAR-10's, as the paper's NB201 runs)
SAMPLES_AT_ONCE = 8  # images per vectorised Jacobian pass (bounds memory)
_DECILES = torch.arange(1, 10, dtype=torch.float64) / 10


@SIGNALS.family("vkdnw", VKDNW_COLUMNS, "VKDNW: entropy of the deciles of the Fisher information spectrum "
                "of a few weights under the network's own predictions, after the trainable-layer count")  # fmt: skip
def vkdnw(model: nn.Module, images: torch.Tensor, seed: int = 0, **forward_kwargs: Any) -> dict[str, float]:
    """VKDNW_single, its entropy H and the trainable-layer count of `model` on images (B,3,H,W).

    BN statistics, modes and parameter gradients are as the caller left them afterwards.
    """
    fisher, layers = fisher_information(model, images, seed, **forward_kwargs)
    entropy = decile_entropy(torch.linalg.eigvalsh(fisher))
    return {"vkdnw": layers + entropy / math.log(10), "vkdnw-entropy": entropy, "vkdnw-layers": float(layers)}


def fisher_information(
    model: nn.Module, images: torch.Tensor, seed: int = 0, classes: int = CLASSES, **forward_kwargs: Any
) -> tuple[torch.Tensor, int]:
    """(F (m, m) float64, aleph): the Fisher information of the selected weights of `model` under its
    own predictions on images (B,3,H,W), and the number of parameter tensors that reach the output."""
    with _batch_statistics_held(model, images, forward_kwargs) as output:
        reached = _reached_parameters(model, output)
        if not reached:
            raise CannotRate(f"vkdnw reads the parameters that reach the features; {type(model).__name__} "
                             "has none that require grad")  # fmt: skip
        selected = [(name, tensor, _entries(tensor)) for name, tensor in reached[:TENSORS]]
        head, bias = classifier(output.shape[1], classes, seed, output.device)
        jacobian, logits = _jacobians(model, images, selected, head, bias, forward_kwargs)  # (B,K,m), (B,K)
    return _expected_fisher(jacobian.double(), torch.softmax(logits.double(), dim=1)), len(reached)


def decile_entropy(eigenvalues: torch.Tensor) -> float:
    """H = -sum_j qt_j log qt_j over the normalised deciles qt of `eigenvalues` (negative rounding
    errors count as 0); 0 where every decile is 0."""
    deciles = torch.quantile(eigenvalues.double().clamp_min(0), _DECILES.to(eigenvalues.device))  # (9,)
    total = deciles.sum()
    if not total > 0:
        return 0.0
    share = deciles[deciles > 0] / total
    return float(-(share * share.log()).sum())


def _expected_fisher(jacobian: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """(1/B) sum_b J_b^T (diag(p_b) - p_b p_b^T) J_b for J (B,K,m), p (B,K): (m, m)."""
    weighted = torch.einsum("bkm,bk,bkn->mn", jacobian, probs, jacobian)  # sum_b J_b^T diag(p_b) J_b
    mean_grad = torch.einsum("bkm,bk->bm", jacobian, probs)  # (B, m): J_b^T p_b
    return (weighted - mean_grad.T @ mean_grad) / jacobian.shape[0]


def _entries(tensor: torch.Tensor) -> torch.Tensor:
    """`PER_TENSOR` evenly spaced flat indices of `tensor` (fewer for a smaller tensor), first and last included."""
    return torch.linspace(0, tensor.numel() - 1, PER_TENSOR).round().long().unique()


def classifier(
    width: int, classes: int, seed: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (K, D) and bias (K,) drawn as `nn.Linear(D, K)` draws them, from a generator seeded with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(width)
    weight = (torch.rand(classes, width, generator=generator) * 2 - 1) * bound
    bias = (torch.rand(classes, generator=generator) * 2 - 1) * bound
    return weight.to(device), bias.to(device)


def _reached_parameters(model: nn.Module, output: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) of the parameters requiring grad that `output`'s autograd graph reaches, in
    registration order."""
    reached: set[int] = set()
    stack: list[Node | None] = [output.grad_fn] if output.grad_fn is not None else []
    seen: set[Any] = set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # AccumulateGrad: a leaf tensor
        if variable is not None:
            reached.add(id(variable))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad and id(p) in reached]


class _Features(nn.Module):
    """`registry.features(model, x, **forward_kwargs)` as a module's forward, for `functional_call`."""

    def __init__(self, model: nn.Module, forward_kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.forward_kwargs = forward_kwargs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return features(self.model, x, **self.forward_kwargs)


def _jacobians(
    model: nn.Module, images: torch.Tensor, selected: list[tuple[str, torch.Tensor, torch.Tensor]],
    head: torch.Tensor, bias: torch.Tensor, forward_kwargs: dict[str, Any],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(J (B,K,m), z (B,K)): each image's logits and their Jacobian in the selected entries
    (name, tensor, flat indices), one image at a time, vectorised with torch.func."""
    wrapper = _Features(model, forward_kwargs)
    values = torch.cat([tensor.detach().reshape(-1)[index] for _, tensor, index in selected])  # theta (m,)
    bounds = torch.tensor([0, *(len(index) for _, _, index in selected)]).cumsum(0).tolist()

    def logits(theta: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        replaced = {
            f"model.{name}": tensor.detach().reshape(-1).index_put((index,), theta[bounds[i] : bounds[i + 1]])
            .reshape(tensor.shape)
            for i, (name, tensor, index) in enumerate(selected)
        }  # fmt: skip
        z = functional_call(wrapper, replaced, (image[None],))[0] @ head.T + bias  # (K,)
        return z, z

    per_image = vmap(jacrev(logits, has_aux=True), in_dims=(None, 0), chunk_size=SAMPLES_AT_ONCE)
    try:
        with torch.no_grad():  # torch.func differentiates inside; no graph for the module's own parameters
            jacobian, z = per_image(values, images)
    except RuntimeError as error:  # an op torch.func cannot transform (an autograd.Function without setup_context)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CannotRate(f"vkdnw reads per-image Jacobians with torch.func (vmap, jacrev); "
                         f"{type(model).__name__} runs an op it cannot transform: {first}") from None  # fmt: skip
    return jacobian, z


@contextmanager
def _batch_statistics_held(
    model: nn.Module, images: torch.Tensor, forward_kwargs: dict[str, Any]
) -> Iterator[torch.Tensor]:
    """Inside: every BN that normalises with batch statistics (train mode, or no running statistics)
    normalises with those of `images` held fixed (eval mode on them), so each image's output depends
    on that image alone; a BN run twice in one pass keeps its first statistics. Yields the batch's
    features (B, D) with their autograd graph. Modes and running statistics are put back."""
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and (m.training or m.running_mean is None)]  # fmt: skip
    saved = [(m.training, m.track_running_stats, m.running_mean, m.running_var,
              {k: b.clone() for k, b in m.named_buffers(recurse=False)}) for m in norms]  # fmt: skip
    statistics: dict[nn.modules.batchnorm._BatchNorm, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(module: nn.modules.batchnorm._BatchNorm, inputs: tuple[torch.Tensor, ...]) -> None:
        if module not in statistics:
            x = inputs[0].detach()
            dims = [d for d in range(x.dim()) if d != 1]
            statistics[module] = (x.mean(dim=dims), x.var(dim=dims, unbiased=False))  # as train-mode BN normalises

    handles = [m.register_forward_pre_hook(record) for m in norms]
    try:
        with torch.enable_grad():
            output = features(model, images, **forward_kwargs)  # (B, D)
        for handle in handles:
            handle.remove()
        for m, (mean, var) in statistics.items():
            m.running_mean, m.running_var, m.track_running_stats = mean, var, True
            m.eval()
        yield output
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for m, (training, tracking, saved_mean, saved_var, buffers) in zip(norms, saved):
                m.running_mean, m.running_var, m.track_running_stats = saved_mean, saved_var, tracking
                for name, value in buffers.items():
                    getattr(m, name).copy_(value)
                m.train(training)
