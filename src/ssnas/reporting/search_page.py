"""The search report: `report.html` of a search's run folder, built from the folder's files alone.

Sections, top to bottom: summary, the found architecture, the search trajectory, the best so far
against elapsed time (a time-budgeted evolution), score against cost, score against ground truth, the judged shortlist (two-stage), the top candidates, the
training loss (strategies that train), SETN's op distribution, the settings (config.yaml).
A search writes its report this way when it ends, and `ssnas report RUN_DIR` rebuilds it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ssnas.atomic import write_atomic
from ssnas.reporting.figures import (
    TrajectoryPanel, anytime_figure, architecture_figure, cost_figure, loss_curve_figure, op_distribution_figure, scatter_figure,
    trajectory_figure,
)  # fmt: skip
from ssnas.reporting.html import REPORT_NAME, TOP_CANDIDATES, Arch, image, note, page, section, settings_section, table
from ssnas.reporting.judge_section import judge_section
from ssnas.reporting.measures import candidate_costs, correlations, pareto_front, table_standing
from ssnas.reporting.record import CONFIG_FILE, Candidate, RunRecord, load_run
from ssnas.spaces import create_space
from ssnas.training.progress import format_duration

EXTRA_TRUTH = "cifar10_test"  # shown beside the correlated metric where the table has it


def write_search_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the report of the search in `run_dir` (to `run_dir/report.html` unless `out`); returns its path.

    Raises UserError (one line) when `run_dir` is not a finished search's run folder.
    """
    record = load_run(run_dir)
    path = out if out is not None else run_dir / REPORT_NAME
    write_atomic(path, search_page(record))
    return path


def search_page(record: RunRecord) -> str:
    """The whole page of one search."""
    info = record.info
    history = info.get("train_history") or []
    trajectory, loss_shown = _trajectory(record)
    sections = [
        _summary(record),
        section("Found architecture", image(architecture_figure(create_space(record.space).parse(record.best.arch)),
                                            "found architecture")),
        trajectory, *_anytime(record), _cost(record), _truth(record),
        *([judge_section(record)] if "judge" in info else []),
        _top(record),
        *([section("Training loss", image(loss_curve_figure(history), "training loss curve"))]
          if any(history) and not loss_shown else []),
        *([section("Evaluator op distribution", image(op_distribution_figure(info["op_probabilities"]),
                                                      "op distribution"))] if "op_probabilities" in info else []),
        settings_section(record.settings, CONFIG_FILE),
    ]  # fmt: skip
    return page(f"ssnas search: {record.strategy} on {record.space}", sections)


def scored_by(record: RunRecord) -> str:
    """What the score is: result.json's own words, else what the settings say."""
    if record.result.get("scored_by"):
        return str(record.result["scored_by"])
    judge = record.info.get("judge")
    rating = record.info.get("rating") or record.info.get("stage1_rating") or record.settings.get("ranker")
    if judge:
        return f"{judge.get('signal')} after brief {judge.get('objective')} training (stage 2), {rating} (stage 1)"
    if record.strategy in ("tpe", "random"):
        return "minus the trained proxy's loss"
    return f"the label-free rating {rating}" if rating else f"the {record.strategy} strategy's rating"


def _summary(record: RunRecord) -> str:
    best, info = record.best, record.info
    rows: list[list[Any]] = [["found architecture", Arch(best.arch)], ["score (higher is better)", best.score],
                             ["scored by", scored_by(record)]]  # fmt: skip
    truth = record.ground_truth
    metrics = [m for m in dict.fromkeys((record.truth_metric, EXTRA_TRUTH)) if m is not None and m in truth]
    standing = {s.metric: s for s in table_standing(record.space, record.settings.get("table"), truth, metrics)}
    for metric in metrics:
        known = standing.get(metric)
        where = (f" (rank {known.rank:,} of {known.size:,} in the table; the table's best {known.best:.2f})"
                 if known else "")  # fmt: skip
        rows.append([f"{metric} (ground truth)", f"{truth[metric]:.2f}{where}"])
    whole = "run_seconds" in info
    rows += [["strategy on space", f"{record.strategy} on {record.space}"],
             ["candidates rated", len(record.candidates)],
             ["wall time", f"{record.seconds:.0f} s ("
                           + ("the whole run)" if whole else "the search; data loading not counted)")]]  # fmt: skip
    if info.get("over_budget_dropped"):
        rows.append(["over budget, dropped", int(info["over_budget_dropped"])])
    budget = record.result.get("budget") or {}
    for metric, limit in (budget.get("limits") or {}).items():
        cost, unit = budget["cost"][metric], budget["units"][metric]
        within = "within" if cost <= limit else "over"
        rows.append([f"budget: {metric}", f"{cost:.4g} {unit}, at most {limit:g} ({within})"])
    truth_note = str(record.result.get("ground_truth_note") or "")
    return section("Summary", table(["", "value"], rows), note(truth_note) if truth_note else "")


