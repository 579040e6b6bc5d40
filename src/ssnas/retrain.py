"""Final supervised training of a found architecture, and its test accuracy.

    payload = retrain("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
                      space="nb201", data="cifar10", epochs=200, out_dir="runs/train")

The network is built from the architecture string with `num_classes` (its own
classifier), trained by the one training loop with a `Recipe`
(`ssnas.training.recipes`), then evaluated on the test split (identity views,
eval mode, batched). The run folder gets:

* `config.yaml`: every setting, the resolved recipe included (a resumed run must match);
* `checkpoint.pt`: the loop's checkpoint (exact resume with `resume=True`);
* `model.pt`: `{"state_dict", "arch", "space", "space_args", "build_args", "num_classes", "classes"}`,
  read back by `load_model` (needs ssnas; `ssnas export` makes an ssnas-free TorchScript file);
* `metrics.json`: training loss per epoch, test accuracy, seconds, steps, parameters, and the
  unreadable image files `skip_corrupt` left out (`skipped_images`).

Without `out_dir` the run gets a new folder under runs/ (`ssnas.runfolder.out_or_new`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssnas.data.datasets import ImageSet, load_dataset, skipped_note
from ssnas.data.views import VIEWS, ViewMaker
from ssnas.errors import UserError
from ssnas.spaces import Architecture, SearchSpace, create_space
from ssnas.spaces.darts import Genotype
from ssnas.training.checkpoint import load_checkpoint, save_atomic
from ssnas.training.loop import train
from ssnas.training.precision import resolve_device, resolve_precision_name
from ssnas.training.recipes import Recipe, get_recipe
from ssnas.runfolder import out_or_new, prepare_run_folder
from ssnas.training.seeding import seeded

log = logging.getLogger(__name__)

MODEL_NAME = "model.pt"
METRICS_NAME = "metrics.json"
# Settings that may differ between a run and its resumption.
RESUMABLE = ("resume", "device", "progress", "max_steps", "skip_corrupt")


def read_arch_text(text: str) -> str:
    """The architecture text itself, or the contents of the file it names."""
    try:
        path = Path(text).expanduser()
        if path.is_file():
            return path.read_text().strip()
    except OSError:  # e.g. a genotype string longer than a file name may be
        pass
    return text


def resolve_space(
    space: str, arch_text: str, space_args: Mapping[str, Any]
) -> tuple[SearchSpace, Architecture, dict[str, Any]]:
    """Create the space with `space_args`, parse the architecture in it; also return the args used.

    For DARTS, `steps` and `multiplier` default to the genotype's own (so a 5-node
    CSNAS genotype needs no extra arguments).
    """
    args = dict(space_args)
    if space == "darts" and not {"steps", "multiplier"} <= args.keys():
        genotype = Genotype.from_text(arch_text)
        args.setdefault("steps", genotype.steps)
        args.setdefault("multiplier", len(genotype.normal_concat))
    try:
        search_space = create_space(space, **args)
    except TypeError as error:
        raise UserError(f"bad arguments for space {space!r}: {error}") from None
    return search_space, search_space.parse(arch_text), args


def build_seeded(search_space: SearchSpace, arch: Architecture, seed: int, **build_args: Any) -> nn.Module:
    """`search_space.build(arch, **build_args)` with initial weights drawn from `seed` (the global RNG is left as it was)."""
    with seeded(seed):
        return search_space.build(arch, **build_args)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256,
             views: ViewMaker | None = None) -> float:  # fmt: skip
    """Top-1 accuracy in [0, 1] of `model(x)` logits on uint8 `images` (N,3,H,W), eval mode, identity views
    (`views`: another deterministic preprocessing, e.g. another normalisation)."""
    device = next(model.parameters()).device
    views = views or VIEWS.create("identity")
    generator = torch.Generator(device=device).manual_seed(0)
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for start in range(0, images.shape[0], batch_size):
            x = views(images[start : start + batch_size].to(device), generator)[0]  # (b,3,H,W)
            logits = model(x)  # (b, classes)
            correct += int((logits.argmax(1).cpu() == labels[start : start + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / images.shape[0]


def num_classes_of(train_set: ImageSet, test_set: ImageSet) -> int:
    """Classes a classifier for these labelled splits needs: train/'s folders, or more where a label is higher."""
    assert train_set.labels is not None and test_set.labels is not None
    return max(len(train_set.classes), int(train_set.labels.max()) + 1, int(test_set.labels.max()) + 1)


