"""Options, printers and name resolution that every `parley` subcommand shares."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from parley.cli.client import Api
from parley.errors import Code, LocalError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

Data = Annotated[
    Path,
    typer.Option("--data", "-d", envvar="PARLEY_DATA", help="The station's data directory."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]


def table(*columns: str, whole: tuple[str, ...] = ()) -> Table:
    """A table for an 80-column terminal: the `whole` columns (ids, hashes, fingerprints) are
    never split over lines; the others wrap to make room."""
    t = Table()
    for c in columns:
        t.add_column(c, no_wrap=c in whole, overflow="ignore" if c in whole else "fold")
    return t


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def resolve_channel(api: Api, ref: str) -> str:
    ids = [c["channel"] for c in api.get("/channels")]
    matches = [c for c in ids if c.startswith(ref)]
    if not matches and len(ref) == 22:  # a whole id the listing hides: let the API say why
        return ref
    if len(matches) != 1:
        raise LocalError(
            Code.NOT_FOUND if not matches else Code.INVALID_REQUEST,
            f"no channel starts with {ref!r}" if not matches else f"{ref!r} is ambiguous",
        )
    return str(matches[0])
