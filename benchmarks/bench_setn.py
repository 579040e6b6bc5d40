"""SETN on NAS-Bench-201, label-free: ranking quality of the trained template, the guard of SETN.

The ranking part runs what `ssnas rank --strategy setn --objective simclr --preset quick` runs
(same settings, data split, seed and code path: `SETN.train_template`, then
`rate_architectures`), trains the template once per precision and rates two fixed samples of
non-degenerate cells with every signal asked for: `--dev` cells with an even benchmark index
(settings are chosen there) and `--eval` cells with an odd one (figures are reported there).
Each signal is rated alone and SETN's default rating is combined from its parts, so every
rating sees identical weights and images; the parameter count on the same cells stands beside.

Guard (run on every change that touches SETN, the supernet, the training loop or the rating):

    python benchmarks/bench_setn.py --parts ranking --guard --out benchmarks/results/setn_guard.json

exits 1 when SETN's default rating ranks the evaluation cells no better than the parameter count
(in the precision `auto` picks on this machine).

The search part runs full `ssnas search --strategy setn` over several seeds and reads the found
cell's `cifar10_test` from the table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import random
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from ssnas.groundtruth.tables import TABLES
from ssnas.ranking.metrics import kendall_tau, spearman_rho
from ssnas.ranking.selection import all_architectures
from ssnas.run import SearchConfig, build_task, resolve, run_search, search_config
from ssnas.run.task import build_space, fit_data
from ssnas.spaces import Architecture
from ssnas.strategies.setn import SETN
from ssnas.rating.aggregate import INIT_PREFIX
from ssnas.strategies.supernet_rating import STRUCTURE_SIGNALS, combine_by_rank, rate_architectures

ROOT = Path(__file__).resolve().parents[1]
# Candidate ratings of the trained template (and at initialisation, `init-*`), each rated alone.
SIGNALS = ("meco", "naswot", "swap", "az-expressivity", "az-progressivity", "az-trainability", "effective-rank",
           "init-meco", "init-naswot", "init-az-expressivity", "init-az-progressivity", "init-az-trainability", "params")


def half_sample(parity: int, count: int, seed: int) -> list[Architecture]:
    """`count` non-degenerate NB201 cells with benchmark index % 2 == parity, seeded."""
    from ssnas.spaces import create_space

    table = TABLES.create("nb201")
    pool = [a for a in all_architectures(create_space("nb201")) if table.index_of(a.key) % 2 == parity]
    return random.Random(seed).sample(pool, count)


def correlations(values: list[float], truth: list[float]) -> dict[str, float]:
    out = {"spearman": spearman_rho(values, truth), "kendall": kendall_tau(values, truth)}
    try:  # top-of-ranking metrics, where this version of ssnas has them
        from ssnas.ranking.metrics import ndcg, pick_at

        out.update(ndcg=ndcg(values, truth), pick_at_100=pick_at(values, truth, 100))
    except ImportError:
        pass
    return out


def ranking(config: SearchConfig, samples: dict[str, list[Architecture]], signals: tuple[str, ...], work: Path,
            reuse: bool = False) -> dict:
    """Train SETN's template as `ssnas rank --strategy setn` does (`reuse`: the template trained
    into `work` before), rate every sample with every signal."""
    config = resolve(replace(config, run=replace(config.run, out=str(work), resume=reuse and work.exists())))
    space = build_space(config)
    strategy = config.create_strategy()
    assert isinstance(strategy, SETN)
    config, dataset, _ = fit_data(config)
    task = build_task(config, space, work, dataset)
    table = TABLES.create("nb201")
    started = time.perf_counter()
    template = strategy.train_template(task)
    out: dict = {"precision": config.run.precision, "train_seconds": time.perf_counter() - started,
                 "train_history": template.result.history, "images_per_second": template.result.images_per_second,
                 "default_rating": list(strategy.config.rating.signals), "samples": {}}  # fmt: skip
    for name, archs in samples.items():
        truth = [table.query(a.key, "cifar10_valid") for a in archs]
        wanted = tuple(dict.fromkeys((*signals, *strategy.config.rating.signals)))
        scored = rate_architectures(space, template.supernet, template.objective, archs, task.holdout_images,
                                    replace(strategy.config.rating, signals=wanted), task.train, seed=task.seed,
                                    holdout_labels=task.holdout_labels, report=False)  # one pass per family and cell
        columns = {signal: [s.details[signal] for s in scored] for signal in wanted}
        default = strategy.config.rating.signals
        combos = {"+".join(default): combine_by_rank({s: columns[s] for s in default}), **columns}
        for size in (2, 3):  # every mean-rank combination of up to three signals (choose on dev, read on eval)
            for combo in itertools.combinations(signals, size):
                combos.setdefault("+".join(combo), combine_by_rank({s: columns[s] for s in combo}))
        out["samples"][name] = {
            "keys": [a.key for a in archs], "columns": columns,
            "signals": {combo: correlations(values, truth) for combo, values in combos.items()},
        }
        best = sorted(out["samples"][name]["signals"].items(), key=lambda kv: -kv[1]["spearman"])[:8]
        print(config.run.precision, name, {c: round(v["spearman"], 3) for c, v in best}, flush=True)
    dev = out["samples"].get("dev", {}).get("signals", {})
    on_template = [combo for combo in dev if any(on_the_template(name) for name in combo.split("+"))]
    if on_template:  # the declared criterion: Spearman on the development cells, a template signal inside
        out["best_on_dev"] = max(on_template, key=lambda combo: dev[combo]["spearman"])
    return out


def on_the_template(signal: str) -> bool:
    """A signal SETN computes on its trained template (not at initialisation, not a count)."""
    return not signal.startswith(INIT_PREFIX) and signal not in STRUCTURE_SIGNALS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg"))
    parser.add_argument("--table", default=None)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--dev", type=int, default=200, help="development cells (even index)")
    parser.add_argument("--eval", type=int, default=200, help="evaluation cells (odd index)")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--precisions", nargs="+", default=["auto"], help="auto, fp32, bf16: one template each")
    parser.add_argument("--signals", nargs="+", default=list(SIGNALS), help="rated alone besides the default rating")
    parser.add_argument("--guard", action="store_true", help="exit 1 if the default rating's evaluation Spearman "
                                                             "is not above the parameter count's")  # fmt: skip
    parser.add_argument("--search-seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--parts", nargs="+", default=["ranking"], choices=("ranking", "search"))
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_setn")
    parser.add_argument("--reuse", action="store_true", help="rate on the templates already trained into --work")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "setn.json")
    args = parser.parse_args()
    if not args.reuse:
        shutil.rmtree(args.work, ignore_errors=True)  # a benchmark starts from scratch

    results: dict = {"command": " ".join(["python", *sys.argv]), "cpu": cpu_name(), "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "args": {k: str(v) for k, v in vars(args).items()}}  # fmt: skip
    guard_failed = False
    if "ranking" in args.parts:
        samples = {"dev": half_sample(0, args.dev, args.sample_seed), "eval": half_sample(1, args.eval, args.sample_seed)}
        samples = {name: archs for name, archs in samples.items() if archs}
        results["ranking"] = {}
        for precision in args.precisions:
            base = search_config(strategy="setn", objective="simclr", data=args.data, table=args.table,
                                 preset=args.preset, precision=precision, progress=False)  # fmt: skip
            results["ranking"][precision] = ranking(base, samples, tuple(args.signals), args.work / f"rank_{precision}",
                                                    args.reuse)
            write(args.out, results)
        if args.guard:
            guard = results["ranking"][args.precisions[0]]
            rows = guard["samples"]["eval"]["signals"]
            default = "+".join(guard["default_rating"])
            guard_failed = not rows[default]["spearman"] > rows["params"]["spearman"]
            results["guard"] = {"precision": guard["precision"], "rating": default, "spearman": rows[default]["spearman"],
                                "params_spearman": rows["params"]["spearman"], "passed": not guard_failed}  # fmt: skip
            print("guard", "FAILED" if guard_failed else "passed", results["guard"], flush=True)
    if "search" in args.parts:
        runs = results["search"] = []
        for seed in args.search_seeds:
            config = search_config(strategy="setn", objective="simclr", data=args.data, table=args.table,
                                   preset=args.preset, seed=seed, progress=False, out=str(args.work / f"search_{seed}"))  # fmt: skip
            payload = run_search(config)
            truth = payload["ground_truth"] or {}
            runs.append({"seed": seed, "arch": payload["best"]["arch"], "cifar10_test": truth.get("cifar10_test"),
                         "cifar10_valid": truth.get("cifar10_valid"), "seconds": payload["seconds"]})  # fmt: skip
            print(runs[-1], flush=True)
            write(args.out, results)
    write(args.out, results)
    sys.exit(1 if guard_failed else 0)


def cpu_name() -> str:
    """The CPU model and torch's kernel level, for the results file."""
    from ssnas.training.precision import cpu_capability

    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        model = platform.processor() or "unknown"
    return f"{model} ({cpu_capability()})"


def write(path: Path, results: dict) -> None:
    """Written after every part, so a late failure keeps what was measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
