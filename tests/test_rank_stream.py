"""`ssnas rank --out FOLDER`: a chunk at a time, killed and resumed, equal to the non-streaming run."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from cli_helpers import (
    SSNAS,
    copy_cifar_subset,
    file_contents,
    kill_once_written,
    refusal_line,
    run_in_process,
    run_ssnas,
)
from test_cli import assert_one_line_error

from ssnas.api import rank_into_folder
from ssnas.errors import UserError
from ssnas.ranking.selection import iter_sample, sample_architectures
from ssnas.rating.stream import chunk_path, read_chunk
from ssnas.spaces import create_space, is_degenerate

ENV = {"OMP_NUM_THREADS": "1"}
# 40 NB201 cells at C=4, N=1 with the default ranker (az-nas-ssl: an ensemble ranked over every cell)
RATING = ["rank", "--sample", "40", "--seed", "5", "--channels", "4", "--cells", "1", "--batch-size", "8", "--json",
          "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def cifar(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(copy_cifar_subset(shared_data, tmp_path_factory.mktemp("cifar"), per_class=4) / "train")


@pytest.fixture(scope="module")
def reference(cifar: str, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """scores.csv of the non-streaming run (--out FILE.csv: every cell rated in memory)."""
    out = tmp_path_factory.mktemp("reference") / "scores.csv"
    done = run_ssnas(*RATING, "--data", cifar, "--out", str(out), env=ENV)
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def test_a_killed_rating_resumes_to_the_same_scores(cifar: str, reference: bytes, tmp_path: Path) -> None:
    """SIGKILL once the second chunk is on disk; --resume rates only the missing chunks and ends
    with scores.csv byte-identical to the non-streaming run's."""
    out = tmp_path / "run"
    command = [*SSNAS, *RATING, "--data", cifar, "--out", str(out), "--chunk-size", "8"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, **ENV})  # fmt: skip
    assert kill_once_written(process, chunk_path(out, 1)), "the rating finished before it could be killed"
    kept = sorted(p.name for p in (out / "ratings").glob("chunk-*.csv"))
    assert 2 <= len(kept) < 5 and not (out / "scores.csv").exists()
    assert all(len(read_chunk(out / "ratings" / name)[0]) == 8 for name in kept)  # whole chunks only
    (out / "ratings" / ".chunk-00004.csv.1.dead.tmp").write_text("arch,torn")  # what a kill mid-write leaves
    before = {name: (out / "ratings" / name).stat().st_mtime_ns for name in kept}
    done = run_ssnas(*RATING, "--data", cifar, "--out", str(out), "--chunk-size", "8", "--resume", env=ENV)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["count"] == 40 and report["rated_now"] == 40 - 8 * len(kept)
    assert {name: (out / "ratings" / name).stat().st_mtime_ns for name in kept} == before  # not rated again
    assert not list((out / "ratings").glob(".*.tmp"))
    assert (out / "scores.csv").read_bytes() == reference
    assert (out / "report.html").is_file()


def test_streaming_in_two_workers_equals_one_process(cifar: str, reference: bytes, tmp_path: Path) -> None:
    done = run_ssnas(*RATING, "--data", cifar, "--out", str(tmp_path / "run"), "--chunk-size", "7", "--workers", "2",
                     env=ENV)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "scores.csv").read_bytes() == reference
    assert len(list((tmp_path / "run" / "ratings").glob("chunk-*.csv"))) == 6  # 40 = 5 x 7 + 5


