"""Label-free rating: signals of networks without labels, one engine, one aggregation.

Layout: `registry.py` (SIGNALS: signal -> family), one module per family (`activation.py`
NASWOT/SWAP/effective rank, `spectral.py` MeCo, `synflow.py`, `az_nas.py`, `ssl_gradients.py`
ZiCo/SNIP/grad-norm on NT-Xent, `vkdnw.py` VKDNW), `structural.py` (params, flops), `aggregate.py` (rankers,
mean-rank / log-rank, the non-finite policy), `engine.py` (builds, draws images, runs),
`models.py` (any PyTorch model: timm, a file of factories, through the same engine),
`defaults.py` (what each space is rated with, as measured); and where a whole rating is kept:
`plan.py` (what a rating rates, from its settings alone), `stream.py` (chunk files in a run
folder, safe to kill) and `shared.py` (the chunks shared by workers through an Optuna study).
"""

from __future__ import annotations

from ssnas.rating.aggregate import AGGREGATIONS, COMPOSITES, Ranker, parse_ranker, ranker_names
from ssnas.rating.engine import (
    EngineConfig, RatingJob, Scores, build_network, frozen_batch_norm, network_signals, rate_chunks, rating_batches,
    rating_job, resized, score_architectures, threads_per_worker,
)  # fmt: skip
from ssnas.rating.registry import SIGNALS
from ssnas.rating.structural import STRUCTURAL

__all__ = [
    "AGGREGATIONS", "COMPOSITES", "EngineConfig", "RatingJob", "Ranker", "SIGNALS", "STRUCTURAL", "Scores",
    "build_network", "frozen_batch_norm", "network_signals", "parse_ranker", "ranker_names", "rate_chunks",
    "rating_batches", "rating_job", "resized", "score_architectures", "threads_per_worker",
]
