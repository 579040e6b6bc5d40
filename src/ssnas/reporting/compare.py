"""`compare.html`: several searches side by side (`ssnas compare RUN_DIR...`).

Per run: space, strategy, seed, the found architecture, its score and ground truth, wall time;
the settings that differ between the runs; and the trajectories overlaid. Scores of different
ratings are not on one scale, so the overlay draws the ground truth of each run's best so far
(where a table is known) and each run's best score so far rescaled to [0, 1].
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssnas.atomic import write_atomic
from ssnas.reporting.figures import architecture_figure, overlay_figure
from ssnas.reporting.html import Arch, image, note, page, section, table, text_of
from ssnas.reporting.measures import running_best
from ssnas.reporting.record import RunRecord, load_run
from ssnas.spaces import create_space

COMPARE_NAME = "compare.html"
NOT_COMPARED = ("out",)  # where a run was written says nothing about the search
NOT_SET = "(not set)"


def compare_runs(folders: Sequence[Path], out: Path) -> list[RunRecord]:
    """Write `out` (compare.html) for the runs in `folders`; returns their records, in order.
    UserError (one line) for a folder that is not a finished search's."""
    records = [load_run(folder) for folder in folders]
    labels = run_labels(records)
    write_atomic(out, compare_page(records, labels))
    return records


def run_labels(records: Sequence[RunRecord]) -> list[str]:
    """Folder names, or their full paths where two runs share a name."""
    names = [r.name for r in records]
    return [str(r.folder) if names.count(r.name) > 1 else r.name for r in records]


def summary_rows(records: Sequence[RunRecord], labels: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    """One row per run: what it searched and what it found."""
    metric = next((r.truth_metric for r in records if r.truth_metric), None)
    header = ["run", "space", "strategy", "seed", "found architecture", "score", *([metric] if metric else []),
              "candidates", "wall time (s)"]  # fmt: skip
    rows = []
    for label, record in zip(labels, records):
        truth = record.ground_truth.get(metric, "") if metric else None
        rows.append([label, record.space, record.strategy, record.settings.get("seed", record.result.get("seed", "")),
                     Arch(record.best.arch), record.best.score, *([truth] if metric else []), len(record.candidates),
                     round(record.seconds)])  # fmt: skip
    return header, rows


def differing_settings(records: Sequence[RunRecord]) -> list[tuple[str, list[str]]]:
    """The settings whose values are not the same in every run, as each run's config.yaml has them."""
    keys = list(dict.fromkeys(k for r in records for k in r.settings if k not in NOT_COMPARED))
    out = []
    for key in keys:
        values = [text_of(r.settings[key]) if key in r.settings else NOT_SET for r in records]
        if len(set(values)) > 1:
            out.append((key, values))
    return out


def compare_text(records: Sequence[RunRecord]) -> str:
    """The comparison as plain text for the terminal: the summary, then the settings that differ."""
    labels = run_labels(records)
    header, rows = summary_rows(records, labels)
    cells = [[_plain(v) for v in row] for row in [header, *rows]]
    widths = [max(len(row[j]) for row in cells) for j in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    differ = differing_settings(records)
    if differ:
        lines += ["", "settings that differ: " + "; ".join(f"{k} = {' | '.join(v)}" for k, v in differ)]
    else:
        lines += ["", "settings that differ: none (the same settings in every run)"]
    return "\n".join(lines)


def _plain(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def compare_page(records: Sequence[RunRecord], labels: Sequence[str]) -> str:
    header, rows = summary_rows(records, labels)
    differ = differing_settings(records)
    settings = (table(["setting", *labels], [[k, *v] for k, v in differ]) if differ
                else note("None: every run has the same config.yaml (apart from its folder)."))  # fmt: skip
    drawings = [f"<h3>{html.escape(label)}</h3>" + image(architecture_figure(create_space(r.space).parse(r.best.arch)),
                                                      f"found architecture of {label}")
                for label, r in zip(labels, records)]  # fmt: skip
    sections = [
        section("Runs", table(header, rows)),
        section("Settings that differ", settings),
        _trajectories(records, labels),
        section("Found architectures", *drawings),
    ]
    return page(f"ssnas compare: {len(records)} runs", sections)


def _trajectories(records: Sequence[RunRecord], labels: Sequence[str]) -> str:
    truth_lines: dict[str, list[float]] = {}
    score_lines: dict[str, list[float]] = {}
    unordered = []
    metric = next((r.truth_metric for r in records if r.truth_metric), None)
    for label, record in zip(labels, records):
        ordered = record.rating_order()
        if ordered is None:
            unordered.append(f"{label} ({record.strategy}: no rating order recorded)")
            continue
        rated = ordered[0]
        bests, leads = running_best([record.search_score(c) for c in rated])
        score_lines[label] = _rescaled(bests)
        if metric and all(metric in c.truth for c in rated):
            truth_lines[label] = [rated[i].truth[metric] for i in leads]
    panels = [(f"{metric} of the best candidate so far", metric or "", truth_lines),
              ("best score so far, rescaled per run", "score (0 = the run's first, 1 = its best)", score_lines)]
    parts = [note("x: candidates rated, in each run's rating order (two-stage: stage 1). Scores of different ratings "
                  "are not on one scale: the right panel rescales each run's best so far to [0, 1]"
                  + (f"; the left panel draws the {metric} (benchmark table) of each run's best so far." if truth_lines
                     else "; no run has ground truth for every candidate, so no accuracy panel."))]  # fmt: skip
    if unordered:
        parts.append(note("Not drawn: " + "; ".join(unordered) + "."))
    parts.append(image(overlay_figure(panels), "trajectories overlaid"))
    return section("Search trajectories", *parts)


def _rescaled(values: list[float]) -> list[float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return [math.nan] * len(values)
    low, high = min(finite), max(finite)
    span = high - low
    return [((v - low) / span if span > 0 else 1.0) if math.isfinite(v) else math.nan for v in values]


__all__ = ["COMPARE_NAME", "compare_page", "compare_runs", "compare_text", "differing_settings", "run_labels"]
