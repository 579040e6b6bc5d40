"""CSNAS's memory-bank NCE (Nguyen & Chang, arXiv 2102.10557; as in the released
code `namnguyen0510/CSNAS` search/ssl_utils.py, a PIRL-style loss: Misra & van der
Maaten, CVPR 2020). The paper text says "contrastive"; the code does this.

Per image: an "original" view and two patches (views [original, patch_a, patch_b]).

    f_img   = Linear(D->256)(backbone(original))
    f_patch = Linear(512->256)(concat(Linear(D->256)(backbone(patch_a)),
                                      Linear(D->256)(backbone(patch_b))))

A memory bank holds one 256-d vector per training image. For sample i the
positive is bank[i], the N = 2(B-1) negatives are bank entries drawn uniformly
(with replacement) from all other indices, similarities are cosines over
temperature 0.07, and the positive sits at logit 0 of a cross-entropy:

    L = 0.5 NCE(bank, f_patch) + 0.5 NCE(bank, f_img)

In training mode, after each optimizer step the bank entries of the batch become the running mean
`0.5 * bank[i] + 0.5 * f_img_i` (f_img from that step's forward, detached).

Bank initialisation (the spec: f_img of the untrained network): entries are
filled lazily with the current f_img the first time an image is seen, before
its loss is computed; unseen entries are zero vectors (cosine 0) when drawn as
negatives during the first epoch. `initialize_bank(model, batches)` fills every
entry up front from the untrained network instead, the faithful choice, for
callers that can afford one extra forward pass over the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssnas.objectives import OBJECTIVES
from ssnas.objectives.base import Batch, Objective, forward_features_of


def sample_negatives(
    index: torch.Tensor, num_images: int, num_negatives: int, generator: torch.Generator
) -> torch.Tensor:
    """Draw (B, N) bank indices uniformly from `range(num_images)` minus each row's own index.

    Args:
        index: (B,) int64 positives. Sampling runs on the CPU `generator`; the result
            is moved to `index.device`.
    """
    if num_images < 2:
        raise ValueError("the memory-bank NCE needs at least 2 training images")
    draws = torch.randint(0, num_images - 1, (index.shape[0], num_negatives), generator=generator)
    draws = draws.to(index.device)  # (B, N) in [0, num_images - 2]
    return draws + (draws >= index[:, None]).long()  # skip each row's own index


def memory_nce_loss(
    features: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """InfoNCE with cosine similarity, positive at logit 0.

    Args:
        features: (B, D) online features f.
        positives: (B, D) bank entries of the same images.
        negatives: (B, N, D) bank entries of other images.

    Returns:
        Scalar mean over the batch of `-log softmax([cos(f,pos), cos(f,neg_1..N)] / T)[0]`.
    """
    f = F.normalize(features.float(), dim=1)  # (B, D)
    pos = F.normalize(positives.float(), dim=1)  # (B, D)
    neg = F.normalize(negatives.float(), dim=2)  # (B, N, D)
    logits = torch.cat([(f * pos).sum(1, keepdim=True), torch.einsum("bd,bnd->bn", f, neg)], dim=1)
    logits = logits / temperature  # (B, 1 + N)
    targets = torch.zeros(f.shape[0], dtype=torch.long, device=f.device)
    return F.cross_entropy(logits, targets)


@OBJECTIVES.register("csnas-nce")
class CSNASNCE(Objective):
    """The CSNAS memory-bank NCE objective (views: original, patch_a, patch_b)."""

    view_recipe = "csnas"
    passes_per_image = 3
    bank: torch.Tensor  # (num_images, embed_dim) buffer, registered in `setup`
    filled: torch.Tensor  # (num_images,) bool buffer: the bank row holds a feature

    def __init__(
        self,
        embed_dim: int = 256,
        temperature: float = 0.07,
        bank_weight: float = 0.5,
        num_negatives: int | None = None,
        seed: int = 0,
    ) -> None:
        """`num_negatives=None` means 2(B-1) per batch; `seed` seeds the negative sampler."""
        super().__init__()
        self.embed_dim = embed_dim
        self.temperature = temperature
        self.bank_weight = bank_weight
        self.num_negatives = num_negatives
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)  # CPU, whatever the device
        self.image_head: nn.Module | None = None
        self.patch_head: nn.Module | None = None
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # (index, f_img) of the last forward

    def setup(self, model: nn.Module, feature_dim: int, num_images: int) -> None:
        self.image_head = nn.Linear(feature_dim, self.embed_dim)
        self.patch_head = nn.Linear(2 * self.embed_dim, self.embed_dim)
        self.register_buffer("bank", torch.zeros(num_images, self.embed_dim))
        self.register_buffer("filled", torch.zeros(num_images, dtype=torch.bool))

    def image_features(self, model: nn.Module, original: torch.Tensor, **model_kwargs: Any) -> torch.Tensor:
        """f_img: (B, embed_dim)."""
        assert self.image_head is not None, "call setup() first"
        return self.image_head(forward_features_of(model, original, **model_kwargs))

    def patch_features(
        self, model: nn.Module, patch_a: torch.Tensor, patch_b: torch.Tensor, **model_kwargs: Any
    ) -> torch.Tensor:
        """f_patch: (B, embed_dim)."""
        assert self.image_head is not None and self.patch_head is not None, "call setup() first"
        g_a = self.image_head(forward_features_of(model, patch_a, **model_kwargs))  # (B, embed_dim)
        g_b = self.image_head(forward_features_of(model, patch_b, **model_kwargs))  # (B, embed_dim)
        return self.patch_head(torch.cat([g_a, g_b], dim=1))  # (B, 2 embed_dim) -> (B, embed_dim)

    @torch.no_grad()
    def initialize_bank(self, model: nn.Module, batches: Iterable[Batch]) -> None:
        """Fill the bank with f_img of `model` (eval mode, no grad) over `batches` (views[0] used)."""
        was_training = model.training
        model.eval()
        for batch in batches:
            f_img = self.image_features(model, batch.views[0]).float()
            self.bank[batch.index] = f_img
            self.filled[batch.index] = True
        model.train(was_training)

    def forward(self, model: nn.Module, batch: Batch, **model_kwargs: Any) -> torch.Tensor:
        original, patch_a, patch_b = batch.views[:3]
        index = batch.index
        f_img = self.image_features(model, original, **model_kwargs)  # (B, embed_dim)
        f_patch = self.patch_features(model, patch_a, patch_b, **model_kwargs)  # (B, embed_dim)

        if self.training:
            unseen = ~self.filled[index]
            if unseen.any():  # lazy initialisation at first sight
                self.bank[index[unseen]] = f_img.detach()[unseen].float()
                self.filled[index[unseen]] = True

        batch_size = index.shape[0]
        num_negatives = self.num_negatives or 2 * (batch_size - 1)
        negative_index = sample_negatives(index, self.bank.shape[0], num_negatives, self.generator)
        positives = self.bank[index]  # (B, embed_dim)
        negatives = self.bank[negative_index]  # (B, N, embed_dim)
        if self.training:  # kept for the bank update in on_step_end
            self._last = (index, f_img.detach())
        return 0.5 * memory_nce_loss(f_patch, positives, negatives, self.temperature) + 0.5 * memory_nce_loss(
            f_img, positives, negatives, self.temperature
        )

    @torch.no_grad()
    def on_step_end(self, model: nn.Module, progress: float) -> None:
        if self._last is None:
            return
        index, f_img = self._last
        w = self.bank_weight
        self.bank[index] = w * self.bank[index] + (1.0 - w) * f_img.float()
        self._last = None

    def get_extra_state(self) -> dict[str, Any]:
        """The negative sampler's RNG state travels with `state_dict()` (exact resume)."""
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
