"""Clean errors everywhere: every refusal is one line on stderr, exit != 0, and leaves no result.

A sweep over the commands' options (zero, negative, NaN, empty, paths that are files,
folders that do not exist). Refusals of the run itself go through a real subprocess; the
option sweep calls the same entry point (`ssnas.cli.main.main`) in-process, since each
subprocess costs a torch import.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from cli_helpers import run_ssnas
from ssnas.cli.main import main
from ssnas.errors import UserError
from ssnas.runfolder import check_run_folder

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def one_line(result, *fragments: str) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode != 0, result.stdout
    return one_line_text(result.stderr, *fragments)


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """`ssnas ARGS` through the CLI entry point; the one-line error it printed."""
    with pytest.raises(SystemExit) as done:
        main(list(args))
    assert done.value.code not in (0, None)
    return one_line_text(capsys.readouterr().err)


def one_line_text(stderr: str, *fragments: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssnas: error: "), stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 random 32x32 PNGs in a flat folder: too few for setn's floor (768), enough for evolution's (64)."""
    folder = tmp_path_factory.mktemp("small")
    generator = torch.Generator().manual_seed(0)
    for i in range(100):
        pixels = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8, generator=generator).numpy()
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


@pytest.mark.parametrize(("args", "fragment"), [
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-3"], "--batch-size"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "-0.1"], "--lr"),
    (["--weight-decay", "inf"], "--weight-decay"),
    (["--epochs", "0"], "--epochs"),
    (["--num-images", "-5"], "--num-images"),
    (["--select-num", "0"], "--select-num"),
    (["--data", ""], "--data"),
    (["--out", "  "], "--out"),
    (["--strategy", "nope"], "--strategy"),
    (["--space", "nope"], "--space"),
    (["--objective", "nope"], "--objective"),
    (["--signals", "nope"], "--signals"),
    (["--rating", "nope"], "--rating"),  # the old name of --signals
    (["--preset", "huge"], "--preset"),
])  # fmt: skip
def test_search_refuses_bad_values_in_one_line(args: list[str], fragment: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = [] if "--out" in args else ["--out", str(tmp_path / "run")]
    assert fragment in in_process(capsys, "search", *out, *args)
    assert not (tmp_path / "run").exists()


def test_search_refusals_through_a_real_subprocess(tmp_path: Path) -> None:
    one_line(run_ssnas("search", "--batch-size", "0", "--out", str(tmp_path / "run")), "--batch-size", "x>=2")
    one_line(run_ssnas("search", "--lr", "nan", "--out", str(tmp_path / "run")), "--lr", "finite")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [["search"], ["rank"], ["pretrain", ARCH], ["probe", "runs/x"], ["train", ARCH],
                                     ["worker", "--study", "s", "--storage", "j.log"]])  # fmt: skip
def test_every_training_command_takes_precision(command: list[str]) -> None:
    one_line(run_ssnas(*command, "--precision", "fp8"), "--precision", "auto", "fp32", "bf16")


def test_out_naming_an_existing_file(tmp_path: Path, small_folder: Path) -> None:
    existing = tmp_path / "taken.txt"
    existing.write_text("mine")
    one_line(run_ssnas("search", "--data", str(small_folder), "--out", str(existing)), "is a file")
    with pytest.raises(UserError, match="is a file"):
        check_run_folder(existing / "run", {}, resume=False, resumable=())
    assert existing.read_text() == "mine"


def test_resume_of_a_missing_run_folder_is_refused(tmp_path: Path, small_folder: Path) -> None:
    missing = tmp_path / "typo"
    one_line(run_ssnas("search", "--data", str(small_folder), "--out", str(missing), "--resume"), "nothing to resume")
    assert not missing.exists()


def test_too_small_folder_names_the_minimum_and_leaves_nothing(tmp_path: Path, small_folder: Path) -> None:
    out = tmp_path / "run"
    env = {"SSNAS_CACHE": str(tmp_path / "cache")}
    one_line(run_ssnas("search", "--strategy", "setn", "--data", str(small_folder), "--out", str(out), env=env),
             "100 images", "strategy 'setn' needs at least 768")  # fmt: skip
    assert not out.exists()
    one_line(run_ssnas("search", "--data", str(tmp_path / "absent"), "--out", str(out)), "absent")
    assert not (out / "result.json").exists()


@pytest.mark.parametrize(("command", "fragment"), [
    (["pretrain", ARCH, "--batch-size", "0"], "--batch-size"),
    (["pretrain", ARCH, "--lr", "nan"], "--lr"),
    (["pretrain", ARCH, "--out", ""], "--out"),
    (["train", ARCH, "--lr", "inf"], "--lr"),
    (["train", ARCH, "--epochs", "-1"], "--epochs"),
    (["probe", "no-such-run"], "no-such-run"),
    (["export", ARCH, "--out", ""], "--out"),
    (["worker", "--study", "", "--storage", "j.log"], "--study"),
])  # fmt: skip
def test_other_commands_refuse_bad_values_in_one_line(command: list[str], fragment: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert fragment in in_process(capsys, *command)


def test_help_lists_the_registries() -> None:
    from ssnas.objectives import OBJECTIVES
    from ssnas.run.presets import PRESETS
    from ssnas.strategies import STRATEGIES

    # the spaces a fresh process sees (this test process may hold a space another test registered)
    listed = subprocess.run([sys.executable, "-c", "from ssnas.spaces import SPACES; print(*SPACES.names())"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    spaces = listed.stdout.split()
    assert "nb201" in spaces, listed.stderr
    text = " ".join(run_ssnas("search", "--help").stdout.split())
    for name in [*STRATEGIES.names(), *spaces, *OBJECTIVES.names(), "meco", "naswot"]:
        assert name in text, name
    assert " + ".join(PRESETS["quick"]["signals"]) in text  # SETN's rating preset, as it is


def test_out_in_a_folder_that_is_not_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ssnas.runfolder

    monkeypatch.setattr(ssnas.runfolder.os, "access", lambda path, mode: False)  # root may write anywhere
    with pytest.raises(UserError, match="is not writable"):
        check_run_folder(tmp_path / "run", {}, resume=False, resumable=())