def _truth_of(candidates: list[Candidate], metric: str | None) -> list[float] | None:
    if metric is None or not any(metric in c.truth for c in candidates):
        return None
    return [c.truth.get(metric, math.nan) for c in candidates]


def _trajectory(record: RunRecord) -> tuple[str, bool]:
    """The trajectory section, and whether it shows the training loss instead (SETN, BossNAS)."""
    metric, title = record.truth_metric, "Search trajectory"
    ordered = record.rating_order()
    if ordered is None:
        history = record.info.get("train_history") or []
        what = ("the training loss per epoch, the search's progress" if any(history)
                else "every candidate's score, best first")  # fmt: skip
        line = (f"{record.strategy} rates its {len(record.candidates)} candidates together at the end and records no "
                f"rating order; shown instead: {what}.")  # fmt: skip
        if any(history):
            return section(title, note(line), image(loss_curve_figure(history), "training loss curve")), True
        scores = [c.score for c in record.candidates]
        truth = _truth_of(record.candidates, metric)
        panel = TrajectoryPanel(f"{record.strategy} on {record.space}", scores, "score", truth, metric or "",
                                xlabel="candidates, best first")  # fmt: skip
        return section(title, note(line), image(trajectory_figure([panel]), "scores, best first")), False
    rated, source = ordered
    two_stage = "judge" in record.info
    panels = [TrajectoryPanel("stage 1: training-free rating" if two_stage else f"{record.strategy} on {record.space}",
                              [record.search_score(c) for c in rated], "stage-1 score" if two_stage else "score",
                              _truth_of(rated, metric), metric or "")]  # fmt: skip
    if two_stage:
        judged = [c for e in record.info["judge"].get("candidates", []) if (c := record.candidate(e["arch"]))]
        panels.append(TrajectoryPanel("stage 2: the judged shortlist, in judging order", [c.score for c in judged],
                                      "stage-2 score (1 + mean rank)", _truth_of(judged, metric), metric or "",
                                      xlabel="candidates judged"))  # fmt: skip
    text = (f"Each dot is one candidate, in the order rated ({source}); the solid line is the best score so far, "
            "with scores as they stood when the search ended"
            + (f"; the dashed line is the {metric} of that best candidate (benchmark table, never seen by the search)"
               if metric else "") + ".")  # fmt: skip
    if two_stage:
        text += " Stage 1 rates without training; stage 2 trains each shortlisted candidate briefly and picks."
    return section(title, note(text), image(trajectory_figure(panels), "search trajectory")), False


def _anytime(record: RunRecord) -> list[str]:
    """The best so far against elapsed time, from evolution's trace (each change of the best); none
    without a trace."""
    trace = record.info.get("best_so_far")
    if not trace:
        return []
    metric = record.truth_metric
    truth = [(c.truth.get(metric, math.nan) if metric and (c := record.candidate(t["arch"])) else math.nan)
             for t in trace]  # fmt: skip
    rows = [[format_duration(t["elapsed_seconds"]), t["rated"], Arch(t["arch"]), *([v] if metric else [])]
            for t, v in zip(trace, truth)]  # fmt: skip
    header = ["elapsed", "rated", "best so far", *([metric] if metric else [])]
    text = ("When the best architecture changed, counted from the start of the run (a resumed run adds its "
            "own time)" + (f"; {metric} from the benchmark table, never seen by the search" if metric else "") + ".")
    parts = [note(text)]
    if metric and all(math.isfinite(v) for v in truth):
        end = max(float(record.info.get("elapsed_seconds", 0.0)), trace[-1]["elapsed_seconds"]) / 60
        figure = anytime_figure([t["elapsed_seconds"] / 60 for t in trace], truth, f"{metric} of the best so far", end)
        parts.append(image(figure, "best so far against elapsed time"))
    return [section("Best so far against time", *parts, table(header, rows[-TOP_CANDIDATES:]))]


