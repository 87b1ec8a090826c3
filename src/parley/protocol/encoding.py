"""Canonical bytes: RFC 8785 (JCS) JSON, no floats, binary fields as unpadded base64url.

Everything Parley signs or hashes is a JSON object encoded with `canonical()`. Parsing goes the
other way with `parse()`, which also refuses anything that is not its own canonical form, so one
value has exactly one byte string on the wire.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import rfc8785

from parley.errors import Code, RejectedInput

# The largest envelope, receipt or request body a station accepts. A notice with a map polygon
# and a page of text fits in a few KiB; 256 KiB leaves room for attachments of text only.
MAX_DOCUMENT_BYTES = 256 * 1024
# JSON nesting beyond this is never produced by Parley and only costs the parser.
MAX_DEPTH = 24


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: object, *, field: str = "value", size: int | None = None) -> bytes:
    """Decode unpadded base64url, refusing padding, other alphabets and the wrong length."""
    if not isinstance(text, str) or "=" in text:
        raise RejectedInput(Code.MALFORMED, f"{field}: expected unpadded base64url text")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise RejectedInput(Code.MALFORMED, f"{field}: not base64url") from exc
    if b64e(raw) != text:
        raise RejectedInput(Code.MALFORMED, f"{field}: not canonical base64url")
    if size is not None and len(raw) != size:
        raise RejectedInput(Code.MALFORMED, f"{field}: expected {size} bytes, got {len(raw)}")
    return raw


def canonical(value: Any) -> bytes:
    """The one encoding of `value` that Parley signs and hashes (RFC 8785)."""
    _refuse_floats(value, 0)
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise RejectedInput(Code.MALFORMED, f"cannot encode canonically: {exc}") from exc


def _refuse_floats(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise RejectedInput(Code.MALFORMED, "document nested too deeply")
    if isinstance(value, float):
        raise RejectedInput(Code.MALFORMED, "floats are not allowed in canonical documents")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise RejectedInput(Code.MALFORMED, "object keys must be strings")
            _refuse_floats(v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            _refuse_floats(v, depth + 1)


def _no_floats(text: str) -> Any:
    raise RejectedInput(Code.MALFORMED, "floats are not allowed in canonical documents")


def _no_constants(text: str) -> Any:
    raise RejectedInput(Code.MALFORMED, f"{text} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise RejectedInput(Code.MALFORMED, f"duplicate key {k!r}")
        out[k] = v
    return out


def parse(data: bytes, *, limit: int = MAX_DOCUMENT_BYTES, require_canonical: bool = True) -> Any:
    """Parse a JSON document from outside, within `limit` bytes, refusing non-canonical forms."""
    if len(data) > limit:
        raise RejectedInput(Code.OVERSIZED, f"document of {len(data)} bytes exceeds {limit}")
    try:
        value = json.loads(
            data.decode("utf-8"),
            parse_float=_no_floats,
            parse_constant=_no_constants,
            object_pairs_hook=_unique_keys,
        )
    except RejectedInput:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RejectedInput(Code.MALFORMED, f"not valid JSON: {exc}") from exc
    if require_canonical and canonical(value) != data:
        raise RejectedInput(Code.MALFORMED, "document is not in canonical (RFC 8785) form")
    return value
