"""One search, end to end: config -> data -> task -> strategy -> run folder.

The run folder holds `config.yaml` (fully resolved), `search.log`, the training
checkpoint, `result.json`, `candidates.csv` and `op_distribution.png` (SETN's
evaluator per decision). `resume=True` continues a killed run from its last
checkpoint and ends with the same result as an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ssnas.data.datasets import ImageSet, load_dataset
from ssnas.data.split import Share, fit_split
from ssnas.errors import UserError
from ssnas.faults import fault_point
from ssnas import runfolder
from ssnas.paths import DATA_ENV
from ssnas.reporting import op_distribution_figure, write_search_report
from ssnas.spaces import SearchSpace, create_space
from ssnas.strategies import STRATEGIES, SearchResult, SearchTask, create_strategy
from ssnas.strategies.budget import Budget, Constraint, keep_within
from ssnas.training.distributed import is_main_process, process_group
from ssnas.training.loop import TrainConfig
from ssnas.training.precision import resolve_precision_name

log = logging.getLogger("ssnas")

# Settings that may change when a run is resumed.
RESUMABLE = ("resume", "device", "progress")


@dataclass(frozen=True)
class SearchConfig:
    """Every setting of `ssnas search`; `None` fields take the preset's value."""

    space: str = "nb201"
    strategy: str | None = None  # None = the space's default (SPACE_STRATEGIES)
    objective: str = "simclr"
    data: str | None = None  # image folder, or cifar10/cifar100; default $SSNAS_DATA, else cifar10
    preset: str = "quick"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    out: str = "runs/search"
    resume: bool = False
    progress: bool = True
    num_images: int | None = None  # unlabeled training images used
    holdout_images: int | None = None  # unlabeled held-out images for rating / evaluator steps
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    weight_decay: float | None = None
    channels: int | None = None  # supernet / proxy width C
    cells: int | None = None  # cells per stage N
    select_num: int | None = None  # SETN: candidates rated
    evaluator_every: int | None = None  # SETN: evaluator step every n weight steps
    rating: tuple[str, ...] | None = None  # SETN: label-free rating signals
    trials: int | None = None  # TPE / random: completed trials
    storage: str | None = None  # TPE / random: journal path, sqlite:/// or postgresql:// URL
    study: str | None = None  # TPE / random: study name
    table: str | None = None  # ground-truth CSV for result.json (default: found automatically)
    max_flops: float | None = None  # budget: MFLOPs (millions of multiply-accumulates per 32x32 image)
    max_params: float | None = None  # budget: millions of parameters
    max_latency_ms: float | None = None  # budget: ms per image, batch 1, fp32, measured here
    ranker: str | None = None  # evolution, tpe/random rating trials: init-* signals joined by +, or a ranker
    ratings: int | None = None  # evolution: distinct architectures rated
    population: int | None = None  # evolution: REA population size
    trial_objective: str | None = None  # tpe / random: "ssl-proxy" (CSNAS) or "rating"
    extra: dict[str, Any] = field(default_factory=dict)  # further strategy settings, passed through


PRESETS: dict[str, dict[str, Any]] = {
    # About 10-15 minutes on a 2-core CPU.
    "quick": dict(epochs=5, batch_size=128, lr=0.1, optimizer="sgd",
                  weight_decay=5e-4, channels=16, cells=2, select_num=100, evaluator_every=2,
                  rating=("meco", "naswot"), trials=20),
    # The papers' settings, for a GPU: SETN's NB201 script (methods.md §2.2), CSNAS's trial count.
    "paper": dict(epochs=250, batch_size=64, lr=0.025,
                  optimizer="sgd", weight_decay=5e-4, channels=16, cells=5, select_num=100,
                  evaluator_every=1, rating=("meco", "naswot"), trials=120),
}


# Per-strategy values that replace the preset's, whatever the preset: each method's own scale.
# CSNAS (methods.md §1.4) trains every trial from scratch for 10 epochs on 1 % of the training
# images (`num_images` None = 1 % of the folder, at least one batch), scored on 256 held-out images.
CSNAS_TRIAL: dict[str, Any] = dict(epochs=10)
# Evolution rates networks at initialisation: the benchmark's own network (NB201 C=16, N=5).
EVOLUTION: dict[str, Any] = dict(channels=16, cells=5)
STRATEGY_DEFAULTS: dict[str, dict[str, Any]] = {"tpe": CSNAS_TRIAL, "random": CSNAS_TRIAL, "evolution": EVOLUTION}

