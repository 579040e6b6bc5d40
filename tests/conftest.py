"""Shared fixtures: the real-data folder beside the repo, and tiny synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from cli_helpers import copy_cifar_subset, missing_prerequisite

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# pytest-xdist runs one worker per core (`make test`: -n auto); torch's default of one thread per core in
# every worker and in every `ssnas` subprocess a test starts would oversubscribe the cores. Each worker,
# and what it starts, gets its share (a test that sets OMP_NUM_THREADS itself keeps its own).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _SHARE = max(1, (os.cpu_count() or 1) // _WORKERS)
    os.environ.setdefault("OMP_NUM_THREADS", str(_SHARE))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`; in CI a missing folder is a failure, elsewhere a skip."""
    if not (SHARED_DATA / "cifar10-jpeg").is_dir():
        missing_prerequisite(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def labelled_cifar(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real CIFAR-10 JPEGs in class folders: train/ 12 per class, test/ 8 per class."""
    root = tmp_path_factory.mktemp("labelled")
    copy_cifar_subset(shared_data, root, per_class=12)
    return copy_cifar_subset(shared_data, root, per_class=8, split="test")


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A subprocess environment with its own image cache and one thread."""
    return {"SSNAS_CACHE": str(tmp_path_factory.mktemp("cache")), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def nb201_csv(shared_data: Path) -> Path:
    return shared_data / "benchmarks" / "nb201.csv"


@pytest.fixture
def tiny_images() -> torch.Tensor:
    """(16,3,32,32) uint8 random images from a fixed generator."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=generator)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 seeded noise images as PNG files (a flat unlabeled folder); modules may define their own."""
    folder = tmp_path_factory.mktemp("rating_images")
    generator = torch.Generator().manual_seed(11)
    for i in range(24):
        pixels = torch.randint(0, 256, (32, 32, 3), generator=generator, dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(folder / f"img{i:02d}.png")
    return folder
