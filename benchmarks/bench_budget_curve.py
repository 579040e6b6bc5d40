"""The default NB201 search against its budget: found cifar10_test per seed at 1, 2, 5, 10, 15 minutes.

A time-budgeted evolution (`ssnas search --time-budget M`) rates a planned number of cells and
its proposals never depend on that number, so one long search per seed run by rating count
(`--ratings N`, deterministic, any machine load) holds every shorter budget in its best-so-far
trace (`result.json` info.best_so_far): the pick of a B-minute search is the best after the
ratings a B-minute plan makes. The plan's rating count at each budget comes from `--rate`,
ratings per second of a real `--time-budget` run on an idle machine (`calibrate`), so the
minute axis is the user's: `planned(B) = population + (60 B - startup - finish) * SAFETY * rate`.

Parts:

* `run`: one search per (seed, islands) in this process, `--ratings` each, results to --out;
* `curve`: reads the runs of --runs-dir and writes the curve (mean, worst per budget and islands);
* `final`: option (c) on those runs: the shortlist at each budget rated again under more seeds;
* `summary`: rows of `final` files as the default plan's curve (mean, worst per budget) and its plot;
* `plot`: curve files as one PNG (mean and worst against the budget).

    python benchmarks/bench_budget_curve.py run --seeds 0 1 2 3 4 --islands 1 --ratings 500 --runs-dir runs/curve
    python benchmarks/bench_budget_curve.py curve --runs-dir runs/curve --seeds 0 1 2 3 4 --rate 2.3 \\
        --out benchmarks/results/budget_curve_dev.json
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from ssnas.run import run_search, search_config
from ssnas.strategies.evolution import planned_ratings

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BUDGETS = (1, 2, 3, 4, 5, 10, 15)


def read_table(metric: str = "cifar10_test") -> dict[str, float]:
    with (SHARED / "benchmarks" / "nb201.csv").open(newline="") as handle:
        return {row["arch_str"]: float(row[metric]) for row in csv.DictReader(handle)}


def run_name(seed: int, islands: int) -> str:
    return f"seed{seed}_islands{islands}"


def run(args: argparse.Namespace) -> None:
    for seed in args.seeds:
        for islands in args.islands:
            out = Path(args.runs_dir) / run_name(seed, islands)
            if not args.resume:
                shutil.rmtree(out, ignore_errors=True)
            config = search_config(data=str(SHARED / "cifar10-jpeg"), out=str(out), progress=False, seed=seed,
                                   ratings=args.ratings, islands=islands, resume=args.resume)  # fmt: skip
            started = time.perf_counter()
            payload = run_search(config)
            print(f"seed {seed} islands {islands}: {payload['best']['arch']} in {time.perf_counter() - started:.0f} s",
                  flush=True)  # fmt: skip


def planned(budget_minutes: float, rate: float, startup: float, population: int, final: int = 20) -> int:
    """Ratings a `--time-budget` plan makes (`planned_ratings`, what `Evolution` plans), `rate` ratings/s,
    `startup` s before the search starts rating, `final` ratings of the final shortlist kept for the end."""
    return planned_ratings(budget_minutes * 60.0, startup + population / rate, population, 1.0 / rate, final)


def best_at(trace: list[dict[str, Any]], rated: int) -> str:
    """The best architecture after `rated` ratings (the trace holds each change of the best)."""
    best = trace[0]["arch"]
    for entry in trace:
        if entry["rated"] > rated:
            break
        best = entry["arch"]
    return best


def curve(args: argparse.Namespace) -> None:
    table = read_table()
    results: dict[str, Any] = {
        "what": "found NB201 cifar10_test of the default search (evolution, az-nas at C=16, N=5) against the time "
                "budget, from one search per seed run by rating count (its best-so-far trace)",
        "rate_ratings_per_second": args.rate, "startup_seconds": args.startup, "rate_source": args.rate_source,
        "commands": args.commands, "cpu": cpu(), "seeds": args.seeds, "budgets": {},
    }  # fmt: skip
    for islands in args.islands:
        rows: dict[str, Any] = {}
        for budget in BUDGETS:
            count = planned(budget, args.rate, args.startup, 20 * islands)
            found, reached = [], True
            for seed in args.seeds:
                state = json.loads((Path(args.runs_dir) / run_name(seed, islands) / "evolution.json").read_text())
                if len(state["ratings"]) < count:
                    reached = False
                    break
                trace = [{"rated": n, "arch": key} for n, _, key in state["trace"]]
                found.append(table[best_at(trace, count)])
            if not reached:
                continue
            rows[str(budget)] = {"ratings": count, "cifar10_test": found, "mean": statistics.fmean(found),
                                 "worst": min(found), "best": max(found)}  # fmt: skip
        results["budgets"][f"islands{islands}"] = rows
    Path(args.out).write_text(json.dumps(results, indent=1))
    for name, rows in results["budgets"].items():
        for budget, row in rows.items():
            print(f"{name} {budget:>2} min ({row['ratings']:>5} ratings): mean {row['mean']:.2f} worst {row['worst']:.2f}")


def final(args: argparse.Namespace) -> None:
    """Option (c) on finished runs: at each budget's rating count, the best `--shortlist` by the
    search's score rated again under `--final-seeds` more seeds (`Evolution._final_rating`, what
    `--final-shortlist` runs); the pick against the plain one."""
    import yaml

    from ssnas.rating import parse_ranker
    from ssnas.run import resolve
    from ssnas.run.task import build_space, build_task, fit_data
    from ssnas.spaces import create_space
    from ssnas.strategies.evolution import Evolution, EvolutionConfig
    from ssnas.strategies.raters import create_rater

    table, space = read_table(), create_space("nb201")
    results: dict[str, Any] = {"what": "option (c): the shortlist rated again under more seeds", "cpu": cpu(),
                               "shortlist": args.shortlist, "final_seeds": args.final_seeds, "rows": []}  # fmt: skip
    for islands in args.islands:
        for seed in args.seeds:
            folder = Path(args.runs_dir) / run_name(seed, islands)
            settings = yaml.safe_load((folder / "config.yaml").read_text())
            config = resolve(search_config(**{**settings, "out": str(folder), "resume": True, "progress": False}))
            config, dataset, _ = fit_data(config)
            task = build_task(config, build_space(config), folder, dataset)
            state = json.loads((folder / "evolution.json").read_text())
            ranker = parse_ranker(state["settings"]["rating"])
            rater = create_rater(task, state["settings"]["rating"], state["settings"]["rating_batch_size"])
            evolution = Evolution(EvolutionConfig(ratings=1, final_shortlist=args.shortlist, final_seeds=args.final_seeds))
            for budget in args.budgets:
                count = planned(budget, args.rate, args.startup, 20 * islands)
                if count > len(state["ratings"]):
                    continue
                keys = [key for key, _ in state["ratings"][:count]]
                names = list(state["ratings"][0][1])
                combined = ranker.combine({n: [values[n] for _, values in state["ratings"][:count]] for n in names})
                order = sorted(range(count), key=lambda i: combined[i], reverse=True)
                shortlist = [space.parse(keys[i]) for i in order[: args.shortlist]]
                scores = evolution._final_rating(task, rater, shortlist, rater.config.batch_size)
                pick = max(scores, key=scores.__getitem__)
                row = {"islands": islands, "seed": seed, "budget": budget, "ratings": count,
                       "plain": table[shortlist[0].key], "final": table[pick.key],
                       "shortlist_best": max(table[a.key] for a in shortlist)}  # fmt: skip
                results["rows"].append(row)
                print(row, flush=True)
                Path(args.out).write_text(json.dumps(results, indent=1))
    for islands in args.islands:
        for budget in BUDGETS:
            rows = [r for r in results["rows"] if r["islands"] == islands and r["budget"] == budget]
            if rows:
                print(f"islands {islands} {budget} min: plain {statistics.fmean(r['plain'] for r in rows):.3f} "
                      f"final {statistics.fmean(r['final'] for r in rows):.3f} "
                      f"shortlist best {statistics.fmean(r['shortlist_best'] for r in rows):.3f}")


def summary(args: argparse.Namespace) -> None:
    """The rows of `final` files (--finals; a later file's row for the same seed and budget wins) as the
    curve of the default plan: mean / worst / best found cifar10_test per budget for the plain pick,
    the pick after the final rating (what the default runs) and the best of the shortlist; the PNG
    (--png) draws the default's mean and worst against the budget."""
    rows: dict[tuple[int, float], dict[str, Any]] = {}
    for path in args.finals:
        for row in json.loads(Path(path).read_text())["rows"]:
            rows[(row["seed"], row["budget"])] = row
    result: dict[str, Any] = {"what": args.what, "sources": args.finals, "cpu": cpu(), "commands": args.commands}
    for name, key in (("plain_pick", "plain"), ("with_final_rating", "final"), ("shortlist_best", "shortlist_best")):
        result[name] = {}
        for budget in sorted({b for _, b in rows}):
            chosen = sorted((seed, row) for (seed, b), row in rows.items() if b == budget and seed in args.seeds)
            found = [row[key] for _, row in chosen]
            entry = {"ratings": chosen[0][1]["ratings"], "seeds": [seed for seed, _ in chosen], "cifar10_test": found,
                     "mean": statistics.fmean(found), "worst": min(found), "best": max(found)}
            if entry["seeds"] == sorted(args.seeds):
                result[name][f"{budget:g}"] = entry
            else:  # a budget some seeds' runs did not reach: apart, with the mean of the same seeds at the others
                result.setdefault(f"{name}_some_seeds", {})[f"{budget:g}"] = entry
    result["rows"] = [rows[key] for key in sorted(rows)]
    Path(args.out).write_text(json.dumps(result, indent=1))
    for budget, row in result["with_final_rating"].items():
        print(f"{budget:>3} min ({row['ratings']:>5} ratings): mean {row['mean']:.3f} worst {row['worst']:.3f}")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(6.4, 3.6))
        curve = result["with_final_rating"]
        budgets = [float(b) for b in curve]
        line = axis.plot(budgets, [r["mean"] for r in curve.values()], marker="o", label="default search: mean")
        axis.plot(budgets, [r["worst"] for r in curve.values()], ls="--", marker=".", color=line[0].get_color(),
                  label="default search: worst seed")  # fmt: skip
        axis.axhline(94.37, color="grey", lw=0.8, ls=":", label="NB201 optimum (94.37)")
        axis.set_xlabel("time budget (minutes, idle 2-core CPU)")
        axis.set_ylabel(f"found cifar10_test ({len(args.seeds)} held-out seeds)")
        axis.grid(alpha=0.3)
        if args.default is not None:
            axis.axvline(args.default, color="grey", lw=0.8, ls="-.", label=f"the default budget ({args.default:g} min)")
        axis.legend(fontsize=7, loc="lower center")
        figure.tight_layout()
        figure.savefig(args.png, dpi=120)


