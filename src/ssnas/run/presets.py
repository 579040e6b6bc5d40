"""Defaults of `ssnas search`: presets, each space's strategy, each method's own scale.

Everything here is a value a setting takes when the user gives none; `ssnas.run.strategies`
says which of them each strategy uses.
"""

from __future__ import annotations

from typing import Any

from ssnas.data.split import Share
from ssnas.strategies.supernet_rating import DEFAULT_SIGNALS as SETN_SIGNALS

PRESETS: dict[str, dict[str, Any]] = {
    # About 10-15 minutes on a 2-core CPU.
    "quick": dict(epochs=5, batch_size=128, lr=0.1, optimizer="sgd",
                  weight_decay=5e-4, channels=16, cells=2, select_num=100, evaluator_every=2,
                  signals=SETN_SIGNALS, trials=20),
    # The papers' settings, for a GPU: SETN's NB201 script (AutoDL-Projects), CSNAS's trial count.
    "paper": dict(epochs=250, batch_size=64, lr=0.025,
                  optimizer="sgd", weight_decay=5e-4, channels=16, cells=5, select_num=100,
                  evaluator_every=1, signals=SETN_SIGNALS, trials=120),
}  # fmt: skip

# The objective of strategies that train with one (setn, tpe / random proxy trials).
DEFAULT_OBJECTIVE = "simclr"

# tpe / random trials train from scratch, as CSNAS does, unless --trial-objective rating.
DEFAULT_TRIAL_OBJECTIVE = "ssl-proxy"

# CSNAS (arXiv 2102.10557, search/search.py) trains every trial from scratch for 10 epochs, whatever
# the preset, on 1 % of the training images (at least one batch: the strategy's floor), scored on 256
# held-out images.
CSNAS_EPOCHS = 10
CSNAS_TRAIN_FRACTION = 0.01
CSNAS_HOLDOUT = Share(0.0, 256, 256)

# The fewest training and held-out images of the strategies that train a supernet (setn, bossnas).
SUPERNET_FLOOR = (512, 256)

# Networks a strategy builds per architecture (evolution's rating, tpe / random trials), by
# default the space's full size: NB201's benchmark network (C=16, N=5) and CSNAS's DARTS proxy
# network (C=32, 8 cells in all, CSNAS's search/model_generator.py). `cells` counts cells per stage
# on nb201 and all cells on darts. Where the full size replaces the preset's: darts always; nb201
# for evolution.
FULL_NETWORK: dict[str, dict[str, int]] = {"nb201": dict(channels=16, cells=5), "darts": dict(channels=32, cells=8)}

# Evolution's default plan where it was measured: (minutes of the whole run, independent evolutions
# pooled, the shortlist rated again under two more seeds at the end). nb201: 4 islands and the final
# rating of the best 10 chosen on development seeds 0-4 (at 493 ratings, about 4 minutes: one
# evolution 93.89, four islands 93.94, four islands with the final rating 94.03;
# benchmarks/results/budget_curve_nb201_dev.json); the budget by the held-out curve (seeds 5-14,
# benchmarks/results/budget_curve_nb201.json): the shortest within 0.05 of the longest measured
# (5 minutes: 94.02; 3 minutes: 94.07, worst 93.66; 2 minutes: 93.93).
# Elsewhere, and with --ratings: a fixed number of ratings (EvolutionConfig's), one evolution.
EVOLUTION_PLANS: dict[str, tuple[float, int, int]] = {"nb201": (3.0, 4, 10)}

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

# Training and held-out image counts as shares of the folder (`ssnas.data.split`), unless given:
# quick = CIFAR-10's 5,000 + 1,024, and 80 % / 20 % of a smaller folder; paper = SETN's halves of
# the training set. tpe / random use CSNAS's shares (above). The floors are the strategy's own
# (`image_floor` of its settings, `ssnas.run.strategies`): the shares apply above them.
PRESET_SPLITS: dict[str, tuple[Share, Share]] = {
    "quick": (Share(0.8, 0, 5000), Share(0.2, 0, 1024)),
    "paper": (Share(0.5, 0, 25000), Share(0.5, 0, 25000)),
}

# BossNAS's heads on the quick preset (the paper's 2048 / 4096 / 4096 are for a GPU).
BOSSNAS_QUICK_HEADS = dict(neck_width=512, hidden_dim=1024, pred_hidden_dim=1024)


def default_strategy(space: str) -> str:
    """The strategy `ssnas search` runs on `space` when none is given."""
    return SPACE_STRATEGIES.get(space, FALLBACK_STRATEGY)


__all__ = [
    "BOSSNAS_QUICK_HEADS", "CSNAS_EPOCHS", "CSNAS_HOLDOUT", "CSNAS_TRAIN_FRACTION", "DEFAULT_OBJECTIVE",
    "DEFAULT_TRIAL_OBJECTIVE",
    "EVOLUTION_PLANS", "FULL_NETWORK", "PRESETS", "PRESET_SPLITS", "SETN_SIGNALS", "SPACE_STRATEGIES", "SUPERNET_FLOOR", "default_strategy",
]
