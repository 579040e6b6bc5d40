"""Hostile input, tested by property: whatever reaches a parser, ssnas answers in one line.

Architecture strings of every registered space, `--config` YAML files, architecture and score
CSVs, storage URLs and image folders with odd files. A parser accepts the input or raises a
UserError of one line, never another exception; through the command line that is one
`ssnas: error:` line, exit != 0, and nothing written. The properties call the parsers, or the CLI
entry point, in-process with many examples; a few real subprocesses check the end to end.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import random
import re
import struct
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from cli_helpers import file_contents, one_line, refusal_line, run_in_process, run_ssnas
from ssnas.data.datasets import load_image_folder
from ssnas.errors import UserError
from ssnas.ranking.selection import read_architectures, read_scores
from ssnas.spaces import SPACES, Architecture, SearchSpace, create_space

QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUBPROCESS = settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder that is also the working folder (relative paths in hostile input land there)."""
    with tempfile.TemporaryDirectory() as name, contextlib.chdir(name):
        yield Path(name)


# --- architecture strings of every registered space ----------------------------------------------------

SPACE_NAMES = SPACES.names()
ODD_TOKENS = ["", "none", "skip_connect", "no_such_op", "-1", "99", "0", "07", "1e9", "nan", "None", "\uff11", "\u00e9",
              "\u2028", "\x00", "\n", "~", "|", "+", ":", ",", "@", "(", ")", "[", "]", "{", "}", "'", '"', " ",
              "range(", "range(0, 10**9)", "Genotype(", "normal=", "reduce_concat", "**{}", "*[]", "lambda: 0"]  # fmt: skip


@functools.cache
def _space(name: str) -> SearchSpace:
    return create_space(name)


def _valid_key(space: SearchSpace, seed: int) -> str:
    return space.sample(random.Random(seed)).key


@st.composite
def near_misses(draw: st.DrawFn, key: str) -> str:
    """`key` after one to three edits: a slice dropped, duplicated or replaced by an odd token, two
    characters swapped, a word swapped for another, the text truncated, repeated or upper-cased."""
    text = key
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, len(text)))
        edit = draw(st.sampled_from(["drop", "duplicate", "swap", "replace", "insert", "word", "truncate", "repeat",
                                     "upper"]))  # fmt: skip
        if edit == "drop":
            text = text[:i] + text[j:]
        elif edit == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif edit == "swap" and j - i >= 2:
            text = text[:i] + text[j - 1] + text[i + 1 : j - 1] + text[i] + text[j:]
        elif edit == "replace":
            text = text[:i] + draw(st.sampled_from(ODD_TOKENS)) + text[j:]
        elif edit == "insert":
            text = text[:i] + draw(st.text(max_size=6)) + text[i:]
        elif edit == "word":
            words = list(re.finditer(r"\w+", text))
            if words:
                word = draw(st.sampled_from(words))
                other = draw(st.sampled_from([w.group() for w in words] + ODD_TOKENS))
                text = text[: word.start()] + other + text[word.end() :]
        elif edit == "truncate":
            text = text[:i]
        elif edit == "repeat":
            text = text * draw(st.integers(2, 40))
        elif edit == "upper":
            text = text.upper()
    return text


def parses_or_refuses(space: SearchSpace, text: str) -> Architecture | None:
    """`space.parse(text)`: an architecture whose key parses back to itself, or a one-line UserError."""
    try:
        arch = space.parse(text)
    except UserError as error:
        one_line(str(error))
        return None
    assert isinstance(arch, Architecture) and arch.space == space.name, arch
    again = space.parse(arch.key)
    assert again == arch and again.key == arch.key, (text, arch.key)
    return arch


