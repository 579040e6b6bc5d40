"""A griffe extension for the API reference: the `>>>` examples of a docstring become code blocks.

The package's docstrings end with doctest-style examples without a heading; Markdown would read
their `>>>` as nested quotes. This wraps each run of `>>>` / `...` lines (and their output, up to a
blank line) in a ```pycon block and drops `# doctest:` flags. Only the rendered text changes: the
docstrings in the source stay as they are (mkdocs.yml loads this file).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

FLAG = re.compile(r"\s*# doctest:.*$")


def fence(text: str) -> str:
    """`text` with every block of doctest lines fenced as ```pycon, at the block's indentation."""
    out: list[str] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:  # the blank sentinel closes a block at the end
        if block and line.strip():
            block.append(FLAG.sub("", line))
            continue
        if block:
            indent = line_indent(block[0])
            out += [f"{indent}```pycon", *block, f"{indent}```"]
            block = []
        if line.lstrip().startswith(">>>"):
            block.append(FLAG.sub("", line))
        else:
            out.append(line)
    return "\n".join(out[:-1])  # without the sentinel


def line_indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


class DoctestBlocks(griffe.Extension):
    """Fence the doctest examples of every object's docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence(obj.docstring.value)
