"""Budgeted NB201 searches, offline: how far each pick rule lands from the best cell within the budget.

Reads finished `bench_search.py --parts budgets --work DIR` run folders (evolution.json: every rated
cell's signals; result.json: the search's pick) and, per budget, compares with the best cell of the
whole table within the budget: the search's pick (after its final rating), the top of the plain
rating, the best of its top 10 (what a perfect final pick could reach), the largest of its top k
(a size tie-break), and the best cell rated at all (what exploration reached). No rating is run.

    python benchmarks/budget_pick_rules.py --runs 'runs/budgets/*/strategy-*' --out benchmarks/results/budget_pick_rules_dev.json
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import re
import statistics
from pathlib import Path
from typing import Any

from ssnas.rating import parse_ranker
from ssnas.spaces import create_space
from ssnas.spaces.budget import CostModel

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="glob of the search run folders")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with (SHARED / "benchmarks" / "nb201.csv").open(newline="") as handle:
        table = {r["arch_str"]: (float(r["cifar10_test"]), float(r["params_M"])) for r in csv.DictReader(handle)}
    space = create_space("nb201")
    model = CostModel(space)
    size = {"max_flops": {k: model.value(space.parse(k), "flops") for k in table},
            "max_params": {k: v[1] for k, v in table.items()}}  # fmt: skip
    per_budget: dict[str, list[dict[str, Any]]] = {}
    for folder in sorted(glob.glob(args.runs)):
        match = re.search(r"seed-(\d+).*_(max_flops|max_params)-([\d.]+)$", folder)
        if match is None or not Path(folder, "result.json").is_file():
            continue
        seed, metric, limit = int(match[1]), match[2], float(match[3])
        cost = size[metric]
        best = max(acc for key, (acc, _) in table.items() if cost[key] <= limit)
        state = json.loads(Path(folder, "evolution.json").read_text())
        keys = [key for key, _ in state["ratings"]]
        ranker = parse_ranker(state["settings"]["rating"])
        combined = ranker.combine({n: [v[n] for _, v in state["ratings"]] for n in state["ratings"][0][1]})
        top = [keys[i] for i in sorted(range(len(keys)), key=lambda i: combined[i], reverse=True)[:10]]
        pick = json.loads(Path(folder, "result.json").read_text())["best"]["arch"]
        found = {
            "search_pick": table[pick][0], "plain_top1": table[top[0]][0], "top10_best": max(table[k][0] for k in top),
            **{f"top{k}_largest": table[max(top[:k], key=cost.__getitem__)][0] for k in (3, 5, 10)},
            "best_rated": max(table[k][0] for k in keys),
        }  # fmt: skip
        per_budget.setdefault(f"{metric}={limit:g}", []).append({"seed": seed, "best_within": best, "found": found})
    summary: dict[str, Any] = {}
    for budget, runs in per_budget.items():
        summary[budget] = {"seeds": [r["seed"] for r in runs], "best_within": runs[0]["best_within"], "gap": {}}
        for rule in runs[0]["found"]:
            gaps = [r["best_within"] - r["found"][rule] for r in runs]
            summary[budget]["gap"][rule] = {"mean": round(statistics.fmean(gaps), 3), "worst": round(max(gaps), 3)}
            print(f"{budget:16s} {rule:14s} gap mean {statistics.fmean(gaps):.2f} worst {max(gaps):.2f}")
    Path(args.out).write_text(json.dumps({"what": __doc__.splitlines()[0], "runs": args.runs, "budgets": summary,
                                          "per_run": per_budget}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