@pytest.mark.parametrize("name", SPACE_NAMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_near_misses_of_valid_keys_parse_or_refuse_in_one_line(name: str, data: st.DataObject) -> None:
    space = _space(name)
    key = _valid_key(space, data.draw(st.integers(0, 2**16), label="seed"))
    parses_or_refuses(space, data.draw(near_misses(key), label="text"))


@pytest.mark.parametrize("name", SPACE_NAMES)
@QUICK
@given(text=st.one_of(st.text(max_size=200), st.lists(st.sampled_from(ODD_TOKENS), max_size=30).map("".join)))
@example(text="")
@example(text="(" * 100_000)
@example(text="[" * 100_000)
@example(text="9" * 5_000)
@example(text="\u2028" * 10)
def test_any_text_parses_or_refuses_in_one_line(name: str, text: str) -> None:
    parses_or_refuses(_space(name), text)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_huge_text_is_refused_quickly(name: str) -> None:
    space = _space(name)
    started = time.monotonic()
    for text in (_valid_key(space, 0) * 20_000, "x" * 5_000_000):
        with pytest.raises(UserError) as refusal:
            space.parse(text)
        assert len(one_line(str(refusal.value))) < 2_000  # the message quotes a bounded part of the text
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("name", SPACE_NAMES)
@QUICK
@given(data=st.data())
def test_make_of_any_choices_builds_or_refuses_in_one_line(name: str, data: st.DataObject) -> None:
    space = _space(name)
    options = [o for values in space.choices().values() for o in values]
    choice = st.one_of(st.sampled_from(options), st.text(max_size=8), st.sampled_from(ODD_TOKENS))
    choices = data.draw(st.lists(choice, max_size=len(space.choices()) + 2))
    try:
        arch = space.make(choices)
    except UserError as error:
        one_line(str(error))
        return
    assert space.parse(arch.key) == arch


# --- YAML config files (--config) ----------------------------------------------------------------------


def _search_option_names() -> list[str]:
    from ssnas.cli.search import search_command

    return sorted(p.name for p in search_command.params if p.name and p.name not in ("config", "as_json"))


OPTION_NAMES = _search_option_names()
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                    st.sampled_from(["", "inf", ".inf", "-1", "0", "1e400", "nan", "cpu", "cuda", "tpe", "setn"]))  # fmt: skip
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)  # fmt: skip
KEYS = st.one_of(st.sampled_from(OPTION_NAMES), st.sampled_from(OPTION_NAMES).map(lambda n: n.replace("_", "-")),
                 st.text(max_size=10))  # fmt: skip


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    """A YAML document of any shape, a mapping of (mostly valid) option names to values of any type,
    or bytes that may not be YAML or UTF-8 at all."""
    kind = draw(st.sampled_from(["mapping", "valid keys", "document", "text", "bytes"]))
    if kind == "mapping":
        document: Any = draw(st.dictionaries(KEYS, VALUES, max_size=4))
    elif kind == "valid keys":
        document = draw(st.dictionaries(st.sampled_from(OPTION_NAMES), VALUES, min_size=1, max_size=3))
    elif kind == "document":
        document = draw(VALUES)
    elif kind == "text":
        return draw(st.text(max_size=120)).encode()
    else:
        return draw(st.binary(max_size=120))
    return yaml.safe_dump(document, allow_unicode=draw(st.booleans())).encode()


def _search_with_config(run: Callable[..., tuple[int, str, str]], content: bytes) -> None:
    """`ssnas search --config FILE --out OUT --data MISSING`: refused in one line, nothing written
    (the working folder included). --data names a missing folder, so even a valid file stops there."""
    with scratch() as folder:
        (folder / "config.yaml").write_bytes(content)
        before = file_contents(folder)
        code, stderr, _ = run("search", "--config", str(folder / "config.yaml"), "--out", str(folder / "run"),
                              "--data", str(folder / "no-images"), "--no-progress")  # fmt: skip
        refusal_line(code, stderr)
        assert file_contents(folder) == before and not (folder / "run").exists()


@QUICK
@given(content=config_files())
@example(content=b"\xff\xfe\x00")
@example(content=b"[" * 5000)
@example(content=b"seed: [1, 2]")
@example(content=b"ratings: .inf")
@example(content=b"ratings: 1" + b"0" * 5000)
@example(content=b"seed: 2020-01-01")
@example(content=b"space_module: 3")
@example(content=b"resume: [1]")
@example(content=b'"a\\nb": 1')
def test_config_files_are_refused_in_one_line_in_process(content: bytes) -> None:
    _search_with_config(run_in_process, content)


def _subprocess(*args: str) -> tuple[int, str, str]:
    done = run_ssnas(*args, timeout=120)
    return done.returncode, done.stderr, done.stdout


@SUBPROCESS
@given(content=config_files())
@example(content=b"epochs: [1]\nstrategy: setn")
def test_config_files_are_refused_in_one_line_by_the_command(content: bytes) -> None:
    _search_with_config(_subprocess, content)


