"""Field paths: how a place inside a notice is named, and how the notice tree is walked.

Rules:
- A path is a tuple of keys (str) and zero-based list indices (int).
- Written form: keys joined with ".", indices as "[n]": ("launch_area", "points", 3) is
  "launch_area.points[3]". The empty path "" names the whole notice.
- `walk` visits every node depth-first in key order, so errors come out in a stable order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

Path = tuple[str | int, ...]

# Returned by `lookup` when a path does not exist (None is a legitimate JSON value).
MISSING: Any = object()


def format_path(parts: Sequence[str | int]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else p
    return out


def walk(value: Any, parts: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every (path, node) of a JSON tree, parents before children, keys sorted."""
    yield parts, value
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            yield from walk(value[key], (*parts, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk(item, (*parts, i))


def lookup(value: Any, dotted: str) -> Any:
    """The node at a dotted path of object keys ("launch_window.start_ms"), or MISSING."""
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return value
