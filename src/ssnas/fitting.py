"""From a folder of unlabeled images and a few labelled ones to a trained, exported model, in one run.

    summary = fit(FitConfig(data="unlabeled/", labels="labelled/", labels_per_class=50, time_budget=60))

Each stage is the library's own workflow, writing its usual run folder inside the fit's:

1. `search/`: label-free search of the space (`ssnas search`, its default strategy) on the unlabeled images;
2. `pretrain/`: the found architecture's network pretrained self-supervised (`ssnas pretrain`,
   SimCLR by default) on every unlabeled image; then kNN probes (k 200, cosine) of its features on
   the labelled images, at its initialisation and after pretraining (`ssnas probe`);
3. `finetune/`: fine-tuned with the labelled images (`ssnas finetune`: a linear probe fits a fresh
   head, then the whole network trains with SimCLR's fine-tuning recipe);
4. `model.ts` (+ `model.ts.json`): the fine-tuned network in TorchScript (`ssnas export`; with
   `onnx`, `model.onnx` too), its parameters and FLOPs counted (`count_macs`) and one image timed
   through the exported file (batch 1, fp32);
5. `metrics.json` and `report.html`: the whole path on one page.

`fit.json` holds each stage's plan (made once, before the stage starts) and, when it has ended, its
outcome and seconds. `resume=True` skips the ended stages, continues the interrupted one from its
own checkpoint with the same plan, and so ends with the same metrics as an uninterrupted run.

Time budget (`time_budget`, minutes for the whole run; `SHARES`): `reserve` of it is kept for reading
the data, the export and the report; the search gets `search` of the budget, no more than the
space's own default search budget (`EVOLUTION_PLANS`: the measured budget curve flattens after it).
Of what is left when the search ends, the time of every evaluation still to come (`_evaluations`,
timed on one batch) is set aside, pretraining gets `pretrain` and fine-tuning the rest. A training
stage times a few of its steps here (`ssnas.training.loop.images_per_second`, batches of
`TIMING_BATCH`) and takes the most epochs that fit its share: pretraining, where not even one epoch
of every image fits (a CPU and a large folder), one epoch over the seeded subset that does;
fine-tuning at least one. Neither takes more than its preset's epochs, which is also what each takes
without a time budget (quick: 100 pretraining and 60 fine-tuning epochs; `preset="paper"` applies the
papers' settings to every stage: `ssnas.pretraining.PAPER`, `ssnas.finetuning.preset_recipe`).
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ssnas.atomic import write_atomic
from ssnas.errors import UserError
from ssnas.export import export
from ssnas.finetuning import finetune, labelled_sets, preset_recipe
from ssnas.finetuning import images_per_second as finetune_speed
from ssnas.data.datasets import ImageSet
from ssnas.data.views import identity_views
from ssnas.pretraining import (
    PretrainConfig, load_pretrained, pretrain, probe, recorded_normalisation, space_kwargs, training_images,
)
from ssnas.pretraining import resolve as resolve_pretrain
from ssnas.pretraining import images_per_second as pretrain_speed
from ssnas.reporting.fit_page import fit_page
from ssnas.retrain import build_seeded, load_model, read_arch_text, read_model_file, resolve_space
from ssnas.run import run_search, search_config
from ssnas.runfolder import check_run_folder, out_or_new, read_json, write_config
from ssnas.spaces.budget import LatencyConfig, network_latency_ms
from ssnas.spaces.cost import count_macs, count_parameters
from ssnas.strategies.evolution import EVOLUTION_PLANS
from ssnas.training.probes import extract_features

log = logging.getLogger(__name__)

STATE_NAME = "fit.json"
METRICS_NAME = "metrics.json"
REPORT_NAME = "report.html"
MODEL_NAME = "model.ts"
ONNX_NAME = "model.onnx"
# Labelled images each class needs at least: fine-tuning and the kNN probe learn nothing about a
# class from a single example beyond that example.
LABELS_FLOOR = 2
PROBE_TEST_IMAGES = 2_000  # test images the kNN probes classify (a seeded subset): they inform, they are not the result
TIMING_BATCH = 64  # images per step when a plan times the training and the evaluation (a few steps)
# Settings that may differ between a run and its resumption.
RESUMABLE = ("resume", "device", "progress")


@dataclass(frozen=True)
class Shares:
    """How a time budget is split (fractions; see the module docstring)."""

    reserve: float = 0.05  # of the budget: reading and checking the data, export, report
    search: float = 0.20  # of the budget, at most the space's default search budget
    pretrain: float = 0.75  # of what the budget has left after the search (less the reserve and the evaluations)


SHARES = Shares()


@dataclass(frozen=True)
class FitConfig:
    """Every setting of `ssnas fit`."""

    data: str  # unlabeled images: a folder (flat, or split into train/ and test/: train/ is used)
    labels: str  # labelled images: a folder with train/ and test/ class folders, or cifar10 / cifar100
    labels_per_class: int | None = None  # fine-tune on this many labelled images per class (seeded); None = all
    time_budget: float | None = None  # minutes for the whole run; None = each stage's default
    space: str = "nb201"
    strategy: str | None = None  # None = the space's default
    search_options: dict[str, Any] = field(default_factory=dict)  # more `ssnas search` settings: {"ratings": 200}
    objective: str = "simclr"
    preset: str = "quick"  # every stage's: "quick" (a CPU) or "paper" (the papers' settings, a GPU)
    pretrain_epochs: int | None = None  # None: planned from the time budget (at most the preset's), else the preset's
    finetune_epochs: int | None = None  # None: planned from the time budget (at most the preset's), else the preset's
    batch_size: int | None = None  # pretraining batch; None: the preset's (quick 256, paper 512)
    finetune_batch_size: int | None = None  # None: the preset's (quick 128, paper 512)
    channels: int | None = None  # network width C (search rating and trained network) [space default]
    cells: int | None = None  # cells per stage N (nb201) / layers (darts) [space default]
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    skip_corrupt: bool = False
    onnx: bool = False  # also write model.onnx (checked against PyTorch where onnxruntime is installed)
    out: str | None = None  # run folder; None = a new one under runs/
    resume: bool = False
    progress: bool = True


class _Clock:
    """Seconds of the budget spent: the ended stages' (fit.json) plus this process's."""

    def __init__(self, budget_minutes: float | None, spent_before: float, started: float) -> None:
        self.budget = None if budget_minutes is None else 60.0 * budget_minutes
        self.spent_before = spent_before
        self.started = started  # time.monotonic()

    def spent(self) -> float:
        return self.spent_before + time.monotonic() - self.started

    def planned_left(self) -> float:
        """Seconds left for the planned stages (the budget less the reserve and what is spent)."""
        assert self.budget is not None
        return max(0.0, self.budget * (1.0 - SHARES.reserve) - self.spent())


def fit(config: FitConfig, started: float | None = None) -> dict[str, Any]:
    """Search, pretrain, fine-tune and export; returns (and writes) the run's metrics.json. A time
    budget counts from `started` (`time.monotonic()`; None = now; `ssnas fit`: its process's start).

    Raises:
        UserError: before anything is written, for what cannot work: no labels, a class with
            fewer than `LABELS_FLOOR` labelled images (or than `labels_per_class`), train/ and
            test/ with different classes, a bad search option, a run folder in the way.
    """
    started = time.monotonic() if started is None else started
    _check_settings(config)
    out = out_or_new(config.out, config.resume, "fit", config.space, f"s{config.seed}")
    config = replace(config, out=config.out or str(out))
    settings = asdict(config)
    check_run_folder(out, settings, config.resume, RESUMABLE)
    labelled, test, share_of_labels = labelled_sets(config.labels, config.labels_per_class, config.seed, skip_corrupt=config.skip_corrupt)
    _check_floor(labelled, config.labels)
    unlabeled = len(training_images(config.data, None, config.seed, config.skip_corrupt))  # refuses a wrong path now
    _search_config(config, out, minutes=None)  # an unknown search option is refused here
    write_config(out, settings)
    state: dict[str, Any] = read_json(out / STATE_NAME) if (out / STATE_NAME).exists() else {"stages": {}}
    ended = [entry for entry in state["stages"].values() if entry["done"]]
    clock = _Clock(config.time_budget, sum(entry["seconds"] for entry in ended), started)
    log.info("fit: %d unlabeled images of %s, %d labelled training images of %s (%d test), %s", unlabeled,
             config.data, len(labelled), config.labels, len(test), _budget_text(config))  # fmt: skip

    def stage(name: str, plan: dict[str, Any], work: Any) -> dict[str, Any]:
        """Run `work(plan)` unless fit.json says the stage ended; record its plan first, its outcome after."""
        entry = state["stages"].setdefault(name, {"plan": plan, "done": False})
        if entry["done"]:
            return dict(entry["outcome"])
        started = time.perf_counter()
        outcome = work(entry["plan"])
        entry.update(done=True, outcome=outcome, seconds=time.perf_counter() - started)
        write_atomic(out / STATE_NAME, json.dumps(state, indent=1))
        return dict(outcome)

    def planned(name: str, make: Any) -> dict[str, Any]:
        """The stage's plan: saved before it first started (a resumed stage keeps it), else made now."""
        if name in state["stages"]:
            return dict(state["stages"][name]["plan"])
        plan: dict[str, Any] = make()
        state["stages"][name] = {"plan": plan, "done": False}
        write_atomic(out / STATE_NAME, json.dumps(state, indent=1))
        return plan

    search_plan = planned("search", lambda: _search_plan(config, clock))
    found = stage("search", search_plan, lambda plan: _search(config, out, plan, started))
    pretrain_config = _pretrain_config(config, out, found["arch"])
    pretrain_plan = planned("pretrain", lambda: _pretrain_plan(config, pretrain_config, clock, unlabeled, labelled, test))
    pretrained = stage("pretrain", pretrain_plan, lambda plan: _pretrain(pretrain_config, plan, out))
    probes = stage("probe", {}, lambda plan: _probes(config, out / "pretrain", len(test)))
    finetune_plan = planned("finetune", lambda: _finetune_plan(config, out / "pretrain", clock, labelled, test,
                                                                   share_of_labels))
    tuned = stage("finetune", finetune_plan, lambda plan: _finetune(config, out, plan))
    exported = stage("export", {}, lambda plan: _export(found, out, config.onnx))

    metrics = {
        "arch": found["arch"], "space": config.space, "search": found, "pretrain": pretrained, "probes": probes,
        "finetune": tuned, "export": exported, "test_accuracy": tuned["test_accuracy"],
        "linear_probe_accuracy": tuned["linear_probe_accuracy"], "labels_per_class": config.labels_per_class,
        "labelled_images": len(labelled), "unlabeled_images": unlabeled, "test_images": len(test),
        "time_budget_minutes": config.time_budget, "shares": asdict(SHARES) if config.time_budget else None,
        "plans": {name: entry["plan"] for name, entry in state["stages"].items() if entry["plan"]},
        "stage_seconds": {name: round(entry.get("seconds", 0.0), 2) for name, entry in state["stages"].items()},
        "seconds": clock.spent(), "model": str(out / MODEL_NAME), "out": str(out),
    }  # fmt: skip
    write_atomic(out / METRICS_NAME, json.dumps(metrics, indent=2))
    write_atomic(out / REPORT_NAME, fit_page(metrics, settings))
    log.info("fit: %s, test accuracy %.4f (linear probe %.4f); model %s", found["arch"], tuned["test_accuracy"],
             tuned["linear_probe_accuracy"], out / MODEL_NAME)  # fmt: skip
    return metrics


def _check_settings(config: FitConfig) -> None:
    if config.time_budget is not None and not config.time_budget > 0:
        raise UserError(f"--time-budget must be a positive number of minutes, got {config.time_budget}")
    if config.labels_per_class is not None and config.labels_per_class < LABELS_FLOOR:
        raise UserError(f"--labels-per-class must be at least {LABELS_FLOOR}, got {config.labels_per_class}")
    for name in ("data", "out", "seed", "resume", "progress", "device", "precision", "space", "strategy",
                 "skip_corrupt", "time_budget", "channels", "cells"):  # fmt: skip
        if name in config.search_options:
            raise UserError(f"search option {name!r} is a setting of the fit itself; give it as --{name.replace('_', '-')}")


def _check_floor(labelled: ImageSet, source: str) -> None:
    """UserError when a class of the labelled training images has fewer than `LABELS_FLOOR`."""
    assert labelled.labels is not None  # `labelled_sets` refuses unlabeled images
    counts = torch.bincount(labelled.labels, minlength=len(labelled.classes))
    smallest = int(counts.argmin())
    if int(counts[smallest]) < LABELS_FLOOR:
        raise UserError(f"class {labelled.classes[smallest]!r} of {source} has {int(counts[smallest])} labelled "
                        f"image(s); fine-tuning needs at least {LABELS_FLOOR} of every class")  # fmt: skip


def _budget_text(config: FitConfig) -> str:
    if config.time_budget is None:
        return "no time budget (each stage's default)"
    return (f"a {config.time_budget:g}-minute budget: {SHARES.reserve:.0%} kept for data, export and report, "
            f"the search {SHARES.search:.0%} (at most the space's default), then, the evaluations' time set aside, "
            f"{SHARES.pretrain:.0%} of the rest to pretraining and the remainder to fine-tuning")  # fmt: skip


def _search_config(config: FitConfig, out: Path, minutes: float | None) -> Any:
    sized = {"channels": config.channels, "cells": config.cells}
    return search_config(space=config.space, strategy=config.strategy, data=config.data, seed=config.seed,
                         out=str(out / "search"), device=config.device, precision=config.precision,
                         resume=(out / "search").exists(), progress=config.progress, skip_corrupt=config.skip_corrupt,
                         time_budget=minutes, preset=config.preset, **{k: v for k, v in sized.items() if v is not None},
                         **config.search_options)  # fmt: skip


def _search_plan(config: FitConfig, clock: _Clock) -> dict[str, Any]:
    if clock.budget is None:
        return {"minutes": None}
    cap = EVOLUTION_PLANS.get(config.space, (math.inf,))[0] * 60.0
    return {"minutes": round(min(SHARES.search * clock.budget, cap) / 60.0, 4)}


def _search(config: FitConfig, out: Path, plan: dict[str, Any], started: float) -> dict[str, Any]:
    payload = run_search(_search_config(config, out, plan["minutes"]), started)
    best = payload["best"]
    return {"arch": best["arch"], "score": best.get("score"), "strategy": payload.get("strategy"),
            "rated": payload.get("info", {}).get("rated"), "seconds": payload.get("seconds"),
            "truth": best.get("truth", {}), "out": str(out / "search")}  # fmt: skip


def _pretrain_config(config: FitConfig, out: Path, arch: str) -> PretrainConfig:
    return PretrainConfig(arch=arch, space=config.space, objective=config.objective, data=config.data,
                          skip_corrupt=config.skip_corrupt, preset=config.preset, batch_size=config.batch_size,
                          channels=config.channels, cells=config.cells, precision=config.precision,
                          device=config.device, seed=config.seed, out=str(out / "pretrain"),
                          resume=(out / "pretrain").exists(), progress=config.progress)  # fmt: skip


def _whole_epochs(seconds: float, images_per_second: float, images: int, batch_size: int) -> int:
    """The whole epochs of `images` (whole batches) that `seconds` hold at `images_per_second` (maybe 0)."""
    per_epoch = max(1, images // min(batch_size, images)) * min(batch_size, images)
    return math.floor(seconds * images_per_second / per_epoch)


def _pretrain_plan(config: FitConfig, pretrain_config: PretrainConfig, clock: _Clock, images: int, labelled: ImageSet,
                   test: ImageSet) -> dict[str, Any]:  # fmt: skip
    """Epochs that fit the share; where not even one epoch of every image fits (a CPU and a large folder),
    one epoch over the seeded subset of images that does (at least two batches). The share is taken
    after the time of every evaluation still to come (`_evaluations`) is set aside."""
    preset = resolve_pretrain(pretrain_config)  # the preset's epochs and batch size where fit sets none
    assert preset.epochs is not None and preset.batch_size is not None
    if config.pretrain_epochs is not None or clock.budget is None:
        return {"epochs": config.pretrain_epochs or preset.epochs, "num_images": None}
    batch_size = preset.batch_size
    timing = replace(pretrain_config, progress=False, batch_size=min(TIMING_BATCH, batch_size))
    speed = pretrain_speed(timing, steps=2)
    search_space, arch, _ = resolve_space(config.space, read_arch_text(pretrain_config.arch),
                                          space_kwargs(config.space, config.channels, config.cells))  # fmt: skip
    evaluation = _feature_seconds(build_seeded(search_space, arch, config.seed), identity_views(), test.images,
                                  _evaluations(len(labelled), len(test), probes=True))  # fmt: skip
    share = SHARES.pretrain * max(0.0, clock.planned_left() - evaluation)
    epochs = min(preset.epochs, _whole_epochs(share, speed, images, batch_size))
    subset = None
    if epochs < 1:
        epochs, subset = 1, min(images, max(2 * batch_size, math.floor(share * speed)))
    log.info("fit: pretraining gets %.0f s at %.0f images/s (%.0f s set aside for evaluations): %d epoch(s) of %d "
             "images", share, speed, evaluation, epochs, subset or images)  # fmt: skip
    return {"epochs": epochs, "num_images": subset, "seconds": round(share, 1), "images_per_second": round(speed, 1),
            "evaluation_seconds": round(evaluation, 1)}  # fmt: skip


def _evaluations(labelled: int, test: int, probes: bool) -> int:
    """Images the stages still to come pass through the frozen or trained network outside training: the two
    kNN probes (labelled + at most `PROBE_TEST_IMAGES` test images each), the linear head's features
    (labelled) and two test passes of fine-tuning (linear probe, then fine-tuned)."""
    return (2 * (labelled + min(test, PROBE_TEST_IMAGES)) if probes else 0) + labelled + 2 * test


def _pretrain(pretrain_config: PretrainConfig, plan: dict[str, Any], out: Path) -> dict[str, Any]:
    metrics = pretrain(replace(pretrain_config, epochs=int(plan["epochs"]), num_images=plan["num_images"],
                               resume=(out / "pretrain").exists()))  # fmt: skip
    return {key: metrics[key] for key in ("objective", "epochs", "steps", "num_images", "history", "final_loss",
                                          "images_per_second", "seconds", "precision", "out")}  # fmt: skip


def _probes(config: FitConfig, run_dir: Path, test_images: int) -> dict[str, Any]:
    """kNN top-1 of the frozen features on the labelled images (at most `PROBE_TEST_IMAGES` test images):
    at initialisation and after pretraining."""
    common = dict(data=config.labels, methods=("knn",), labels_per_class=config.labels_per_class, seed=config.seed,
                  test_images=min(PROBE_TEST_IMAGES, test_images), device=config.device, precision=config.precision,
                  skip_corrupt=config.skip_corrupt)  # fmt: skip
    before = probe(run_dir, random_init=True, **common)  # type: ignore[arg-type]
    after = probe(run_dir, **common)  # type: ignore[arg-type]
    return {"knn_at_initialisation": before["accuracy"]["knn"], "knn_after_pretraining": after["accuracy"]["knn"],
            "train_images": after["train_images"], "test_images": after["test_images"]}  # fmt: skip


def _finetune_plan(config: FitConfig, run_dir: Path, clock: _Clock, labelled: ImageSet, test: ImageSet,
                   share_of_labels: float) -> dict[str, Any]:  # fmt: skip
    """Epochs that fit what the budget has left, less the time fine-tuning spends outside its steps
    (`_evaluations`, timed on one batch); at least one, at most the recipe's."""
    recipe = preset_recipe(config.preset, share_of_labels, batch_size=config.finetune_batch_size)
    if config.finetune_epochs is not None or clock.budget is None:
        return {"epochs": config.finetune_epochs or recipe.epochs}
    speed = finetune_speed(run_dir, config.labels, config.labels_per_class, preset=config.preset,
                           batch_size=min(TIMING_BATCH, recipe.batch_size), seed=config.seed, device=config.device,
                           precision=config.precision, skip_corrupt=config.skip_corrupt, steps=2)  # fmt: skip
    model, saved = load_pretrained(run_dir)
    views = identity_views(**recorded_normalisation(saved))
    evaluation = _feature_seconds(model, views, test.images, _evaluations(len(labelled), len(test), probes=False))
    share = max(0.0, clock.planned_left() - evaluation)
    epochs = max(1, min(recipe.epochs, _whole_epochs(share, speed, len(labelled), recipe.batch_size)))
    log.info("fit: fine-tuning gets %.0f s at %.0f images/s (%.0f s set aside for its evaluations): %d epoch(s)",
             share, speed, evaluation, epochs)  # fmt: skip
    return {"epochs": epochs, "seconds": round(share, 1), "images_per_second": round(speed, 1),
            "evaluation_seconds": round(evaluation, 1)}  # fmt: skip


def _feature_seconds(model: torch.nn.Module, views: Any, sample: torch.Tensor, images: int) -> float:
    """Seconds for eval-mode features of `images` images, timed on up to `TIMING_BATCH` images of
    `sample` (N,3,H,W) uint8 after a warm-up batch of 16."""
    batch = sample[:TIMING_BATCH]
    extract_features(model, batch[:16], views)  # warm-up: kernel choice, caches
    started = time.perf_counter()
    extract_features(model, batch, views)
    return (time.perf_counter() - started) / max(1, len(batch)) * images


def _finetune(config: FitConfig, out: Path, plan: dict[str, Any]) -> dict[str, Any]:
    metrics = finetune(out / "pretrain", config.labels, config.labels_per_class, out / "finetune",
                       resume=(out / "finetune").exists(), preset=config.preset, epochs=int(plan["epochs"]),
                       batch_size=config.finetune_batch_size, seed=config.seed, device=config.device,
                       precision=config.precision, progress=config.progress, skip_corrupt=config.skip_corrupt)  # fmt: skip
    return {key: metrics[key] for key in ("test_accuracy", "linear_probe_accuracy", "epochs", "steps", "history",
                                          "final_loss", "train_images", "test_images", "num_classes", "seconds",
                                          "out")}  # fmt: skip


def _export(found: dict[str, Any], out: Path, onnx: bool) -> dict[str, Any]:
    """TorchScript of the fine-tuned network; its parameters and FLOPs (counted on the network it was
    traced from) and the latency of the exported file (batch 1, fp32, CPU)."""
    saved = read_model_file(out / "finetune")
    written = export(found["arch"], saved["space"], out / "finetune", format="torchscript", out=out / MODEL_NAME)
    size = int(written["resolution"])
    image = torch.zeros(1, 3, size, size)
    network = load_model(out / "finetune")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 deprecates TorchScript; it still works
        exported = torch.jit.load(str(out / MODEL_NAME))
    outcome = {"file": str(out / MODEL_NAME), "format": "torchscript", "resolution": size,
               "params": count_parameters(network), "flops": count_macs(network, image),
               "latency_ms": network_latency_ms(exported, LatencyConfig(image_size=size)),
               "max_trace_difference": written["max_trace_difference"]}  # fmt: skip
    if onnx:
        written = export(found["arch"], saved["space"], out / "finetune", format="onnx", out=out / ONNX_NAME)
        outcome["onnx"] = {key: written[key] for key in ("out", "onnx_opset", "onnx_check") if key in written}
        outcome["onnx"]["max_onnx_difference"] = written.get("max_onnx_difference")
    return outcome


__all__ = ["FitConfig", "LABELS_FLOOR", "SHARES", "Shares", "fit"]
