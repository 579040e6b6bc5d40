"""`report.html`: one self-contained page per search or rank run folder (figures embedded as base64).

A search report shows the run's settings, the found architecture (drawn), the top
candidates with every signal, the training loss curve and, for SETN, the evaluator's op
distribution. A rank report shows the correlation figures and a scatter of score against
ground truth.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ssnas.reporting.figures import (
    architecture_figure, judge_curves_figure, loss_curve_figure, op_distribution_figure, scatter_figure,
)
from ssnas.strategies.base import SearchResult

REPORT_NAME = "report.html"
TOP_CANDIDATES = 10
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .85em; } td, th { border: 1px solid #ccc; padding: .25em .5em; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: .85em; word-break: break-all; } img { max-width: 100%; } .note { color: #666; font-size: .9em; }
"""


def _image(png: bytes | None, alt: str) -> str:
    if png is None:
        return f'<p class="note">{html.escape(alt)}: nothing to draw for this run.</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _cell(value: Any) -> str:
    if isinstance(value, float):
        # a non-finite signal value is shown as what it is; the rating ranked it last
        text = f"{value:.4g}" if math.isfinite(value) else f"{value} (rated last)"
        return f'<td class="num">{text}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td><code>{html.escape(str(value))}</code></td>"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _page(title: str, sections: Sequence[str]) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>\n")  # fmt: skip


def write_search_report(out_dir: Path, settings: Mapping[str, Any], result: SearchResult, payload: Mapping[str, Any],
                        truth: Mapping[str, Mapping[str, float]]) -> Path:  # fmt: skip
    """Write `out_dir/report.html` for a search; returns its path.

    Args:
        settings: the run's resolved config (config.yaml).
        result: the strategy's result (candidates best first).
        payload: result.json's content (best, seconds, ground truth note).
        truth: architecture key -> benchmark metrics (empty when no ground truth is known).
    """
    best = result.best
    shown = ("strategy", "space", "objective", "data", "preset", "seed", "precision", "num_images", "holdout_images",
             "epochs", "batch_size", "channels", "cells", "select_num", "rating", "ranker", "ratings", "population",
             "rating_batch_size", "trials", "trial_objective", "proxy_loss", "time_budget", "shortlist", "judge_budget",
             "judge_objective", "judge_signal")  # what each strategy uses  # fmt: skip
    overview = _table(["setting", "value"], [[k, " + ".join(map(str, v)) if isinstance(v, (list, tuple)) else v]
                                             for k in shown if (v := settings.get(k)) is not None])  # fmt: skip
    summary = (f"<p>Best architecture <code>{html.escape(best.arch.key)}</code>, score {best.score:.4f}, "
               f"from {len(result.candidates)} candidates in {payload.get('seconds', 0.0):.0f} s.</p>"
               f"<p class=\"note\">{html.escape(str(payload.get('ground_truth_note', '')))}</p>")  # fmt: skip
    details = sorted({name for c in result.candidates for name in c.details})
    truth_names = sorted({n for values in truth.values() for n in values if n != "index"})
    rows = [[rank, c.arch.key, c.score, *[c.details.get(n, "") for n in details],
             *[truth.get(c.arch.key, {}).get(n, "") for n in truth_names]]
            for rank, c in enumerate(result.candidates[:TOP_CANDIDATES], start=1)]  # fmt: skip
    candidates = _table(["rank", "architecture", "score", *details, *[f"{n} (reference)" for n in truth_names]], rows)
    history = result.info.get("train_history") or []
    sections = [
        "<h2>Run</h2>", summary, overview,
        "<h2>Found architecture</h2>", _image(architecture_figure(best.arch), "architecture"),
        f"<h2>Top {min(TOP_CANDIDATES, len(result.candidates))} candidates (every signal)</h2>", candidates,
        "<h2>Training loss</h2>", _image(loss_curve_figure(history), "training loss curve"),
    ]  # fmt: skip
    if "judge" in result.info:
        sections += _judge_section(result.info["judge"], best.arch.key, truth)
    if "op_probabilities" in result.info:
        sections += ["<h2>Evaluator op distribution</h2>",
                     _image(op_distribution_figure(result.info["op_probabilities"]), "op distribution")]  # fmt: skip
    path = out_dir / REPORT_NAME
    path.write_text(_page(f"ssnas search: {settings.get('strategy')} on {settings.get('space')}", sections))
    return path


