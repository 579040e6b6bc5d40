"""Choose the judge of the two-stage search on the development half, report it on the evaluation half.

Candidates: every label-free (rung, signal) of bench_shortlist's development file, alone and
with its partners (+stage1, +params, ...); the supervised rung is a labelled reference and never
a candidate. Criterion: the lowest mean pick regret over random shortlists of 10 from the pool
(ties: the cheaper rung). The same entry is then read from the evaluation file, beside stage 1
alone and the parameter count on the same cells. Writes JSON.

    .venv/bin/python benchmarks/choose_judge.py benchmarks/results/shortlist_nb201_dev.json \
        benchmarks/results/shortlist_nb201_eval.json --out benchmarks/results/judge_choice_nb201.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LABELLED = ("supervised",)
KEY = "regret_random_k10"


def entries(result: dict) -> dict[tuple[str, str], dict]:
    return {(rung, name): r for rung, e in result["rungs"].items() if rung.split(":")[0] not in LABELLED
            for name, r in e["signals"].items()}  # fmt: skip


def brief(r: dict) -> dict:
    return {"spearman": r["spearman"], "kendall": r["kendall"], KEY: r[KEY], "regret_random_k5": r["regret_random_k5"],
            "stage1_top10_pick": r["stage1_top10"]["picked"], "stage1_top10_best": r["stage1_top10"]["best"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dev", type=Path)
    parser.add_argument("eval", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    dev, evaluation = json.loads(args.dev.read_text()), json.loads(args.eval.read_text())
    candidates = entries(dev)
    cost = {rung: int(rung.split(":")[1]) for rung, _ in candidates}
    ranked = sorted(candidates, key=lambda k: (candidates[k][KEY], cost[k[0]]))
    chosen = ranked[0]
    held = entries(evaluation)
    result = {
        "criterion": f"lowest {KEY} on the development half among label-free (rung, signal) entries; ties: cheaper rung",
        "dev": {"file": str(args.dev), "pool": dev["pool"], "pool_truth": dev["pool_truth"]},
        "eval": {"file": str(args.eval), "pool": evaluation["pool"], "pool_truth": evaluation["pool_truth"]},
        "chosen": {"rung": chosen[0], "signal": chosen[1], "dev": brief(candidates[chosen]),
                   "eval": brief(held[chosen]) if chosen in held else None},
        "dev_top10": [{"rung": k[0], "signal": k[1], **brief(candidates[k]),
                       "eval": brief(held[k]) if k in held else None} for k in ranked[:10]],
        "references": {name: {"dev": brief(dev["references"][name]), "eval": brief(evaluation["references"][name])}
                       for name in dev["references"] if name in evaluation["references"]},
    }  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1))
    print(f"chosen on dev: {chosen[0]} {chosen[1]}")
    for half in ("dev", "eval"):
        r = result["chosen"][half]
        if r:
            print(f"  {half:4s} spearman {r['spearman']:+.3f} {KEY} {r[KEY]:.3f} stage-1 top-10 pick {r['stage1_top10_pick']:.2f} "
                  f"(best {r['stage1_top10_best']:.2f})")
    for name, r in result["references"].items():
        print(f"  {name:24s} dev {r['dev'][KEY]:.3f} eval {r['eval'][KEY]:.3f} (spearman {r['dev']['spearman']:+.2f} / {r['eval']['spearman']:+.2f})")
    print("dev top 10:")
    for row in result["dev_top10"]:
        e = row["eval"] or {}
        print(f"  {row['rung']:15s} {row['signal']:42s} dev {row[KEY]:.3f} eval {e.get(KEY, float('nan')):.3f}")


if __name__ == "__main__":
    main()
