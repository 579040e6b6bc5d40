"""Pretrain one architecture's standalone network with an objective, then probe its features.

    summary = pretrain(PretrainConfig(arch=BEST_CELL, objective="byol", data="cifar10", out="runs/byol"))
    probe("runs/byol", data="cifar10", methods=("knn",))["accuracy"]["knn"]

`pretrain` builds `space.build(space.parse(arch))` (no classifier; ARCH may name a file), trains it with the
objective through `ssnas.training.loop.train` (labels only for "supervised") and writes a
run folder:

* `config.yaml`: every setting, resolved (the objective's default optimizer, lr, ...);
* `checkpoint.pt`: the loop's checkpoint, for `resume=True`;
* `model.pt`: the format of `ssnas train` (`ssnas.retrain`: state_dict, arch, space,
  space_args, build_args, num_classes = None) plus the objective, seed, data and the
  normalisation of the training views, so `probe` (and `retrain.load_model`) rebuild it;
* `metrics.json`: loss per epoch, images/s, seconds, whether the run is complete, and the
  unreadable image files `skip_corrupt` left out (`skipped_images`).

Without `out` the run gets a new folder under runs/ (`ssnas.runfolder.out_or_new`).

`probe` extracts frozen features (identity views, eval mode) of labelled train and test
images and reports kNN (k = 200, cosine, T = 0.1; Wu et al., 2018) and/or linear-probe top-1,
for the trained weights or, with `random_init=True`, for the same network at the
initialisation the pretraining started from (the baseline).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from ssnas.data.datasets import ImageSet, load_dataset
from ssnas.data.views import VIEWS, ViewMaker, identity_views
from ssnas.errors import UserError
from ssnas.objectives import OBJECTIVES, Objective, create_objective
from ssnas.retrain import MODEL_NAME, build_seeded, read_arch_text, read_model_file, resolve_space
from ssnas.runfolder import check_run_folder, out_or_new, write_config
from ssnas.training.distributed import process_group
from ssnas.training.checkpoint import save_atomic
from ssnas.training.loop import TrainConfig, train
from ssnas.training.loop import images_per_second as loop_images_per_second
from ssnas.training.precision import resolve_device, resolve_precision
from ssnas.training.probes import extract_features, knn_accuracy, linear_probe_accuracy

METRICS_NAME = "metrics.json"
PROBES = ("knn", "linear")
# Settings that may differ between a run and its resumption.
RESUMABLE = ("resume", "device", "progress", "max_steps", "skip_corrupt")
# Which space constructor arguments --channels / --cells set.
SIZE_ARGUMENTS: dict[str, tuple[str, str]] = {"nb201": ("C", "N"), "darts": ("C", "layers")}

# bf16 pretraining was measured 2.1-3.0x faster on an AVX-512 CPU (benchmarks/results/pretrain_cpu.json) but
# not for the quality of the features (probes); until it is, `auto` pretrains in fp32
# (`ssnas.training.precision`).
BF16_KEEPS_QUALITY = False



@dataclass(frozen=True)
class ObjectiveDefaults:
    """An objective's default optimisation; `base_lr` is for a batch of 256 (linear scaling)."""

    optimizer: str
    base_lr: float
    weight_decay: float
    nesterov: bool = False
    warmup: bool = True  # linear warm-up over min(10, epochs / 10) epochs


DEFAULTS: dict[str, ObjectiveDefaults] = {
    # SimCLR's scaling rule lr = 0.3 x B/256 (Chen et al., 2020, with SGD for small batches);
    # bench_loop measured it on this cell: kNN 0.29 -> 0.43 after 15 epochs on 10k images.
    "simclr": ObjectiveDefaults("sgd", 0.3, 1e-4),
    # lightly's CIFAR-10 benchmark recipe for BYOL (SGD 0.06 x B/128, wd 5e-4), tested at
    # batches of 128-512; LARS at these batch sizes needs a larger trust coefficient than
    # the loop's eta = 0.001 to move in a few epochs.
    "byol": ObjectiveDefaults("sgd", 0.12, 5e-4),
    # The CSNAS code (Nguyen & Chang, arXiv 2102.10557; namnguyen0510/CSNAS search/): SGD lr 1e-3 at batch 256, no
    # weight decay.
    "csnas-nce": ObjectiveDefaults("sgd", 1e-3, 0.0),
    # NAS-Bench-201's ground-truth training (Dong & Yang, ICLR 2020): SGD nesterov 0.1 at 256, wd 5e-4.
    "supervised": ObjectiveDefaults("sgd", 0.1, 5e-4, nesterov=True, warmup=False),
}
_FALLBACK = ObjectiveDefaults("sgd", 0.1, 5e-4)

