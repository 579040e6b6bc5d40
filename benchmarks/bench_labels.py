"""CIFAR-10 with 1 % / 10 % of the labels: SSL pretraining + fine-tuning against training from scratch.

Arms (one results file each, its command inside), all on the shared CIFAR-10 JPEG folders, test
accuracy on the 10,000 test images, labels of the training set hidden except the chosen subset
(`--labels-per-class`: 50 = 1 %, 500 = 10 %; seeded and class-balanced, `ImageSet.per_class`):

* `ssl`: the network of `--space/--arch` pretrained with SimCLR on all 50,000 training images for
  `--pretrain-minutes` (epochs planned from its measured images/s, so the cosine schedule ends; where
  not even one epoch fits, one pass over the seeded subset of images that does, as `ssnas fit` plans),
  kNN and linear probes of the frozen backbone on the labelled subset, then `ssnas finetune` for
  `--finetune-minutes` per label setting and seed (epochs planned the same way). With `--space
  cifar-resnet --arch 18` (`benchmarks/cifar_resnet.py`) it is the ResNet-18 arm.
* `scratch`: `ssnas train` of the same network on the labelled subset only, for `--minutes` (the
  SSL arm's pretraining plus fine-tuning minutes: the same wall-clock), epochs planned likewise.

    python benchmarks/bench_labels.py ssl --arch ARCH --pretrain-minutes 60 --finetune-minutes 10 \\
        --labels-per-class 50 500 --seeds 0 --out benchmarks/results/labels_found_ssl.json
    python benchmarks/bench_labels.py scratch --arch ARCH --minutes 70 --labels-per-class 50 500 \\
        --seeds 0 1 2 --out benchmarks/results/labels_found_scratch.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cifar_resnet  # noqa: E402,F401  (registers the space "cifar-resnet")

from ssnas.data.datasets import load_dataset  # noqa: E402
from ssnas.finetuning import finetune  # noqa: E402
from ssnas.finetuning import images_per_second as finetune_speed  # noqa: E402
from ssnas.pretraining import PretrainConfig, pretrain, probe  # noqa: E402
from ssnas.pretraining import images_per_second as pretrain_speed  # noqa: E402
from ssnas.retrain import build_seeded, resolve_space, retrain  # noqa: E402
from ssnas.training.loop import images_per_second  # noqa: E402
from ssnas.training.recipes import get_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg"


def epochs_within(minutes: float, speed: float, images: int, batch_size: int) -> int:
    """The most whole epochs of `images` that `minutes` hold at `speed` images/s (at least one)."""
    return max(1, math.floor(minutes * 60.0 * speed / (max(1, images // batch_size) * batch_size)))


def cpu() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")  # fmt: skip
    flags = Path("/proc/cpuinfo").read_text()
    return {"model": model, "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
            "threads": torch.get_num_threads()}  # fmt: skip


def ssl_arm(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    base = PretrainConfig(arch=args.arch, space=args.space, data=str(args.data), batch_size=args.batch_size,
                          precision=args.precision, seed=0, progress=args.progress, out=str(work / "pretrain"),
                          resume=(work / "pretrain").exists())  # fmt: skip
    speed = pretrain_speed(replace(base, progress=False))
    images = len(load_dataset(str(args.data), "train"))
    epochs = epochs_within(args.pretrain_minutes, speed, images, args.batch_size)
    subset = None
    if epochs * images > args.pretrain_minutes * 60.0 * speed:  # not one epoch fits: one pass over the images that do
        subset = max(2 * args.batch_size, math.floor(args.pretrain_minutes * 60.0 * speed))
    print(f"pretraining: {speed:.0f} images/s -> {epochs} epoch(s) of {subset or images} images in "
          f"{args.pretrain_minutes} min", flush=True)  # fmt: skip
    pretrained = pretrain(replace(base, epochs=epochs, num_images=subset))
    rows = []
    for per_class in args.labels_per_class:
        for seed in args.seeds:
            probed = probe(work / "pretrain", data=str(args.data), methods=("knn", "linear"), labels_per_class=per_class,
                           seed=seed, precision=args.precision)  # fmt: skip
            tuned_speed = finetune_speed(work / "pretrain", str(args.data), per_class, seed=seed, precision=args.precision)
            tuned_epochs = epochs_within(args.finetune_minutes, tuned_speed, per_class * 10, 128)
            folder = work / f"finetune_{per_class}_s{seed}"
            tuned = finetune(work / "pretrain", str(args.data), per_class, folder, resume=folder.exists(), seed=seed,
                             epochs=tuned_epochs, precision=args.precision, progress=args.progress)  # fmt: skip
            row = {"labels_per_class": per_class, "seed": seed, "knn": probed["accuracy"]["knn"],
                   "linear": probed["accuracy"]["linear"], "finetune_epochs": tuned_epochs,
                   "finetune_seconds": round(tuned["seconds"], 1), "test_accuracy": tuned["test_accuracy"],
                   "linear_probe_accuracy": tuned["linear_probe_accuracy"]}  # fmt: skip
            print(row, flush=True)
            rows.append(row)
    return {"pretrain": {"epochs": epochs, "images_per_second": speed, "seconds": round(pretrained["seconds"], 1),
                         "history": pretrained["history"], "num_images": pretrained["num_images"]},
            "rows": rows}  # fmt: skip


def scratch_arm(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    recipe = get_recipe(args.recipe, args.space)
    search_space, arch, _ = resolve_space(args.space, args.arch, dict(recipe.space_args))
    rows = []
    for per_class in args.labels_per_class:
        for seed in args.seeds:
            train_set = load_dataset(str(args.data), "train").per_class(per_class, seed)
            model = build_seeded(search_space, arch, seed, num_classes=10, **recipe.build_args())
            config = recipe.train_config(seed=seed, precision=args.precision, progress=False)
            speed = images_per_second(model, recipe.objective(10), train_set.images, recipe.views_maker(), config,
                                      labels=train_set.labels)  # fmt: skip
            epochs = epochs_within(args.minutes, speed, len(train_set), recipe.batch_size)
            folder = work / f"scratch_{per_class}_s{seed}"
            trained = retrain(args.arch, args.space, recipe, str(args.data), epochs, folder, resume=folder.exists(),
                              labels_per_class=per_class, seed=seed, precision=args.precision,
                              progress=args.progress)  # fmt: skip
            row = {"labels_per_class": per_class, "seed": seed, "epochs": epochs, "images_per_second": round(speed, 1),
                   "seconds": round(trained["seconds"], 1), "test_accuracy": trained["test_accuracy"]}  # fmt: skip
            print(row, flush=True)
            rows.append(row)
    return {"recipe": recipe.name, "rows": rows}


def table(args: argparse.Namespace) -> None:
    """The arms' results files as one table (mean over seeds, min-max beside it) and a bar plot."""
    arms: dict[str, dict[int, dict[str, list[float]]]] = {}
    for name in args.results:
        result = json.loads(Path(name).read_text())
        label = f"{result.get('label') or result['arch']}: {result['arm']}"
        for row in result["rows"]:
            cell = arms.setdefault(label, {}).setdefault(row["labels_per_class"], {})
            cell.setdefault("test", []).append(100 * row["test_accuracy"])
            for probe_name in ("knn", "linear"):
                if probe_name in row:
                    cell.setdefault(probe_name, []).append(100 * row[probe_name])
    settings = sorted({per_class for cells in arms.values() for per_class in cells})

    def text(values: list[float] | None) -> str:
        if not values:
            return "-"
        mean = sum(values) / len(values)
        return f"{mean:.1f}" + (f" ({min(values):.1f}-{max(values):.1f}, {len(values)} seeds)" if len(values) > 1 else "")

    header = ["arm"] + [f"{kind}, {per_class}/class" for per_class in settings for kind in ("test", "kNN", "linear")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, cells in arms.items():
        values = [text(cells.get(per_class, {}).get(kind)) for per_class in settings for kind in ("test", "knn", "linear")]
        lines.append("| " + " | ".join([label, *values]) + " |")
    print("\n".join(lines))
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(6.4, 3.6))
        width = 0.8 / max(1, len(arms))
        for index, (label, cells) in enumerate(arms.items()):
            means = [sum(cells[s]["test"]) / len(cells[s]["test"]) if s in cells else 0.0 for s in settings]
            axis.bar([i + index * width for i in range(len(settings))], means, width, label=label)
        axis.set_xticks([i + 0.4 - width / 2 for i in range(len(settings))],
                        [f"{s} labels per class" for s in settings])  # fmt: skip
        axis.set_ylabel("CIFAR-10 test accuracy (%)")
        axis.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(args.png, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arm", choices=("ssl", "scratch", "table"))
    parser.add_argument("--results", nargs="*", default=[], help="table: the arms' results files")
    parser.add_argument("--png", default=None, help="table: the bar plot")
    parser.add_argument("--label", default=None, help="the arm's name in the table [its architecture]")
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--arch", default=None, help="the architecture (cifar-resnet: 18); ssl, scratch: required")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--labels-per-class", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--pretrain-minutes", type=float, default=60.0)
    parser.add_argument("--finetune-minutes", type=float, default=10.0)
    parser.add_argument("--minutes", type=float, default=70.0, help="scratch: the whole training's minutes")
    parser.add_argument("--recipe", default=None, help="scratch: training recipe [the space's]")
    parser.add_argument("--batch-size", type=int, default=256, help="pretraining batch")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "labels", help="run folders (resumable)")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", default=None, help="ssl, scratch: the results file")
    args = parser.parse_args()
    if args.arm == "table":
        table(args)
        return
    if args.arch is None or args.out is None:
        parser.error("ssl and scratch need --arch and --out")
    work = args.work / f"{args.arm}_{args.space}_{args.arch.replace('|', '').replace('~', '')[:40]}"
    started = time.perf_counter()
    result = (ssl_arm if args.arm == "ssl" else scratch_arm)(args, work)
    payload = {"what": __doc__.splitlines()[0], "arm": args.arm, "label": args.label, "space": args.space, "arch": args.arch,
               "command": "python " + " ".join(sys.argv), "cpu": cpu(), "seconds": round(time.perf_counter() - started),
               **result}  # fmt: skip
    Path(args.out).write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