# `ssnas search` without --strategy. Where a ground-truth table exists the measured best
# (benchmarks/bench_search.py: NB201 evolution mean 93.65 vs SETN 92.05; NATS size has no
# supernet for SETN); elsewhere the paper method made for that space: CSNAS on DARTS, BossNAS
# on HyTra, SETN's weight sharing on MBConv.
SPACE_STRATEGIES: dict[str, str] = {
    "nb201": "evolution", "nats-size": "evolution", "darts": "tpe", "hytra": "bossnas", "mbconv": "setn",
}
FALLBACK_STRATEGY = "evolution"
# evolution's rating when no --ranker is given (else `EvolutionConfig.rating`): on NATS size the
# ranker `ssnas rank` uses there, chosen on the development half (rankers_nats_dev.json).
SPACE_RATINGS: dict[str, tuple[str, int]] = {"nats-size": ("az-synflow", 16)}  # ranker, images per network
PROXY_FRACTION = 0.01

# Training and held-out image counts as shares of the folder (`ssnas.data.split`), unless given:
# quick = CIFAR-10's 5,000 + 1,024, and 80 % / 20 % of a smaller folder (at least 512 + 256);
# paper = SETN's halves of the training set. CSNAS's trials (tpe, random) use 1 % (at least one
# batch) and 256 held-out images.
PRESET_SPLITS: dict[str, tuple[Share, Share]] = {
    "quick": (Share(0.8, 512, 5000), Share(0.2, 256, 1024)),
    "paper": (Share(0.5, 512, 25000), Share(0.5, 256, 25000)),
}
CSNAS_HOLDOUT = Share(0.0, 256, 256)

# Per-space values that replace the preset's: CSNAS's DARTS proxy network has C=32 and 8 cells in all
# (methods.md §1.2); `cells` counts cells per stage on nb201 and all cells on darts.
SPACE_DEFAULTS: dict[str, dict[str, Any]] = {"darts": dict(channels=32, cells=8)}

# BossNAS's heads on the quick preset (the paper's 2048 / 4096 / 4096 are for a GPU).
BOSSNAS_QUICK_HEADS = dict(neck_width=512, hidden_dim=1024, pred_hidden_dim=1024)


def resolve(config: SearchConfig) -> SearchConfig:
    """Fill `None` fields from the strategy's defaults, then the preset (UserError for an unknown preset)."""
    if config.preset not in PRESETS:
        raise UserError(f"unknown preset {config.preset!r}; choose from: {', '.join(PRESETS)}")
    if config.strategy is None:
        config = replace(config, strategy=default_strategy(config.space))
    preset = {**PRESETS[config.preset], **STRATEGY_DEFAULTS.get(config.strategy, {}), **SPACE_DEFAULTS.get(config.space, {})}
    filled = {name: preset[name] for name in preset if getattr(config, name) is None}
    if config.data is None:
        filled["data"] = os.environ.get(DATA_ENV) or "cifar10"
    filled["precision"] = resolve_precision_name(config.precision, config.device)  # config.yaml: what ran
    resolved = replace(config, **filled)
    if resolved.rating is not None:
        resolved = replace(resolved, rating=tuple(resolved.rating))
    return resolved


def default_strategy(space: str) -> str:
    """The strategy `ssnas search` runs on `space` when none is given."""
    return SPACE_STRATEGIES.get(space, FALLBACK_STRATEGY)


def fit_data(config: SearchConfig) -> tuple[SearchConfig, ImageSet, str]:
    """Load the training images and fix the training / held-out counts the run uses.

    Counts not given take the preset's share of the folder (`PRESET_SPLITS`); returns the
    config with both counts set, the images and a sentence saying what was used and why.
    Raises UserError (one line naming the minimum) when the folder is too small.
    """
    dataset = load_dataset(str(config.data), split="train")
    train_share, holdout_share = PRESET_SPLITS[config.preset]
    if config.strategy in ("tpe", "random"):  # CSNAS's trial scale
        train_share, holdout_share = Share(PROXY_FRACTION, config.batch_size or 128), CSNAS_HOLDOUT
    split = fit_split(
        len(dataset), config.num_images if config.num_images is not None else train_share,
        config.holdout_images if config.holdout_images is not None else holdout_share, source=str(config.data),
    )  # fmt: skip
    return replace(config, num_images=split.num_images, holdout_images=split.holdout_images), dataset, split.reason