def test_resume_refuses_other_settings_in_one_line(cifar: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    quick = ["rank", "--ranker", "synflow", "--sample", "6", "--channels", "4", "--cells", "1", "--batch-size", "4",
             "--no-progress", "--out", str(out)]  # fmt: skip
    assert_one_line_error(run_ssnas(*quick, "--resume", env=ENV), "nothing to resume")
    assert run_ssnas(*quick, "--chunk-size", "4", env=ENV).returncode == 0
    assert_one_line_error(run_ssnas(*quick, "--chunk-size", "4", env=ENV), "pass --resume")
    assert_one_line_error(run_ssnas(*quick, "--chunk-size", "4", "--seed", "1", "--resume", env=ENV),
                          "cannot resume")  # fmt: skip
    assert_one_line_error(run_ssnas(*quick, "--chunk-size", "3", "--resume", env=ENV), "chunk_size (4 -> 3)")
    resumed = run_ssnas(*quick, "--chunk-size", "4", "--resume", "--workers", "2", "--json", env=ENV)
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["rated_now"] == 0  # workers may change
    assert_one_line_error(run_ssnas("rank", "--ranker", "synflow", "--sample", "3", "--resume", env=ENV),
                          "need --out FOLDER")  # fmt: skip


def test_darts_is_sampled_lazily_and_rated_without_a_table(tmp_path: Path) -> None:
    """A space too large to list: drawn a chunk at a time (the same genotypes, in the same order, as
    the in-memory sample), rated with its closed-form parameter count, scores.csv without a table."""
    space = create_space("darts")
    done = rank_into_folder(tmp_path / "run", select=3000, space="darts", ranker="params", seed=2, chunk_size=700)
    assert done.count == 3000 and done.rated == 3000 and done.correlations is None
    keys = list(done.keys())
    assert keys == [a.key for a in sample_architectures(space, 3000, seed=2)]
    rows = (tmp_path / "run" / "scores.csv").read_text().splitlines()
    assert len(rows) == 3001 and len(list((tmp_path / "run" / "ratings").glob("chunk-*.csv"))) == 5
    best = max(keys, key=lambda key: space.num_parameters(space.parse(key)))
    assert done.best["name"] == best and not (tmp_path / "run" / "report.html").exists()


def test_lazy_sample_draws_what_the_old_in_memory_sample_drew() -> None:
    """`iter_sample` tells duplicates by a digest of the key; the earlier code kept every drawn
    Architecture in a dict. Both keep the first draw of each architecture, in draw order."""
    for name in ("darts", "mbconv", "hytra"):
        space = create_space(name)
        rng, seen = random.Random(4), {}
        while len(seen) < 300:
            arch = space.sample(rng)
            if not is_degenerate(space, arch):
                seen.setdefault(arch, None)
        assert list(iter_sample(space, 300, 4)) == list(seen), name


@pytest.mark.parametrize("space", ["mbconv", "hytra"])
def test_other_large_spaces_stream_the_same_way(space: str, tmp_path: Path) -> None:
    done = rank_into_folder(tmp_path / "run", select=3, space=space, ranker="synflow", batch_size=4, chunk_size=2)
    assert done.count == 3 and len(list((tmp_path / "run" / "ratings").glob("chunk-*.csv"))) == 2
    assert list(done.keys()) == [a.key for a in sample_architectures(create_space(space), 3, seed=0)]


def test_a_ranker_that_cannot_rate_the_space_leaves_no_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot compute num_parameters"):
        rank_into_folder(tmp_path / "run", select=5, space="mbconv", ranker="params")
    assert not (tmp_path / "run").exists()


def test_a_folder_being_rated_is_not_rated_by_a_second_process(tmp_path: Path) -> None:
    """While one process rates into a folder (it holds the folder's lock), `--resume` of the same
    folder from another process is refused in one line and changes nothing; once the first is gone
    (its lock goes with it, SIGKILL included), the resume runs."""
    from ssnas.runfolder import exclusive

    out = tmp_path / "run"
    command = ["rank", "--sample", "8", "--ranker", "params", "--chunk-size", "4", "--no-progress", "--out", str(out)]
    assert run_in_process(*command)[0] == 0
    before = file_contents(out)
    with exclusive(out, "unused"):  # flock: a second open of the folder conflicts, even in this process
        code, stderr, _ = run_in_process(*command, "--resume")
    line = refusal_line(code, stderr)
    assert "is in use by another ssnas process" in line and "--storage" in line
    assert file_contents(out) == before
    assert run_in_process(*command, "--resume")[0] == 0
