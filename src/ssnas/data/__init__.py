"""Data: in-memory image sets (CIFAR, image folders) and batched view recipes."""

from __future__ import annotations

from ssnas.data.datasets import ImageSet, load_cifar, load_dataset, load_image_folder

__all__ = ["ImageSet", "load_cifar", "load_dataset", "load_image_folder"]
