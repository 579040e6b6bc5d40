"""The seeds' own self-supervised signals against their training budget (issue 20, item 4).

Left: CSNAS's signal (SimCLR's NT-Xent on held-out images after training, higher = lower loss)
against backbone passes per candidate: NATS size (random evaluation-half cells, the full-size
network) and NB201 (the stage-1 pools of `bench_shortlist.py`, C=16 N=1 and C=16 N=5).
Right: BossNAS's additive block rating (and the centre distance behind it) against image-epochs
per block on NATS size, all 16,384 evaluation-half width settings, with the paper's figure
(Spearman 0.73 after 50 epochs on 50,000 images per block) marked at its budget.

Each curve gets a least-squares line in log10(budget), drawn dashed up to the paper's budget: an
extrapolation, shown as such, not a claim.

    .venv/bin/python benchmarks/plot_seed_curves.py --out docs/seed_signals_budget.png \
        --json benchmarks/results/seed_signals_budget.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
PAPER_BOSSNAS = (50 * 50_000, 0.73)  # image-epochs per block, Spearman (BossNAS on NATS size)
CSNAS_BUDGET = 50 * 50_000 * 2  # a CSNAS-like 50-epoch SimCLR training on CIFAR-10 (2 views): passes


def shortlist_points(name: str, signal: str = "pretext-loss", pool: int | None = None) -> list[tuple[int, float, int]]:
    """(passes, Spearman, cells) of SimCLR rungs in a bench_shortlist result file."""
    path = RESULTS / name
    if not path.exists():
        return []
    result = json.loads(path.read_text())
    points = []
    for rung, entry in result["rungs"].items():
        objective, passes = rung.split(":")
        if objective == "simclr" and signal in entry["signals"]:
            points.append((int(passes), entry["signals"][signal]["spearman"], pool or result["pool"]))
    return sorted(points)


def bossnas_points(signal: str) -> list[tuple[int, float]]:
    """(image-epochs per block, Spearman on the evaluation half) of the NATS BossNAS runs."""
    points = []
    for path in sorted(RESULTS.glob("bossnas_nats*.json")):
        result = json.loads(path.read_text())
        args = result["args"]
        nats = result.get("nats", {})
        half = nats.get("vs cifar10_valid, evaluation half (odd index)")
        if not half or signal not in half:
            continue
        budget = int(args["num_images"]) * int(args["epochs"])
        points.append((budget, half[signal]["spearman"]))
    return sorted(points)


def fit(points: list[tuple[int, float]]) -> tuple[float, float] | None:
    """Slope and intercept of Spearman against log10(budget); None with fewer than two budgets."""
    if len({x for x, _ in points}) < 2:
        return None
    slope, intercept = np.polyfit([math.log10(x) for x, _ in points], [y for _, y in points], 1)
    return float(slope), float(intercept)


def draw_curve(axis: plt.Axes, points: list[tuple[int, float]], label: str, colour: str, reach: int,
               record: dict) -> None:  # fmt: skip
    if not points:
        return
    axis.plot([x for x, _ in points], [y for _, y in points], marker="o", color=colour, label=label)
    line = fit(points)
    entry = {"points": points, "fit": None}
    if line is not None:
        slope, intercept = line
        xs = np.logspace(math.log10(points[0][0]), math.log10(reach), 50)
        axis.plot(xs, np.clip(slope * np.log10(xs) + intercept, -1, 1), linestyle="--", color=colour, alpha=0.5)
        entry["fit"] = {"slope_per_decade": slope, "intercept": intercept,
                        "at_reach": float(np.clip(slope * math.log10(reach) + intercept, -1, 1)), "reach": reach}  # fmt: skip
    record[label] = entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/seed_signals_budget.png"))
    parser.add_argument("--json", type=Path, default=RESULTS / "seed_signals_budget.json")
    args = parser.parse_args()
    record: dict = {"csnas": {}, "bossnas": {}, "paper_bossnas": {"image_epochs": PAPER_BOSSNAS[0], "spearman": PAPER_BOSSNAS[1]}}
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))

    nats = shortlist_points("shortlist_nats_eval_random.json")
    first12 = shortlist_points("shortlist_nats_eval_random_first12.json") + shortlist_points(
        "shortlist_nats_eval_random_32k.json")
    draw_curve(left, [(x, y) for x, y, _ in first12], "NATS size, 12 random eval cells", "tab:blue", CSNAS_BUDGET,
               record["csnas"])  # fmt: skip
    left.plot([x for x, _, _ in nats], [y for _, y, _ in nats], marker="^", linestyle=":", color="tab:cyan",
              label="NATS size, 24 random eval cells")  # fmt: skip
    record["csnas"]["NATS size, 24 random eval cells"] = {"points": [(x, y) for x, y, _ in nats]}
    for name, label, colour in (("shortlist_nb201_eval.json", "NB201 eval pool, C16 N1", "tab:orange"),
                                ("shortlist_nb201_dev.json", "NB201 dev pool, C16 N1", "tab:green"),
                                ("shortlist_nb201_eval_c16n5.json", "NB201 eval pool, C16 N5", "tab:red"),
                                ("shortlist_nb201_dev_c16n5.json", "NB201 dev pool, C16 N5", "tab:purple")):
        points = shortlist_points(name)
        if points:
            left.plot([x for x, _, _ in points], [y for _, y, _ in points], marker="s", linestyle="none", color=colour,
                      label=label)  # fmt: skip
            record["csnas"][label] = {"points": [(x, y) for x, y, _ in points]}
    left.axvline(CSNAS_BUDGET, color="grey", linestyle=":", linewidth=1)
    left.text(CSNAS_BUDGET, -0.95, " 50 epochs x 50k x 2 views", fontsize=7, rotation=90, va="bottom")
    left.set_title("CSNAS: held-out NT-Xent after SimCLR training (higher = lower loss)", fontsize=9)
    left.set_xlabel("backbone passes per candidate (log)")

    for signal, colour in (("bossnas", "tab:blue"), ("centre-distance", "tab:orange")):
        draw_curve(right, bossnas_points(signal), f"{signal} (NATS eval half)", colour, PAPER_BOSSNAS[0], record["bossnas"])
    right.scatter([PAPER_BOSSNAS[0]], [PAPER_BOSSNAS[1]], marker="*", s=160, color="black", label="BossNAS paper (0.73)")
    right.set_title("BossNAS: block rating after ensemble bootstrapping", fontsize=9)
    right.set_xlabel("image-epochs per block (log)")
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_ylim(-1, 1)
        axis.axhline(0, color="grey", linewidth=0.5)
        axis.set_ylabel("Spearman vs cifar10_valid")
        axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
