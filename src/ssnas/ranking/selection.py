"""Which architectures to rank: read from a file, or sampled with a seed."""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from ssnas.atomic import atomic_open
from ssnas.errors import UserError
from ssnas.spaces import Architecture, SearchSpace, SupportsEnumerate, is_degenerate


def sample_architectures(
    space: SearchSpace, count: int, seed: int, include_degenerate: bool = False
) -> list[Architecture]:
    """`count` distinct architectures drawn with `random.Random(seed)` (`iter_sample`'s, as a list)."""
    return list(iter_sample(space, count, seed, include_degenerate))


def iter_sample(space: SearchSpace, count: int, seed: int, include_degenerate: bool = False) -> Iterator[Architecture]:
    """`count` distinct architectures drawn with `random.Random(seed)`, one at a time.

    Enumerable spaces are sampled without replacement from the full list (degenerate cells
    excluded unless asked); others by repeated `space.sample`, the first draw of each
    architecture kept in draw order. Duplicates are told by an 8-byte BLAKE2 digest of the key,
    so 100,000 DARTS genotypes cost a few MB of digests, not the 85 MB of their keys.
    """
    rng = random.Random(seed)
    if isinstance(space, SupportsEnumerate):
        pool = all_architectures(space, include_degenerate)
        if count > len(pool):
            raise UserError(f"cannot sample {count} architectures: the space has {len(pool)}")
        yield from rng.sample(pool, count)
        return
    seen: set[bytes] = set()
    for _ in range(count * 100):
        arch = space.sample(rng)
        if include_degenerate or not is_degenerate(space, arch):
            digest = hashlib.blake2b(arch.key.encode(), digest_size=8).digest()
            if digest not in seen:
                seen.add(digest)
                yield arch
        if len(seen) == count:
            return
    raise UserError(f"could not draw {count} distinct architectures from space {space.name!r}")


def all_architectures(space: SearchSpace, include_degenerate: bool = False) -> list[Architecture]:
    """Every architecture of an enumerable space, in its order (degenerate ones excluded)."""
    if not isinstance(space, SupportsEnumerate):
        raise UserError(f"space {space.name!r} is too large to enumerate")
    return [a for a in space.enumerate() if include_degenerate or not is_degenerate(space, a)]


def read_architectures(space: SearchSpace, path: Path) -> list[Architecture]:
    """One architecture string per line, or a CSV whose first column (or `arch`) holds them."""
    if not path.is_file():
        raise UserError(f"architecture file not found: {path}")
    with _reading(path) as handle:
        rows = [row for row in csv.reader(handle, delimiter=_delimiter(path)) if row and row[0].strip()]
    if rows and rows[0][0].strip().lower() in {"arch", "arch_str", "architecture", "genotype"}:
        rows = rows[1:]
    if not rows:
        raise UserError(f"no architectures in {path}")
    archs = []
    for line_number, row in enumerate(rows, start=1):
        try:
            archs.append(space.parse(row[0].strip()))
        except UserError as error:
            raise UserError(f"{path}, entry {line_number}: {error}") from None
    return archs


def read_scores(path: Path) -> list[tuple[str, float]]:
    """A CSV with columns `arch,score` (header required)."""
    if not path.is_file():
        raise UserError(f"scores file not found: {path}")
    with _reading(path) as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if "arch" not in fields or "score" not in fields:
            found = ", ".join(f if f.isprintable() else repr(f) for f in fields) or "none"
            raise UserError(f"{path} must have columns 'arch' and 'score' (found: {found})")
        pairs = []
        for line_number, row in enumerate(reader, start=2):
            if row["arch"] is None:  # a short row under a header that puts arch later
                raise UserError(f"{path}, line {line_number}: no arch")
            try:
                pairs.append((row["arch"].strip(), float(row["score"])))
            except (TypeError, ValueError):
                raise UserError(f"{path}, line {line_number}: score {row.get('score')!r} is not a number") from None
    if not pairs:
        raise UserError(f"no scores in {path}")
    return pairs


def write_scores(path: Path, scores: list[tuple[str, float]], columns: dict[str, list[float]] | None = None) -> None:
    """arch, score and (where given) each signal's raw value, one architecture per row (atomically)."""
    columns = {name: values for name, values in (columns or {}).items() if name != "score"}
    rows = ([key, score, *(values[i] for values in columns.values())] for i, (key, score) in enumerate(scores))
    write_score_rows(path, list(columns), rows)


def write_score_rows(path: Path, names: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """`write_scores`' file from rows [arch, score, *values of `names`] given one at a time."""
    with atomic_open(path) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(["arch", "score", *names])
        writer.writerows(rows)
        text.flush()
        text.detach()  # atomic_open syncs and closes the file itself


@contextmanager
def _reading(path: Path) -> Iterator[TextIO]:
    """`path` opened as UTF-8 CSV text (a leading byte-order mark dropped); UserError naming the
    file for bytes that are not UTF-8 or a row the csv module refuses."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        try:
            yield handle
        except UnicodeDecodeError as error:
            raise UserError(f"{path} is not UTF-8 text ({error.reason})") from None
        except csv.Error as error:  # e.g. a field over csv.field_size_limit() (128 KiB)
            raise UserError(f"{path} is not a CSV file the reader accepts: {error}") from None


def _delimiter(path: Path) -> str:
    # NB201 strings contain '|' and '+' but never ',' or tabs.
    return "\t" if path.suffix == ".tsv" else ","
