"""The one rating engine: a signal's value is the same whichever command asks for it, and every
signal is finite on NB201's extreme cells at both network sizes, in fp32 and under bf16 autocast."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from cli_helpers import run_ssnas
from ssnas.data.datasets import load_dataset
from ssnas.rating import SIGNALS, EngineConfig, score_architectures
from ssnas.spaces import create_space
from ssnas.strategies.base import SearchTask
from ssnas.strategies.raters import create_rater
from ssnas.strategies.supernet_rating import RatingConfig, rate_architectures
from ssnas.training.loop import TrainConfig

LARGEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
ALL_POOL = "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|"
ONE_PATH = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"  # the cell passes its input on unchanged
MIXED = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
EVERY_SIGNAL = "+".join(SIGNALS.names())


def test_every_signal_is_identical_from_rank_evolution_and_setn(image_folder: Path, tmp_path: Path) -> None:
    """`ssnas rank --ranker S` (a real subprocess), evolution's rater and SETN's `init-*` rating give
    the same value of every signal for three cells, NB201's largest among them, with the same
    network size, images and seed (one thread everywhere, so reductions sum in the same order)."""
    cells = [LARGEST, MIXED, ALL_POOL]
    size, batch, seed = {"C": 8, "N": 1}, 16, 5
    archs_file = tmp_path / "cells.txt"
    archs_file.write_text("\n".join(cells) + "\n")
    scores = tmp_path / "scores.csv"
    run = run_ssnas("rank", "--ranker", EVERY_SIGNAL, "--archs", str(archs_file), "--data", str(image_folder),
                    "--channels", "8", "--cells", "1", "--batch-size", str(batch), "--seed", str(seed),
                    "--out", str(scores), "--json", env={"OMP_NUM_THREADS": "1"}, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr
    from_rank = {row["arch"]: row for row in csv.DictReader(scores.open())}

    images = load_dataset(str(image_folder)).images
    space = create_space("nb201", **size)
    archs = [space.parse(cell) for cell in cells]
    task = SearchTask(space=space, images=images, holdout_images=images, seed=seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from_evolution = create_rater(task, EVERY_SIGNAL, batch).columns(archs)
        setn = RatingConfig(signals=tuple(f"init-{name}" for name in SIGNALS.names()), batches=1, batch_size=batch)
        from_setn = rate_architectures(space, None, None, archs, images, setn, TrainConfig(precision="fp32"), seed=seed)
    finally:
        torch.set_num_threads(threads)
    for i, arch in enumerate(archs):
        for name in SIGNALS.names():
            value = from_evolution[name][i]
            assert math.isfinite(value), (arch.key, name)
            assert from_setn[i].details[f"init-{name}"] == value, (arch.key, name)
            assert float(from_rank[arch.key][name]) == value, (arch.key, name)  # CSV keeps repr(float): exact


@pytest.mark.parametrize("size", [{"C": 8, "N": 1}, {"C": 16, "N": 5}], ids=["C8N1", "C16N5"])
def test_every_signal_is_finite_on_the_extreme_cells(size: dict[str, int]) -> None:
    """All conv3x3 (NB201's largest: SynFlow about 1e50 at C=16, N=5), all skip, all avg-pool and a
    one-path identity cell; in fp32 and inside a bf16 autocast region (the engine switches it off,
    so the values are the fp32 ones)."""
    space = create_space("nb201", **size)
    archs = [space.parse(cell) for cell in (LARGEST, ALL_SKIP, ALL_POOL, ONE_PATH)]
    images = torch.randint(0, 256, (8, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    config = EngineConfig(batch_size=8, seed=0)  # 8 images: the fewest ZiCo's two splits of two pairs allow
    fp32 = score_architectures(space, archs, EVERY_SIGNAL, images, config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = score_architectures(space, archs, EVERY_SIGNAL, images, config)
    assert not fp32.nonfinite and not bf16.nonfinite
    for name in SIGNALS.names():
        assert all(math.isfinite(v) for v in fp32.columns[name]), (name, fp32.columns[name])
        assert bf16.columns[name] == fp32.columns[name], name
    synflow = dict(zip([a.key for a in archs], fp32.columns["synflow"]))
    if size["N"] == 5:
        assert synflow[LARGEST] > 38.6  # beyond float32's range: the value float32 used to turn into inf


def test_a_signal_does_not_depend_on_the_signals_asked_with_it() -> None:
    """SynFlow reads BN running statistics; a train-mode pass of another family before it must not
    move them (its value alone equals its value after meco, NASWOT and AZ-NAS on the same network)."""
    space = create_space("nb201", C=4, N=1)
    archs = [space.parse(cell) for cell in (LARGEST, MIXED)]
    images = torch.randint(0, 256, (8, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    config = EngineConfig(batch_size=8, seed=3)
    alone = score_architectures(space, archs, "synflow", images, config).columns["synflow"]
    after = score_architectures(space, archs, "meco+naswot+az-nas+synflow", images, config).columns["synflow"]
    assert alone == after


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_avg_pool_is_avg_pool2d_bit_for_bit(dtype: torch.dtype) -> None:
    """The 3x3 pooling of NB201 / DARTS cells (9 vectorised slice additions) gives `avg_pool2d`'s
    values and gradients exactly, on every side (corners count 4 inputs, edges 6), with and without grad."""
    from ssnas.spaces.ops import AvgPool2d

    fast, reference = AvgPool2d(3, 1, 1, count_include_pad=False), torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    generator = torch.Generator().manual_seed(0)
    for shape in [(32, 8, 32, 32), (4, 16, 16, 16), (3, 32, 8, 8), (2, 3, 5, 7), (2, 4, 1, 1), (1, 2, 2, 3)]:
        for scale in (1e-3, 1.0, 1e3):
            x = (torch.randn(shape, generator=generator, dtype=dtype) * scale).requires_grad_()
            grad = torch.randn(shape, generator=generator, dtype=dtype)
            assert fast._exact_route(x)
            ours, theirs = fast(x), reference(x)
            assert torch.equal(ours, theirs)
            assert torch.equal(torch.autograd.grad(ours, x, grad)[0], torch.autograd.grad(theirs, x, grad)[0])
            with torch.no_grad():
                assert torch.equal(fast(x), theirs)
    assert not fast._exact_route(torch.zeros(2, 3, 4, 4).to(memory_format=torch.channels_last).transpose(2, 3))


def test_every_signal_is_unchanged_by_the_fast_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every signal of two pooling-heavy cells, rated with the fast pool and with torch's kernel, is equal (==)."""
    from ssnas.spaces.ops import AvgPool2d

    space = create_space("nb201", C=4, N=1)
    archs = [space.parse(ALL_POOL), space.parse(MIXED)]
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    config = EngineConfig(batch_size=8, seed=3)
    fast = score_architectures(space, archs, EVERY_SIGNAL, images, config).columns
    monkeypatch.setattr(AvgPool2d, "_exact_route", lambda self, x: False)
    assert score_architectures(space, archs, EVERY_SIGNAL, images, config).columns == fast


def test_rating_processes_replaced_after_their_chunks_rate_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rating processes are replaced after TASKS_PER_WORKER chunks (bounding their memory); with a
    fresh process for every chunk the values equal one process's, and every chunk comes back."""
    from ssnas.rating import engine
    from ssnas.rating.aggregate import parse_ranker

    monkeypatch.setattr(engine, "TASKS_PER_WORKER", 1)
    space = create_space("nb201", C=4, N=1)
    archs = [space.parse(cell) for cell in (LARGEST, MIXED, ALL_SKIP, ALL_POOL, ONE_PATH, LARGEST)]
    images = torch.randint(0, 256, (8, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    job = engine.rating_job(space, parse_ranker("synflow+naswot", "mean-rank"), images, EngineConfig(batch_size=8))
    chunks = [(i, archs[i : i + 1]) for i in range(len(archs))]
    alone = {index: columns for index, _, columns, _ in engine.rate_chunks(job, chunks, workers=1)}
    recycled = {index: columns for index, _, columns, _ in engine.rate_chunks(job, chunks, workers=2)}
    assert recycled == alone and sorted(recycled) == list(range(len(archs)))
