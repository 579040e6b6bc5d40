"""Training-loop benchmark: throughput per precision, exact resume, and a SimCLR sanity run.

    .venv/bin/python benchmarks/bench_loop.py --data ../shared/data/cifar10-jpeg [--train 2000] [--epochs 1]
    .venv/bin/python benchmarks/bench_loop.py --tensors cifar_subset.pt ...   # a saved {train,test} subset

On an NB201 network (the benchmark's best CIFAR-10 cell, C=16, N=5):
  * throughput: images/s of `train` with SimCLR views for each precision (after one warm-up run);
  * resume: a run stopped at `max_steps` and resumed equals an uninterrupted run (torch.equal on
    every tensor), for fp32 and for the device's default precision;
  * sanity: kNN / linear-probe accuracy on test features before and after SimCLR training.
Prints the figures and writes them as JSON (--out).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ssnas.data import identity_views, load_dataset, simclr_views
from ssnas.objectives import create_objective
from ssnas.spaces import create_space
from ssnas.training import TrainConfig, train
from ssnas.training.precision import resolve_device
from ssnas.training.probes import extract_features, knn_accuracy, linear_probe_accuracy

BEST_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="CIFAR-10 image folder with train/ and test/")
    parser.add_argument("--tensors", type=Path, help="a .pt file {train_images, train_labels, test_images, test_labels}")
    parser.add_argument("--save-tensors", type=Path, help="write the subset used to this .pt file and exit")
    parser.add_argument("--train", type=int, default=2000, help="training images (a class-mixed prefix)")
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--throughput-steps", type=int, default=6)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms(True)")
    parser.add_argument("--out", type=Path)
    return parser.parse_args()


def subset(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    if args.tensors is not None:
        return torch.load(args.tensors)
    generator = torch.Generator().manual_seed(0)
    data: dict[str, torch.Tensor] = {}
    for split, n in (("train", args.train), ("test", args.test)):
        images = load_dataset(str(args.data), split)
        pick = torch.randperm(images.images.shape[0], generator=generator)[:n]
        data[f"{split}_images"], data[f"{split}_labels"] = images.images[pick], images.labels[pick]
    return data


def network(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    space = create_space("nb201")
    return space.build(space.parse(BEST_CELL))


def probe(model: torch.nn.Module, data: dict[str, torch.Tensor]) -> dict[str, float]:
    views = identity_views()
    train_f = extract_features(model, data["train_images"], views)
    test_f = extract_features(model, data["test_images"], views)
    return {
        "knn": knn_accuracy(train_f, data["train_labels"], test_f, data["test_labels"]),
        "linear": linear_probe_accuracy(train_f, data["train_labels"], test_f, data["test_labels"]),
    }


def final_tensors(model: torch.nn.Module, objective: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {**model.state_dict(), **{f"objective.{k}": v for k, v in objective.state_dict().items()}}


def resume_is_exact(images: torch.Tensor, config: TrainConfig) -> bool:
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for out_dir, stop, resume in ((None, None, False), (Path(tmp), 3, False), (Path(tmp), None, True)):
            model, objective = network(), create_objective("simclr")
            cfg = dataclasses.replace(config, max_steps=stop)
            train(model, objective, images, simclr_views(), cfg, out_dir=out_dir, resume=resume)
            runs.append(final_tensors(model, objective))
    reference, resumed = runs[0], runs[2]
    return all(torch.equal(reference[k].cpu(), resumed[k].cpu()) for k in reference if torch.is_tensor(reference[k]))


def main() -> None:
    args = parse_args()
    if args.deterministic:  # cuBLAS needs a fixed workspace for deterministic results
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    data = subset(args)
    if args.save_tensors is not None:
        torch.save(data, args.save_tensors)
        return
    device = resolve_device(args.device)
    base = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.3, weight_decay=1e-4, warmup_epochs=0,
                       device=str(device), progress=False, seed=0)  # fmt: skip
    images = data["train_images"]
    steps_images = images[: args.batch_size * args.throughput_steps]
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "deterministic": args.deterministic,
        "train_images": images.shape[0],
        "throughput_images_per_s": {},
    }
    precisions = ["fp32", "bf16"] + (["amp"] if device.type == "cuda" else [])
    for precision in precisions:
        cfg = dataclasses.replace(base, precision=precision, epochs=1)
        for _ in range(2):  # the first run warms up (allocator, kernels)
            result = train(network(), create_objective("simclr"), steps_images, simclr_views(), cfg)
        report["throughput_images_per_s"][precision] = round(result.images_per_second, 1)
        print(f"{precision}: {result.images_per_second:.1f} images/s")

    resume_images = images[: args.batch_size * 3 // 2 * 2]  # 3 steps per epoch at batch/2
    small = dataclasses.replace(base, epochs=2, batch_size=args.batch_size // 2)
    report["resume_exact"] = {
        "fp32": resume_is_exact(resume_images, dataclasses.replace(small, precision="fp32")),
        "auto": resume_is_exact(resume_images, dataclasses.replace(small, precision="auto")),
    }
    print("resume exact:", report["resume_exact"])

    model = network()
    report["before"] = probe(model, data)
    started = time.perf_counter()
    result = train(model, create_objective("simclr"), images, simclr_views(), base)
    report["simclr"] = {"history": result.history, "seconds": round(time.perf_counter() - started, 1),
                        "images_per_s": round(result.images_per_second, 1), "config": dataclasses.asdict(base)}  # fmt: skip
    report["after"] = probe(model, data)
    print(json.dumps(report, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
