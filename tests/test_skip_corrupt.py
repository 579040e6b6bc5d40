"""`--skip-corrupt` on every command that reads an image folder, and a new run folder for every run
given no --out (`ssnas.runfolder.new_run_dir`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import click
import pytest
import yaml

from cli_helpers import SSNAS, flat_cifar_subset, noise_images, refusal_line, run_in_process
from ssnas.errors import UserError
from ssnas.runfolder import new_run_dir, out_or_new

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
TINY_SEARCH = ["--strategy", "evolution", "--ratings", "8", "--population", "4", "--num-images", "64",
               "--holdout-images", "64", "--channels", "4", "--cells", "1", "--precision", "fp32", "--no-progress"]  # fmt: skip
TINY_SETN = ["--strategy", "setn", "--sample", "3", "--epochs", "1", "--num-images", "32", "--holdout-images", "16",
             "--batch-size", "16", "--channels", "4", "--cells", "1", "--precision", "fp32", "--no-progress"]  # fmt: skip


def ssnas_in(cwd: Path, *args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """The real `ssnas` command run from the folder `cwd` (where a run given no --out goes)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "SSNAS_CACHE": str(cache)}
    return subprocess.run([*SSNAS, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def corrupt(path: Path) -> Path:
    """A .jpg of random bytes: no decoder reads it."""
    path.write_bytes(os.urandom(3000))
    return path


@pytest.fixture(scope="module")
def jpegs_and_one_corrupt(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 real CIFAR-10 JPEGs (30 per class, a flat folder) and broken.jpg."""
    folder = flat_cifar_subset(shared_data, tmp_path_factory.mktemp("jpegs"), per_class=30)
    corrupt(folder / "broken.jpg")
    return folder


@pytest.mark.realdata
def test_search_leaves_a_corrupt_jpeg_out_only_with_the_flag(jpegs_and_one_corrupt: Path, tmp_path: Path) -> None:
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    refused = ssnas_in(work, "search", *TINY_SEARCH, "--data", str(jpegs_and_one_corrupt), "--json", cache=cache)
    line = refusal_line(refused.returncode, refused.stderr)
    assert refused.returncode == 1 and str(jpegs_and_one_corrupt / "broken.jpg") in line and "--skip-corrupt" in line
    assert not any(work.iterdir()), "a refused search left files behind"

    done = ssnas_in(work, "search", *TINY_SEARCH, "--data", str(jpegs_and_one_corrupt), "--skip-corrupt", "--json",
                    cache=cache)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["skipped_images"] == 1
    (run,) = (work / "runs").iterdir()
    assert json.loads((run / "result.json").read_text())["skipped_images"] == 1
    assert "of 300 images" in (log := (run / "search.log").read_text()) and "1 unreadable image file(s) left out" in log
    assert yaml.safe_load((run / "config.yaml").read_text())["skip_corrupt"] is True  # --config takes it back


@pytest.mark.realdata
def test_rank_counts_the_corrupt_file_and_refuses_it_without_the_flag(jpegs_and_one_corrupt: Path, nb201_csv: Path,
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("SSNAS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "rating"
    args = ["rank", "--sample", "5", "--ranker", "naswot", "--data", str(jpegs_and_one_corrupt), "--table",
            str(nb201_csv), "--out", str(out), "--no-progress", "--json"]  # fmt: skip
    code, stderr, _ = run_in_process(*args)
    line = refusal_line(code, stderr)
    assert code == 1 and "broken.jpg" in line and "--skip-corrupt" in line and not out.exists()
    code, stderr, stdout = run_in_process(*args, "--skip-corrupt")
    assert code == 0, stderr[-3000:]
    assert json.loads(stdout)["skipped_images"] == 1 and (out / "scores.csv").is_file()


@pytest.fixture(scope="module")
def labelled_with_corrupt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/ and test/ with two classes of noise PNGs (16 and 8 per class) and train/a/broken.jpg."""
    root = tmp_path_factory.mktemp("labelled")
    for split, count in (("train", 16), ("test", 8)):
        for seed, name in enumerate(("a", "b")):
            noise_images(root / split / name, count, seed=seed)
    corrupt(root / "train" / "a" / "broken.jpg")
    return root


@pytest.mark.parametrize("command", [
    ["pretrain", ARCH, "--epochs", "1", "--channels", "4", "--cells", "1", "--batch-size", "16"],
    ["train", ARCH, "--epochs", "1", "--space-arg", "C=4", "--space-arg", "N=1", "--batch-size", "16", "--max-steps", "1"],
], ids=["pretrain", "train"])  # fmt: skip
def test_training_commands_count_the_corrupt_file_and_refuse_it_without_the_flag(
    command: list[str], labelled_with_corrupt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    args = [*command, "--data", str(labelled_with_corrupt), "--device", "cpu", "--precision", "fp32", "--no-progress",
            "--json"]  # fmt: skip
    code, stderr, _ = run_in_process(*args)
    line = refusal_line(code, stderr)
    assert code == 1 and "broken.jpg" in line and "--skip-corrupt" in line and not (tmp_path / "runs").exists()
    code, stderr, stdout = run_in_process(*args, "--skip-corrupt")
    assert code == 0, stderr[-3000:]
    assert json.loads(stdout)["skipped_images"] == 1
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith(f"{command[0]}-nb201-") and (run / "config.yaml").is_file()
    assert json.loads((run / "metrics.json").read_text())["skipped_images"] == 1
    assert yaml.safe_load((run / "config.yaml").read_text())["skip_corrupt"] is True
    if command[0] == "pretrain":  # the probe reads the same labelled folder
        probe = ["probe", str(run), "--data", str(labelled_with_corrupt), "--device", "cpu", "--json"]
        assert "--skip-corrupt" in refusal_line(*run_in_process(*probe)[:2])
        code, stderr, stdout = run_in_process(*probe, "--skip-corrupt")
        assert code == 0 and json.loads(stdout)["skipped_images"] == 1, stderr[-3000:]


def _commands() -> dict[str, click.Command]:
    """Every `ssnas` command by its full name (`bench query`, ...)."""
    from ssnas.cli.main import cli

    ctx = click.Context(cli)
    found: dict[str, click.Command] = {}
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        group = command.commands if isinstance(command, click.Group) else {"": command}
        found.update({f"{name} {sub}".strip(): c for sub, c in group.items()})
    return found


def test_every_command_reading_an_image_folder_takes_skip_corrupt() -> None:
    readers = {name for name, c in _commands().items() if any(p.name == "data" for p in c.params)}
    assert {"search", "rank", "pretrain", "probe", "train", "worker"} <= readers
    lacking = [name for name in readers if not any(p.name == "skip_corrupt" for p in _commands()[name].params)]
    assert not lacking, lacking


def test_a_run_given_no_out_gets_a_new_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first, second = new_run_dir("rank", "setn", "nb201", "s0"), new_run_dir("rank", "setn", "nb201", "s0")
    assert first != second and first.parent == second.parent == Path("runs") and first.name.startswith("rank-setn-")
    assert not first.exists() and not second.exists()  # named, not made: a refused run leaves nothing
    third = new_run_dir("worker", "a/b c")
    third.mkdir(parents=True)
    assert third.parent == Path("runs") and "/" not in third.name and new_run_dir("worker", "a/b c") != third
    assert out_or_new("mine", False, "search") == Path("mine") == out_or_new("mine", True, "search")
    with pytest.raises(UserError, match="--out"):
        out_or_new(None, True, "search")


@pytest.mark.realdata
def test_two_setn_ratings_without_out_go_to_two_folders(nb201_csv: Path, tmp_path: Path) -> None:
    images = noise_images(tmp_path / "images", 48, seed=5)
    work = tmp_path / "work"
    work.mkdir()
    outs = []
    for _ in range(2):
        done = ssnas_in(work, "rank", *TINY_SETN, "--data", str(images), "--table", str(nb201_csv), "--json",
                        cache=tmp_path / "cache")  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        outs.append(work / json.loads(done.stdout)["out"])
    assert outs[0] != outs[1] and sorted((work / "runs").iterdir()) == sorted(outs)
    for out in outs:
        assert out.name.startswith("rank-setn-nb201-s0-")
        assert {"config.yaml", "scores.csv", "rank.log"} <= {p.name for p in out.iterdir()}
