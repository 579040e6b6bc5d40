"""The search-space protocol (archai's discrete_search idea, kept small).

A space turns flat categorical choices into an `Architecture` value and builds
networks from it. Extra abilities are separate protocols that a strategy checks
with `isinstance` before it relies on them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@dataclass(frozen=True)
class Architecture:
    """One point of a search space: its flat choices, in `space.choices()` order.

    `key` is the space's canonical string form (for NB201 the benchmark's own
    `|op~src|+...` string); equality and hashing use `(space, choices)` only.

    >>> arch = create_space("nats-size").parse("64:32:16:8:64")  # doctest: +SKIP
    >>> arch.choices, arch.key                                   # doctest: +SKIP
    """

    space: str
    choices: tuple[str, ...]
    key: str = field(compare=False)

    def __str__(self) -> str:
        return self.key


@runtime_checkable
class Encoder(Protocol):
    """A network built from an architecture: images (B,3,H,W) -> features (B,D)."""

    feature_dim: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class SearchSpace(Protocol):
    """What every space implements.

    >>> space = ssnas.create_space("nb201")                    # doctest: +SKIP
    >>> arch = space.sample(random.Random(0))                  # doctest: +SKIP
    >>> net = space.build(arch, num_classes=10)                # doctest: +SKIP
    >>> net.forward_features(torch.zeros(2, 3, 32, 32)).shape  # (B, D)  # doctest: +SKIP
    """

    name: str

    def choices(self) -> Mapping[str, Sequence[str]]:
        """Decision name -> its options, in a fixed order."""
        ...

    def make(self, choices: Sequence[str]) -> Architecture:
        """Validate flat choices and return the architecture (UserError if invalid)."""
        ...

    def parse(self, text: str) -> Architecture:
        """Parse the canonical string form (UserError with the reason if malformed)."""
        ...

    def sample(self, rng: random.Random) -> Architecture: ...

    def build(self, arch: Architecture, num_classes: int | None = None) -> nn.Module:
        """A standalone network; `forward_features` always, `forward` -> logits if num_classes."""
        ...


@runtime_checkable
class SupportsEnumerate(Protocol):
    def enumerate(self) -> Iterator[Architecture]:
        """Every architecture, in a deterministic order."""
        ...

    def size(self) -> int: ...


@runtime_checkable
class SupportsMutate(Protocol):
    def mutate(self, arch: Architecture, rng: random.Random) -> Architecture: ...


def is_degenerate(space: SearchSpace, arch: Architecture) -> bool:
    """True for a cell with no input-to-output path (NB201 `none` edges cut it), where the space
    can tell (its `is_degenerate` method); False for spaces without such cells. The one check every
    strategy, rater and selection uses."""
    check = getattr(space, "is_degenerate", None)
    return bool(check(arch)) if callable(check) else False


@runtime_checkable
class SupportsSupernet(Protocol):
    def build_supernet(self, **kwargs: Any) -> nn.Module:
        """A weight-sharing network: `forward_features(x, arch)` runs one path,
        `forward_features(x, op_weights)` the per-decision softmax mixture."""
        ...


@dataclass(frozen=True)
class Block:
    """One block of a block-wise space (BossNAS, Li et al. 2021, §3.1).

    `decisions` are the names (from `choices()`) this block owns, in order; a
    block's *path* is the tuple of options chosen for them.
    """

    index: int
    decisions: tuple[str, ...]


@runtime_checkable
class SupportsBlocks(Protocol):
    def blocks(self) -> Sequence[Block]: ...

    def block_paths(
        self, block: int, previous: Sequence[tuple[str, ...]] = ()
    ) -> list[tuple[str, ...]]:
        """Candidate paths of `block`, given the paths chosen for the blocks before it
        (constraints such as HyTra's non-increasing resolution depend on them)."""
        ...

    def build_block_supernet(self, **kwargs: Any) -> nn.Module:
        """A weight-sharing network with `forward_blocks(x, paths, start=0) -> (B,C,H,W)`, running
        blocks 0..len(paths)-1 on the given paths and returning the last one's output; with
        `start` > 0, x is block start-1's output and only blocks start.. run."""
        ...