def test_a_scalar_for_a_repeatable_option_is_taken_as_a_list_of_one() -> None:
    with scratch() as folder:
        (folder / "c.yaml").write_text("strategy: setn\nrating: meco\n")
        code, stderr, _ = run_in_process("search", "--config", "c.yaml", "--out", "run", "--data", "none-here")
        assert "none-here" in refusal_line(code, stderr)  # got past the options to the data


# --- architecture files and score CSVs -------------------------------------------------------------------

NB201 = create_space("nb201")
NB201_KEYS = [_valid_key(NB201, seed) for seed in range(5)]
LINES = st.one_of(st.sampled_from(NB201_KEYS), st.sampled_from(NB201_KEYS).flatmap(near_misses), st.text(max_size=30))
SCORE_TEXT = st.one_of(st.floats().map(repr), st.sampled_from(["", "nan", "inf", "-inf", "1e400", "x", "1,5"]),
                       st.text(max_size=6))  # fmt: skip


@st.composite
def table_files(draw: st.DrawFn) -> bytes:
    """An architecture list or a score CSV, near valid or not, or bytes that are not text at all."""
    kind = draw(st.sampled_from(["lines", "scores", "bytes", "huge field"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "huge field":
        return b'arch,score\n"' + b"x" * 140_000 + b'",1\n'
    header = draw(st.sampled_from(["", "arch\n", "arch,score\n", "score,arch\n", "\ufeffarch,score\n", "arch;score\n"]))
    if kind == "lines":
        rows = draw(st.lists(LINES, max_size=6))
    else:
        rows = draw(st.lists(st.tuples(LINES, SCORE_TEXT).map(",".join), max_size=6))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return (header + newline.join(rows)).encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "latin-1"])),
                                                errors="replace")  # fmt: skip


@QUICK
@given(content=table_files())
def test_architecture_and_score_files_read_or_refuse_in_one_line(content: bytes) -> None:
    with scratch() as folder:
        path = folder / "table.csv"
        path.write_bytes(content)
        try:
            archs = read_architectures(NB201, path)
            assert archs and all(NB201.parse(a.key) == a for a in archs)
        except UserError as error:
            one_line(str(error))
        try:
            pairs = read_scores(path)
            assert pairs and all(isinstance(score, float) for _, score in pairs)
        except UserError as error:
            one_line(str(error))


@pytest.mark.realdata
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=table_files())
@example(content=f"arch,score\n{NB201_KEYS[0]},nan\n{NB201_KEYS[1]},1\n{NB201_KEYS[2]},2\n".encode())
@example(content=b"score,arch\n1\n")
def test_commands_reading_those_files_answer_or_refuse_in_one_line(content: bytes, shared_data: Path) -> None:
    table = str(shared_data / "benchmarks" / "nb201.csv")
    with scratch() as folder:
        (folder / "table.csv").write_bytes(content)
        before = file_contents(folder)
        for args in (["bench", "correlate", "table.csv", "--table", table, "--json"],
                     ["rank", "--archs", "table.csv", "--ranker", "params", "--table", table, "--json", "--no-progress"]):
            code, stderr, stdout = run_in_process(*args)
            if code:
                refusal_line(code, stderr)
            else:
                assert stdout.lstrip().startswith("{"), stderr
        assert file_contents(folder) == before


@pytest.mark.realdata
def test_rank_refusing_too_few_architectures_writes_no_scores(shared_data: Path) -> None:
    with scratch() as folder:
        (folder / "two.txt").write_text("\n".join(NB201_KEYS[:2]))
        code, stderr, _ = run_in_process("rank", "--archs", "two.txt", "--ranker", "params", "--out", "scores.csv",
                              "--table", str(shared_data / "benchmarks" / "nb201.csv"), "--no-progress")  # fmt: skip
        assert "at least 3" in refusal_line(code, stderr)
        assert not (folder / "scores.csv").exists()


# --- storage URLs (--storage) ---------------------------------------------------------------------------

SCHEMES = ["sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg2", "mysql", "http", "x", ""]
CLOSED_PORT = "postgresql://user:secret@127.0.0.1:1/ssnas"  # nothing listens on port 1: refused at once


