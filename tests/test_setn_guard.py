"""SETN's label-free rating must rank NB201 cells above the parameter count (issue 28's guard).

A small template (C=8, N=1, 1,024 real CIFAR-10 images, one epoch) trained through the code path of
`ssnas rank --strategy setn` in the precision `auto` picks here, then SETN's default rating and the
parameter count on the same fixed 60 development cells (even benchmark index), the candidates' own
networks (SETN's `init-*` signals, the count) built at the template's size to keep it fast.
Measured on an AVX-512 Xeon: the default 0.924 (fp32, what `auto` picks) and 0.914 (bf16) against
0.793 for the count; the previous default, MeCo + NASWOT on the template, fails it (0.720 / 0.749).
The full-scale figure is `benchmarks/bench_setn.py --guard`.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from ssnas.groundtruth.tables import TABLES
from ssnas.ranking.metrics import spearman_rho
from ssnas.ranking.selection import all_architectures
from ssnas.run import build_task, resolve, search_config
from ssnas.run.task import build_space, fit_data
from ssnas.spaces import create_space
from ssnas.strategies.setn import SETN
from ssnas.strategies.supernet_rating import DEFAULT_SIGNALS, rate_architectures

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def test_setn_default_rating_ranks_above_the_parameter_count(shared_data: Path, nb201_csv: Path, tmp_path: Path) -> None:
    table = TABLES.create("nb201", path=nb201_csv)
    pool = [a for a in all_architectures(create_space("nb201")) if table.index_of(a.key) % 2 == 0]
    cells = random.Random(0).sample(pool, 60)
    truth = [table.query(a.key, "cifar10_valid") for a in cells]
    config = resolve(search_config(strategy="setn", objective="simclr", data=str(shared_data / "cifar10-jpeg"),
                                   num_images=1024, holdout_images=256, epochs=1, channels=8, cells=1,
                                   progress=False, out=str(tmp_path / "run")))  # fmt: skip
    space, strategy = build_space(config), config.create_strategy()
    assert isinstance(strategy, SETN) and strategy.config.rating.signals == DEFAULT_SIGNALS
    config, dataset, _ = fit_data(config)
    task = build_task(config, space, tmp_path / "run", dataset)
    template = strategy.train_template(task)
    space = create_space("nb201", C=8, N=1)  # the candidates' networks at the template's size

    def spearman(signals: tuple[str, ...]) -> float:
        rating = replace(strategy.config.rating, signals=signals)
        scored = rate_architectures(space, template.supernet, template.objective, cells, task.holdout_images, rating,
                                    task.train, seed=task.seed, report=False)  # fmt: skip
        return spearman_rho([s.score for s in scored], truth)

    setn, params = spearman(DEFAULT_SIGNALS), spearman(("params",))
    assert setn > params, f"SETN's rating {setn:.3f} <= parameter count {params:.3f} on the guard's cells"
