"""From resolved settings to a `SearchTask`: the images, the space, the budget, the training.

`fit_data` loads the images and fixes the training / held-out counts; `build_space` sizes the
networks the strategy builds; `budget_constraint` checks the budget before any work;
`build_task` splits the images (seeded) and wraps it all for the strategy.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import torch

from ssnas.data.datasets import ImageSet, load_dataset, skipped_note
from ssnas.data.split import fit_split
from ssnas.errors import UserError
from ssnas.objectives import OBJECTIVES
from ssnas.run.presets import default_strategy
from ssnas.run.settings import SearchConfig, objective_of
from ssnas.strategies.settings import STRATEGY_SETTINGS, ImageFloor, Training
from ssnas.spaces import SearchSpace, create_space
from ssnas.spaces.budget import Budget, Constraint
from ssnas.strategies import SearchTask
from ssnas.training.loop import TrainConfig


def fit_data(config: SearchConfig) -> tuple[SearchConfig, ImageSet, str]:
    """Load the training images and fix the training / held-out counts the run uses.

    Counts not given take the preset's share of the folder (`PRESET_SPLITS`; CSNAS's for tpe /
    random), at least the strategy's floor (`image_floor` of its settings); returns the config
    with both counts set, the images and a sentence saying what was used and why (and how many
    unreadable files `skip_corrupt` left out, `ImageSet.num_skipped`). Raises
    UserError (one line) when the folder is too small for the counts (below the strategy's floor:
    naming the floor and a strategy that runs on the folder) or has no labels for a supervised
    objective.
    """
    run = config.run
    dataset = load_dataset(str(run.data), split="train", skip_corrupt=run.skip_corrupt)
    objective = objective_of(config)
    if objective is not None and needs_labels(objective) and dataset.labels is None:
        label_free = ", ".join(name for name in OBJECTIVES.names() if not needs_labels(name))
        raise UserError(f"--objective {objective} needs labels, and {run.data} has none (a flat folder); put its "
                        f"images in one subfolder per class, or use a label-free objective: {label_free}")  # fmt: skip
    floor = config.strategy.image_floor(run.space)
    if run.num_images is None and run.holdout_images is None and len(dataset) < floor.total:
        raise BelowFloor(_below_floor(config, floor, len(dataset)), _floor_message(config, floor, len(dataset)))
    train_share, holdout_share = floor.within(*config.strategy.shares(run.preset))
    split = fit_split(
        len(dataset), run.num_images if run.num_images is not None else train_share,
        run.holdout_images if run.holdout_images is not None else holdout_share, source=str(run.data),
    )  # fmt: skip
    run = replace(run, num_images=split.num_images, holdout_images=split.holdout_images)
    return replace(config, run=run), dataset, split.reason + skipped_note(dataset.num_skipped)


class BelowFloor(UserError):
    """A folder below the strategy's floor; `floor_message` says so without suggesting another
    strategy (a worker joins a search whose strategy is fixed)."""

    def __init__(self, message: str, floor_message: str) -> None:
        super().__init__(message)
        self.floor_message = floor_message


def _floor_message(config: SearchConfig, floor: ImageFloor, total: int) -> str:
    assert config.run.strategy is not None
    return (f"strategy {config.run.strategy!r} needs at least {floor.total:,} images ({floor.describe()}); "
            f"{config.run.data} has {total:,} images")  # fmt: skip


def _below_floor(config: SearchConfig, floor: ImageFloor, total: int) -> str:
    """The refusal of a folder below the strategy's floor, naming a strategy that runs on it."""
    run = config.run
    assert run.strategy is not None
    message = _floor_message(config, floor, total)
    default = default_strategy(run.space)
    for name in dict.fromkeys((default, "evolution")):
        settings = STRATEGY_SETTINGS[name]().resolve(run.space, run.preset)
        if name != run.strategy and settings.image_floor(run.space).total <= total:
            how = f"drop --strategy or pass --strategy {name}" if name == default else f"pass --strategy {name}"
            return f"{message}; {name!r} runs on it: {how}"
    if "rating_batch_size" in config.strategy.options(run.space):  # would a smaller rating batch fit?
        smallest = replace(config.strategy, rating_batch_size=1).image_floor(run.space)  # type: ignore[type-var]
        if smallest.total <= total:
            return f"{message}; use a larger folder or a smaller --rating-batch-size"
    return f"{message}; use a larger folder"


def build_space(config: SearchConfig) -> SearchSpace:
    """The space, its networks sized as the strategy builds them (`network(space)`)."""
    return create_space(config.run.space, **config.strategy.network(config.run.space))


def budget_constraint(config: SearchConfig) -> Constraint | None:
    """The run's compute budget on the space's full-size network (what `ssnas train` trains), checked
    for feasibility at once (UserError naming the smallest achievable cost); None without one."""
    run = config.run
    budget = Budget(run.max_flops, run.max_params, run.max_latency_ms)
    if not budget:
        return None
    constraint = Constraint(create_space(run.space), budget)
    constraint.check_feasible(random.Random(run.seed))
    return constraint


def build_task(config: SearchConfig, space: SearchSpace, out_dir: Path, dataset: ImageSet | None = None) -> SearchTask:
    """Split off the held-out images (seeded) and wrap it all in a SearchTask.

    `config` has its counts fixed by `fit_data` (which also loaded `dataset`); without them
    both are found here.
    """
    if dataset is None or config.run.num_images is None or config.run.holdout_images is None:
        config, dataset, _ = fit_data(config)
    run = config.run
    assert run.num_images is not None and run.holdout_images is not None
    wanted = run.num_images + run.holdout_images
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(run.seed))
    train_index, holdout_index = order[: run.num_images], order[run.num_images : wanted]
    objective = objective_of(config)
    labels = dataset.labels if objective is not None and needs_labels(objective) else None  # label-free otherwise
    return SearchTask(
        space=space,
        images=dataset.images[train_index],
        holdout_images=dataset.images[holdout_index],
        objective=objective or SearchTask.objective,
        views=_views(config),
        train=train_config(config),
        seed=run.seed,
        out_dir=out_dir,
        resume=run.resume,
        labels=labels[train_index] if labels is not None else None,
        holdout_labels=labels[holdout_index] if labels is not None else None,
    )


def train_config(config: SearchConfig) -> TrainConfig:
    """The strategy's training settings (none for those that train nothing) on the run's device."""
    run, given = config.run, config.strategy if isinstance(config.strategy, Training) else Training()
    epochs, optimizer = given.epochs or 1, given.optimizer or "sgd"
    return TrainConfig(
        epochs=epochs, batch_size=given.batch_size or 128, optimizer=optimizer, lr=given.lr or 0.1,
        weight_decay=given.weight_decay if given.weight_decay is not None else 5e-4, nesterov=optimizer == "sgd",
        warmup_epochs=min(1.0, epochs / 10), precision=run.precision, device=run.device, seed=run.seed,
        progress=run.progress, checkpoint_every=50,
    )  # fmt: skip


def needs_labels(objective: str) -> bool:
    """Whether `objective` trains on labels (only the supervised reference does)."""
    return bool(getattr(OBJECTIVES.get(objective), "needs_labels", False))


def _views(config: SearchConfig) -> str | None:
    """The view recipe when the strategy calls for one other than the objective's own (None)."""
    return config.strategy.views(config.run.space)


__all__ = ["budget_constraint", "build_space", "build_task", "fit_data", "needs_labels", "train_config"]
