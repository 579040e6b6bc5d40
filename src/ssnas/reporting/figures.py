"""Matplotlib figures of a run, each returned as PNG bytes (saved or embedded by the caller).

* `architecture_figure`: a cell as a DAG (NB201 edges, DARTS normal and reduction cells) or,
  for layer-wise spaces, the sequence of chosen blocks.
* `loss_curve_figure`: mean training loss per epoch (one line per BossNAS block).
* `op_distribution_figure`: SETN evaluator's p(option) per decision, tight margins.
* `scatter_figure`: score against ground truth, with the correlations in the title and the pick marked.
* `trajectory_figure`: best score so far against candidates rated, one panel per stage.
* `cost_figure`: score against cost (FLOPs, params, latency), the Pareto front, the budget line, the pick.
* `overlay_figure`: several runs' trajectories in one axis per panel (`ssnas compare`).
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ssnas.reporting.measures import running_best
from ssnas.spaces import Architecture, create_space

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@functools.cache
def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, imported on first use (it slows CLI start)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

NB201_EDGE = re.compile(r"edge_(\d+)_(\d+)$")
# One colour per op family, so the same op reads the same in every drawing.
OP_COLOURS = {"conv": "#1f77b4", "pool": "#2ca02c", "skip": "#7f7f7f", "att": "#d62728", "mb": "#9467bd"}


def _png(figure: "Figure") -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", pad_inches=0.05)
    _pyplot().close(figure)
    return buffer.getvalue()


def _colour(op: str) -> str:
    return next((colour for key, colour in OP_COLOURS.items() if key in op), "#ff7f0e")


Edge = tuple[str, str, str]  # (from node, to node, op)


def cell_edges(arch: Architecture) -> dict[str, list[Edge]] | None:
    """The cell(s) of `arch` as labelled edges, or None for a layer-wise space."""
    if arch.space == "darts":
        genotype = create_space("darts").genotype(arch)  # type: ignore[attr-defined]
        cells = {}
        for kind in ("normal", "reduce"):
            pairs = getattr(genotype, kind)
            names = ["c[k-2]", "c[k-1]", *[str(i) for i in range(len(pairs) // 2)]]
            cells[kind] = [(names[src], names[2 + i // 2], op) for i, (op, src) in enumerate(pairs)]
        return cells
    space = create_space(arch.space) if arch.space == "nb201" else None
    if space is None:
        return None
    edges = []
    for name, op in zip(space.choices(), arch.choices):
        match = NB201_EDGE.match(name)
        if match and op != "none":
            edges.append((match.group(2), match.group(1), op))
    return {"cell": edges}


def _draw_dag(axis: Any, edges: Sequence[Edge], title: str) -> None:
    nodes = list(dict.fromkeys(n for edge in edges for n in edge[:2]))
    nodes.sort(key=lambda n: (n.isdigit(), int(n) if n.isdigit() else 0, n[::-1]))  # c[k-2], c[k-1], 0, 1, ..
    x = {n: i for i, n in enumerate(nodes)}
    for i, (src, dst, op) in enumerate(edges):
        gap = x[dst] - x[src]
        rad = 0.0 if gap == 1 else 0.35 * (1 if i % 2 == 0 else -1)
        axis.annotate("", xy=(x[dst], 0), xytext=(x[src], 0),
                      arrowprops=dict(arrowstyle="-|>", color=_colour(op), lw=2, shrinkA=14, shrinkB=14,
                                      connectionstyle=f"arc3,rad={rad}"))  # fmt: skip
        height = -rad * gap * 0.5
        axis.text((x[src] + x[dst]) / 2, height, op, ha="center", va="center", fontsize=8, color=_colour(op),
                  bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))  # fmt: skip
    for n, i in x.items():
        axis.scatter([i], [0], s=700, c="#f5f5f5", edgecolors="black", zorder=3)
        axis.text(i, 0, n, ha="center", va="center", fontsize=9, zorder=4)
    if not edges:
        axis.text(0.5, 0.5, "no edge (the cell is disconnected)", ha="center", transform=axis.transAxes)
    axis.set_title(title, fontsize=10)
    axis.set_xlim(-0.6, max(len(nodes) - 0.4, 0.6))
    axis.set_ylim(-0.9, 0.9)
    axis.axis("off")


def _draw_sequence(axis: Any, arch: Architecture) -> None:
    names = list(create_space(arch.space).choices())
    width = len(arch.choices)
    for i, (name, choice) in enumerate(zip(names, arch.choices)):
        axis.add_patch(_pyplot().Rectangle((i + 0.05, 0.1), 0.9, 0.8, fc=_colour(choice), alpha=0.25, ec="black"))
        axis.text(i + 0.5, 0.62, choice, ha="center", va="center", fontsize=8, rotation=90 if width > 10 else 0)
        axis.text(i + 0.5, 0.2, name, ha="center", va="center", fontsize=6, color="#444")
        if i:
            axis.annotate("", xy=(i + 0.05, 0.5), xytext=(i - 0.05, 0.5), arrowprops=dict(arrowstyle="-|>"))
    axis.set_xlim(0, width)
    axis.set_ylim(0, 1)
    axis.axis("off")
    axis.set_title(f"{arch.space}: chosen block per layer, input to output", fontsize=10)


def architecture_figure(arch: Architecture) -> bytes:
    """A drawing of `arch`: its cell DAG(s) where the space has cells, else its block sequence."""
    cells = cell_edges(arch)
    if cells is None:
        figure, axis = _pyplot().subplots(figsize=(max(6.0, 0.6 * len(arch.choices)), 1.8))
        _draw_sequence(axis, arch)
        return _png(figure)
    figure, axes = _pyplot().subplots(len(cells), 1, figsize=(8, 2.6 * len(cells)), squeeze=False)
    for axis, (kind, edges) in zip(axes[:, 0], cells.items()):
        _draw_dag(axis, edges, f"{arch.space} cell (node 0 = input, last = output; 'none' edges left out)" if kind == "cell"
                  else f"DARTS {kind} cell (output = concat of nodes 0..)")  # fmt: skip
    return _png(figure)


def loss_curve_figure(history: Sequence[float] | Sequence[Sequence[float]]) -> bytes | None:
    """Mean training loss per epoch; a list of lists draws one line per block. None when empty."""
    nested = bool(history) and isinstance(history[0], (list, tuple))
    rows = cast("Sequence[Sequence[float]]", history) if nested else [cast("Sequence[float]", history)]
    curves: list[list[float]] = [list(h) for h in rows if len(h)]
    if not curves:
        return None
    figure, axis = _pyplot().subplots(figsize=(6, 3))
    for k, curve in enumerate(curves):
        axis.plot(range(1, len(curve) + 1), curve, marker="o", label=f"block {k}" if len(curves) > 1 else None)
    axis.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel("mean training loss")
    axis.grid(alpha=0.3)
    if len(curves) > 1:
        axis.legend(fontsize=8)
    return _png(figure)


def judge_curves_figure(curves: Sequence[Sequence[float]], labels: Sequence[str], picked: int) -> bytes | None:
    """The judged candidates' training losses (one line each, x = share of the training), the pick in bold."""
    if not any(curves):
        return None
    figure, axis = _pyplot().subplots(figsize=(6, 3.2))
    for k, (curve, label) in enumerate(zip(curves, labels)):
        if not curve:
            continue
        x = [(i + 1) / len(curve) for i in range(len(curve))]
        axis.plot(x, list(curve), linewidth=2.5 if k == picked else 1.0, label=label, alpha=1.0 if k == picked else 0.7)
    axis.set_xlabel("share of the candidate's training")
    axis.set_ylabel("pretext training loss")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    return _png(figure)


