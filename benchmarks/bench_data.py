"""Data-pipeline benchmark: image-folder decode (cold), cached reload, SimCLR view throughput.

    .venv/bin/python benchmarks/bench_data.py [--data PATH] [--out JSON]

Measures, on the CIFAR-10 JPEG folder (train + test, 60,000 images):
  * cold load: decode every file with a fresh, temporary cache folder (SSNAS_CACHE);
  * cached load: the same two loads again, now read from that cache;
  * two-view SimCLR augmentation on CPU: source images per second at batch 256
    (each source image yields two 32x32 views), torch threads = all cores.
Prints the figures and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from ssnas.data import load_dataset, simclr_views

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data" / "cifar10-jpeg")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "data.json")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=40)
    return parser.parse_args()


def timed_load(folder: Path) -> tuple[float, dict[str, int]]:
    """Seconds to load train and test; their sizes."""
    start = time.perf_counter()
    sizes = {split: len(load_dataset(str(folder), split)) for split in ("train", "test")}
    return time.perf_counter() - start, sizes


def augmentation_throughput(images: torch.Tensor, warmup: int, iters: int) -> float:
    """Source images per second through the two-view SimCLR recipe."""
    views = simclr_views()
    generator = torch.Generator().manual_seed(0)
    for _ in range(warmup):
        views(images, generator)
    start = time.perf_counter()
    for _ in range(iters):
        views(images, generator)
    return iters * len(images) / (time.perf_counter() - start)


def main() -> None:
    args = parse_args()
    folder = args.data.resolve()
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="ssnas-bench-cache-") as cache:
        os.environ["SSNAS_CACHE"] = cache
        cold_s, sizes = timed_load(folder)
        cached_s, _ = timed_load(folder)
        train = load_dataset(str(folder), "train")
    batch = train.subset(args.batch, seed=0).images  # (batch,3,32,32) uint8
    throughput = augmentation_throughput(batch, args.warmup, args.iters)
    result = {
        "data": str(folder),
        "images": sum(sizes.values()),
        "splits": sizes,
        "cold_load_s": round(cold_s, 3),
        "cached_load_s": round(cached_s, 3),
        "simclr_two_view_images_per_s": round(throughput),
        "batch": args.batch,
        "timed_iters": args.iters,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(
        f"{result['images']} images: cold load {cold_s:.2f} s, cached load {cached_s:.3f} s; "
        f"SimCLR two views at batch {args.batch}: {throughput:,.0f} images/s on {result['torch_threads']} threads"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
