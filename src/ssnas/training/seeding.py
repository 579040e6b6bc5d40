"""Reproducible weight initialisation without touching global random state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside the block, torch's global RNG (which `torch.nn.init` draws from) starts
    from `seed`; afterwards it is exactly as it was. Build networks and heads in here."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
