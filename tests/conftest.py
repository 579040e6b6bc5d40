"""Shared fixtures: the real-data folder beside the repo, and tiny synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`; in CI a missing folder is a failure, elsewhere a skip."""
    if not (SHARED_DATA / "cifar10-jpeg").is_dir():
        message = f"real data not found at {SHARED_DATA}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def nb201_csv(shared_data: Path) -> Path:
    return shared_data / "benchmarks" / "nb201.csv"


@pytest.fixture
def tiny_images() -> torch.Tensor:
    """(16,3,32,32) uint8 random images from a fixed generator."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=generator)
