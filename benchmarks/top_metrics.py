"""Top-of-ranking figures of stored bench_rankers.py results, without rating anything again.

Each ranker of a results JSON is combined again from the leaf columns the file stores (the same
`parse_ranker(...).combine` bench_rankers.py used, so its Spearman must come out as stored; this is
checked) and scored against the table: Spearman, Kendall, nDCG@1000 (VKDNW's definition) and
pick@100 (expected truth of the ranker's pick among 100 random cells), for the size baseline too,
beside the perfect ranker's pick@100 (`ssnas.ranking.metrics`). Figures are given for the stored
metric and for cifar10_test where the table has it; against another metric than the stored one,
`ranked_by_<stored metric>` is the ranking by the stored metric itself (a perfect judge of it).

    .venv/bin/python benchmarks/top_metrics.py benchmarks/results/rankers_nb201_eval.json
    # -> benchmarks/results/rankers_nb201_eval_top.json
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import numpy as np
from bench_rankers import PICK_M, SETTINGS, size_baseline, top_figures

from ssnas.groundtruth.tables import TABLES
from ssnas.ranking.metrics import kendall_tau, spearman_rho
from ssnas.rating import parse_ranker
from ssnas.spaces import create_space


def figures(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {"spearman": spearman_rho(pred, truth), "kendall": kendall_tau(pred, truth), **top_figures(pred, truth)}


def aggregate_of(command: str) -> str:
    """The --aggregate bench_rankers.py ran with (its default when not given)."""
    words = shlex.split(command)
    return words[words.index("--aggregate") + 1] if "--aggregate" in words else "mean-rank"


def top_metrics(stored: dict, metrics: list[str] | None) -> dict:
    settings = SETTINGS[stored["space"]]
    space, table = create_space(stored["space"]), TABLES.create(settings["table"])
    keys = stored["keys"]
    metrics = metrics or [stored["metric"], *(["cifar10_test"] if "cifar10_test" in table.metric_names() else [])]
    aggregate = aggregate_of(stored["command"])
    preds = {text: np.array(parse_ranker(text, aggregate).combine(stored["columns"])) for text in stored["rankers"]}
    truth = np.array([table.query(key, stored["metric"]) for key in keys])
    for text, pred in preds.items():  # the columns give back the stored figures: the same rankers, the same cells
        if not np.isclose(spearman_rho(pred, truth), stored["rankers"][text]["spearman"], atol=1e-9):
            raise SystemExit(f"{text}: Spearman from the stored columns differs from the stored one")
    baseline = np.array(size_baseline(space, [space.parse(key) for key in keys], settings["baseline"]))
    out = {"source": stored["command"], "space": stored["space"], "half": stored["half"], "cells": len(keys),
           "aggregate": aggregate, "pick_m": PICK_M, "ndcg_k": min(1000, len(keys)), "metrics": {}}
    stored_truth = truth
    for metric in metrics:
        truth = np.array([table.query(key, metric) for key in keys])
        out["metrics"][metric] = {
            "perfect_ranker": top_figures(truth, truth),
            "baseline": {"name": settings["baseline"], **figures(baseline, truth)},
            "rankers": {text: figures(pred, truth) for text, pred in preds.items()},
        }
        if metric != stored["metric"]:  # the ceiling of a ranker tuned to the stored metric: that metric itself
            out["metrics"][metric][f"ranked_by_{stored['metric']}"] = figures(stored_truth, truth)
    return out


def print_table(result: dict, name: str) -> None:
    pick = f"pick_at_{PICK_M}"
    for metric, found in result["metrics"].items():
        by = {k: v for k, v in found.items() if k.startswith("ranked_by_")}
        print(f"\n{name}: {result['cells']} cells, against {metric} "
              f"(perfect ranker: pick@{PICK_M} {found['perfect_ranker'].get(pick, float('nan')):.2f}"
              + "".join(f"; {k}: {v.get(pick, float('nan')):.2f}" for k, v in by.items()) + ")")
        print(f"  {'ranker':32s} spearman  kendall  ndcg@{result['ndcg_k']}  pick@{PICK_M}")
        rows = {**found["rankers"], f"baseline {found['baseline']['name']}": found["baseline"]}
        for text, row in sorted(rows.items(), key=lambda item: -item[1].get(pick, item[1]["ndcg"])):
            print(f"  {text:32s} {row['spearman']:8.3f} {row['kendall']:8.3f} {row['ndcg']:9.3f}"
                  f" {row.get(pick, float('nan')):8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="bench_rankers.py JSON files")
    parser.add_argument("--metrics", nargs="+", default=None, help="table columns (default: stored + cifar10_test)")
    args = parser.parse_args()
    for path in args.results:
        result = top_metrics(json.loads(path.read_text()), args.metrics)
        out = path.with_name(path.stem + "_top.json")
        out.write_text(json.dumps(result, indent=1) + "\n")
        print_table(result, path.name)
        print(f"  -> {out}")


if __name__ == "__main__":
    main()
