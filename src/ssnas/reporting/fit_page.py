"""The report of `ssnas fit`: the found cell, the pretraining and fine-tuning curves, probes, the model's costs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ssnas.reporting.figures import architecture_figure, loss_curve_figure
from ssnas.reporting.html import Arch, image, note, page, section, settings_section, table
from ssnas.spaces import create_space


def fit_page(metrics: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """One self-contained HTML page from a fit's metrics.json payload and its config.yaml settings."""
    search, pretrain, probes, tuned, exported = (metrics[k] for k in ("search", "pretrain", "probes", "finetune", "export"))
    summary = [
        ["architecture found without labels", Arch(metrics["arch"])],
        ["test accuracy after fine-tuning", f"{100 * tuned['test_accuracy']:.2f} %"],
        ["test accuracy of the linear probe (frozen backbone)", f"{100 * tuned['linear_probe_accuracy']:.2f} %"],
        ["kNN top-1 at initialisation", f"{100 * probes['knn_at_initialisation']:.2f} %"],
        ["kNN top-1 after pretraining", f"{100 * probes['knn_after_pretraining']:.2f} %"],
        ["unlabeled images (search and pretraining)", metrics["unlabeled_images"]],
        ["labelled training images", metrics["labelled_images"]],
        ["test images", metrics["test_images"]],
        ["exported model", exported["file"]],
        ["parameters", exported["params"]],
        ["FLOPs (multiply-accumulates, one image)", exported["flops"]],
        ["latency (batch 1, fp32, this CPU)", f"{exported['latency_ms']:.2f} ms"],
        ["total time", f"{metrics['seconds'] / 60:.1f} min"],
    ]  # fmt: skip
    truth = search.get("truth") or {}
    if truth:
        summary.insert(1, ["benchmark table's accuracy of the found cell",
                           ", ".join(f"{k} {v:.2f}" for k, v in truth.items())])  # fmt: skip
    arch = create_space(str(metrics["space"])).parse(str(metrics["arch"]))
    budget = metrics.get("time_budget_minutes")
    plans = metrics.get("plans", {})
    stage_rows = [[name, _plan_text(plans.get(name, {})), round(float(seconds), 1)]
                  for name, seconds in metrics.get("stage_seconds", {}).items()]  # fmt: skip
    time_note = (f"A {budget:g}-minute budget, split as fit.json records: {_shares_text(metrics.get('shares'))}."
                 if budget else "No time budget: each stage ran its default.")  # fmt: skip
    sections = [
        section("Summary", table(["", "value"], summary)),
        section("The architecture", image(architecture_figure(arch), "the found architecture"),
                note(f"{search.get('strategy')} rated {search.get('rated')} architectures without labels "
                     f"({search.get('out')}).")),  # fmt: skip
        section("Time", note(time_note), table(["stage", "plan", "seconds"], stage_rows)),
        section("Self-supervised pretraining",
                note(f"{pretrain['objective']}, {pretrain['epochs']} epoch(s) on {pretrain['num_images']} unlabeled "
                     f"images, {pretrain['precision']}, {pretrain['images_per_second']:.0f} images/s."),
                image(loss_curve_figure(pretrain["history"]), "pretraining loss")),  # fmt: skip
        section("Fine-tuning",
                note(f"A linear probe fits a fresh head, then the whole network trains {tuned['epochs']} epoch(s) on "
                     f"{tuned['train_images']} labelled images (SimCLR's fine-tuning recipe)."),
                image(loss_curve_figure(tuned["history"]), "fine-tuning loss")),  # fmt: skip
        settings_section(settings, "config.yaml"),
    ]
    return page(f"ssnas fit: {100 * tuned['test_accuracy']:.2f} % test accuracy", sections)


def _plan_text(plan: Mapping[str, Any]) -> str:
    if plan.get("minutes") is not None:
        return f"search budget {plan['minutes']:g} min"
    if "epochs" in plan:
        speed = f" at {plan['images_per_second']:g} images/s measured" if "images_per_second" in plan else ""
        within = f" in {plan['seconds']:g} s" if "seconds" in plan else ""
        return f"{plan['epochs']} epoch(s){within}{speed}"
    return "-"


def _shares_text(shares: Mapping[str, float] | None) -> str:
    if not shares:
        return ""
    return (f"{shares['reserve']:.0%} kept for data, export and report; the search {shares['search']:.0%} (at most "
            f"the space's default search budget); then, the evaluations' time set aside, {shares['pretrain']:.0%} of "
            f"the rest to pretraining, the remainder to fine-tuning")  # fmt: skip


__all__ = ["fit_page"]