JUDGE_COLUMNS = ("pretext-accuracy", "pretext-loss", "curve-area", "rankme", "neighbour-agreement")


def _judge_section(judge: Mapping[str, Any], picked: str, truth: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Stage 2 of the two-stage search: the plan, each judged candidate (training, signals), the pick."""
    judged = list(judge.get("candidates", []))
    shortlist = list(judge.get("shortlist", []))
    metric = "cifar10_valid" if any("cifar10_valid" in v for v in truth.values()) else None
    rows = []
    for entry in judged:
        key = entry["arch"]
        rows.append([shortlist.index(key) + 1 if key in shortlist else "", key, "picked" if key == picked else "",
                     entry["stage1_score"], *[entry["signals"].get(n, "") for n in JUDGE_COLUMNS],
                     entry["seconds"], entry["passes_per_second"],
                     *([truth.get(key, {}).get(metric, "")] if metric else [])])  # fmt: skip
    header = ["stage-1 #", "architecture", "", "stage-1 score", *JUDGE_COLUMNS, "seconds", "passes/s",
              *([f"{metric} (reference)"] if metric else [])]  # fmt: skip
    note = (f"<p>Each of the {len(shortlist)} best candidates of stage 1 trained from scratch for "
            f"{judge.get('image_passes')} backbone passes of {html.escape(str(judge.get('objective')))} on the "
            f"unlabeled training images (network {html.escape(str(judge.get('network') or 'as searched'))}), then "
            f"measured on held-out images; ranked by {html.escape(str(judge.get('signal')))}"
            f"{' with ' + html.escape(' + '.join(judge['combine'])) + ' (mean rank)' if judge.get('combine') else ''}. "
            f"{len(judged)} judged; "
            f"plan about {judge.get('estimated_seconds', 0):.0f} s of the {judge.get('seconds_left', 0):.0f} s left "
            "after stage 1. Signals: higher is better (losses negated).</p>")  # fmt: skip
    index = next((i for i, e in enumerate(judged) if e["arch"] == picked), -1)
    labels = [f"#{shortlist.index(e['arch']) + 1 if e['arch'] in shortlist else '?'}" for e in judged]
    figure = judge_curves_figure([e.get("curve", []) for e in judged], labels, index)
    return ["<h2>Stage 2: the judged shortlist</h2>", note, _table(header, rows), _image(figure, "judge training curves")]


def write_rank_report(out_dir: Path, ranker: str, keys: Sequence[str], scores: Sequence[float],
                      truth: Sequence[float], report: Mapping[str, Any]) -> Path:  # fmt: skip
    """Write `out_dir/report.html` for a rank run: correlations, scatter, best and worst by score."""
    metric = str(report.get("metric", "ground truth"))
    names = [n for n in ("kendall_tau", "spearman_rho", "pearson_r") if n in report]
    names += [n for n in sorted(report) if n.startswith("top_") or n == "regret"]
    baseline = report.get("baseline")
    figures = [[n, report[n], *([baseline.get(n, "")] if baseline else [])] for n in names]
    title = (f"{ranker}: Kendall {report.get('kendall_tau', float('nan')):.3f}, "
             f"Spearman {report.get('spearman_rho', float('nan')):.3f} over {len(keys)} architectures")  # fmt: skip
    finite = [(s, t) for s, t in zip(scores, truth) if math.isfinite(s) and math.isfinite(t)]
    order = sorted(range(len(keys)), key=lambda i: scores[i], reverse=True)
    rows = [[r + 1, keys[i], scores[i], truth[i]] for r, i in enumerate(order[:TOP_CANDIDATES])]
    sections = [
        "<h2>Correlation with ground truth</h2>",
        f"<p class=\"note\">Against {html.escape(metric)} (the benchmark table's reference accuracy).</p>",
        _table(["figure", ranker, *(["params baseline"] if baseline else [])], figures),
        "<h2>Score against ground truth</h2>",
        _image(scatter_figure([s for s, _ in finite], [t for _, t in finite], metric, title), "score scatter"),
        f"<h2>Top {len(rows)} by score</h2>", _table(["rank", "architecture", "score", metric], rows),
    ]  # fmt: skip
    path = out_dir / REPORT_NAME
    path.write_text(_page(f"ssnas rank: {ranker} on {len(keys)} architectures", sections))
    return path
