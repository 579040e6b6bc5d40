"""The Python API: what `import ssnas` offers, and that it gives what the CLI gives."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import ssnas
from cli_helpers import copy_cifar_subset, run_ssnas

SEARCH = {"strategy": "evolution", "ranker": "meco", "ratings": 10, "population": 4, "num_images": 64,
          "holdout_images": 64, "channels": 4, "cells": 1, "precision": "fp32"}  # fmt: skip
ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|",
    "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
]


def as_flags(settings: dict[str, object]) -> list[str]:
    return [part for name, value in settings.items() for part in (f"--{name.replace('_', '-')}", str(value))]


@pytest.fixture(scope="module")
def cifar_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cifar_subset(shared_data, tmp_path_factory.mktemp("cifar"), per_class=16)


def test_import_is_light_and_help_lists_the_api() -> None:
    code = "import sys, ssnas; print('torch' in sys.modules); help(ssnas)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == "False"  # `import ssnas` alone does not load torch
    for name in ("load_images", "search", "rank", "score", "list_spaces", "list_rankers", "list_strategies",
                 "SearchResult", "Ranking"):  # fmt: skip
        assert name in shown.stdout


@pytest.mark.parametrize("name", [n for n in ssnas.__all__ if n != "__version__"])
def test_every_public_name_has_a_docstring_with_an_example(name: str) -> None:
    doc = getattr(ssnas, name).__doc__ or ""
    assert doc.strip() and ">>>" in doc, f"ssnas.{name} needs a docstring with an example"


def test_listings_name_what_the_registries_hold() -> None:
    assert {"nb201", "darts", "nats-size", "hytra", "mbconv"} <= set(ssnas.list_spaces())
    assert {"evolution", "two-stage", "setn", "bossnas", "tpe", "random"} <= set(ssnas.list_strategies())
    assert {"az-nas", "meco", "naswot", "params"} <= set(ssnas.list_rankers())


def test_load_images_draws_a_seeded_subset(cifar_subset: Path) -> None:
    images = ssnas.load_images(cifar_subset, limit=20, seed=3)
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images, ssnas.load_images(cifar_subset, limit=20, seed=3))
    assert not torch.equal(images, ssnas.load_images(cifar_subset, limit=20, seed=4))
    with pytest.raises(ssnas.api.UserError, match="not one of"):
        ssnas.load_images(cifar_subset / "missing")


def test_search_gives_what_the_cli_gives_and_leaves_no_global_state(cifar_subset: Path, tmp_path: Path) -> None:
    data = str(cifar_subset / "train")
    cli = run_ssnas("search", "--data", data, *as_flags(SEARCH), "--seed", "1", "--out", str(tmp_path / "cli"),
                    "--no-progress", "--json")  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    result = ssnas.search(data, seed=1, out=tmp_path / "api", threads=1, **SEARCH)
    assert torch.get_num_threads() == threads and torch.equal(torch.random.get_rng_state(), rng)
    assert result.arch == json.loads(cli.stdout)["best"]["arch"]
    assert (tmp_path / "api" / "candidates.csv").read_text() == (tmp_path / "cli" / "candidates.csv").read_text()
    saved = {side: yaml.safe_load((tmp_path / side / "config.yaml").read_text()) for side in ("api", "cli")}
    assert saved["api"].pop("out").endswith("api") and saved["cli"].pop("out").endswith("cli")
    assert saved["api"] == saved["cli"]
    assert [c.arch for c in result.candidates][0] == result.best.arch and len(result.candidates) == 10
    assert result.to_records()[0]["arch"] == result.arch and result.settings["ratings"] == 10


def test_rank_gives_what_the_cli_gives(cifar_subset: Path, tmp_path: Path, nb201_csv: Path) -> None:
    archs = tmp_path / "archs.txt"
    archs.write_text("\n".join(ARCHS) + "\n")
    cli = run_ssnas("rank", "--archs", str(archs), "--data", str(cifar_subset / "train"), "--ranker", "az-nas",
                    "--batch-size", "16", "--table", str(nb201_csv), "--out", str(tmp_path / "cli.csv"), "--json")  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    ranking = ssnas.rank(ARCHS, cifar_subset / "train", ranker="az-nas", batch_size=16, table=nb201_csv)
    with (tmp_path / "cli.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["arch"] for r in rows] == [r["name"] for r in ranking.records]
    assert [float(r["score"]) for r in rows] == ranking.scores
    report = json.loads(cli.stdout)
    assert report["spearman_rho"] == ranking.correlations["spearman_rho"]
    assert report["baseline"] == json.loads(json.dumps(ranking.correlations["baseline"]))
    assert all(r["cifar10_valid"] > 0 for r in ranking.records)
    text = ranking.to_csv(tmp_path / "api.csv")
    assert text.splitlines()[0].startswith("name,score,") and (tmp_path / "api.csv").read_text() == text
    assert ranking.best["score"] == max(ranking.scores)


def test_rank_refuses_bad_input_in_one_line(cifar_subset: Path) -> None:
    with pytest.raises(ssnas.api.UserError, match="malformed|unknown|expected"):
        ssnas.rank(["|not_an_op~0|+|x|"], cifar_subset / "train")
    with pytest.raises(ssnas.api.UserError, match="unknown ranker"):
        ssnas.rank(ARCHS, cifar_subset / "train", ranker="no-such-ranker")
    with pytest.raises(ssnas.api.UserError, match="threads"):
        ssnas.rank(ARCHS, cifar_subset / "train", threads=0)
