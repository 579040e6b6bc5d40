"""Self-supervised objectives (and the supervised reference). Each module registers itself in `OBJECTIVES`."""

from __future__ import annotations

from typing import Any

from ssnas.objectives.base import Batch, Objective
from ssnas.registry import Registry

OBJECTIVES: Registry[Objective] = Registry("objective")


def create_objective(name: str, **kwargs: Any) -> Objective:
    """Build a registered objective, e.g. `create_objective("simclr", temperature=0.5)`."""
    return OBJECTIVES.create(name, **kwargs)


# One explicit import per objective module (registration happens on import).
from ssnas.objectives import byol as _byol  # noqa: E402,F401
from ssnas.objectives import csnas_nce as _csnas_nce  # noqa: E402,F401
from ssnas.objectives import ensemble as _ensemble  # noqa: E402,F401
from ssnas.objectives import rotation as _rotation  # noqa: E402,F401
from ssnas.objectives import simclr as _simclr  # noqa: E402,F401
from ssnas.objectives import supervised as _supervised  # noqa: E402,F401

__all__ = ["OBJECTIVES", "Batch", "Objective", "create_objective"]
