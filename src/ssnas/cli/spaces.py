"""`ssnas spaces`: the registered search spaces and their decisions."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ssnas.cli._common import emit, json_option
from ssnas.spaces import SPACES, SupportsBlocks, SupportsEnumerate, SupportsSupernet, create_space


@click.command("spaces")
@json_option
def spaces_command(as_json: bool) -> None:
    """List the search spaces: decisions, size and optional abilities."""
    rows = []
    for name in SPACES.names():
        space = create_space(name)
        choices = space.choices()
        size = 1
        for options in choices.values():
            size *= len(options)
        rows.append(
            {
                "name": name,
                "decisions": len(choices),
                "size": space.size() if isinstance(space, SupportsEnumerate) else size,
                "supernet": isinstance(space, SupportsSupernet),
                "blocks": isinstance(space, SupportsBlocks),
                "doc": (type(space).__doc__ or "").strip().splitlines()[0] if type(space).__doc__ else "",
            }
        )
    emit({"spaces": rows}, as_json, _render)


def _render(payload: dict[str, Any]) -> None:
    table = Table("space", "decisions", "size", "supernet", "blocks", "description")
    for row in payload["spaces"]:
        table.add_row(
            row["name"], str(row["decisions"]), f"{row['size']:,}",
            "yes" if row["supernet"] else "-", "yes" if row["blocks"] else "-", row["doc"],
        )
    Console().print(table)