def build_task(config: SearchConfig, space: SearchSpace, out_dir: Path, dataset: ImageSet | None = None) -> SearchTask:
    """Split off the held-out images (seeded) and wrap it all in a SearchTask.

    `config` has its counts fixed by `fit_data` (which also loaded `dataset`); without them
    both are found here.
    """
    if dataset is None or config.num_images is None or config.holdout_images is None:
        config, dataset, _ = fit_data(config)
    assert config.num_images is not None and config.holdout_images is not None
    num_images, wanted = config.num_images, config.num_images + config.holdout_images
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(config.seed))
    train_index, holdout_index = order[:num_images], order[num_images:wanted]
    labels = dataset.labels if config.objective == "supervised" else None  # label-free otherwise
    train = TrainConfig(
        epochs=config.epochs or 1, batch_size=config.batch_size or 128, optimizer=config.optimizer or "sgd",
        lr=config.lr or 0.1, weight_decay=config.weight_decay if config.weight_decay is not None else 5e-4,
        nesterov=(config.optimizer or "sgd") == "sgd", warmup_epochs=min(1.0, (config.epochs or 1) / 10),
        precision=config.precision, device=config.device, seed=config.seed, progress=config.progress,
        checkpoint_every=50,
    )
    return SearchTask(
        space=space,
        images=dataset.images[train_index],
        holdout_images=dataset.images[holdout_index],
        objective=config.objective,
        views=_views(config),
        train=train,
        seed=config.seed,
        out_dir=out_dir,
        resume=config.resume,
        labels=labels[train_index] if labels is not None else None,
        holdout_labels=labels[holdout_index] if labels is not None else None,
    )


def strategy_settings(config: SearchConfig) -> dict[str, Any]:
    """The chosen strategy's own settings, from the flat config."""
    if config.strategy == "setn":
        settings = {
            "select_num": config.select_num, "evaluator_every": config.evaluator_every,
            "supernet": _supernet_args(config),
            "rating": {"signals": config.rating} if config.rating else None,
        }  # fmt: skip
        return {**{k: v for k, v in settings.items() if v is not None}, **config.extra}
    if config.strategy == "evolution":
        settings = {"ratings": config.ratings, "population": config.population,
                    "rating": tuple(config.ranker.split("+")) if config.ranker else None}  # fmt: skip
        if not config.ranker and config.space in SPACE_RATINGS:
            ranker, images = SPACE_RATINGS[config.space]
            settings.update(rating=(ranker,), rating_batch_size=images)
        return {**{k: v for k, v in settings.items() if v is not None}, **config.extra}
    if config.strategy in ("tpe", "random"):
        settings: dict[str, Any] = {"n_trials": config.trials, **config.extra}
        if config.trial_objective:
            settings["proxy_trial_objective"] = config.trial_objective
        if config.ranker:
            settings["proxy_rating"] = config.ranker
        if config.storage:
            settings["storage"] = config.storage
        if config.study:
            settings["study_name"] = config.study
        return settings
    if config.strategy == "bossnas":
        settings = dict(BOSSNAS_QUICK_HEADS) if config.preset == "quick" else {}
        if config.space in ("nb201", "nats-size"):  # BossNAS on NATS: one view pair shared by the p paths
            settings["shared_views"] = True
        if config.space == "nb201":  # one block of 15,284 cells: rate a seeded sample of them
            settings["population"] = config.select_num
            settings["supernet"] = _supernet_args(config)
        return {**settings, **config.extra}
    return dict(config.extra)


def _supernet_args(config: SearchConfig) -> dict[str, int]:
    """NB201 supernet width C and cells per stage N, where set."""
    return {k: v for k, v in (("C", config.channels), ("N", config.cells)) if v is not None}


def _views(config: SearchConfig) -> str | None:
    """The view recipe when the space calls for one other than the objective's own (None)."""
    if config.strategy == "bossnas" and config.space in ("nb201", "nats-size"):
        return "crop-flip"  # BossNAS's CIFAR / NATS setting (methods.md §3)
    return None


def budget_constraint(config: SearchConfig) -> Constraint | None:
    """The run's compute budget on the space's full-size network (what `ssnas train` trains), checked
    for feasibility at once (UserError naming the smallest achievable cost); None without one."""
    budget = Budget(config.max_flops, config.max_params, config.max_latency_ms)
    if not budget:
        return None
    constraint = Constraint(create_space(config.space), budget)
    constraint.check_feasible(random.Random(config.seed))
    return constraint


