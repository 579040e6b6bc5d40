"""`ssnas spaces`: the registered search spaces (built-in, plugins, --space-module files) and their decisions."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ssnas.cli._common import emit, json_option, space_module_option
from ssnas.spaces import (
    SPACES,
    SupportsBlocks,
    SupportsEnumerate,
    SupportsSupernet,
    create_space,
)


@click.command("spaces")
@space_module_option()
@json_option
def spaces_command(as_json: bool) -> None:
    """List the search spaces: decisions, size, optional abilities and where each comes from."""
    emit({"spaces": [_row(name) for name in SPACES.names()]}, as_json, _render)


def _row(name: str) -> dict[str, Any]:
    origin = SPACES.origins[name]
    row: dict[str, Any] = {"name": name, "source": "built-in" if origin.startswith("ssnas.") else origin}
    try:
        space = create_space(name)
    except Exception as error:  # noqa: BLE001 - a plugin that cannot be built with its defaults must not hide the others
        return {**row, "decisions": 0, "size": None, "supernet": False, "blocks": False,
                "doc": f"cannot be created: {type(error).__name__}: {error}"}  # fmt: skip
    choices = space.choices()
    size = 1
    for options in choices.values():
        size *= len(options)
    return {
        **row,
        "decisions": len(choices),
        "size": space.size() if isinstance(space, SupportsEnumerate) else size,
        "supernet": isinstance(space, SupportsSupernet),
        "blocks": isinstance(space, SupportsBlocks),
        "doc": (type(space).__doc__ or "").strip().splitlines()[0] if type(space).__doc__ else "",
    }


def _render(payload: dict[str, Any]) -> None:
    table = Table("space", "decisions", "size", "supernet", "blocks", "source", "description")
    for row in payload["spaces"]:
        table.add_row(
            row["name"], str(row["decisions"]), "-" if row["size"] is None else f"{row['size']:,}",
            "yes" if row["supernet"] else "-", "yes" if row["blocks"] else "-", row["source"], row["doc"],
        )
    Console().print(table)