def retrain(
    arch_text: str,
    space: str = "nb201",
    recipe: str | Recipe | None = None,
    data: str = "cifar10",
    epochs: int | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    *,
    batch_size: int | None = None,
    lr: float | None = None,
    space_args: Mapping[str, Any] | None = None,
    train_images: int | None = None,
    labels_per_class: int | None = None,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    max_steps: int | None = None,
    progress: bool = True,
    skip_corrupt: bool = False,
) -> dict[str, Any]:
    """Train `arch_text` from scratch with labels and report its test accuracy.

    Args:
        arch_text: the architecture in the space's text form (or a file holding it).
        space: registered space name ("nb201", "darts", "hytra", ...).
        recipe: a `Recipe` or its name in `RECIPES`; None = the space's default.
        data: "cifar10", "cifar100" or a labelled image folder with train/ and test/.
        out_dir: the run folder; None: a new one under runs/.
        skip_corrupt: leave unreadable image files of `data` out ("skipped_images": how many).
        epochs, batch_size, lr: override the recipe's values.
        space_args: `create_space` arguments, on top of the recipe's (e.g. {"C": 8, "N": 1}).
        train_images: train on this many images (seeded subset); None = all.
        labels_per_class: train on this many images of each class (seeded, class-balanced: the subset
            `ssnas finetune --labels-per-class` trains on, for the from-scratch baseline); None = all.
        max_steps: stop early (the schedule still spans `epochs`); for smoke tests.

    Returns:
        The `metrics.json` payload: arch, space, recipe, test_accuracy in [0, 1], history, seconds, ...
    """
    started = time.perf_counter()
    if train_images is not None and labels_per_class is not None:
        raise UserError("give --train-images or --labels-per-class, not both")
    arch_text = read_arch_text(arch_text)
    base = recipe if isinstance(recipe, Recipe) else get_recipe(recipe, space)
    chosen = base.with_overrides(epochs=epochs, batch_size=batch_size, lr=lr)
    args = {**chosen.space_args, **(space_args or {})}
    search_space, arch, args = resolve_space(space, arch_text, args)
    out = out_or_new(out_dir, resume, "train", space, f"s{seed}")
    config = {
        "arch": arch.key, "space": space, "space_args": args, "data": data, "skip_corrupt": skip_corrupt,
        "train_images": train_images, **({"labels_per_class": labels_per_class} if labels_per_class else {}),
        "seed": seed, "device": device, "precision": resolve_precision_name(precision, device), "max_steps": max_steps, "resume": resume,
        "progress": progress, "recipe": chosen.to_dict(),
    }  # fmt: skip
    train_set = load_dataset(data, "train", resolution=chosen.resolution, skip_corrupt=skip_corrupt)
    test_set = load_dataset(data, "test", resolution=chosen.resolution, skip_corrupt=skip_corrupt)
    skipped = train_set.num_skipped + test_set.num_skipped
    if train_set.labels is None or test_set.labels is None:
        raise UserError(f"{data} has no labels; retraining needs class subfolders (train/<class>/, test/<class>/)")
    if train_images is not None:
        train_set = train_set.subset(train_images, seed)
    if labels_per_class is not None:
        train_set = train_set.per_class(labels_per_class, seed)
    assert train_set.labels is not None and test_set.labels is not None  # checked above; subsets keep them
    num_classes = num_classes_of(train_set, test_set)


    build_args = chosen.build_args()
    model = build_seeded(search_space, arch, seed, num_classes=num_classes, **build_args)
    objective = chosen.objective(num_classes)
    train_config = chosen.train_config(seed=seed, device=device, precision=precision, max_steps=max_steps,
                                       progress=progress, checkpoint_every=200)  # fmt: skip
    resolve_device(device)
    prepare_run_folder(out, config, bool(config["resume"]), RESUMABLE)  # after every input check, so a failed start leaves no run folder
    log.info("retrain %s (%s) with recipe %s on %d images of %s%s", arch.key, space, chosen.name, len(train_set), data,
             skipped_note(skipped))  # fmt: skip
    result = train(model, objective, train_set.images, chosen.views_maker(), train_config,
                   labels=train_set.labels, out_dir=out, resume=resume)  # fmt: skip

    accuracy = evaluate(model, test_set.images, test_set.labels, batch_size=max(256, chosen.batch_size))
    model_cpu = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_atomic(
        {"state_dict": model_cpu, "arch": arch.key, "space": space, "space_args": args, "build_args": build_args,
         "num_classes": num_classes, "classes": list(train_set.classes), "resolution": chosen.resolution},
        out / MODEL_NAME,
    )  # fmt: skip
    payload = {
        "arch": arch.key,
        "space": space,
        "recipe": chosen.name,
        "data": data,
        "num_classes": num_classes,
        "train_images": len(train_set),
        "labels_per_class": labels_per_class,
        "test_images": len(test_set),
        "skipped_images": skipped,
        "test_accuracy": accuracy,
        "history": result.history,
        "final_loss": result.final_loss,
        "steps": result.steps,
        "epochs": chosen.epochs,
        "num_params": sum(p.numel() for p in model.parameters()),
        "images_per_second": result.images_per_second,
        "seconds": time.perf_counter() - started,
        "out": str(out),
    }
    (out / METRICS_NAME).write_text(json.dumps(payload, indent=2))
    return payload


def read_model_file(path: str | Path) -> dict[str, Any]:
    """The contents of a `model.pt` written by `retrain` (`path` may be its run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_NAME
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    saved = load_checkpoint(path)
    if not isinstance(saved, dict) or not {"state_dict", "arch", "space", "space_args", "build_args"} <= saved.keys():
        raise UserError(f"{path} is not a model.pt written by `ssnas train` (the loop's checkpoint.pt is not)")
    return saved


def load_model(path: str | Path) -> nn.Module:
    """Rebuild the network saved as `model.pt` by `retrain` (or a run folder holding one); eval mode, CPU.

    Needs ssnas (the module is rebuilt from the space); for an ssnas-free file use `ssnas export`.
    """
    saved = read_model_file(path)
    search_space, arch, _ = resolve_space(saved["space"], saved["arch"], saved["space_args"])
    model = search_space.build(arch, num_classes=saved["num_classes"], **saved["build_args"])
    model.load_state_dict(saved["state_dict"])
    return model.eval()
