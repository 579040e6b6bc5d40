"""The three jobs on a search's settings: `run_search`, `run_rank` and `run_worker`.

Each checks what it can before any work (run folder, strategy, storage, budget, data), then
writes `config.yaml` (`ssnas.run.settings.config_dict`), runs the strategy and logs to the
run folder. `resume=True` continues a killed run from its last checkpoint and ends with the
same result as an uninterrupted run; only `RESUMABLE` settings may differ from the saved ones.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ssnas import runfolder
from ssnas.errors import UserError
from ssnas.run.results import is_cifar10, result_payload, write_result
from ssnas.run.settings import RESUMABLE, SearchConfig, config_dict, resolve
from ssnas.strategies.settings import RENAMED
from ssnas.run.task import BelowFloor, budget_constraint, build_space, build_task, fit_data
from ssnas.spaces import Architecture
from ssnas.strategies import ScoredArch, SupportsRating
from ssnas.strategies.base import keep_within
from ssnas.studies import masked_url
from ssnas.training.distributed import is_main_process, process_group

log = logging.getLogger("ssnas")


def run_search(config: SearchConfig, started: float | None = None) -> dict[str, Any]:
    """Run one search and write its run folder; returns the `result.json` payload. A time budget
    counts from `started` (`time.monotonic()`; None = now): the command line passes its process's
    start (`ssnas.started.PROCESS_STARTED`), so the budget covers imports and data loading too."""
    started = time.monotonic() if started is None else started
    config = resolve(config)
    run = config.run
    runfolder.check_out(run.out_dir, run.resume)  # before the data is loaded
    strategy = config.create_strategy()
    config.strategy.check_launch(strategy)  # e.g. tpe / random: a wrong storage URL or password, before the run folder
    constraint = budget_constraint(config)
    config, dataset, split_reason = fit_data(config)
    out_dir = prepare_run_folder(config)
    if constraint is not None:
        constraint.costs.attach(out_dir / "latency.json")
    handler = _log_to(out_dir / "search.log" if is_main_process() else None)
    try:
        log.info("search %s on %s, scored by %s, preset %s, seed %d, precision %s", config.run.strategy,
                 config.run.space, config.strategy.scored_by(), config.run.preset, config.run.seed,
                 config.run.precision)  # fmt: skip
        log.info("images from %s %s", config.run.data, split_reason)
        task = replace(build_task(config, build_space(config), out_dir, dataset), budget=constraint, started=started)
        started = time.perf_counter()
        result = keep_within(strategy.search(task), constraint)
        seconds = time.perf_counter() - started
        if constraint is not None:
            result.info["budget"] = constraint.report(result.best.arch)
        if is_main_process():
            payload = write_result(out_dir, config, result, seconds, is_cifar10(dataset), dataset.num_skipped)
        else:
            payload = result_payload(config, result, seconds, skipped_images=dataset.num_skipped)
        log.info("best %s score %.4f (%.0f s)", result.best.arch.key, result.best.score, seconds)
        return payload
    finally:
        _stop_logging(handler)


def run_rank(config: SearchConfig, archs_text: list[str] | None, sample: int | None,
             sample_seed: int) -> tuple[list[ScoredArch], SearchConfig, int]:  # fmt: skip
    """Train what the strategy needs (or reuse its checkpoint with resume) and rate the given
    architectures; returns the ScoredArch list (in input order), the resolved config and the
    number of unreadable image files --skip-corrupt left out."""
    from ssnas.ranking.selection import sample_architectures

    config = replace(config, strategy=config.strategy.for_rating())  # e.g. BossNAS: no sampled population
    config = resolve(config)
    run = config.run
    runfolder.check_out(run.out_dir, run.resume)  # before the data is loaded
    space = build_space(config)
    strategy = config.create_strategy()
    if not isinstance(strategy, SupportsRating):
        raise UserError(f"strategy {run.strategy!r} cannot rate a given list of architectures")
    archs: list[Architecture] = ([space.parse(text) for text in archs_text] if archs_text
                                 else sample_architectures(space, sample or 0, sample_seed))  # fmt: skip
    config, dataset, split_reason = fit_data(config)
    out_dir = prepare_run_folder(config)
    handler = _log_to(out_dir / "rank.log" if is_main_process() else None)
    try:
        log.info("rank %d architectures with %s on %s, precision %s", len(archs), run.strategy, run.space,
                 run.precision)  # fmt: skip
        log.info("images from %s %s", run.data, split_reason)
        return strategy.rate(build_task(config, space, out_dir, dataset), archs), config, dataset.num_skipped
    finally:
        _stop_logging(handler)


def run_worker(config: SearchConfig, study: str, storage: str) -> dict[str, Any]:
    """Join the Optuna study `study` in `storage` (started by `ssnas search --strategy tpe|random`)."""
    from ssnas.strategies.tpe import run_worker as work_on_study
    from ssnas.studies import check_study

    check_study(study, storage)  # before the log folder is made: a wrong URL leaves nothing behind
    config = resolve(config)
    out_dir = config.run.out_dir
    try:
        config, dataset, _ = fit_data(replace(config, run=replace(config.run, resume=True)))
    except BelowFloor as refused:  # the study fixes the strategy: no other one to suggest
        raise UserError(f"{refused.floor_message}; a worker needs the search's own images: give it the search's "
                        "--data") from None  # fmt: skip
    task = build_task(config, build_space(config), out_dir, dataset)
    out_dir.mkdir(parents=True, exist_ok=True)  # once the images are read: a refused start leaves no folder
    result = work_on_study(study, storage, task)
    return {"best": {"arch": result.best.arch.key, "score": result.best.score}, "study": study,
            "storage": masked_url(storage), "num_candidates": len(result.candidates),
            "skipped_images": dataset.num_skipped}  # fmt: skip


def prepare_run_folder(config: SearchConfig) -> Path:
    """Create the run folder and write config.yaml, or check that a resumed run has the same settings."""
    return runfolder.prepare_run_folder(config.run.out_dir, config_dict(config), config.run.resume, RESUMABLE,
                                        as_written=_as_written, renamed=RENAMED)


def _as_written(saved: Any) -> Any:
    """A value of a saved config.yaml as `config_dict` writes it now (a storage URL an older run saved: masked)."""
    return masked_url(saved) if isinstance(saved, str) else saved


def _log_to(path: Path | None) -> logging.Handler:
    """A handler for the `ssnas` logger: into `path`, or nowhere (None: a process other than 0)."""
    handler: logging.Handler = logging.FileHandler(path) if path is not None else logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    return handler


def _stop_logging(handler: logging.Handler) -> None:
    log.removeHandler(handler)
    handler.close()


__all__ = ["prepare_run_folder", "run_rank", "run_search", "run_worker"]