def _cost(record: RunRecord) -> str:
    keys = [c.arch for c in record.candidates]
    scores = [c.score for c in record.candidates]
    costs = candidate_costs(record.space, keys, record.settings, record.folder)
    front = pareto_front(costs.values, scores)
    picked = keys.index(record.best.arch)
    unit = costs.label.split("(")[-1].rstrip(")")
    text = (f"{len(keys)} rated candidates at the full network size (as `ssnas train` builds them); {len(front)} on "
            f"the Pareto front (no other is cheaper and scores higher). The pick: {costs.values[picked]:.4g} {unit}"
            + (f", the budget {costs.limit:g}." if costs.limit is not None else "; no budget was set."))  # fmt: skip
    if "judge" in record.info:
        text += " Two-stage scores: the judged shortlist 1 to 2 (mean rank), the rest below 1 in stage-1 order."
    figure = cost_figure(costs.values, scores, costs.label, front, picked, costs.limit)
    return section("Score against cost", note(text), image(figure, "score against cost"))


def _truth(record: RunRecord) -> str:
    title, metric = "Score against ground truth", record.truth_metric
    if metric is None:
        reason = str(record.result.get("ground_truth_note") or "no ground truth is known for this data and space")
        return section(title, note(f"Not drawn: {reason}."))
    rated = [c for c in record.candidates if metric in c.truth]
    scores, truth = [record.search_score(c) for c in rated], [c.truth[metric] for c in rated]
    found = correlations(scores, truth)
    measured = (f"Spearman {found['spearman']:.3f}, Kendall {found['kendall']:.3f} over {len(rated)} candidates"
                if found else f"{len(rated)} candidates (too few, or all equal: no correlation)")  # fmt: skip
    label = "stage-1 score" if record.stage1_scores else "score"
    keys = [c.arch for c in rated]
    picked = keys.index(record.best.arch) if record.best.arch in keys else None
    figure = scatter_figure(scores, truth, metric, measured, picked, f"{label} (higher = predicted better)")
    text = (f"Every rated candidate with a {metric} in the benchmark table ({len(rated)} of {len(record.candidates)}): "
            f"{measured}. The table's accuracy is from supervised training on the benchmark's data; the search never "
            "saw it." + (" The x axis is the stage-1 score; the Stage 2 section correlates the judged shortlist."
                         if record.stage1_scores else ""))  # fmt: skip
    return section(title, note(text), image(figure, "score against ground truth"))


def _top(record: RunRecord) -> str:
    shown = record.candidates[:TOP_CANDIDATES]
    names = list(dict.fromkeys(n for c in record.candidates for n in c.signals))
    kept = [n for n in names if any(math.isfinite(c.signals.get(n, math.nan)) for c in shown)]
    metrics = [m for m in dict.fromkeys((record.truth_metric, EXTRA_TRUTH)) if m and any(m in c.truth for c in shown)]
    rows = [[rank, Arch(c.arch), c.score, *[c.signals.get(n, "") for n in kept], *[c.truth.get(m, "") for m in metrics]]
            for rank, c in enumerate(shown, start=1)]  # fmt: skip
    left_out = [n for n in names if n not in kept]
    parts = [table(["rank", "architecture", "score", *kept, *[f"{m} (reference)" for m in metrics]], rows,
                   marked=next((i for i, c in enumerate(shown) if c.arch == record.best.arch), None))]  # fmt: skip
    if left_out:
        parts.append(note(f"Left out, no value for any of these candidates: {', '.join(left_out)}."))
    if any(v == "" for row in rows for v in row):
        parts.append(note("An empty cell: that candidate has no such value (two-stage: it was not judged)."))
    parts.append(note(f"Every candidate with every signal: {record.folder.name}/candidates.csv."))
    return section(f"Top {len(shown)} candidates (every signal)", *parts)


__all__ = ["scored_by", "search_page", "write_search_report"]
