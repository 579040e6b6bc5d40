"""SETN on NAS-Bench-201, label-free vs supervised: ranking quality and found cells.

(a) ranking: train each template network once, rate a seeded sample of
    non-degenerate cells on it, report Kendall/Spearman vs cifar10_valid for every
    rating signal, next to the parameter count on the same cells;
(b) search: full `ssnas search` runs over several seeds, the found top-1's
    cifar10_test from the table.

    python benchmarks/bench_setn.py --out benchmarks/results/setn.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from ssnas.groundtruth.tables import TABLES
from ssnas.ranking.metrics import kendall_tau, spearman_rho
from ssnas.ranking.selection import sample_architectures
from ssnas.run import SearchConfig, SetnSettings, build_task, resolve, run_search, search_config
from ssnas.spaces import create_space
from ssnas.strategies.supernet_rating import RatingConfig, combine_by_rank, rate_architectures
from ssnas.strategies.setn import SETN

ROOT = Path(__file__).resolve().parents[1]
LABEL_FREE_SIGNALS = ("meco", "naswot", "ssl-loss", "effective-rank")


def ranking(config: SearchConfig, sample: int, sample_seed: int, signals: tuple[str, ...], work: Path) -> dict:
    config = resolve(config)
    run, settings = config.run, config.strategy
    assert isinstance(settings, SetnSettings)
    space = create_space("nb201")
    table = TABLES.create("nb201", path=Path(run.table) if run.table else None)
    setn = SETN(supernet={"C": settings.channels, "N": settings.cells}, evaluator_every=settings.evaluator_every)
    task = build_task(config, space, work)
    started = time.perf_counter()
    template = setn.train_template(task)
    train_seconds = time.perf_counter() - started
    archs = sample_architectures(space, sample, sample_seed)
    truth = [table.query(a.key, "cifar10_valid") for a in archs]
    out: dict = {"train_seconds": train_seconds, "train_history": template.result.history,
                 "images_per_second": template.result.images_per_second, "signals": {}, "seconds": {}}
    columns: dict[str, list[float]] = {}
    for name in (*signals, "params"):
        started = time.perf_counter()
        scored = rate_architectures(space, template.supernet, template.objective, archs, task.holdout_images,
                                    RatingConfig(signals=(name,)), task.train, seed=run.seed,
                                    holdout_labels=task.holdout_labels)
        columns[name] = [s.score for s in scored]
        out["seconds"][name] = time.perf_counter() - started
    combos = [(n,) for n in columns]
    if settings.rating and all(name in columns for name in settings.rating):
        combos.append(tuple(settings.rating))  # the search's default rating, when all its parts were rated
    for combo in dict.fromkeys(combos):
        values = columns[combo[0]] if len(combo) == 1 else combine_by_rank({c: columns[c] for c in combo})
        out["signals"]["+".join(combo)] = {"spearman": spearman_rho(values, truth), "kendall": kendall_tau(values, truth),
                                           "top1_cifar10_test": table.query(archs[max(range(len(archs)), key=values.__getitem__)].key, "cifar10_test")}
        print(settings.objective, "+".join(combo), {k: round(v, 3) for k, v in out["signals"]["+".join(combo)].items()}, flush=True)
    out["total_seconds"] = train_seconds + sum(out["seconds"].values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg"))
    parser.add_argument("--table", default=None)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--sample-seed", type=int, default=0, help="evaluation sample (the study used seed 1)")
    parser.add_argument("--num-images", type=int, default=10000)
    parser.add_argument("--holdout-images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--evaluator-every", type=int, default=0, help="ranking part: evaluator steps (0 = none)")
    parser.add_argument("--search-seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--search-preset", default="quick")
    parser.add_argument("--parts", nargs="+", default=["ranking", "search"])
    parser.add_argument("--objectives", nargs="+", default=["simclr", "supervised"], help="ranking part")
    parser.add_argument("--search-objectives", nargs="+", default=["simclr"], help="search part")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_setn")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "setn.json")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)  # a benchmark always starts from scratch

    base = search_config(strategy="setn", data=args.data, table=args.table, device=args.device, precision=args.precision,
                        num_images=args.num_images, holdout_images=args.holdout_images, epochs=args.epochs,
                        cells=args.cells, evaluator_every=args.evaluator_every, progress=False)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    if "ranking" in args.parts:
        results["ranking"] = {}
        for objective in args.objectives:
            signals = LABEL_FREE_SIGNALS if objective != "supervised" else ("accuracy", "meco", "ssl-loss")
            results["ranking"][objective] = ranking(replace(base, strategy=replace(base.strategy, objective=objective)), args.sample,
                                                    args.sample_seed, signals, args.work / f"rank_{objective}")
            write(args.out, results)
    if "search" in args.parts:
        runs = []
        for objective in args.search_objectives:
            for seed in args.search_seeds:
                config = search_config(strategy="setn", data=args.data, table=args.table, device=args.device, precision=args.precision,
                                      preset=args.search_preset, seed=seed, objective=objective, progress=False,
                                      rating=("accuracy",) if objective == "supervised" else None,
                                      out=str(args.work / f"search_{objective}_{seed}"))
                payload = run_search(config)
                truth = payload["ground_truth"] or {}
                results["search"] = runs
                runs.append({"objective": objective, "seed": seed, "arch": payload["best"]["arch"],
                             "cifar10_test": truth.get("cifar10_test"), "cifar10_valid": truth.get("cifar10_valid"),
                             "seconds": payload["seconds"]})
                print(runs[-1], flush=True)
                write(args.out, results)
        results["search"] = runs
    write(args.out, results)
    print(json.dumps(results, indent=1))


def write(path: Path, results: dict) -> None:
    """Written after every part, so a late failure keeps what was measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