def _space(config: SearchConfig) -> SearchSpace:
    if config.space == "nb201" and config.strategy in ("tpe", "random", "evolution"):
        return create_space("nb201", C=config.channels or 16, N=config.cells or 5)
    if config.space == "darts":
        return create_space("darts", C=config.channels or 32, layers=config.cells or 8)
    return create_space(config.space)


def prepare_run_folder(config: SearchConfig) -> Path:
    """Create the run folder, or check that a resumed run has the same settings."""
    return runfolder.prepare_run_folder(Path(config.out), config_dict(config), config.resume, RESUMABLE)


def config_dict(config: SearchConfig) -> dict[str, Any]:
    values = asdict(config)
    values["rating"] = list(values["rating"]) if values["rating"] is not None else None
    return values


def run_search(config: SearchConfig) -> dict[str, Any]:
    """Run one search and write its run folder; returns the `result.json` payload."""
    config = resolve(config)
    runfolder.check_out(Path(config.out), config.resume)  # before the data is loaded
    STRATEGIES.get(config.strategy)  # fail early on an unknown name
    space = _space(config)
    strategy = create_strategy(config.strategy, **strategy_settings(config))
    if config.strategy in ("tpe", "random") and process_group() is not None:
        raise UserError("tpe / random run one trial per process: start more with `ssnas worker`, not torchrun")
    if config.strategy in ("tpe", "random"):
        strategy.check_storage()  # type: ignore[attr-defined]  # a wrong URL or password fails before the run folder exists
    constraint = budget_constraint(config)
    config, dataset, split_reason = fit_data(config)
    out_dir = prepare_run_folder(config)
    if constraint is not None:
        constraint.costs.attach(out_dir / "latency.json")
    handler = _log_to(out_dir / "search.log" if is_main_process() else None)
    try:
        scored_by = "a label-free rating at initialisation" if config.strategy == "evolution" else config.objective
        log.info("search %s on %s with %s, preset %s, seed %d, precision %s", config.strategy, config.space,
                 scored_by, config.preset, config.seed, config.precision)  # fmt: skip
        log.info("images from %s %s", config.data, split_reason)
        task = replace(build_task(config, space, out_dir, dataset), budget=constraint)
        started = time.perf_counter()
        result = keep_within(strategy.search(task), constraint)
        seconds = time.perf_counter() - started
        if constraint is not None:
            result.info["budget"] = constraint.report(result.best.arch)
        if is_main_process():
            payload = write_result(out_dir, config, result, seconds, is_cifar10(dataset))
        else:
            payload = _payload(config, result, seconds)
        log.info("best %s score %.4f (%.0f s)", result.best.arch.key, result.best.score, seconds)
        return payload
    finally:
        logging.getLogger("ssnas").removeHandler(handler)
        handler.close()


def run_rank(config: SearchConfig, archs_text: list[str] | None, sample: int | None, sample_seed: int) -> tuple[list[Any], SearchConfig]:
    """Train what the strategy needs (or reuse its checkpoint with resume) and rate the given
    architectures; returns the ScoredArch list (in input order) and the resolved config."""
    from ssnas.ranking.selection import sample_architectures
    from ssnas.strategies import SupportsRating

    config = resolve(config)
    runfolder.check_out(Path(config.out), config.resume)  # before the data is loaded
    space = _space(config)
    settings = strategy_settings(config)
    if config.strategy == "bossnas" and config.space == "nb201" and "population" not in config.extra:
        settings["population"] = 0  # the centre of the given cells only
    strategy = create_strategy(config.strategy, **settings)
    if not isinstance(strategy, SupportsRating):
        raise UserError(f"strategy {config.strategy!r} cannot rate a given list of architectures")
    archs = [space.parse(text) for text in archs_text] if archs_text else sample_architectures(space, sample or 0, sample_seed)
    config, dataset, split_reason = fit_data(config)
    out_dir = prepare_run_folder(config)
    handler = _log_to(out_dir / "rank.log" if is_main_process() else None)
    try:
        log.info("rank %d architectures with %s on %s, precision %s", len(archs), config.strategy, config.space,
                 config.precision)  # fmt: skip
        log.info("images from %s %s", config.data, split_reason)
        task = build_task(config, space, out_dir, dataset)
        return strategy.rate(task, archs), config
    finally:
        logging.getLogger("ssnas").removeHandler(handler)
        handler.close()


