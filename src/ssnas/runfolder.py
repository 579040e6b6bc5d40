"""Run folders shared by `ssnas search`, `rank`, `train`, `pretrain` and `worker`: one `config.yaml` per run.

A folder that already holds a run is only continued with `--resume` and the same
settings (the names in `resumable` may change), so nothing is silently overwritten.
A command given no `--out` runs in a new folder under runs/ (`out_or_new`).
Under `torchrun` every process checks the folder and process 0 alone writes it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from ssnas.atomic import write_atomic
from ssnas.errors import UserError, corrupt
from ssnas.training.distributed import process_group

CONFIG_NAME = "config.yaml"
RUNS = Path("runs")  # where a command given no --out puts its new run folder
_NAMED: set[Path] = set()  # folders this process has named already (two runs in one second stay apart)


def new_run_dir(*labels: object) -> Path:
    """A run folder that does not exist yet: `runs/LABEL-...-YYYYmmdd-HHMMSS` (e.g.
    runs/search-nb201-s0-20250102-030405), with -2, -3, ... when that one exists or this process
    named it already. Nothing is created here, so a run refused before it starts leaves no folder.
    Under torchrun process 0 names it and every process gets that name."""
    group = process_group()
    if group is not None and not group.is_main:
        return Path(_broadcast_text(""))
    stem = "-".join(re.sub(r"[^A-Za-z0-9._+]+", "_", str(label)) for label in labels)
    stem = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder, count = RUNS / stem, 1
    while folder in _NAMED or folder.exists():
        count += 1
        folder = RUNS / f"{stem}-{count}"
    _NAMED.add(folder)
    return Path(_broadcast_text(str(folder))) if group is not None else folder


def out_or_new(out: str | Path | None, resume: bool, *labels: object) -> Path:
    """The run folder of a command: `out` when given, else a new one (`new_run_dir(*labels)`).
    UserError for `resume` without `out`: a new folder holds no run to continue."""
    if out is not None:
        return Path(out)
    if resume:
        raise UserError("--resume continues the run in --out: give --out RUN_FOLDER (without --out every run "
                        "gets a new folder under runs/)")  # fmt: skip
    return new_run_dir(*labels)


def _broadcast_text(text: str) -> str:
    """Process 0's `text` in every process of the torchrun group."""
    import torch.distributed as dist

    box = [text]
    dist.broadcast_object_list(box, src=0)
    return str(box[0])


def check_run_folder(out_dir: Path, settings: dict[str, Any], resume: bool, resumable: Iterable[str],
                     as_written: Callable[[Any], Any] | None = None,
                     renamed: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """UserError when `out_dir` holds a run that this one may not continue. `as_written` maps a
    saved value to the form `settings` have (a storage URL an older run saved with its password:
    masked), so both compare alike and no message shows what the file should not have held;
    `renamed` maps a setting's older name, as an older run saved it, to its name in `settings`."""
    check_out(out_dir, resume)
    saved = out_dir / CONFIG_NAME
    if not saved.exists():
        return
    if not resume:
        raise UserError(f"run folder {out_dir} already holds a run; pass --resume to continue it or choose another --out")
    try:
        previous = yaml.safe_load(saved.read_bytes()) or {}
    except (yaml.YAMLError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise corrupt(saved, error) from None
    if not isinstance(previous, dict):
        raise corrupt(saved, "not a mapping of settings")
    if as_written is not None:
        previous = {key: as_written(value) for key, value in previous.items()}
    if renamed:
        previous = {renamed.get(key, key): value for key, value in previous.items()}
    free = set(resumable)
    changed = sorted(k for k in {*settings, *previous} if k not in free and previous.get(k) != settings.get(k))
    if changed:
        details = ", ".join(f"{k} ({previous.get(k)!r} -> {settings.get(k)!r})" for k in changed)
        raise UserError(f"cannot resume {out_dir} with different settings: {details}")
    check_state_files(out_dir)


def check_state_files(out_dir: Path) -> None:
    """UserError naming the first file of the run folder a resumed run cannot read back: a JSON
    file that does not parse, or a checkpoint (`.pt`, a zip archive) that is truncated or fails its
    checksums. Checked before anything is written, so a refused resume changes nothing."""
    for path in sorted(out_dir.rglob("*")):
        if path.name.startswith(".") or not path.is_file():  # .NAME.tmp: a write that a kill interrupted
            continue
        if path.suffix == ".json":
            read_json(path)
        elif path.suffix == ".pt":
            _check_archive(path)


def read_json(path: Path) -> Any:
    """The JSON value saved in the run-folder file `path`; UserError naming it when it is damaged."""
    try:
        return json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError, RecursionError) as error:  # json.JSONDecodeError is a ValueError
        raise corrupt(path, error) from None


def _check_archive(path: Path) -> None:
    """A torch checkpoint is a zip archive with a CRC-32 per member: read it all and compare."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except Exception as error:  # noqa: BLE001 - zipfile raises many kinds on a damaged file
        raise corrupt(path, error) from None
    if damaged is not None:
        raise corrupt(path, f"{damaged} fails its checksum")


def check_out(out_dir: Path, resume: bool) -> None:
    """The checks that need no settings (run them before loading data): `out_dir` can be a run
    folder, and with `resume` it holds one."""
    check_writable_folder(out_dir, "--out")
    if resume and not (out_dir / CONFIG_NAME).exists():
        raise UserError(f"nothing to resume: {out_dir} holds no run (no {CONFIG_NAME}); check --out or drop --resume")


def check_writable_folder(folder: Path, option: str) -> None:
    """UserError unless `folder` is, or can be created as, a writable folder."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {folder} is a file, not a folder; choose another {option}")
    ancestor = folder
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{option} {folder}: {ancestor} is a file, so the folder cannot be created")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{option} {folder}: {ancestor} is not writable")


def write_config(out_dir: Path, settings: dict[str, Any]) -> None:
    """Create `out_dir` and write `config.yaml`. Under torchrun: once every process has reached
    this point (so has checked the folder), process 0 writes, and all go on when it is written."""
    group = process_group()
    if group is not None:
        group.barrier()
    if group is None or group.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(out_dir / CONFIG_NAME, yaml.safe_dump(settings, sort_keys=False))  # whole or not at all
    if group is not None:
        group.barrier()


def prepare_run_folder(out_dir: Path, settings: dict[str, Any], resume: bool, resumable: Iterable[str],
                       as_written: Callable[[Any], Any] | None = None,
                       renamed: Mapping[str, str] | None = None) -> Path:  # fmt: skip
    """Check, create and write `config.yaml`; returns `out_dir`."""
    check_run_folder(out_dir, settings, resume, resumable, as_written, renamed)
    write_config(out_dir, settings)
    return out_dir


@contextmanager
def exclusive(out_dir: Path, instead: str) -> Iterator[None]:
    """Hold an advisory lock on the folder `out_dir` (flock on the folder itself: nothing is written
    in it, and the kernel drops the lock when the process dies, SIGKILL included). UserError when
    another process holds it, ending with `instead` (what to do rather than wait)."""
    handle = os.open(out_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{out_dir} is in use by another ssnas process; wait for it to end, or {instead}") from None
        yield
    finally:
        os.close(handle)

