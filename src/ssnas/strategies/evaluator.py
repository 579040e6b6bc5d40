"""SETN's learned evaluator: a factorised distribution over architectures.

Dong & Yang, "One-Shot Neural Architecture Search via Self-Evaluated Template
Network", ICCV 2019, §3, as in AutoDL-Projects' NB201 search script: per-decision logits alpha
(num_decisions, num_options), p(a) = prod_e softmax(alpha_e)[a_e], trained by
Adam on the mixture loss; candidates are the top-K architectures by log p(a).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

import torch
from torch import nn

from ssnas.spaces import Architecture, SearchSpace


class ArchitectureDistribution(nn.Module):
    """Per-decision categorical logits over a space's `choices()`.

    Every decision must have the same number of options (true of the NB201 cell;
    spaces with ragged choices pad with -inf logits).
    """

    def __init__(self, space: SearchSpace, init_std: float = 1e-3, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.space = space
        self.options = [list(opts) for opts in space.choices().values()]
        width = max(len(opts) for opts in self.options)
        logits = init_std * torch.randn(len(self.options), width, generator=generator)  # (E, O)
        for row, opts in enumerate(self.options):
            logits[row, len(opts):] = float("-inf")
        self.logits = nn.Parameter(logits)

    def probabilities(self) -> torch.Tensor:
        """(E, O) softmax per decision: the op weights of the supernet's mixture."""
        return torch.softmax(self.logits, dim=-1)

    def log_prob(self, arch: Architecture) -> float:
        log_p = torch.log_softmax(self.logits.detach().double(), dim=-1)
        return float(sum(log_p[e, opts.index(c)] for e, (opts, c) in enumerate(zip(self.options, arch.choices))))

    def sample(self, generator: torch.Generator) -> Architecture:
        picks = torch.multinomial(self.probabilities().detach(), 1, generator=generator).squeeze(1)
        return self.space.make([opts[int(i)] for opts, i in zip(self.options, picks)])

    def sample_distinct(
        self, k: int, generator: torch.Generator, max_draws: int = 100, accept: Callable[[Architecture], bool] | None = None
    ) -> list[Architecture]:
        """Up to k distinct architectures drawn from p(a) (SETN paper, §3.3: candidates are
        sampled from the evaluator), only those `accept` admits (e.g. a compute budget);
        stops after `max_draws * k` draws."""
        seen: dict[Architecture, None] = {}
        for _ in range(max_draws * k):
            arch = self.sample(generator)
            if accept is None or accept(arch):
                seen.setdefault(arch, None)
            if len(seen) == k:
                break
        return list(seen)

    def top_k(self, k: int) -> list[tuple[Architecture, float]]:
        """The k most probable architectures with their log-probabilities, exactly.

        Best-first search over the product of per-decision sorted options (no full
        enumeration: k log k work even for huge spaces).
        """
        log_p = torch.log_softmax(self.logits.detach().double(), dim=-1)
        ranked = [
            sorted(((float(log_p[e, j]), j) for j in range(len(opts))), reverse=True)
            for e, opts in enumerate(self.options)
        ]
        start = (0,) * len(ranked)
        total = sum(r[0][0] for r in ranked)
        heap: list[tuple[float, tuple[int, ...]]] = [(-total, start)]
        seen = {start}
        out: list[tuple[Architecture, float]] = []
        while heap and len(out) < k:
            neg, position = heapq.heappop(heap)
            choices = [self.options[e][ranked[e][p][1]] for e, p in enumerate(position)]
            out.append((self.space.make(choices), -neg))
            for e in range(len(position)):
                if position[e] + 1 < len(ranked[e]):
                    nxt = position[:e] + (position[e] + 1,) + position[e + 1 :]
                    if nxt not in seen:
                        seen.add(nxt)
                        delta = ranked[e][position[e] + 1][0] - ranked[e][position[e]][0]
                        heapq.heappush(heap, (neg - delta, nxt))
        return out


def uniform_sample(space: SearchSpace, rng: random.Random) -> Architecture:
    """SETN's weight step samples every decision independently and uniformly."""
    return space.sample(rng)


__all__ = ["ArchitectureDistribution", "uniform_sample"]
