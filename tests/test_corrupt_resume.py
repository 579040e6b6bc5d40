"""Resuming a run folder whose saved state is truncated or garbled: one line naming the file, exit
!= 0, and every file of the folder byte-identical afterwards.

`--resume` reads back what a run saved: config.yaml, evolution.json (the ratings so far),
checkpoint.pt (SETN's supernet; a two-stage judge's network in judge/NN/), judge/plan.json and
judge/NN/judgement.json, BossNAS's blockK/rating.json. `ssnas.runfolder.check_state_files` reads
every JSON and checkpoint file of the folder before anything is written, and each reader guards
its own file too (the Python API resumes without the CLI). A property damages one file in many
ways in-process; real `ssnas search` / `ssnas rank` runs check the end to end.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cli_helpers import file_contents, noise_images, one_line, refusal_line, run_in_process, run_ssnas
from ssnas.errors import UserError
from ssnas.judging import JudgeConfig, judge_network
from ssnas.runfolder import check_run_folder
from ssnas.spaces import create_space
from ssnas.strategies.evolution import RatingLog
from ssnas.strategies.two_stage import JUDGEMENT_FILE, PLAN_FILE, _load_judgement, _load_plan
from ssnas.training.checkpoint import load_checkpoint, save_atomic

IN_PROCESS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NB201 = create_space("nb201", C=4, N=1)
ARCHS = [NB201.parse(key) for key in (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|",
    "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_1x1~2|",
)]  # fmt: skip


# --- damage ------------------------------------------------------------------------------------------------

Damage = tuple[str, float, bytes]  # (kind, where as a fraction of the file, bytes used)


@st.composite
def damages(draw: st.DrawFn, kinds: tuple[str, ...] = ("truncate", "flip", "overwrite", "garbage", "empty",
                                                        "append")) -> Damage:  # fmt: skip
    return draw(st.sampled_from(kinds)), draw(st.floats(0.0, 1.0)), draw(st.binary(min_size=1, max_size=16))


# Damage that never leaves a readable file with the same settings: a flipped digit in a saved rating
# is valid JSON, and a resume rightly goes on with it.
BREAKING = ("truncate", "garbage", "empty")


def damaged(data: bytes, damage: Damage) -> bytes:
    """`data` truncated, with bytes flipped or overwritten, replaced by garbage, emptied or extended;
    never equal to `data`."""
    kind, where, noise = damage
    cut = min(int(where * len(data)), len(data) - 1)
    if kind == "truncate":
        out = data[:cut]
    elif kind == "flip":
        out = data[:cut] + bytes([data[cut] ^ (noise[0] or 0xFF)]) + data[cut + 1 :]
    elif kind == "overwrite":
        out = data[:cut] + noise + data[cut + len(noise) :]
    elif kind == "garbage":
        out = noise * 7
    elif kind == "empty":
        out = b""
    else:
        out = data + noise
    return out if out != data else data[:-1]


def shortened(damage: Damage) -> bool:
    """Whether the damage only cut the end off: a JSON object or a zip archive never survives that."""
    return damage[0] in ("truncate", "empty")


# --- a run folder holding every kind of state file ------------------------------------------------------

SETTINGS = {"space": "nb201", "strategy": "two-stage", "seed": 0, "out": "run"}


def fabricated_run(folder: Path) -> Path:
    """A resumable run folder with one file of each kind a resume reads back."""
    (folder / "config.yaml").write_text(yaml.safe_dump(SETTINGS, sort_keys=False))
    ratings = [[a.key, {"meco": 1.5 + i, "naswot": -2.0}] for i, a in enumerate(ARCHS)]
    (folder / "evolution.json").write_text(json.dumps({"settings": {"ratings": 8, "seed": 0}, "ratings": ratings}))
    (folder / "latency.json").write_text(json.dumps({"setting": "cpu", "latency_ms": {ARCHS[0].key: 1.25}}))
    (folder / "block0").mkdir()
    (folder / "block0" / "rating.json").write_text(json.dumps({"settings": {"signals": ["meco"]}, "values": [{}]}))
    judge = folder / "judge"
    (judge / "00").mkdir(parents=True)
    (judge / PLAN_FILE).write_text(json.dumps({"shortlist": [a.key for a in ARCHS], "image_passes": 2000,
                                               "passes_per_second": [10.0] * 3, "seconds_left": 60.0,
                                               "estimated_seconds": 30.0}, indent=1))  # fmt: skip
    (judge / "00" / JUDGEMENT_FILE).write_text(json.dumps({"signals": {"pretext-accuracy": 0.5}, "losses": [1.0]}))
    save_atomic({"model": torch.nn.Linear(4, 3).state_dict(), "epoch": 1, "history": [2.0]}, judge / "01" / "checkpoint.pt")
    save_atomic({"model": torch.nn.Linear(3, 2).state_dict(), "step": 7}, folder / "checkpoint.pt")
    return folder


STATE_FILES = ["config.yaml", "evolution.json", "latency.json", "block0/rating.json", "judge/plan.json",
               "judge/00/judgement.json", "judge/01/checkpoint.pt", "checkpoint.pt"]  # fmt: skip


def test_an_intact_run_folder_resumes(tmp_path: Path) -> None:
    check_run_folder(fabricated_run(tmp_path), SETTINGS, resume=True, resumable=())


@IN_PROCESS
@given(target=st.sampled_from(STATE_FILES), damage=damages())
@example(target="checkpoint.pt", damage=("truncate", 0.5, b"x"))
@example(target="judge/00/judgement.json", damage=("flip", 0.0, b"\x01"))
@example(target="config.yaml", damage=("garbage", 0.0, b"\xff\x00"))
def test_a_damaged_state_file_is_named_before_anything_is_written(target: str, damage: Damage,
                                                                  tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    folder = fabricated_run(tmp_path_factory.mktemp("run"))
    path = folder / target
    path.write_bytes(damaged(path.read_bytes(), damage))
    before = file_contents(folder)
    try:
        check_run_folder(folder, SETTINGS, resume=True, resumable=())
    except UserError as error:
        line = one_line(str(error))
        assert str(path) in line or (target == "config.yaml" and "different settings" in line), line
        if str(path) in line:
            assert "corrupt or truncated" in line and "delete it" in line and "--out" in line, line
    else:  # the damage left a file that still reads (a JSON value changed, a zip field no one checks)
        assert not shortened(damage) or target == "config.yaml", f"{target} {damage} passed the check"
    assert file_contents(folder) == before


# --- each reader guards its own file (the Python API resumes without the CLI's check) -------------------


@IN_PROCESS
@given(damage=damages())
@example(damage=("truncate", 0.3, b"x"))
@example(damage=("overwrite", 0.0, b"not a zip file!!"))
def test_load_checkpoint_names_a_damaged_file(damage: Damage, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    save_atomic({"model": torch.nn.Linear(4, 3).state_dict(), "epoch": 2}, path)
    path.write_bytes(damaged(path.read_bytes(), damage))
    try:
        state = load_checkpoint(path)
    except UserError as error:
        assert str(path) in one_line(str(error))
    else:
        assert isinstance(state, dict) and not shortened(damage)  # torch does not check every byte


JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=10)  # fmt: skip
EVOLUTION = {"settings": {"ratings": 8}, "ratings": [[ARCHS[0].key, {"meco": 1.0}]]}


@st.composite
def json_files(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    """Bytes of a damaged copy of `valid`, of any JSON value, or of `valid` with one field replaced."""
    kind = draw(st.sampled_from(["damaged", "any", "field"]))
    if kind == "damaged":
        return damaged(json.dumps(valid).encode(), draw(damages()))
    if kind == "any":
        return json.dumps(draw(JSON_VALUES)).encode()
    return json.dumps({**valid, draw(st.sampled_from(sorted(valid))): draw(JSON_VALUES)}).encode()


class _NoRater:
    name = "none"


@IN_PROCESS
@given(content=json_files(EVOLUTION))
def test_the_rating_log_reads_back_or_names_its_file(content: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("evo") / "evolution.json"
    path.write_bytes(content)
    log = RatingLog(NB201, _NoRater(), path, EVOLUTION["settings"], every=10)  # type: ignore[arg-type]
    try:
        count = log.load()
    except UserError as error:
        assert str(path) in one_line(str(error))
    else:
        assert count == len(log.saved) and all(isinstance(v, dict) for v in log.saved.values())


PLAN = {"shortlist": [ARCHS[0].key], "image_passes": 2000, "passes_per_second": [10.0], "seconds_left": 60.0,
        "estimated_seconds": 30.0}  # fmt: skip
JUDGEMENT = {"signals": {"pretext-accuracy": 0.5}, "losses": [1.0], "steps": 3}


@IN_PROCESS
@given(plan=json_files(PLAN), judgement=json_files(JUDGEMENT))
def test_two_stage_plan_and_judgements_read_back_or_name_their_file(plan: bytes, judgement: bytes,
                                                                    tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    folder = tmp_path_factory.mktemp("judge")
    (folder / PLAN_FILE).write_bytes(plan)
    (folder / JUDGEMENT_FILE).write_bytes(judgement)
    for path, load in ((folder / PLAN_FILE, lambda: _load_plan(folder)), (folder / JUDGEMENT_FILE,
                                                                           lambda: _load_judgement(folder / JUDGEMENT_FILE))):  # fmt: skip
        try:
            load()
        except UserError as error:
            assert str(path) in one_line(str(error))


def test_a_judge_resumed_from_a_truncated_checkpoint_names_it(tmp_path: Path) -> None:
    """The two-stage judge unit judge/NN/: its checkpoint.pt cut short by a crash of the disk."""
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    config = JudgeConfig(image_passes=256, batch_passes=64, precision="fp32", trained_signals=False)
    unit = tmp_path / "judge" / "03"
    save_atomic({"config": {}, "model": NB201.build(ARCHS[0]).state_dict()}, unit / "checkpoint.pt")
    data = (unit / "checkpoint.pt").read_bytes()
    (unit / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    before = file_contents(tmp_path)
    with pytest.raises(UserError) as refusal:
        judge_network(NB201.build(ARCHS[0]), images, images[:8], config, out_dir=unit, resume=True, device="cpu")
    line = one_line(str(refusal.value))
    assert str(unit / "checkpoint.pt") in line and "corrupt or truncated" in line
    assert file_contents(tmp_path) == before


# --- the real commands ------------------------------------------------------------------------------------

TINY = ["--num-images", "64", "--holdout-images", "64", "--channels", "4", "--cells", "1", "--precision", "fp32",
        "--no-progress"]  # fmt: skip
EVOLUTION_ARGS = ["--strategy", "evolution", "--ratings", "8", "--population", "4", *TINY]
SETN_ARGS = ["--strategy", "setn", "--evaluator-every", "1", "--epochs", "1", "--batch-size", "16", "--select-num", "3",
             *TINY]  # fmt: skip


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """130 noise images, 32x32 PNG, in a flat folder (enough for 64 + 64)."""
    return noise_images(tmp_path_factory.mktemp("images"), 130, seed=3)


def _finished(command: list[str], images: Path, out: Path) -> Path:
    done = run_ssnas(*command, "--data", str(images), "--out", str(out), env={"SSNAS_CACHE": str(out.parent / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def evolution_run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _finished(["search", *EVOLUTION_ARGS], images, tmp_path_factory.mktemp("evolution") / "run")


@pytest.fixture(scope="module")
def setn_run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _finished(["search", *SETN_ARGS], images, tmp_path_factory.mktemp("setn") / "run")


def _resume_refused(run: Path, target: str, damage: Damage, resume: Callable[[Path], tuple[int, str]],
                    copy_to: Path) -> str:  # fmt: skip
    """Copy the finished `run`, damage its `target` file, resume: the refusal line; nothing changed."""
    out = copy_to / "run"
    shutil.copytree(run, out)
    path = out / target
    path.write_bytes(damaged(path.read_bytes(), damage))
    before = file_contents(out)
    code, stderr = resume(out)
    line = refusal_line(code, stderr)
    assert file_contents(out) == before, "the refused resume changed the run folder"
    return line


def _search_resume(args: list[str], images: Path) -> Callable[[Path], tuple[int, str]]:
    def resume(out: Path) -> tuple[int, str]:
        done = run_ssnas("search", *args, "--data", str(images), "--out", str(out), "--resume",
                         env={"SSNAS_CACHE": str(out.parent / "cache")})  # fmt: skip
        return done.returncode, done.stderr

    return resume


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(["evolution.json", "config.yaml"]), damage=damages(BREAKING))
@example(target="evolution.json", damage=("truncate", 0.5, b"x"))
def test_resuming_an_evolution_with_damaged_state_is_refused_in_one_line(
    target: str, damage: Damage, evolution_run: Path, images: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    line = _resume_refused(evolution_run, target, damage, _search_resume(EVOLUTION_ARGS, images),
                           tmp_path_factory.mktemp("resume"))  # fmt: skip
    assert target in line or "different settings" in line, line


@pytest.mark.parametrize("damage", [("truncate", 0.6, b"x"), ("flip", 0.4, b"\x10")], ids=["truncated", "flipped"])
def test_resuming_setn_from_a_damaged_checkpoint_is_refused_in_one_line(damage: Damage, setn_run: Path, images: Path,
                                                                        tmp_path: Path) -> None:  # fmt: skip
    line = _resume_refused(setn_run, "checkpoint.pt", damage, _search_resume(SETN_ARGS, images), tmp_path)
    assert str(tmp_path / "run" / "checkpoint.pt") in line and "corrupt or truncated" in line, line


@pytest.mark.realdata
def test_rank_resuming_from_a_truncated_checkpoint_is_refused_in_one_line(images: Path, tmp_path: Path,
                                                                          shared_data: Path) -> None:  # fmt: skip
    """`ssnas rank --strategy setn --resume` reuses the trained supernet of --out (in this process)."""
    (tmp_path / "archs.txt").write_text("\n".join(a.key for a in ARCHS))
    out = tmp_path / "rank"
    args = ["rank", "--strategy", "setn", "--archs", str(tmp_path / "archs.txt"), "--epochs", "1", "--num-images", "64",
            "--holdout-images", "32", "--batch-size", "16", "--channels", "4", "--cells", "1", "--precision", "fp32",
            "--no-progress", "--json", "--data", str(images), "--out", str(out),
            "--table", str(shared_data / "benchmarks" / "nb201.csv")]  # fmt: skip
    code, stderr, _ = run_in_process(*args)
    assert code == 0, stderr[-3000:]
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    before = file_contents(out)
    code, stderr, _ = run_in_process(*args, "--resume")
    assert str(out / "checkpoint.pt") in refusal_line(code, stderr)
    assert file_contents(out) == before
