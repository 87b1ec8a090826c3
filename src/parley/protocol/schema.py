"""Strict field checks for wire documents: exact key sets, types and bounds, with named errors.

Wire documents are validated once, at the edge, by these helpers; inside the core they are plain
frozen dataclasses. Every failure is RejectedInput(malformed) naming the field.
"""

from __future__ import annotations

from typing import Any

from parley.errors import Code, RejectedInput

MAX_SAFE_INT = 2**53 - 1


def require_fields(
    value: object, what: str, required: set[str], optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RejectedInput(Code.MALFORMED, f"{what}: expected an object")
    keys = set(value)
    missing = required - keys
    if missing:
        raise RejectedInput(Code.MALFORMED, f"{what}: missing field(s) {sorted(missing)}")
    extra = keys - required - optional
    if extra:
        raise RejectedInput(Code.MALFORMED, f"{what}: unknown field(s) {sorted(extra)}")
    return value


def require_int(obj: dict[str, Any], key: str, lo: int = 0, hi: int = MAX_SAFE_INT) -> int:
    v = obj[key]
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise RejectedInput(Code.MALFORMED, f"{key}: expected an integer in [{lo}, {hi}]")
    return v


def require_str(obj: dict[str, Any], key: str, max_len: int, min_len: int = 1) -> str:
    v = obj[key]
    if not isinstance(v, str) or not min_len <= len(v) <= max_len:
        raise RejectedInput(Code.MALFORMED, f"{key}: expected text of {min_len}..{max_len} chars")
    return v


def require_str_list(obj: dict[str, Any], key: str, max_items: int, max_len: int) -> list[str]:
    v = obj[key]
    if not isinstance(v, list) or len(v) > max_items:
        raise RejectedInput(Code.MALFORMED, f"{key}: expected a list of at most {max_items}")
    for item in v:
        if not isinstance(item, str) or not 1 <= len(item) <= max_len:
            raise RejectedInput(Code.MALFORMED, f"{key}: items must be text up to {max_len}")
    return v
