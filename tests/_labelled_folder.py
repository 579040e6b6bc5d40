"""A tiny labelled image folder (train/ and test/, two classes of random PNGs) for retraining tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def make_labelled_folder(root: Path, train: int = 48, test: int = 16, seed: int = 0) -> Path:
    """`root/{train,test}/{a,b}/*.png`, 32x32 random images, half of each split per class."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        for name in ("a", "b"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count // 2):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root