# `--preset`: "quick" is the CPU-sized default (100 epochs of batch 256 on the recipes above);
# "paper" is the objective's published CIFAR-10-scale recipe, sized for a GPU.
PRESETS = ("quick", "paper")
QUICK = {"epochs": 100, "batch_size": 256}


@dataclass(frozen=True)
class PaperRecipe:
    """An objective's published pretraining recipe; `base_lr` is for a batch of 256 (linear scaling)."""

    reference: str
    epochs: int
    batch_size: int
    optimizer: str
    base_lr: float
    weight_decay: float


PAPER: dict[str, PaperRecipe] = {
    "simclr": PaperRecipe(
        "SimCLR's single-GPU CIFAR-10 command (google-research/simclr README; Chen et al., ICML 2020, "
        "appendix B.9): batch 512, 1000 epochs, LARS at lr 1.0 x batch / 256, weight decay 1e-4, "
        "temperature 0.5, colour jitter strength 0.5, no blur (this objective's and its views' defaults)",
        epochs=1000, batch_size=512, optimizer="lars", base_lr=1.0, weight_decay=1e-4,
    ),
    "byol": PaperRecipe(
        "BYOL (Grill et al., NeurIPS 2020, section 3.2): LARS at lr 0.2 x batch / 256, weight decay 1.5e-6, "
        "1000 epochs, 10 warm-up epochs; batch 512 (the paper's 4096 is for 512 TPU cores)",
        epochs=1000, batch_size=512, optimizer="lars", base_lr=0.2, weight_decay=1.5e-6,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class PretrainConfig:
    """Every setting of `ssnas pretrain`; `None` fields take the objective's or space's default."""

    arch: str
    space: str = "nb201"
    objective: str = "simclr"
    data: str = "cifar10"  # image folder (train/ is used when split) or cifar10/cifar100
    skip_corrupt: bool = False  # leave unreadable image files of `data` out (metrics.json: skipped_images)
    num_images: int | None = None  # random subset of the training split (seeded); None = all
    preset: str = "quick"  # None fields below: "quick" (CPU-sized) or "paper" (the objective's paper, a GPU)
    epochs: int | None = None  # None: the preset's (quick 100)
    batch_size: int | None = None  # None: the preset's (quick 256)
    lr: float | None = None  # None: recipe base_lr x batch_size / 256
    optimizer: str | None = None
    weight_decay: float | None = None
    warmup_epochs: float | None = None
    channels: int | None = None  # space width (nb201/darts C); None = the space's default
    cells: int | None = None  # nb201: cells per stage N; darts: layers
    precision: str = "auto"
    channels_last: bool = True
    device: str = "auto"
    seed: int = 0
    out: str | None = None  # run folder; None: a new one under runs/ (`pretrain` names it)
    resume: bool = False
    progress: bool = True
    max_steps: int | None = None  # stop early (throughput timing); the schedule still spans `epochs`


def resolve(config: PretrainConfig) -> PretrainConfig:
    """Fill the unset settings from the preset and the objective's recipe."""
    OBJECTIVES.get(config.objective)  # UserError for an unknown name
    defaults = DEFAULTS.get(config.objective, _FALLBACK)
    if config.preset == "paper":
        if config.objective not in PAPER:
            raise UserError(f"--preset paper is defined for the objectives {', '.join(PAPER)}; "
                            f"give the settings of {config.objective!r} yourself (--epochs, --batch-size, --lr)")  # fmt: skip
        paper = PAPER[config.objective]
        defaults = replace(defaults, optimizer=paper.optimizer, base_lr=paper.base_lr, weight_decay=paper.weight_decay)
        sizes = {"epochs": paper.epochs, "batch_size": paper.batch_size}
    elif config.preset == "quick":
        sizes = QUICK
    else:
        raise UserError(f"unknown preset {config.preset!r}; choose from: {', '.join(PRESETS)}")
    epochs = config.epochs if config.epochs is not None else sizes["epochs"]
    batch_size = config.batch_size if config.batch_size is not None else sizes["batch_size"]
    warmup = min(10.0, epochs / 10) if defaults.warmup else 0.0
    return replace(
        config,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=config.optimizer or defaults.optimizer,
        lr=config.lr if config.lr is not None else defaults.base_lr * batch_size / 256,
        weight_decay=config.weight_decay if config.weight_decay is not None else defaults.weight_decay,
        warmup_epochs=config.warmup_epochs if config.warmup_epochs is not None else warmup,
        precision=resolve_precision(config.precision, resolve_device(config.device), BF16_KEEPS_QUALITY).name,  # what ran
    )


def space_kwargs(space: str, channels: int | None, cells: int | None) -> dict[str, int]:
    """Constructor arguments of `space` for --channels / --cells (UserError where it has none)."""
    if channels is None and cells is None:
        return {}
    if space not in SIZE_ARGUMENTS:
        raise UserError(f"space {space!r} takes no --channels/--cells; they apply to: {', '.join(SIZE_ARGUMENTS)}")
    names = SIZE_ARGUMENTS[space]
    return {name: value for name, value in zip(names, (channels, cells)) if value is not None}


def training_images(data: str, num_images: int | None, seed: int, skip_corrupt: bool = False) -> ImageSet:
    """The training split of `data`, or a seeded random subset of `num_images` of it."""
    dataset = load_dataset(data, split="train", skip_corrupt=skip_corrupt)
    return dataset if num_images is None else dataset.subset(num_images, seed)


def _normalisation(views: ViewMaker) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std of a recipe (a MultiView, or a wrapper holding one as `.views`)."""
    inner: Any = getattr(views, "views", views)  # duck-typed: any object with `mean` and `std`
    return tuple(inner.mean), tuple(inner.std)


def _train_config(config: PretrainConfig) -> TrainConfig:
    assert config.optimizer is not None and config.lr is not None and config.weight_decay is not None
    assert config.warmup_epochs is not None and config.epochs is not None and config.batch_size is not None
    return TrainConfig(
        epochs=config.epochs, batch_size=config.batch_size, optimizer=config.optimizer, lr=config.lr,
        weight_decay=config.weight_decay, nesterov=DEFAULTS.get(config.objective, _FALLBACK).nesterov,
        warmup_epochs=config.warmup_epochs, precision=config.precision, channels_last=config.channels_last,
        device=config.device, seed=config.seed, max_steps=config.max_steps, progress=config.progress,
        checkpoint_every=100,
    )  # fmt: skip


def _objective_and_views(config: PretrainConfig, dataset: ImageSet) -> tuple[Objective, ViewMaker]:
    """The objective (with the number of classes where it needs labels) and its view recipe."""
    needs_labels = create_objective(config.objective).needs_labels
    if needs_labels and dataset.labels is None:
        raise UserError(f"objective {config.objective!r} needs labels, but {config.data} has no class folders")
    objective = create_objective(config.objective, **({"num_classes": len(dataset.classes)} if needs_labels else {}))
    return objective, VIEWS.create(objective.view_recipe)


def images_per_second(config: PretrainConfig, steps: int = 3) -> float:
    """Pretraining images per second of `config` on this machine (`ssnas.training.loop.images_per_second`);
    what a time budget plans its epochs with. Writes nothing."""
    config = resolve(config)
    search_space, arch, _ = resolve_space(
        config.space, read_arch_text(config.arch), space_kwargs(config.space, config.channels, config.cells)
    )  # fmt: skip
    dataset = training_images(config.data, config.num_images, config.seed, config.skip_corrupt)
    objective, views = _objective_and_views(config, dataset)
    return loop_images_per_second(build_seeded(search_space, arch, config.seed), objective, dataset.images, views,
                                  _train_config(config), labels=dataset.labels if objective.needs_labels else None,
                                  steps=steps)  # fmt: skip


def pretrain(config: PretrainConfig) -> dict[str, Any]:
    """Train the network of `config.arch` with `config.objective`; write and return metrics.

    With `resume=True` a killed run continues from its checkpoint, and a completed run is
    not trained again (its metrics are returned with `"already_complete": True`).

    Raises:
        UserError: bad arch / objective / data / settings, or a run folder in the way.
        TrainingDiverged: the loss became NaN/Inf (the last good checkpoint stays).
    """
    config = resolve(config)
    search_space, arch, space_args = resolve_space(
        config.space, read_arch_text(config.arch), space_kwargs(config.space, config.channels, config.cells)
    )  # fails early on a bad arch
    model = build_seeded(search_space, arch, config.seed)
    train_config = _train_config(config)
    out_dir = out_or_new(config.out, config.resume, "pretrain", config.space, config.objective, f"s{config.seed}")
    config = replace(config, out=config.out or str(out_dir))  # config.yaml: the folder it is in, as given
    check_run_folder(out_dir, asdict(config), config.resume, RESUMABLE)
    parallel = process_group()  # torchrun: process 0 alone writes the run folder
    is_main = parallel is None or parallel.is_main
    metrics_path = out_dir / METRICS_NAME
    if config.resume and metrics_path.exists():
        finished = json.loads(metrics_path.read_text())
        if finished.get("completed"):
            return {**finished, "already_complete": True}

    dataset = training_images(config.data, config.num_images, config.seed, config.skip_corrupt)
    objective, views = _objective_and_views(config, dataset)
    mean, std = _normalisation(views)
    write_config(out_dir, asdict(config))

    result = train(model, objective, dataset.images, views, train_config, labels=dataset.labels if
                   objective.needs_labels else None, out_dir=out_dir, resume=config.resume)  # fmt: skip
    assert config.epochs is not None and config.batch_size is not None
    steps_per_epoch = len(dataset) // min(config.batch_size, len(dataset))
    completed = result.steps >= config.epochs * steps_per_epoch
    device = resolve_device(config.device)
    metrics = {
        "arch": arch.key, "space": config.space, "objective": config.objective, "num_images": len(dataset),
        "preset": config.preset, "epochs": config.epochs, "batch_size": config.batch_size, "optimizer": config.optimizer, "lr": config.lr,
        "weight_decay": config.weight_decay, "device": str(device), "channels_last": config.channels_last,
        "precision": resolve_precision(config.precision, device).name,
        "steps": result.steps, "completed": completed, "history": result.history, "final_loss": result.final_loss,
        "images_per_second": result.images_per_second, "seconds": result.seconds, "out": str(out_dir),
        "processes": parallel.world_size if parallel is not None else 1, "skipped_images": dataset.num_skipped,
    }  # fmt: skip
    if not is_main:
        return metrics
    save_atomic(
        {
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            "arch": arch.key, "space": config.space, "space_args": space_args, "build_args": {},
            "num_classes": None, "classes": list(dataset.classes), "resolution": int(dataset.images.shape[-1]),
            "objective": config.objective, "seed": config.seed, "data": config.data, "num_images": len(dataset),
            "mean": mean, "std": std, "completed": completed, "steps": result.steps,
        },
        out_dir / MODEL_NAME,
    )  # fmt: skip
    metrics_path.write_text(json.dumps(metrics, indent=2))
    return metrics


def recorded_normalisation(saved: dict[str, Any]) -> dict[str, tuple[float, ...]]:
    """The mean and std a `pretrain` run's model.pt recorded (view keyword arguments; {} where absent)."""
    return {key: tuple(saved[key]) for key in ("mean", "std") if key in saved}


def load_pretrained(run_dir: str | Path, random_init: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network of `run_dir/model.pt` (from `pretrain` or `ssnas train`) and its metadata.

    With `random_init` the weights are the initialisation its training started from
    (seeded by the run's seed), not the trained ones.
    """
    saved = read_model_file(run_dir)
    search_space, arch, _ = resolve_space(saved["space"], saved["arch"], saved["space_args"])
    model = build_seeded(
        search_space, arch, saved.get("seed", 0), num_classes=saved["num_classes"], **saved["build_args"]
    )
    if not random_init:
        model.load_state_dict(saved["state_dict"])
    return model, saved


def _labelled(data: str, split: str, count: int | None, seed: int, resolution: int, skip_corrupt: bool) -> ImageSet:
    dataset = load_dataset(data, split=split, resolution=resolution, skip_corrupt=skip_corrupt)
    if dataset.labels is None:
        raise UserError(f"probing needs labelled images (one subfolder per class) in {data} ({split})")
    return dataset if count is None else dataset.subset(count, seed)


def probe(
    run_dir: str | Path,
    data: str = "cifar10",
    methods: tuple[str, ...] = ("knn",),
    train_images: int | None = None,
    test_images: int | None = None,
    random_init: bool = False,
    seed: int | None = None,
    device: str = "auto",
    batch_size: int = 512,
    precision: str = "auto",
    skip_corrupt: bool = False,
    labels_per_class: int | None = None,
) -> dict[str, Any]:
    """Top-1 of frozen-feature probes of a pretrained network on labelled data.

    Args:
        run_dir: a `pretrain` run folder (holds model.pt).
        data: labelled data with train and test splits (a folder with train/ and test/ class
            folders, or cifar10/cifar100).
        methods: any of "knn" (k 200, cosine, T 0.1) and "linear" (L-BFGS logistic regression).
        train_images, test_images: seeded random subsets; None = the whole split. With the
            run's seed and data, `train_images` = the run's `num_images` picks exactly the
            pretraining images.
        random_init: probe the same network at the initialisation its pretraining started from.
        seed: subset seed; None = the run's seed.
        skip_corrupt: leave unreadable image files out ("skipped_images": how many, both splits).
        labels_per_class: probe with this many training images of each class (`ImageSet.per_class`,
            seeded by `seed`: the subset `ssnas finetune --labels-per-class` trains on); None = all.

    Returns:
        {"accuracy": {method: fraction in [0, 1]}, "train_images", "test_images", ...}.
    """
    unknown = [m for m in methods if m not in PROBES]
    if unknown or not methods:
        raise UserError(f"unknown probe {unknown[0] if unknown else '(none)'!r}; choose from: {', '.join(PROBES)}")
    started = time.perf_counter()
    model, saved = load_pretrained(run_dir, random_init)
    seed = saved.get("seed", 0) if seed is None else seed
    resolution = saved.get("resolution", 32)
    train_set = _labelled(data, "train", train_images, seed, resolution, skip_corrupt)
    if labels_per_class is not None:
        train_set = train_set.per_class(labels_per_class, seed)
    test_set = _labelled(data, "test", test_images, seed, resolution, skip_corrupt)
    assert train_set.labels is not None and test_set.labels is not None
    chosen = resolve_precision(precision, resolve_device(device))
    model.to(resolve_device(device))
    views = identity_views(**recorded_normalisation(saved))
    with chosen.autocast():
        train_feats = extract_features(model, train_set.images, views, batch_size)  # (N, D)
        test_feats = extract_features(model, test_set.images, views, batch_size)  # (M, D)
    accuracy: dict[str, float] = {}
    if "knn" in methods:
        accuracy["knn"] = knn_accuracy(train_feats, train_set.labels, test_feats, test_set.labels)
    if "linear" in methods:
        accuracy["linear"] = linear_probe_accuracy(train_feats, train_set.labels, test_feats, test_set.labels)
    return {
        "accuracy": accuracy,
        "arch": saved["arch"],
        "objective": saved.get("objective", "supervised"),
        "random_init": random_init,
        "train_images": len(train_set),
        "test_images": len(test_set),
        "skipped_images": train_set.num_skipped + test_set.num_skipped,
        "same_images_as_pretraining": data == saved.get("data") and len(train_set) == saved.get("num_images")
        and (train_images is None or seed == saved.get("seed")),
        "feature_dim": int(train_feats.shape[1]),
        "precision": chosen.name,
        "seconds": time.perf_counter() - started,
        "run": str(run_dir),
    }


__all__ = [
    "PAPER",
    "PRESETS",
    "PROBES",
    "DEFAULTS",
    "PaperRecipe",
    "ObjectiveDefaults",
    "PretrainConfig",
    "images_per_second",
    "load_pretrained",
    "pretrain",
    "probe",
    "recorded_normalisation",
    "resolve",
    "space_kwargs",
    "training_images",
]
