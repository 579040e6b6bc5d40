"""Data: in-memory image sets (CIFAR, image folders) and batched view recipes."""

from __future__ import annotations

from ssnas.data.datasets import ImageSet, load_cifar, load_dataset, load_image_folder
from ssnas.data.views import (
    VIEWS,
    MultiView,
    ViewMaker,
    byol_views,
    crop_flip_views,
    csnas_views,
    identity_views,
    simclr_views,
)

__all__ = [
    "VIEWS",
    "ImageSet",
    "MultiView",
    "ViewMaker",
    "byol_views",
    "crop_flip_views",
    "csnas_views",
    "identity_views",
    "load_cifar",
    "load_dataset",
    "load_image_folder",
    "simclr_views",
]
