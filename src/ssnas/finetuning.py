"""Fine-tune a self-supervised checkpoint with the labels there are, and report its test accuracy.

    metrics = finetune("runs/pretrain", data="labelled/", labels_per_class=50, out_dir="runs/finetune")

The network of a `pretrain` run folder (`ssnas.pretraining`) gets a fresh linear classifier and is
trained in two steps, as the self-supervised literature does:

1. **Linear probe first** (LP-FT: Kumar et al., "Fine-Tuning can Distort Pretrained Features and
   Underperform Out-of-Distribution", ICLR 2022): the new head is fitted by logistic regression
   (`ssnas.training.probes.fit_linear_head`) on the frozen features of the labelled training
   images, so fine-tuning starts from a head that fits the features instead of a random one,
   which would send large gradients into the pretrained backbone;
2. **then the whole network** with the `ssl-finetune` recipe (`ssnas.training.recipes`): SimCLR's
   semi-supervised fine-tuning (Chen et al., ICML 2020, appendix B.5: Nesterov SGD, lr 0.05 x
   batch / 256, no weight decay, no warm-up, random crop and flip, 60 epochs), on the loop's
   per-step cosine schedule, at the pretraining's normalisation.

`preset="paper"` sizes the same recipe for a GPU: batch 512 (lr 0.1 by the rule above) and SimCLR's
epochs by the share of labels, 60 below 10 % of the labelled training split, 30 from 10 % on.

`labels_per_class` keeps a seeded, class-balanced subset of the labelled training images (SimCLR's
1 % / 10 % protocol). The run folder has the format of `ssnas train` (`ssnas.retrain`): config.yaml,
checkpoint.pt (exact resume), model.pt (`load_model`, `ssnas export`), metrics.json with the test
accuracy after the linear probe and after fine-tuning.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from ssnas.data.datasets import ImageSet, load_dataset, skipped_note
from ssnas.data.views import VIEWS, identity_views
from ssnas.errors import UserError
from ssnas.pretraining import PRESETS, recorded_normalisation
from ssnas.retrain import METRICS_NAME, MODEL_NAME, build_seeded, evaluate, num_classes_of, read_model_file, resolve_space
from ssnas.runfolder import out_or_new, prepare_run_folder
from ssnas.training.checkpoint import save_atomic
from ssnas.training.loop import train
from ssnas.training.precision import resolve_device, resolve_precision
from ssnas.training.probes import extract_features, fit_linear_head
from ssnas.training.loop import images_per_second as loop_images_per_second
from ssnas.training.recipes import RECIPES, Recipe

log = logging.getLogger(__name__)

RECIPE = "ssl-finetune"
# --preset paper: a GPU batch, and SimCLR appendix B.5's epochs by the share of labels (60 at 1 %, 30 at 10 %).
PAPER_BATCH = 512
PAPER_EPOCHS = ((0.1, 30), (0.0, 60))  # (from this share of the labelled split on, epochs)
# Fine-tuning in bf16 was not measured for the accuracy it ends with, so `auto` means fp32 on a CPU
# (`ssnas.training.precision`), as for `ssnas pretrain`.
BF16_KEEPS_QUALITY = False
# Settings that may differ between a run and its resumption.
RESUMABLE = ("resume", "device", "progress", "max_steps", "skip_corrupt")


def finetune(
    run_dir: str | Path,
    data: str = "cifar10",
    labels_per_class: int | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    *,
    preset: str = "quick",
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    max_steps: int | None = None,
    progress: bool = True,
    skip_corrupt: bool = False,
) -> dict[str, Any]:
    """Fine-tune the network of the `pretrain` run `run_dir` on the labelled images of `data`.

    Args:
        run_dir: a `pretrain` run folder (or its model.pt).
        data: "cifar10", "cifar100" or a labelled folder with train/ and test/ class folders.
        labels_per_class: train on this many labelled images of every class (seeded by `seed`);
            None = every labelled training image.
        preset: "quick" (the recipe at batch 128, 60 epochs: a CPU) or "paper" (batch 512 and SimCLR's
            epochs by the share of labels: a GPU).
        epochs, batch_size, lr: override the preset (lr by default 0.05 x batch / 256).
        max_steps: stop early (the schedule still spans `epochs`); for smoke tests.

    Returns:
        The `metrics.json` payload: test_accuracy (after fine-tuning) and linear_probe_accuracy (the
        fitted head on the frozen backbone), both in [0, 1], history, seconds, ...
    """
    started = time.perf_counter()
    saved = read_model_file(run_dir)
    if saved.get("num_classes") is not None:
        raise UserError(f"{run_dir} holds a trained classifier (`ssnas train`); fine-tune a `ssnas pretrain` run")
    search_space, arch, space_args = resolve_space(saved["space"], saved["arch"], saved["space_args"])
    resolution = int(saved.get("resolution", 32))
    target = resolve_device(device)  # an unknown or missing device is refused before any work
    precision = resolve_precision(precision, target, BF16_KEEPS_QUALITY).name
    train_set, test_set, share = labelled_sets(data, labels_per_class, seed, resolution, skip_corrupt)
    assert train_set.labels is not None and test_set.labels is not None
    recipe = preset_recipe(preset, share, epochs, batch_size, lr)
    out = out_or_new(out_dir, resume, "finetune", saved["space"], f"s{seed}")
    config = {
        "init": str(run_dir), "arch": arch.key, "space": saved["space"], "space_args": space_args, "data": data,
        "labels_per_class": labels_per_class, "skip_corrupt": skip_corrupt, "seed": seed, "device": device,
        "precision": precision, "max_steps": max_steps, "resume": resume,
        "progress": progress, "preset": preset, "recipe": recipe.to_dict(),
    }  # fmt: skip
    num_classes = num_classes_of(train_set, test_set)
    model = build_seeded(search_space, arch, seed, num_classes=num_classes, **saved["build_args"])
    head = _load_backbone(model, saved["state_dict"], str(run_dir))
    prepare_run_folder(out, config, resume, RESUMABLE)  # after every input check: a refused start leaves nothing
    skipped = train_set.num_skipped + test_set.num_skipped
    log.info("finetune %s (%s, pretrained with %s) on %d labelled images of %s%s", arch.key, saved["space"],
             saved.get("objective", "?"), len(train_set), data, skipped_note(skipped))  # fmt: skip

    normalisation = recorded_normalisation(saved)
    evaluation = identity_views(**normalisation)  # the pretraining's normalisation
    model.to(target)
    probe_head = fit_linear_head(extract_features(model, train_set.images, evaluation), train_set.labels, num_classes)
    with torch.no_grad():
        head.weight.copy_(probe_head.weight)
        head.bias.copy_(probe_head.bias)
    probe_accuracy = evaluate(model, test_set.images, test_set.labels, max(256, recipe.batch_size), evaluation)
    log.info("linear probe (the fitted head on the frozen backbone): test accuracy %.4f", probe_accuracy)

    views = VIEWS.create(recipe.views, size=resolution, num_views=1, **normalisation)
    train_config = recipe.train_config(seed=seed, device=device, precision=precision, max_steps=max_steps,
                                       progress=progress, checkpoint_every=200)  # fmt: skip
    result = train(model, recipe.objective(num_classes), train_set.images, views, train_config,
                   labels=train_set.labels, out_dir=out, resume=resume)  # fmt: skip
    accuracy = evaluate(model, test_set.images, test_set.labels, max(256, recipe.batch_size), evaluation)
    save_atomic(
        {"state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, "arch": arch.key,
         "space": saved["space"], "space_args": space_args, "build_args": saved["build_args"],
         "num_classes": num_classes, "classes": list(train_set.classes), "resolution": resolution,
         "init": str(run_dir), "objective": saved.get("objective"), **normalisation},
        out / MODEL_NAME,
    )  # fmt: skip
    payload = {
        "arch": arch.key, "space": saved["space"], "init": str(run_dir), "pretrained_with": saved.get("objective"),
        "recipe": recipe.name, "data": data, "labels_per_class": labels_per_class, "num_classes": num_classes,
        "train_images": len(train_set), "test_images": len(test_set), "skipped_images": skipped,
        "linear_probe_accuracy": probe_accuracy, "test_accuracy": accuracy, "history": result.history,
        "final_loss": result.final_loss, "steps": result.steps, "epochs": recipe.epochs,
        "num_params": sum(p.numel() for p in model.parameters()), "images_per_second": result.images_per_second,
        "seconds": time.perf_counter() - started, "out": str(out),
    }  # fmt: skip
    (out / METRICS_NAME).write_text(json.dumps(payload, indent=2))
    return payload


def images_per_second(run_dir: str | Path, data: str, labels_per_class: int | None = None, *, preset: str = "quick",
                      batch_size: int | None = None, seed: int = 0, device: str = "auto", precision: str = "auto",
                      skip_corrupt: bool = False, steps: int = 3) -> float:  # fmt: skip
    """Fine-tuning images per second of `finetune`'s settings on this machine
    (`ssnas.training.loop.images_per_second`); what a time budget plans its epochs with. Writes nothing."""
    saved = read_model_file(run_dir)
    search_space, arch, _ = resolve_space(saved["space"], saved["arch"], saved["space_args"])
    resolution = int(saved.get("resolution", 32))
    train_set, test_set, share = labelled_sets(data, labels_per_class, seed, resolution, skip_corrupt)
    recipe = preset_recipe(preset, share, None, batch_size, None)
    num_classes = num_classes_of(train_set, test_set)
    model = build_seeded(search_space, arch, seed, num_classes=num_classes, **saved["build_args"])
    views = VIEWS.create(recipe.views, size=resolution, num_views=1, **recorded_normalisation(saved))
    precision = resolve_precision(precision, resolve_device(device), BF16_KEEPS_QUALITY).name
    config = recipe.train_config(seed=seed, device=device, precision=precision, progress=False)
    return loop_images_per_second(model, recipe.objective(num_classes), train_set.images, views, config,
                                  labels=train_set.labels, steps=steps)  # fmt: skip


def preset_recipe(preset: str, share: float, epochs: int | None = None, batch_size: int | None = None,
                  lr: float | None = None) -> Recipe:  # fmt: skip
    """The `ssl-finetune` recipe of `preset` for a labelled subset that is `share` of the labelled
    training split, with the given overrides (lr by default 0.05 x batch / 256)."""
    if preset == "paper":
        batch_size = batch_size or PAPER_BATCH
        epochs = epochs or next(count for least, count in PAPER_EPOCHS if share >= least)
    elif preset != "quick":
        raise UserError(f"unknown preset {preset!r}; choose from: {', '.join(PRESETS)}")
    scaled_lr = lr if lr is not None else (0.05 * batch_size / 256 if batch_size is not None else None)
    return RECIPES[RECIPE].with_overrides(epochs=epochs, batch_size=batch_size, lr=scaled_lr)


class LabelledSets(NamedTuple):
    """The labelled training images fine-tuning uses, the test images, and the share of the labelled
    training split the first are (1.0 without `labels_per_class`)."""

    train: ImageSet
    test: ImageSet
    share: float


def labelled_sets(data: str, per_class: int | None, seed: int, resolution: int = 32,
                  skip_corrupt: bool = False) -> LabelledSets:  # fmt: skip
    """The labelled training images (`per_class` of each class when given) and the test images of
    `data`; UserError when either split is unlabeled, their classes differ or a class is too small."""
    train_set = load_dataset(data, "train", resolution=resolution, skip_corrupt=skip_corrupt)
    if train_set.labels is None:
        raise UserError(f"{data} has no labels; fine-tuning needs class subfolders (train/<class>/, test/<class>/)")
    test_set = load_dataset(data, "test", resolution=resolution, skip_corrupt=skip_corrupt)
    if test_set.labels is None:
        raise UserError(f"{data}/test has no labels; fine-tuning needs class subfolders (test/<class>/)")
    if list(test_set.classes) != list(train_set.classes):
        raise UserError(f"the classes of {data}/test ({', '.join(test_set.classes)}) are not those of its train/ "
                        f"({', '.join(train_set.classes)})")  # fmt: skip
    if per_class is not None:
        if per_class < 1:
            raise UserError(f"--labels-per-class must be at least 1, got {per_class}")
        chosen = train_set.per_class(per_class, seed)
        return LabelledSets(chosen, test_set, len(chosen) / len(train_set))
    return LabelledSets(train_set, test_set, 1.0)


def _load_backbone(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Linear:
    """Load the pretrained weights into `model` (built with classes); returns its fresh linear head,
    the one module the pretrained network did not have. UserError when the two do not match."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    heads = {key.rpartition(".")[0] for key in missing}
    head = model.get_submodule(next(iter(heads))) if len(heads) == 1 else None
    if unexpected or not isinstance(head, nn.Linear) or set(missing) != {f"{next(iter(heads))}.{n}" for n, _ in head.named_parameters()}:
        raise UserError(f"the weights of {source} do not fit its architecture with a classifier "
                        f"(missing {sorted(missing)[:4]}, unexpected {sorted(unexpected)[:4]})")  # fmt: skip
    return head


__all__ = ["RECIPE", "LabelledSets", "finetune", "images_per_second", "labelled_sets", "preset_recipe"]
