"""What a search leaves in its run folder: result.json, candidates.csv, report.html and SETN's plot.

report.html is built from the folder's files (config.yaml, result.json, candidates.csv and the
strategy's own), exactly as `ssnas report RUN_DIR` rebuilds it.

Ground truth (a benchmark table's accuracy of each architecture) is added only when the data is
CIFAR-10 or the user named a `--table`: it is the cell's CIFAR-10 reference accuracy from the
benchmark's own supervised training, not a measurement on the run's data.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

import yaml

from ssnas.atomic import write_atomic
from ssnas.data.datasets import ImageSet
from ssnas.errors import UserError
from ssnas.faults import fault_point
from ssnas.groundtruth.tables import load_space_table, space_table
from ssnas.reporting import op_distribution_figure, write_search_report
from ssnas.reporting.record import Candidate, read_candidates
from ssnas.run.settings import SearchConfig, config_dict, objective_of, resolve
from ssnas.runfolder import CONFIG_NAME
from ssnas.strategies import SearchResult
from ssnas.training.distributed import is_main_process

log = logging.getLogger("ssnas")

GROUND_TRUTH_NOTE = ("NAS-Bench-201 / NATS-Bench reference accuracy of this architecture (supervised training on "
                     "CIFAR-10, CIFAR-100, ImageNet16-120), looked up in the benchmark table, not measured on this run's data")
NO_GROUND_TRUTH_NOTE = ("no ground truth is known for this data and space (the NAS-Bench-201 / NATS tables are CIFAR-10's; "
                        "pass --table to look the cells up anyway)")
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_result(out_dir: Path, config: SearchConfig, result: SearchResult, seconds: float,
                 data_is_cifar10: bool = False, skipped_images: int = 0) -> dict[str, Any]:  # fmt: skip
    """result.json, candidates.csv, report.html and (SETN) op_distribution.png; returns result.json's payload."""
    keys = [c.arch.key for c in result.candidates]
    truth = ground_truth(config, keys) if data_is_cifar10 or config.run.table else {}
    payload = result_payload(config, result, seconds, truth.get(result.best.arch.key), skipped_images)
    payload["ground_truth_note"] = GROUND_TRUTH_NOTE if payload["ground_truth"] else NO_GROUND_TRUTH_NOTE
    write_atomic(out_dir / "result.json", json.dumps(payload, indent=2, default=float))
    fault_point("write")  # tests only
    write_atomic(out_dir / "candidates.csv", candidates_csv(result, truth))
    if "op_probabilities" in result.info:
        write_atomic(out_dir / "op_distribution.png", op_distribution_figure(result.info["op_probabilities"]))
    write_search_report(out_dir)  # from the folder's files alone, as `ssnas report` rebuilds it
    return payload


def result_payload(config: SearchConfig, result: SearchResult, seconds: float,
                   truth: dict[str, float] | None = None, skipped_images: int = 0) -> dict[str, Any]:  # fmt: skip
    """result.json without its ground-truth note; `skipped_images`: unreadable files --skip-corrupt left out."""
    return {
        "best": {"arch": result.best.arch.key, "score": result.best.score, **result.best.details},
        "ground_truth": truth,
        "strategy": config.run.strategy,
        "space": config.run.space,
        "objective": objective_of(config),
        "scored_by": config.strategy.scored_by(),
        "seed": config.run.seed,
        "seconds": seconds,
        "num_candidates": len(result.candidates),
        "skipped_images": skipped_images,
        "budget": result.info.get("budget"),
        "info": result.info,
    }


def candidates_csv(result: SearchResult, truth: dict[str, dict[str, float]]) -> str:
    """Every candidate, best first: rank, arch, score, each signal, each ground-truth metric."""
    detail_names = sorted({name for c in result.candidates for name in c.details})
    truth_names = sorted({name for values in truth.values() for name in values})
    rows: list[list[Any]] = [["rank", "arch", "score", *detail_names, *truth_names]]
    for rank, c in enumerate(result.candidates, start=1):
        known = truth.get(c.arch.key, {})
        rows.append([rank, c.arch.key, c.score, *[c.details.get(n, "") for n in detail_names],
                     *[known.get(n, "") for n in truth_names]])  # fmt: skip
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    return text.getvalue()


def ground_truth(config: SearchConfig, keys: list[str]) -> dict[str, dict[str, float]]:
    """Benchmark metrics of each key found in the space's table (or `--table`); {} when there is none."""
    space, path = config.run.space, config.run.table
    if space_table(space) is None and path is None:
        return {}
    try:
        table = load_space_table(space, Path(path) if path else None)
    except UserError as error:
        log.info("no ground truth in result.json: %s", error)
        return {}
    return {key: table.metrics(key) for key in keys if key in table}


def is_cifar10(dataset: ImageSet) -> bool:
    """CIFAR-10 itself, or a folder of its ten classes at 32x32 (the NAS-Bench-201 tables' data)."""
    if dataset.source.lower().startswith("cifar10/"):
        return True
    return sorted(c.lower() for c in dataset.classes) == CIFAR10_CLASSES and dataset.images.shape[-1] == 32


def read_search(config: SearchConfig, payload: dict[str, Any]) -> tuple[list[Candidate], dict[str, Any]]:
    """A finished search read back: its candidates, best first (from candidates.csv; under torchrun
    only process 0 writes the run folder, the others get the best from `payload`), and the settings
    it ran with (config.yaml, image counts included)."""
    run_dir = config.run.out_dir
    truth_names = list(payload.get("ground_truth") or {})  # every cell of a table has the same metrics
    if is_main_process():
        candidates = read_candidates(run_dir / "candidates.csv", truth_names)
    else:
        best = payload["best"]
        candidates = [Candidate(best["arch"], best["score"], {k: v for k, v in best.items() if k not in ("arch", "score")})]
    saved = run_dir / CONFIG_NAME
    settings = yaml.safe_load(saved.read_text()) if saved.exists() else config_dict(resolve(config))
    return candidates, settings


__all__ = ["candidates_csv", "ground_truth", "is_cifar10", "read_search", "result_payload", "write_result"]
