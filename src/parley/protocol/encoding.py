"""Canonical bytes: RFC 8785 (JCS) JSON, no floats, binary fields as unpadded base64url.

Everything Parley signs or hashes is a JSON object encoded with `canonical()`. Parsing goes the
other way with `parse()`, which also refuses anything that is not its own canonical form, so one
value has exactly one byte string on the wire.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

import rfc8785

from parley.errors import Code, RejectedInput

# The largest envelope, receipt or request body a station accepts. A notice with a map polygon
# and a page of text fits in a few KiB; 256 KiB leaves room for attachments of text only.
MAX_DOCUMENT_BYTES = 256 * 1024
# JSON nesting beyond this is never produced by Parley and only costs the parser. Only arrays and
# objects count (the top-level one is level 1; an empty one counts like any other); scalars add
# no level (docs/protocol.md §2).
MAX_DEPTH = 24


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# base64url <-> base64, for the binascii calls the hot paths make on bytes (one table each).
FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
# The last character of unpadded base64url, by length mod 4, when the unused bits are zero.
_LAST = {0: _ALPHABET, 2: b"AQgw", 3: b"AEIMQUYcgkosw048"}


def b64d(text: object, *, field: str = "value", size: int | None = None) -> bytes:
    """Decode unpadded base64url, refusing padding, other alphabets and the wrong length."""
    # Canonical text (the alphabet only, a possible length, zero unused bits) decoded at once;
    # anything else takes the reference path below, which names what is wrong (a checkpoint
    # body's root and proof are some 15 hashes: ~4 us each the reference way).
    if type(text) is str and text.isascii():
        t = text.encode("ascii")
        last = _LAST.get(len(t) % 4)
        if last is not None and not t.translate(None, _ALPHABET) and (not t or t[-1] in last):
            raw = binascii.a2b_base64(t.translate(FROM_URLSAFE) + b"=" * (-len(t) % 4))
            if size is None or len(raw) == size:
                return raw
    return _b64d_reference(text, field, size)


def _b64d_reference(text: object, field: str, size: int | None) -> bytes:
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
    """The one encoding of `value` that Parley signs and hashes (RFC 8785).

    Most documents take a fast path: for integers within ±2^53 and object keys below U+D800,
    RFC 8785 and the standard library's sorted, compact, non-ASCII-preserving JSON are the same
    bytes (same string escapes; code-point order equals UTF-16 order there). Anything else goes
    through the reference implementation. tests/test_protocol_core.py checks both agree."""
    if _plain(value, 0):
        try:
            return json.dumps(
                value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: let the reference implementation decide
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise RejectedInput(Code.MALFORMED, f"cannot encode canonically: {exc}") from exc
    except UnicodeEncodeError as exc:  # the reference sorts keys as UTF-16: a lone surrogate
        raise RejectedInput(
            Code.MALFORMED, "cannot encode canonically: input contains non-UTF-8 codepoints"
        ) from exc


_SAFE_INT = 2**53


def _plain(value: Any, depth: int) -> bool:
    """Refuse what no canonical document holds (floats, deep nesting, non-text keys); True if
    the fast path of `canonical` gives the RFC 8785 bytes for this value. `depth` is the number
    of containers around `value`."""
    if isinstance(value, float):
        raise RejectedInput(Code.MALFORMED, "floats are not allowed in canonical documents")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return -_SAFE_INT < value < _SAFE_INT
    if isinstance(value, dict | list | tuple) and depth >= MAX_DEPTH:
        raise RejectedInput(Code.MALFORMED, f"arrays and objects nest deeper than {MAX_DEPTH}")
    plain = True
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise RejectedInput(Code.MALFORMED, "object keys must be strings")
            plain = _plain(v, depth + 1) and plain and (not k or max(k) < "\ud800")
    elif isinstance(value, list | tuple):
        for v in value:
            plain = _plain(v, depth + 1) and plain
    else:
        return False
    return plain


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
    if require_canonical and not _is_canonical(value, data):
        raise RejectedInput(Code.MALFORMED, "document is not in canonical (RFC 8785) form")
    return value


# Bytes that may start a character at or above U+D800 in UTF-8 (ED A0.. begins U+D800; EE, EF
# and F0..F4 lead the rest). Hangul (U+AC00..U+D7A3) stays below.
_HIGH_CHAR = re.compile(rb"\xed[\xa0-\xbf]|[\xee-\xf4]")
_LONG_DIGITS = re.compile(rb"[0-9]{16}")  # 2^53 has 16 digits: shorter runs are safe integers


def _is_canonical(value: Any, data: bytes) -> bool:
    """Whether `data` is `canonical(value)`, for `value` parsed from `data`.

    `canonical` walks the value in Python before encoding it, to find what its fast path cannot
    encode; that walk cost more than the parse. The bytes can say the same cheaply: with no
    character at or above U+D800, no run of 16 digits (so every integer is within ±2^53) and at
    most MAX_DEPTH brackets in all (so no nesting beyond it), the walk would pass and the fast
    path's encoding is the RFC 8785 one; anything else takes `canonical` itself."""
    if (
        data.count(b"{") + data.count(b"[") <= MAX_DEPTH
        and _HIGH_CHAR.search(data) is None
        and _LONG_DIGITS.search(data) is None
    ):
        try:
            return (
                json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode(
                    "utf-8"
                )
                == data
            )
        except UnicodeEncodeError:
            pass  # a lone surrogate (written as an escape): `canonical` decides
    return canonical(value) == data