def anytime_figure(minutes: Sequence[float], values: Sequence[float], label: str, end: float) -> bytes:
    """A step line: `label` of the best architecture so far against elapsed minutes, up to `end`."""
    figure, axis = _pyplot().subplots(figsize=(6, 3))
    axis.step([*minutes, end], [*values, values[-1]], where="post", color="#1f77b4", lw=2)
    axis.set_xlim(left=0)
    axis.set_xlabel("elapsed minutes")
    axis.set_ylabel(label)
    axis.grid(alpha=0.3)
    return _png(figure)


def op_distribution_figure(probabilities: Mapping[str, Mapping[str, float]]) -> bytes:
    """Heat map: one row per decision, one column per option, p(option) written in each cell."""
    decisions = list(probabilities)
    options = list(next(iter(probabilities.values())))
    values = [[probabilities[d][o] for o in options] for d in decisions]
    figure, axis = _pyplot().subplots(figsize=(0.9 * len(options) + 2.2, 0.4 * len(decisions) + 1.2))
    image = axis.imshow(values, cmap="viridis", vmin=0.0, vmax=max(max(row) for row in values), aspect="auto")
    axis.set_xticks(range(len(options)), options, rotation=30, ha="right", fontsize=8)
    axis.set_yticks(range(len(decisions)), decisions, fontsize=8)
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if value < 0.5 * max(row) else "black")  # fmt: skip
    axis.set_title("SETN evaluator: p(option) per decision", fontsize=10)
    figure.colorbar(image, ax=axis, fraction=0.05, pad=0.02)
    return _png(figure)


