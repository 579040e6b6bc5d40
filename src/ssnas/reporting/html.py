"""The pieces every page is built from (tables, embedded figures, the page itself), and the rank report.

Pages are one self-contained file each: the style is inline and every figure is a PNG in a
`data:` URI, so a report can be mailed or archived alone. The search report is assembled in
`ssnas.reporting.search_page`, the comparison of runs in `ssnas.reporting.compare`.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ssnas.atomic import write_atomic
from ssnas.errors import UserError
from ssnas.ranking.report import ranking_figures
from ssnas.reporting.figures import cost_figure, scatter_figure
from ssnas.reporting.measures import candidate_costs, pareto_front
from ssnas.reporting.record import CONFIG_FILE
from ssnas.spaces import SPACES, create_space

REPORT_NAME = "report.html"
TOP_CANDIDATES = 10
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; }
h2 { font-size: 1.15em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: .85em; margin: .4em 0; }
td, th { border: 1px solid #ccc; padding: .25em .5em; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.arch { min-width: 18em; } code { font-size: .85em; word-break: break-all; } img { max-width: 100%; }
.note { color: #555; font-size: .9em; } .wide { overflow-x: auto; } .picked { background: #fff3cd; }
"""


def image(png: bytes | None, alt: str) -> str:
    """An embedded PNG, or one line saying there is nothing to draw."""
    if png is None:
        return note(f"{alt}: nothing to draw for this run.")
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def number(value: float) -> str:
    """A float as shown in tables: 4 significant digits; a non-finite one as itself (a rating ranks it last)."""
    return f"{value:.4g}" if math.isfinite(value) else f"{value} (rated last)"


def text_of(value: Any) -> str:
    """A setting's value as written in config.yaml, on one line."""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) if value else "[] (none)"
    if isinstance(value, dict):
        return json.dumps(value) if value else "{} (none)"
    return str(value)


class Arch(str):
    """An architecture key in a table (drawn as code, in a wide column)."""


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return f"<td>{value}</td>"
    if isinstance(value, float):
        return f'<td class="num">{number(value)}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>' if abs(value) >= 10_000 else f'<td class="num">{value}</td>'
    if isinstance(value, Arch):
        return f'<td class="arch"><code>{html.escape(value)}</code></td>'
    return f"<td>{html.escape(str(value))}</td>"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], marked: int | None = None) -> str:
    """An HTML table; `marked` highlights one row (the pick). Wide tables scroll inside the page."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(("<tr class=\"picked\">" if i == marked else "<tr>") + "".join(_cell(v) for v in row) + "</tr>"
                   for i, row in enumerate(rows))  # fmt: skip
    return f'<div class="wide"><table><tr>{head}</tr>{body}</table></div>'


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}</section>"


def page(title: str, sections: Sequence[str]) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>\n")  # fmt: skip


def settings_section(settings: Mapping[str, Any], source: str) -> str:
    """Every key of `settings` (config.yaml: what ran), in its order, and nothing else."""
    rows = [[key, value if isinstance(value, (int, float)) and not isinstance(value, bool) else text_of(value)]
            for key, value in settings.items()]  # fmt: skip
    return section("Settings", note(f"Exactly as the run used them ({source})."), table(["setting", "value"], rows))


# --- the rank report ---------------------------------------------------------------------------------


def write_rank_report(out_dir: Path, ranker: str, keys: Sequence[str], scores: Sequence[float],
                      truth: Sequence[float], report: Mapping[str, Any], space: str | None = None) -> Path:  # fmt: skip
    """Write `out_dir/report.html` for a rank run: correlations, score against ground truth and
    against cost, best by score, settings; returns its path. `space` is read from config.yaml or
    found from the keys when not given."""
    metric = str(report.get("metric", "ground truth"))
    names = [(n, n) for n in ("kendall_tau", "spearman_rho", "pearson_r") if n in report] + ranking_figures(report)
    baseline = report.get("baseline")
    figures = [[label, report[n], *([baseline.get(n, "")] if baseline else [])] for label, n in names]
    shown = [f"{label} {report[n]:.3f}" for n, label in (("kendall_tau", "Kendall"), ("spearman_rho", "Spearman"))
             if isinstance(report.get(n), float) and math.isfinite(report[n])]  # fmt: skip
    title = f"{ranker}: {', '.join(shown + [f'{len(keys)} architectures'])}"
    finite = [i for i in range(len(keys)) if math.isfinite(scores[i]) and math.isfinite(truth[i])]
    order = sorted(range(len(keys)), key=lambda i: scores[i], reverse=True)
    top = order[0] if order else None
    settings = _rank_settings(out_dir, report)
    space = space or settings.get("space") or _space_of(keys)
    rows = [[r + 1, Arch(keys[i]), scores[i], truth[i]] for r, i in enumerate(order[:TOP_CANDIDATES])]
    sections = [
        section("Correlation with ground truth",
                note(f"Against {metric} (the benchmark table's reference accuracy)." + (
                     f" nDCG weighs the top of the order (gain 2^{metric} - 1, VKDNW's definition); pick_at_m is the "
                     f"expected {metric} of the ranker's pick among m cells drawn at random, beside the perfect "
                     "ranker's (the best of m)." if "ndcg" in report else "")),
                table(["figure", ranker, *(["params baseline"] if baseline else [])], figures)),
        section("Score against ground truth",
                image(scatter_figure([scores[i] for i in finite], [truth[i] for i in finite], metric, title,
                                     picked=finite.index(top) if top in finite else None), "score scatter")),
        _rank_cost_section(str(space) if space else None, keys, scores, top),
        section(f"Top {len(rows)} by score", table(["rank", "architecture", "score", metric], rows)),
        settings_section(settings, CONFIG_FILE if (out_dir / CONFIG_FILE).is_file() else "the ranker's settings"),
    ]  # fmt: skip
    path = out_dir / REPORT_NAME
    write_atomic(path, page(f"ssnas rank: {ranker} on {len(keys)} architectures", sections))
    return path


def _rank_settings(out_dir: Path, report: Mapping[str, Any]) -> dict[str, Any]:
    """config.yaml when the rank ran a strategy; else what the ranker ran with (from its report)."""
    if (out_dir / CONFIG_FILE).is_file():
        return dict(yaml.safe_load((out_dir / CONFIG_FILE).read_text()) or {})
    keep = ("ranker", "metric", "batch_size", "workers", "threads_per_worker", "proxy_network")
    return {k: report[k] for k in keep if report.get(k) is not None}


def _rank_cost_section(space: str | None, keys: Sequence[str], scores: Sequence[float], top: int | None) -> str:
    if space is None:
        return section("Score against cost", note("The architectures' space is not known here: no cost is computed."))
    costs = candidate_costs(space, keys, {}, None)
    front = pareto_front(costs.values, scores)
    figure = cost_figure(costs.values, list(scores), costs.label, front, top, None)
    return section("Score against cost", note(f"{len(keys)} architectures, {len(front)} on the Pareto front (no other "
                                              "is cheaper and scores higher); the star is the best by score."),
                   image(figure, "score against cost"))  # fmt: skip


def _space_of(keys: Sequence[str]) -> str | None:
    """The registered space that parses every key; None when none does."""
    for name in SPACES.names():
        space = create_space(name)
        try:
            for key in keys:
                space.parse(key)
        except (UserError, ValueError, KeyError, IndexError, TypeError):
            continue
        return name
    return None


__all__ = ["REPORT_NAME", "Arch", "image", "note", "number", "page", "section", "settings_section", "table",
           "text_of", "write_rank_report"]  # fmt: skip