@st.composite
def storages(draw: st.DrawFn) -> str:
    """A URL of a known or unknown dialect with any rest, or any text taken as a journal path
    (never empty: click refuses that before it matters)."""
    if draw(st.booleans()):
        rest = draw(st.one_of(st.text(max_size=30), st.sampled_from(["", "/", "//", ":memory:?x=1", "u:p@127.0.0.1:1/db",
                                                                      "u:p@[::1", "u@127.0.0.1:99999/db", "%zz"])))  # fmt: skip
        text = f"{draw(st.sampled_from(SCHEMES))}://{rest}"
    else:
        text = draw(st.one_of(st.text(min_size=1, max_size=40), st.sampled_from(["/", ".", "..", "~no-such-user/j.log",
                                                                                 "a" * 300, "/proc/1/nope/j.log"])))  # fmt: skip
    return text if text.strip() and "\x00" not in text else "?"


def _storage_refused(run: Callable[..., tuple[int, str, str]], storage: str, command: str) -> None:
    """`ssnas search --strategy tpe` / `ssnas worker` with that --storage and no images: refused in
    one line, nothing written (a URL or journal is checked before the run folder is made)."""
    with scratch() as folder:
        (folder / "not-a-journal.log").write_bytes(b"\xff\xfe not an Optuna journal\n[1, 2]\n")
        before = file_contents(folder)
        common = ["--storage", storage, "--data", str(folder / "no-images")]
        if command == "search":
            args = ["search", "--strategy", "tpe", "--out", str(folder / "run"), "--no-progress", *common]
        else:
            args = ["worker", "--study", "ssnas", "--out", str(folder / "worker"), *common]
        started = time.monotonic()
        code, stderr, _ = run(*args)
        line = refusal_line(code, stderr)
        assert time.monotonic() - started < 60, f"{storage!r} took {time.monotonic() - started:.0f} s"
        assert "secret" not in line  # a password never reaches the terminal
        assert file_contents(folder) == before and not (folder / "run").exists() and not (folder / "worker").exists()


@pytest.mark.parametrize("command", ["search", "worker"])
@QUICK
@given(storage=storages())
@example(storage=CLOSED_PORT)
@example(storage="not-a-journal.log")
@example(storage="sqlite:///:memory:?x=1")
@example(storage="a" * 5000)
@example(storage="~no-such-user/j.log")
def test_storage_urls_are_refused_in_one_line_in_process(storage: str, command: str) -> None:
    _storage_refused(run_in_process, storage, command)


@SUBPROCESS
@given(storage=storages(), command=st.sampled_from(["search", "worker"]))
@example(storage=CLOSED_PORT, command="search")
def test_storage_urls_are_refused_in_one_line_by_the_command(storage: str, command: str) -> None:
    _storage_refused(_subprocess, storage, command)


# --- image folders with odd files ------------------------------------------------------------------------


def _pixels(seed: int, size: tuple[int, int] = (12, 10)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)


def _jpeg_bytes() -> bytes:
    stream = io.BytesIO()
    Image.fromarray(_pixels(1, (64, 48))).save(stream, "JPEG")
    return stream.getvalue()


