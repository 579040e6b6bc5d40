"""`ssnas search` end to end on real CIFAR-10 images, and exact resume after SIGKILL."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli_helpers import copy_cifar_subset, run_ssnas

TINY = ["--strategy", "setn", "--num-images", "256", "--holdout-images", "64", "--epochs", "3", "--batch-size", "32",
        "--channels", "8", "--cells", "1", "--select-num", "6", "--evaluator-every", "1", "--no-progress"]


@pytest.fixture(scope="module")
def cifar_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cifar_subset(shared_data, tmp_path_factory.mktemp("cifar"), per_class=32)


def search(data: Path, out: Path, *extra: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_ssnas("search", "--data", str(data / "train"), "--out", str(out), *TINY, *extra, env=env)


def test_search_writes_a_complete_run_folder(cifar_subset: Path, tmp_path: Path, nb201_csv: Path) -> None:
    env = {"SSNAS_CACHE": str(tmp_path / "cache"), "SSNAS_NB201_TABLE": str(nb201_csv)}
    result = search(cifar_subset, tmp_path / "run", "--json", env=env)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"result.json", "candidates.csv", "config.yaml", "search.log", "op_distribution.png", "checkpoint.pt",
            "report.html"} <= files
    on_disk = json.loads((tmp_path / "run" / "result.json").read_text())
    assert on_disk["best"]["arch"] == payload["best"]["arch"]
    assert on_disk["ground_truth"]["cifar10_test"] > 10.0  # found in the benchmark table
    candidates = (tmp_path / "run" / "candidates.csv").read_text().splitlines()
    assert len(candidates) == 1 + 6 and candidates[1].split(",")[1] == payload["best"]["arch"]
    # The run folder is never silently overwritten.
    again = search(cifar_subset, tmp_path / "run", env=env)
    assert again.returncode == 1 and "--resume" in again.stderr


def test_resume_refuses_changed_settings(cifar_subset: Path, tmp_path: Path) -> None:
    env = {"SSNAS_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("space: nb201\nstrategy: setn\nseed: 5\n")
    result = search(cifar_subset, out, "--resume", env=env)
    assert result.returncode == 1 and "different settings" in result.stderr


SMALL_NET = ["--channels", "8", "--cells", "1", "--batch-size", "32", "--no-progress", "--json"]


def test_random_search_defaults_to_the_csnas_one_percent_proxy(cifar_subset: Path, tmp_path: Path) -> None:
    """Without --num-images a TPE / random trial trains on 1 % of the folder (here one batch: 32)."""
    env = {"SSNAS_CACHE": str(tmp_path / "cache")}
    result = run_ssnas("search", "--strategy", "random", "--data", str(cifar_subset / "train"), "--out",
                       str(tmp_path / "run"), "--trials", "2", "--epochs", "1", "--holdout-images", "32",
                       *SMALL_NET, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["num_candidates"] == 2 and payload["info"]["complete"] == 2
    log = (tmp_path / "run" / "search.log").read_text()
    assert "32 training (1% of the folder, floor 32)" in log and "32 held-out (given)" in log
    assert (tmp_path / "run" / "study.journal").is_file()  # the default storage, inside the run folder


def test_bossnas_search_on_nb201_rates_a_sampled_population(cifar_subset: Path, tmp_path: Path) -> None:
    """NB201 is one block of 15,284 cells: --select-num cells form the population, the best of them is kept."""
    env = {"SSNAS_CACHE": str(tmp_path / "cache")}
    result = run_ssnas("search", "--strategy", "bossnas", "--space", "nb201", "--data", str(cifar_subset / "train"),
                       "--out", str(tmp_path / "run"), "--select-num", "5", "--epochs", "1", "--num-images", "64",
                       "--holdout-images", "64", *SMALL_NET, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    rows = (tmp_path / "run" / "candidates.csv").read_text().splitlines()
    assert payload["num_candidates"] == 5 and len(rows) == 1 + 5
    assert rows[1].split(",")[1] == payload["best"]["arch"]


def test_rank_with_bossnas_reports_correlations_next_to_params(
    cifar_subset: Path, tmp_path: Path, nb201_csv: Path
) -> None:
    env = {"SSNAS_CACHE": str(tmp_path / "cache")}
    result = run_ssnas("rank", "--strategy", "bossnas", "--sample", "4", "--seed", "2", "--data",
                       str(cifar_subset / "train"), "--out", str(tmp_path / "rank"), "--epochs", "1",
                       "--num-images", "64", "--holdout-images", "64", "--channels", "8", "--cells", "1",
                       "--batch-size", "32", "--no-progress", "--table", str(nb201_csv), "--json", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ranker"] == "bossnas" and report["count"] == 4
    assert -1.0 <= report["kendall_tau"] <= 1.0 and -1.0 <= report["baseline"]["spearman_rho"] <= 1.0
    scores = (tmp_path / "rank" / "scores.csv").read_text().splitlines()
    assert len(scores) == 1 + 4


def test_tpe_on_darts_then_train_the_found_genotype(cifar_subset: Path, shared_data: Path, tmp_path: Path) -> None:
    """CSNAS end to end on real images: TPE over DARTS cells with the SSL proxy, then supervised
    retraining of the genotype it found (tiny network, one step)."""
    env = {"SSNAS_CACHE": str(tmp_path / "cache")}
    labelled = copy_cifar_subset(shared_data, tmp_path / "labelled", per_class=4)
    copy_cifar_subset(shared_data, labelled, per_class=4, split="test")
    found = run_ssnas("search", "--strategy", "tpe", "--space", "darts", "--data", str(cifar_subset / "train"),
                      "--out", str(tmp_path / "search"), "--trials", "2", "--epochs", "1", "--channels", "4",
                      "--cells", "5", "--holdout-images", "32", "--batch-size", "32", "--no-progress", "--json",
                      env=env)  # fmt: skip
    assert found.returncode == 0, found.stderr
    genotype = json.loads(found.stdout)["best"]["arch"]
    assert genotype.startswith("Genotype(normal=")
    trained = run_ssnas("train", genotype, "--space", "darts", "--space-arg", "C=4", "--space-arg", "layers=5",
                        "--data", str(labelled), "--epochs", "1", "--batch-size", "24", "--max-steps", "1",
                        "--out", str(tmp_path / "train"), "--json", env=env)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["recipe"] == "darts-cifar"
