"""Plot bench_shortlist results: training budget per cell (x) against Spearman inside the pool (y).

One line per rotation-trained signal over the ladder; CSNAS's contrastive loss (SimCLR, held-out
NT-Xent) and the supervised short training (labels, reference) as dashed markers at their rungs;
the stage-1 score, the parameter count and NB201's 12-epoch training (labels) as horizontal lines.

    .venv/bin/python benchmarks/plot_shortlist.py benchmarks/results/shortlist_nb201_dev.json \
        benchmarks/results/shortlist_nb201_eval.json --out docs/shortlist_nb201.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROTATION_SIGNALS = ("pretext-accuracy", "pretext-loss", "curve-area", "uniformity", "trained-naswot",
                    "trained-az-trainability")  # fmt: skip


def draw(axis: plt.Axes, result: dict, title: str) -> None:
    rungs = result["rungs"]
    ladder = sorted((int(r.split(":")[1]), r) for r in rungs if r.startswith("rotation:"))
    for signal in ROTATION_SIGNALS:
        xs = [p for p, r in ladder if signal in rungs[r]["signals"]]
        ys = [rungs[r]["signals"][signal]["spearman"] for p, r in ladder if signal in rungs[r]["signals"]]
        axis.plot(xs, ys, marker="o", label=f"rotation: {signal}")
    for rung, signal, label, style in (("simclr", "pretext-loss", "SimCLR held-out NT-Xent (CSNAS)", "s"),
                                       ("simclr", "trained-az-trainability", "SimCLR, then AZ trainability (chosen)", "*"),
                                       ("supervised", "pretext-accuracy", "supervised accuracy (labels)", "D")):
        points = sorted((int(r.split(":")[1]), r) for r in rungs if r.startswith(rung + ":"))
        xs = [p for p, _ in points]
        ys = [rungs[r]["signals"][signal]["spearman"] for _, r in points if signal in rungs[r]["signals"]]
        if ys:
            axis.plot(xs, ys, linestyle="--", marker=style, markersize=9,
                      color={"supervised": "black", "simclr": "grey"}[rung] if style != "*" else "tab:olive", label=label)  # fmt: skip
    for name, colour in (("stage1", "tab:red"), ("params", "tab:brown"), ("hp12-epochs (labels)", "black")):
        if name in result["references"]:
            axis.axhline(result["references"][name]["spearman"], color=colour, linestyle=":" if name != "hp12-epochs (labels)" else "--",
                         linewidth=1, label=f"{name} (reference)")  # fmt: skip
    axis.axhline(0.0, color="grey", linewidth=0.5)
    axis.set_xscale("log")
    axis.set_xlabel("backbone passes per cell (log)")
    axis.set_ylabel(f"Spearman in the pool vs {result['metric']}")
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    figure, axes = plt.subplots(1, len(args.results), figsize=(6.5 * len(args.results), 4.5), squeeze=False)
    for axis, path in zip(axes[0], args.results):
        result = json.loads(path.read_text())
        draw(axis, result, f"{result.get('space', 'nb201')} {result['half']} half: best {result['pool']} cells by "
                           f"{result['stage1']['ranker']} of {result['sample']}")  # fmt: skip
    axes[0][-1].legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