def _huge_png_header(path: Path) -> None:
    """A PNG whose header claims 100,000 x 100,000 pixels (a decompression bomb), with little data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))  # fmt: skip


# kind -> (file name, how to make it, whether it decodes); names may be odd on purpose
ODD_FILES: dict[str, tuple[str, Callable[[Path], None], bool]] = {
    "rgb": ("rgb.png", lambda p: Image.fromarray(_pixels(2)).save(p), True),
    "grayscale": ("gray.png", lambda p: Image.fromarray(_pixels(3)).convert("L").save(p), True),
    "rgba": ("rgba.png", lambda p: Image.fromarray(_pixels(4)).convert("RGBA").save(p), True),
    "palette": ("palette.png", lambda p: Image.fromarray(_pixels(5)).convert("P").save(p), True),
    "one bit": ("bits.bmp", lambda p: Image.fromarray(_pixels(6)).convert("1").save(p), True),
    "16-bit": ("deep.png", lambda p: Image.fromarray(np.full((9, 7), 60_000, dtype=np.uint16)).save(p), True),
    "cmyk": ("cmyk.jpg", lambda p: Image.fromarray(_pixels(7)).convert("CMYK").save(p, "JPEG"), True),
    "one pixel": ("dot.webp", lambda p: Image.fromarray(_pixels(8, (1, 1))).save(p), True),
    "uppercase suffix": ("LOUD.JPG", lambda p: p.write_bytes(_jpeg_bytes()), True),
    "zero bytes": ("empty.jpg", lambda p: p.write_bytes(b""), False),
    "text": ("notes.jpg", lambda p: p.write_text("not an image"), False),
    "truncated jpeg": ("cut.jpg", lambda p: p.write_bytes(_jpeg_bytes()[:300]), False),
    "huge header": ("bomb.png", _huge_png_header, False),
    "line break in name": ("two\nlines.png", lambda p: p.write_bytes(b"\x89PNG garbage"), False),
    "symlink loop": ("loop.jpg", lambda p: os.symlink(p.name, p), None),  # not a file: not listed
    "dangling link": ("gone.png", lambda p: os.symlink("no-such-target.png", p), None),
    "hidden file": (".hidden.jpg", lambda p: p.write_text("skipped"), None),
    "hidden folder": (".cache/deeper/x.jpg", lambda p: p.write_text("skipped"), None),
    "not an image suffix": ("readme.txt", lambda p: p.write_text("ignored"), None),
}  # fmt: skip


def _odd_folder(root: Path, kinds: list[str], classes: bool) -> tuple[Path, int, list[str]]:
    """A folder (flat, or one class subfolder plus a symlink loop back up) holding one good image
    and `kinds`; returns it, the number of images that decode and the names of those that do not."""
    folder = root / "images"
    where = folder / "class-a" if classes else folder
    where.mkdir(parents=True)
    Image.fromarray(_pixels(0)).save(where / "good.png")
    if classes:
        os.symlink("..", where / "up")  # a folder loop: each folder is read once
    good, bad = 1, []
    for index, kind in enumerate(kinds):
        name, make, decodes = ODD_FILES[kind]
        path = where / f"{index}-{name}" if not name.startswith(".") else where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            continue
        make(path)
        good += decodes is True
        bad += [path.name] if decodes is False else []
    return folder, good, bad


@contextlib.contextmanager
def _cache_in(folder: Path) -> Iterator[None]:
    old = os.environ.get("SSNAS_CACHE")
    os.environ["SSNAS_CACHE"] = str(folder / "cache")
    try:
        yield
    finally:
        if old is None:
            del os.environ["SSNAS_CACHE"]
        else:
            os.environ["SSNAS_CACHE"] = old


@QUICK
@given(kinds=st.lists(st.sampled_from(sorted(ODD_FILES)), max_size=5), classes=st.booleans())
@example(kinds=["symlink loop", "line break in name"], classes=True)
@example(kinds=["huge header", "16-bit", "grayscale", "rgba"], classes=False)
def test_image_folders_load_or_name_the_bad_file_in_one_line(kinds: list[str], classes: bool) -> None:
    with scratch() as root, _cache_in(root):
        folder, good, bad = _odd_folder(root, kinds, classes)
        try:
            images = load_image_folder(folder)
        except UserError as error:
            line = one_line(str(error))
            assert bad and any(name in line or repr(name)[1:-1] in line for name in bad), line
        else:
            assert not bad and tuple(images.images.shape) == (good, 3, 32, 32) and images.num_skipped == 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            kept = load_image_folder(folder, skip_corrupt=True)
        assert tuple(kept.images.shape) == (good, 3, 32, 32) and kept.num_skipped == len(bad)
        assert (labels := kept.labels) is None or labels.tolist() == [0] * good
        notes = [str(w.message) for w in caught if "unreadable" in str(w.message)]
        assert len(notes) == (1 if bad else 0) and all(f"skipped {len(bad)} " in one_line(n) for n in notes)


def test_a_folder_of_any_file_names_is_read(tmp_path: Path) -> None:
    """File names that are not UTF-8 (any bytes but '/' and NUL are allowed on Linux) are read."""
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(_pixels(0)).save(folder / "plain.png")
    Image.fromarray(_pixels(1)).save(os.fsdecode(os.fsencode(folder) + b"/\xff\xfe.png"))
    with _cache_in(tmp_path):
        assert len(load_image_folder(folder)) == 2


def test_search_on_a_folder_with_a_bad_image_names_it_and_writes_nothing(tmp_path: Path) -> None:
    folder, _, bad = _odd_folder(tmp_path, ["truncated jpeg", "grayscale"], classes=False)
    out = tmp_path / "run"
    done = run_ssnas("search", "--data", str(folder), "--out", str(out), "--no-progress",
                     env={"SSNAS_CACHE": str(tmp_path / "cache")})  # fmt: skip
    assert bad[0] in refusal_line(done.returncode, done.stderr)
    assert not out.exists()
