"""Checks every domain body parser shares: the exact field set, and a body built by our own
operator that fails its own check (a local error, not a peer's bad input)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from parley.errors import Code, LocalError, RejectedInput


def exact_fields(body: object, what: str, required: set[str]) -> dict[str, Any]:
    """`body` as an object with exactly `required` keys; RejectedInput(bad_body) otherwise."""
    if not isinstance(body, dict):
        raise RejectedInput(Code.BAD_BODY, f"{what}: expected an object")
    if set(body) != required:
        raise RejectedInput(
            Code.BAD_BODY, f"{what}: expected exactly the fields {sorted(required)}"
        )
    return body


def checked_locally(
    check: Callable[[dict[str, Any]], object], body: dict[str, Any]
) -> dict[str, Any]:
    """Run a receiver's check on a body we built: the same checks, reported as a local error."""
    try:
        check(body)
    except RejectedInput as exc:
        raise LocalError(Code.INVALID_REQUEST, exc.message) from None
    return body
