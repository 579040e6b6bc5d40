"""Stage 2 of the two-stage search in the report: the plan, each judged candidate, the pick.

From result.json's `info.judge` (written from `judge/plan.json` and each `judge/NN/judgement.json`):
the shortlist in stage-1 order, each candidate's signals after its brief training, its time,
and its training curve.
"""

from __future__ import annotations

import math
from typing import Any

from ssnas.reporting.figures import judge_curves_figure
from ssnas.reporting.html import Arch, image, note, section, table
from ssnas.reporting.measures import correlations
from ssnas.reporting.record import RunRecord

# Shown after the deciding signal and its partners, where measured (SimCLR has no pretext accuracy).
CONTEXT_SIGNALS = ("pretext-loss", "pretext-accuracy", "curve-area", "rankme", "neighbour-agreement")


def judge_section(record: RunRecord) -> str:
    """The judged shortlist: a table (the pick highlighted), the training curves, how well the
    stage-2 score orders the shortlist by ground truth."""
    judge: dict[str, Any] = record.info["judge"]
    judged = list(judge.get("candidates", []))
    shortlist = list(judge.get("shortlist", []))
    signal = str(judge.get("signal"))
    combine = [str(c) for c in judge.get("combine") or []]
    names = list(dict.fromkeys([signal, *[c for c in combine if c != "stage1"], *CONTEXT_SIGNALS]))
    names = [n for n in names if any(_finite(e["signals"].get(n)) for e in judged)]
    metric = record.truth_metric
    rows, final, truth = [], [], []
    for entry in judged:
        key = entry["arch"]
        candidate = record.candidate(key)
        score = candidate.score if candidate is not None else math.nan
        value = candidate.truth.get(metric, math.nan) if candidate is not None and metric else math.nan
        final.append(score)
        truth.append(value)
        signals = [_value(entry["signals"].get(n)) for n in names]
        rows.append([shortlist.index(key) + 1 if key in shortlist else len(shortlist) + 1, Arch(key),
                     "picked" if key == record.best.arch else "", float(entry["stage1_score"]), score, *signals,
                     float(entry["seconds"]), float(entry["passes_per_second"]), *([value] if metric else [])])  # fmt: skip
    header = ["stage-1 #", "architecture", "", "stage-1 score", "stage-2 score", *names, "seconds", "passes/s",
              *([f"{metric} (reference)"] if metric else [])]  # fmt: skip
    picked = next((i for i, e in enumerate(judged) if e["arch"] == record.best.arch), None)
    partners = f" with {' + '.join(combine)} (mean rank)" if combine else ""
    network = ", ".join(f"{k}={v}" for k, v in (judge.get("network") or {}).items()) or "as searched"
    plan = (f"Each of the {len(shortlist)} best candidates of stage 1 trained from scratch for "
            f"{judge.get('image_passes')} backbone passes of {judge.get('objective')} on the unlabeled training "
            f"images (network {network}), then was measured on held-out images and ranked by {signal}"
            f"{partners}; {len(judged)} judged. The plan: about {float(judge.get('estimated_seconds', 0)):.0f} s of "
            f"the {float(judge.get('seconds_left', 0)):.0f} s left after stage 1. Signals: higher is better (losses "
            "negated).")  # fmt: skip
    found = correlations(final, truth) if metric else None
    ordered = (f"Over the judged shortlist, the stage-2 score against {metric}: Spearman {found['spearman']:.3f}, "
               f"Kendall {found['kendall']:.3f}." if found else "")  # fmt: skip
    labels = [f"#{row[0]}" for row in rows]
    figure = judge_curves_figure([e.get("curve", []) for e in judged], labels, picked if picked is not None else -1)
    return section("Stage 2: the judged shortlist", note(plan), table(header, rows, marked=picked),
                   note(ordered) if ordered else "", image(figure, "judge training curves"))  # fmt: skip


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _value(value: Any) -> Any:
    """A signal's value, or an empty cell where it was not measured (a non-finite one is shown as itself)."""
    return float(value) if isinstance(value, (int, float)) else ""


__all__ = ["judge_section"]