def plot(args: argparse.Namespace) -> None:
    """The curves of --curves (JSON files of `curve`) as one PNG: mean and worst per budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    for path, label in zip(args.curves, args.labels):
        for name, rows in json.loads(Path(path).read_text())["budgets"].items():
            budgets = [float(b) for b in rows]
            label = f"{label}, {name}" if name else label
            line = axis.plot(budgets, [r["mean"] for r in rows.values()], marker="o", label=f"{label}: mean")
            axis.plot(budgets, [r["worst"] for r in rows.values()], ls="--", marker=".", color=line[0].get_color(),
                      label=f"{label}: worst")  # fmt: skip
    axis.axhline(94.37, color="grey", lw=0.8, ls=":", label="NB201 optimum (94.37)")
    axis.set_xlabel("time budget (minutes, idle 2-core CPU)")
    axis.set_ylabel("found cifar10_test")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(args.out, dpi=120)


def cpu() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return {"model": model, "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags, "cores": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("run", "curve", "final", "summary", "plot"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[])
    parser.add_argument("--curves", nargs="*", default=[], help="plot: curve JSON files")
    parser.add_argument("--labels", nargs="*", default=[], help="plot: one label per curve file")
    parser.add_argument("--islands", type=int, nargs="+", default=[1])
    parser.add_argument("--ratings", type=int, default=500)
    parser.add_argument("--resume", action="store_true", help="run: continue the runs in --runs-dir (killed)")
    parser.add_argument("--runs-dir", default="runs/budget_curve")
    parser.add_argument("--rate", type=float, default=2.3, help="ratings per second of an idle --time-budget run")
    parser.add_argument("--startup", type=float, default=4.0, help="seconds from the process start to the first rating")
    parser.add_argument("--rate-source", default="", help="the run that measured --rate")
    parser.add_argument("--commands", nargs="*", default=[], help="the commands that made the runs (recorded)")
    parser.add_argument("--shortlist", type=int, default=10, help="final: candidates rated again")
    parser.add_argument("--final-seeds", type=int, default=2, help="final: more seeds each is rated under")
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS), help="final: these budgets only")
    parser.add_argument("--finals", nargs="*", default=[], help="summary: JSON files of the final part")
    parser.add_argument("--what", default="", help="summary: what the runs are (recorded)")
    parser.add_argument("--png", default=None, help="summary: the plot")
    parser.add_argument("--default", type=float, default=None, help="summary: the default budget (marked on the plot)")
    parser.add_argument("--out", default="benchmarks/results/budget_curve.json")
    args = parser.parse_args()
    {"run": run, "curve": curve, "final": final, "summary": summary, "plot": plot}[args.part](args)


if __name__ == "__main__":
    main()
