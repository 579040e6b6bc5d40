"""What a streamed rating rates, as a function of its settings alone.

`ssnas rank --out DIR` (`ssnas.api.rank_into_folder`) writes the settings into DIR/config.yaml;
`--resume` and every worker of a shared rating (`ssnas.rating.shared`) rebuild the same plan
from them: the same architectures in the same order, rated with the same network, ranker and
images (checked by their SHA-256), so chunk k holds the same values wherever it is rated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ssnas.errors import UserError
from ssnas.ranking.selection import all_architectures, iter_sample, read_architectures
from ssnas.rating import EngineConfig, parse_ranker, rating_job, resized
from ssnas.rating.aggregate import Ranker
from ssnas.rating.engine import RatingJob, rating_indices
from ssnas.spaces import Architecture, SearchSpace


@dataclass
class RatingPlan:
    """A rating's settings (as config.yaml records them) and what they imply."""

    settings: dict[str, Any]
    archs: Callable[[], Iterable[Architecture]]  # the selection, the same sequence at every call
    count: int
    ranker: Ranker
    job: RatingJob

    @property
    def chunk_size(self) -> int:
        return int(self.settings["chunk_size"])

    @property
    def chunks(self) -> int:
        return -(-self.count // self.chunk_size)


def plan_rating(space: SearchSpace, select: str | int | Path, images: torch.Tensor | None, *, ranker: str,
                aggregate: str, seed: int, batch_size: int, network: dict[str, int], device: str,
                data: str | None, chunk_size: int, workers: int) -> RatingPlan:  # fmt: skip
    """The plan of a new rating: `select` is "all", a sample size, or a file of architectures."""
    settings: dict[str, Any] = {"command": "rank", "space": space.name, "ranker": ranker, "aggregate": aggregate}
    if select == "all":
        settings.update(selection="all")
    elif isinstance(select, int):
        settings.update(selection="sample", count=select)
    else:
        path = Path(select)
        settings.update(selection="archs", archs=str(path), archs_sha256=_sha256(path.read_bytes()))
    parsed = parse_ranker(ranker, aggregate)
    engine = EngineConfig(batch_size=batch_size, seed=seed, device=device)
    settings.update(seed=seed, batch_size=engine.batch_size, proxy_network=network or None, device=device, data=data,
                    images_sha256=rating_images_sha256(images, engine) if parsed.signals() else None,
                    chunk_size=chunk_size, workers=workers)  # fmt: skip
    return _plan(space, settings, images, parsed, engine)


def plan_from_settings(space: SearchSpace, settings: dict[str, Any], images: torch.Tensor | None) -> RatingPlan:
    """The plan `settings` (a shared rating's, from its study) describe, rated on `images`; UserError
    when the images are not the ones the rating was started with."""
    if settings.get("selection") not in ("all", "sample"):
        raise UserError("a shared rating rates --all or --sample N (a file of architectures is not on every machine)")
    parsed = parse_ranker(settings["ranker"], settings["aggregate"])
    engine = EngineConfig(batch_size=int(settings["batch_size"]), seed=int(settings["seed"]), device=settings["device"])
    if parsed.signals() and rating_images_sha256(images, engine) != settings.get("images_sha256"):
        raise UserError("these images differ from the ones the rating was started with (SHA-256 of the rating "
                        "batch); give the same --data")  # fmt: skip
    return _plan(space, dict(settings), images, parsed, engine)


def _plan(space: SearchSpace, settings: dict[str, Any], images: torch.Tensor | None, parsed: Ranker,
          engine: EngineConfig) -> RatingPlan:  # fmt: skip
    seed = int(settings["seed"])
    if settings["selection"] == "all":
        listed = all_architectures(space)
        archs: Callable[[], Iterable[Architecture]] = lambda: listed
        count = len(listed)
    elif settings["selection"] == "sample":
        count = int(settings["count"])
        archs = lambda: iter_sample(space, count, seed)
    else:
        listed = read_architectures(space, Path(settings["archs"]))
        archs = lambda: listed
        count = len(listed)
    settings = _with_count(settings, count)
    job = rating_job(resized(space, settings.get("proxy_network") or {}), parsed, images, engine)
    return RatingPlan(settings, archs, count, parsed, job)


def _with_count(settings: dict[str, Any], count: int) -> dict[str, Any]:
    """`settings` with `count` right after the selection's keys (config.yaml reads top down)."""
    ordered: dict[str, Any] = {}
    for key, value in settings.items():
        if key == "count":
            continue
        if key == "seed":
            ordered["count"] = count
        ordered[key] = value
    return ordered


def rating_images_sha256(images: torch.Tensor | None, engine: EngineConfig) -> str | None:
    """SHA-256 of the uint8 images every network is rated on (the seeded draw), so a resumed or
    shared rating can refuse other images whatever folder they came from."""
    if images is None:
        return None
    drawn = images[rating_indices(len(images), engine.batch_size, engine.seed)[0]]
    return _sha256(drawn.contiguous().numpy().tobytes() + str(tuple(drawn.shape)).encode())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


__all__ = ["RatingPlan", "plan_from_settings", "plan_rating", "rating_images_sha256"]