def scatter_figure(scores: Sequence[float], truth: Sequence[float], metric: str, title: str, picked: int | None = None,
                   score_label: str = "score (higher = predicted better)") -> bytes:  # fmt: skip
    """Score (x) against ground truth (y), one point per architecture; `picked` drawn as a star."""
    figure, axis = _pyplot().subplots(figsize=(6.5, 4.2))
    axis.scatter(scores, truth, s=12, alpha=0.6, label="rated candidate")
    if picked is not None:
        axis.scatter([scores[picked]], [truth[picked]], marker="*", s=220, c="#d62728", edgecolors="black",
                     zorder=3, label="the pick")  # fmt: skip
        axis.legend(fontsize=8, loc="lower right")
    axis.set_xlabel(score_label)
    axis.set_ylabel(metric)
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    return _png(figure)


@dataclass(frozen=True)
class TrajectoryPanel:
    """One stage of a search: the scores in the order rated and, when known, each one's ground truth."""

    title: str
    scores: Sequence[float]
    score_label: str
    truth: Sequence[float] | None = None
    truth_label: str = ""
    xlabel: str = "candidates rated"


def trajectory_figure(panels: Sequence[TrajectoryPanel]) -> bytes:
    """Per panel: each candidate's score (dots), the best so far (line) and, on the right axis, the
    ground truth of the best so far (dashed) when known."""
    figure, axes = _pyplot().subplots(1, len(panels), figsize=(min(11.0, 6.0 * len(panels)), 3.6), squeeze=False)
    for axis, panel in zip(axes[0], panels):
        x = list(range(1, len(panel.scores) + 1))
        finite = [(i, s) for i, s in zip(x, panel.scores) if math.isfinite(s)]
        axis.scatter([i for i, _ in finite], [s for _, s in finite], s=9, c="#9e9e9e", label="rated candidate")
        bests, leads = running_best(panel.scores)
        axis.step(x, [b if math.isfinite(b) else math.nan for b in bests], where="post", color="#1f77b4", lw=2,
                  label="best score so far")  # fmt: skip
        axis.set_xlabel(panel.xlabel)
        axis.set_ylabel(panel.score_label, color="#1f77b4")
        axis.set_title(panel.title, fontsize=10)
        axis.grid(alpha=0.3)
        handles, labels = axis.get_legend_handles_labels()
        if panel.truth is not None:
            right = axis.twinx()
            right.step(x, [panel.truth[lead] for lead in leads], where="post", color="#ff7f0e", lw=1.5, ls="--",
                       label=f"{panel.truth_label} of the best so far")  # fmt: skip
            right.set_ylabel(panel.truth_label, color="#ff7f0e")
            more_handles, more_labels = right.get_legend_handles_labels()
            handles, labels = handles + more_handles, labels + more_labels
        axis.legend(handles, labels, fontsize=7, loc="lower right")
    figure.tight_layout()
    return _png(figure)


def cost_figure(costs: Sequence[float], scores: Sequence[float], cost_label: str, front: Sequence[int],
                picked: int | None, limit: float | None) -> bytes:  # fmt: skip
    """Score against cost of every rated candidate, the Pareto front (`front`: positions by cost),
    the budget as a vertical line and the pick as a star."""
    figure, axis = _pyplot().subplots(figsize=(7.5, 4.2))
    finite = [i for i in range(len(costs)) if math.isfinite(scores[i])]
    axis.scatter([costs[i] for i in finite], [scores[i] for i in finite], s=12, alpha=0.55, c="#1f77b4",
                 label="rated candidate")  # fmt: skip
    if front:
        axis.step([costs[i] for i in front], [scores[i] for i in front], where="post", color="#2ca02c", lw=1.5)
        axis.scatter([costs[i] for i in front], [scores[i] for i in front], s=30, facecolors="none",
                     edgecolors="#2ca02c", lw=1.5, label=f"Pareto front ({len(front)})")  # fmt: skip
    if limit is not None:
        axis.axvline(limit, color="#d62728", ls="--", lw=1.5, label=f"budget {limit:g}")
    if picked is not None:
        axis.scatter([costs[picked]], [scores[picked]], marker="*", s=240, c="#d62728", edgecolors="black",
                     zorder=3, label="the pick")  # fmt: skip
    axis.set_xlabel(cost_label)
    axis.set_ylabel("score (higher = better)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    return _png(figure)


def overlay_figure(panels: Sequence[tuple[str, str, Mapping[str, Sequence[float]]]]) -> bytes | None:
    """Panels of (title, y label, run -> values per candidate rated), one line per run; None when empty."""
    panels = [p for p in panels if p[2]]
    if not panels:
        return None
    figure, axes = _pyplot().subplots(1, len(panels), figsize=(min(11.0, 6.0 * len(panels)), 3.8), squeeze=False)
    for axis, (title, ylabel, lines) in zip(axes[0], panels):
        for label, values in lines.items():
            axis.step(range(1, len(values) + 1), [v if math.isfinite(v) else math.nan for v in values],
                      where="post", lw=1.8, label=label)  # fmt: skip
        axis.set_xlabel("candidates rated")
        axis.set_ylabel(ylabel)
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return _png(figure)
