"""What a report computes from a run record: best so far, costs, the Pareto front, correlations,
and where the pick stands in the benchmark table.

Costs are those of the space's full-size network, as the budget counts them
(`ssnas.spaces.budget.CostModel`): MFLOPs of one 32x32 image, or millions of parameters;
latency only where the run measured it (`latency.json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssnas.errors import UserError
from ssnas.groundtruth import load_space_table, space_table
from ssnas.ranking.metrics import kendall_tau, spearman_rho
from ssnas.spaces import create_space
from ssnas.spaces.budget import UNITS, CostModel

LATENCY_FILE = "latency.json"


def running_best(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """The best value so far and its position, after each step (non-finite values never lead;
    -inf while none is finite)."""
    best, lead, bests, leads = -math.inf, 0, [], []
    for i, value in enumerate(values):
        if math.isfinite(value) and value > best:
            best, lead = value, i
        bests.append(best)
        leads.append(lead)
    return bests, leads


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Positions of the candidates no other beats on both (lower cost, higher score), by cost."""
    order = sorted((i for i in range(len(costs)) if math.isfinite(scores[i])), key=lambda i: (costs[i], -scores[i]))
    front, best = [], -math.inf
    for i in order:
        if scores[i] > best:
            front.append(i)
            best = scores[i]
    return front


@dataclass(frozen=True)
class Costs:
    """One cost of every candidate, aligned with the keys it was computed for."""

    metric: str  # "flops" | "params" | "latency_ms"
    values: list[float]
    limit: float | None  # the run's budget on this metric

    @property
    def label(self) -> str:
        name = {"flops": "FLOPs", "params": "parameters", "latency_ms": "latency"}[self.metric]
        return f"{name} ({UNITS[self.metric]})"


def candidate_costs(space: str, keys: Sequence[str], settings: Mapping[str, Any], folder: Path | None) -> Costs:
    """The budgeted metric of every key (FLOPs without a budget); latency from the run's own
    measurements (`latency.json`) when the budget was on latency and every key was measured."""
    limits = {m: float(settings[f"max_{m}"]) for m in UNITS if settings.get(f"max_{m}") is not None}
    if "latency_ms" in limits and folder is not None:
        measured = _measured_latency(folder / LATENCY_FILE)
        if all(k in measured for k in keys):
            return Costs("latency_ms", [measured[k] for k in keys], limits["latency_ms"])
    metric = "params" if "params" in limits and "flops" not in limits else "flops"
    full_size = create_space(space)  # what the budget counts and `ssnas train` trains
    model = CostModel(full_size)
    return Costs(metric, [model.value(full_size.parse(k), metric) for k in keys], limits.get(metric))


def _measured_latency(path: Path) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text())["latency_ms"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def correlations(scores: Sequence[float], truth: Sequence[float]) -> dict[str, float] | None:
    """Spearman and Kendall of the finite pairs; None with fewer than three or a constant side."""
    pairs = [(s, t) for s, t in zip(scores, truth) if math.isfinite(s) and math.isfinite(t)]
    if len(pairs) < 3 or len({s for s, _ in pairs}) < 2 or len({t for _, t in pairs}) < 2:
        return None
    x, y = [s for s, _ in pairs], [t for _, t in pairs]
    return {"spearman": spearman_rho(x, y), "kendall": kendall_tau(x, y), "n": float(len(pairs))}


@dataclass(frozen=True)
class TableStanding:
    """Where a value stands in one column of the space's benchmark table."""

    metric: str
    value: float
    best: float
    rank: int  # 1 = the table's best
    size: int


def table_standing(space: str, table: str | None, truth: dict[str, float],
                   metrics: Sequence[str]) -> list[TableStanding]:  # fmt: skip
    """The pick's rank and the table's best for each metric in `metrics` the pick has; [] when the
    table cannot be loaded here (the report then shows the pick's values alone)."""
    if not truth or (table is None and space_table(space) is None):
        return []
    try:
        loaded = load_space_table(space, table)
    except (UserError, OSError):
        return []
    out = []
    for metric in metrics:
        if metric not in truth or metric not in loaded.metric_names():
            continue
        column = loaded.column(metric)
        column = column[[math.isfinite(v) for v in column]]
        value = truth[metric]
        out.append(TableStanding(metric, value, float(column.max()), int((column > value).sum()) + 1, len(column)))
    return out


__all__ = [
    "Costs", "TableStanding", "candidate_costs", "correlations", "pareto_front", "running_best", "table_standing",
]