def run_worker(config: SearchConfig, study: str, storage: str) -> dict[str, Any]:
    """Join the Optuna study `study` in `storage` (started by `ssnas search --strategy tpe|random`)."""
    from ssnas.strategies.tpe import check_study, run_worker as work_on_study

    check_study(study, storage)  # before the log folder is made: a wrong URL leaves nothing behind
    config = resolve(config)
    space = _space(config)
    out_dir = Path(config.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    task = build_task(replace(config, resume=True), space, out_dir)
    result = work_on_study(study, storage, task)
    return {"best": {"arch": result.best.arch.key, "score": result.best.score}, "study": study, "storage": storage,
            "num_candidates": len(result.candidates)}


def write_result(out_dir: Path, config: SearchConfig, result: SearchResult, seconds: float,
                 data_is_cifar10: bool = False) -> dict[str, Any]:  # fmt: skip
    """result.json, candidates.csv and the evaluator plot.

    The benchmark's accuracy of each cell is added only when the data is CIFAR-10 or the user
    named a `--table`: it is the cell's CIFAR-10 reference accuracy, not a measurement on the data.
    """
    truth = _ground_truth(config, [c.arch.key for c in result.candidates]) if data_is_cifar10 or config.table else {}
    payload = _payload(config, result, seconds, truth.get(result.best.arch.key))
    payload["ground_truth_note"] = GROUND_TRUTH_NOTE if payload["ground_truth"] else NO_GROUND_TRUTH_NOTE
    _atomic_write(out_dir / "result.json", json.dumps(payload, indent=2, default=float))
    fault_point("write")  # tests only
    detail_names = sorted({name for c in result.candidates for name in c.details})
    truth_names = sorted({name for values in truth.values() for name in values})
    rows = [["rank", "arch", "score", *detail_names, *truth_names]]
    for rank, c in enumerate(result.candidates, start=1):
        known = truth.get(c.arch.key, {})
        rows.append([rank, c.arch.key, c.score, *[c.details.get(n, "") for n in detail_names],
                     *[known.get(n, "") for n in truth_names]])  # fmt: skip
    with (out_dir / "candidates.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    if "op_probabilities" in result.info:
        (out_dir / "op_distribution.png").write_bytes(op_distribution_figure(result.info["op_probabilities"]))
    write_search_report(out_dir, config_dict(config), result, payload, truth)
    return payload


def _payload(config: SearchConfig, result: SearchResult, seconds: float, truth: dict[str, float] | None = None) -> dict[str, Any]:
    return {
        "best": {"arch": result.best.arch.key, "score": result.best.score, **result.best.details},
        "ground_truth": truth,
        "strategy": config.strategy,
        "space": config.space,
        "objective": config.objective,
        "seed": config.seed,
        "seconds": seconds,
        "num_candidates": len(result.candidates),
        "budget": result.info.get("budget"),
        "info": result.info,
    }


GROUND_TRUTH_NOTE = ("NAS-Bench-201 / NATS-Bench reference accuracy of this architecture (supervised training on "
                     "CIFAR-10, CIFAR-100, ImageNet16-120), looked up in the benchmark table, not measured on this run's data")
NO_GROUND_TRUTH_NOTE = ("no ground truth is known for this data and space (the NAS-Bench-201 / NATS tables are CIFAR-10's; "
                        "pass --table to look the cells up anyway)")
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def is_cifar10(dataset: ImageSet) -> bool:
    """CIFAR-10 itself, or a folder of its ten classes at 32x32 (the NAS-Bench-201 tables' data)."""
    if dataset.source.lower().startswith("cifar10/"):
        return True
    return sorted(c.lower() for c in dataset.classes) == CIFAR10_CLASSES and dataset.images.shape[-1] == 32


# The benchmark table holding each space's CIFAR-10 ground truth.
SPACE_TABLES: dict[str, str] = {"nb201": "nb201", "nats-size": "nats-sss"}


def _ground_truth(config: SearchConfig, keys: list[str]) -> dict[str, dict[str, float]]:
    if config.space not in SPACE_TABLES:
        return {}
    from ssnas.groundtruth.tables import TABLES

    try:
        table = TABLES.create(SPACE_TABLES[config.space], path=Path(config.table) if config.table else None)
    except UserError as error:
        log.info("no ground truth in result.json: %s", error)
        return {}
    return {key: table.metrics(key) for key in keys if key in table}


def _log_to(path: Path | None) -> logging.Handler:
    """A handler for the `ssnas` logger: into `path`, or nowhere (None: a process other than 0)."""
    handler: logging.Handler = logging.FileHandler(path) if path is not None else logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("ssnas")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    return handler


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


__all__ = ["PRESETS", "SearchConfig", "config_dict", "resolve", "run_rank", "run_search", "run_worker"]
