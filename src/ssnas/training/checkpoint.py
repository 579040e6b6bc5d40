"""Atomic checkpoint files and the random-number-generator states that make resume exact."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssnas.atomic import atomic_open
from ssnas.errors import UserError, corrupt


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """`torch.save` through `ssnas.atomic`: a crash never leaves a half-written file."""
    with atomic_open(path) as handle:
        torch.save(state, handle)


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `save_atomic` (UserError naming the file if unreadable)."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # noqa: BLE001 - a truncated or garbled file fails in zip, pickle or torch
        if isinstance(error, OSError) and not (Path(path).is_file() and os.access(path, os.R_OK)):
            raise UserError(f"cannot read checkpoint {path}: {error.strerror or error}") from None
        raise corrupt(path, error) from None  # torch reports some truncations as OSError 'Invalid argument'
    if not isinstance(state, dict):
        raise corrupt(path, f"it holds a {type(state).__name__}, not a checkpoint")
    return state


def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """States of the named explicit generators plus torch (CPU, CUDA), Python and NumPy global RNGs."""
    state: dict[str, Any] = {name: g.get_state() for name, g in generators.items()}
    state["torch"] = torch.get_rng_state()
    state["cuda"] = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    state["python"] = random.getstate()
    state["numpy"] = np.random.get_state()
    return state


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Inverse of `capture_rng`."""
    for name, g in generators.items():
        g.set_state(state[name])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
