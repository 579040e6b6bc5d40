"""Defaults of `ssnas search` above the strategies: which strategy each space runs.

Each strategy's own defaults live beside it (`EVOLUTION_PLANS` in `ssnas.strategies.evolution`,
CSNAS's scale in `ssnas.strategies.tpe`, ...); the presets' training scale and the folder shares in
`ssnas.strategies.settings`.
"""

from __future__ import annotations

from ssnas.strategies.settings import PRESET_SPLITS, PRESETS

# `ssnas search` without --strategy. Where a ground-truth table exists the measured best
# (benchmarks/bench_search.py, before the one rating engine: NB201 evolution mean 93.65 vs SETN 92.05; NATS size has no
# supernet for SETN); elsewhere the paper method made for that space: CSNAS on DARTS, BossNAS
# on HyTra, SETN's weight sharing on MBConv.
# The two-stage search (`--strategy two-stage`: evolution keeps a shortlist, brief self-supervised
# training judges it) did not beat evolution alone on the development seeds (0-4: mean 93.43 against
# 93.71; benchmarks/results/search_two_stage_nb201.json), so it is not the default.
SPACE_STRATEGIES: dict[str, str] = {
    "nb201": "evolution", "nats-size": "evolution", "darts": "tpe", "hytra": "bossnas", "mbconv": "setn",
}  # fmt: skip
FALLBACK_STRATEGY = "evolution"


def default_strategy(space: str) -> str:
    """The strategy `ssnas search` runs on `space` when none is given."""
    return SPACE_STRATEGIES.get(space, FALLBACK_STRATEGY)


__all__ = ["PRESETS", "PRESET_SPLITS", "SPACE_STRATEGIES", "default_strategy"]
