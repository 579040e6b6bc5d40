"""kornia against ssnas's hand-written views: the SimCLR two-view recipe, side by side.

    .venv/bin/pip install kornia   # not a dependency of ssnas (this benchmark is why)
    .venv/bin/python benchmarks/bench_kornia.py [--threads N] [--data PATH] [--out JSON]

Both pipelines get the same uint8 batch of real CIFAR-10 images (batch 256): random
resized crop (scale 0.2-1) + flip 0.5, colour jitter 0.4/0.4/0.4/0.1 with p 0.8,
grayscale p 0.2, then CIFAR normalisation, two views per image. Rounds alternate
between the two (so load on a shared machine hits both alike); reported: source images
per second of each, their ratio, and the per-channel mean / std of the views (equal
statistics = the recipes agree). Writes JSON with the CPU's model and flags.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from ssnas.data import load_dataset, simclr_views
from ssnas.data.views import CIFAR_MEAN, CIFAR_STD

REPO = Path(__file__).resolve().parents[1]


def kornia_simclr(size: int = 32):  # type: ignore[no-untyped-def]
    import kornia.augmentation as K

    pipeline = torch.nn.Sequential(
        K.RandomResizedCrop((size, size), scale=(0.2, 1.0)),
        K.RandomHorizontalFlip(p=0.5),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.Normalize(mean=torch.tensor(CIFAR_MEAN), std=torch.tensor(CIFAR_STD)),
    )

    def views(images: torch.Tensor) -> list[torch.Tensor]:
        x = images.float().div(255)  # (B,3,H,W) in [0,1]
        return [pipeline(x), pipeline(x)]

    return views


def stats(views: list[torch.Tensor]) -> dict[str, list[float]]:
    x = torch.cat(views)  # (2B,3,H,W)
    return {"mean": [round(v, 3) for v in x.mean(dim=(0, 2, 3)).tolist()],
            "std": [round(v, 3) for v in x.std(dim=(0, 2, 3)).tolist()]}  # fmt: skip


def cpu_description() -> dict[str, str]:
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {"model": fields.get("Model name", "").strip(), "flags": fields.get("Flags", "").strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data" / "cifar10-jpeg")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "kornia_vs_views.json")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = load_dataset(str(args.data.resolve()), "train").subset(args.batch, seed=0).images  # (B,3,32,32)
    ours, theirs = simclr_views(), kornia_simclr()
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # kornia draws from the global generator
    seconds = {"ssnas": 0.0, "kornia": 0.0}
    samples: dict[str, list[torch.Tensor]] = {"ssnas": [], "kornia": []}
    ours(images, generator), theirs(images)  # warm-up
    for _ in range(args.rounds):
        for name, run in (("ssnas", lambda: ours(images, generator)), ("kornia", lambda: theirs(images))):
            start = time.perf_counter()
            for _ in range(args.iters):
                out = run()
            seconds[name] += time.perf_counter() - start
            samples[name] += out
    per_second = {name: args.rounds * args.iters * args.batch / s for name, s in seconds.items()}
    result = {
        "images_per_s": {k: round(v) for k, v in per_second.items()},
        "kornia_over_ssnas": round(per_second["kornia"] / per_second["ssnas"], 3),
        "view_statistics": {name: stats(views) for name, views in samples.items()},
        "batch": args.batch, "rounds": args.rounds, "iters_per_round": args.iters,
        "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(),
        "cpu": cpu_description(), "torch": torch.__version__, "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # fmt: skip
    import kornia

    result["kornia"] = kornia.__version__
    print(json.dumps({k: result[k] for k in ("images_per_s", "kornia_over_ssnas", "view_statistics")}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
