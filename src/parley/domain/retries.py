"""An `Idempotency-Key` and the request it came with.

A retry repeats its request exactly, so a key names one request: the same key again with the
same request answers what the first made (station/node.py); the same key with another request
is refused (`conflict`): answering the first request's envelope would tell the caller that a
message it has not sent was queued. The request is its method, path and body, byte for byte: a
retry sends the same bytes again (re-encoding the body to compare it as JSON cost a keyed send
about 4% of its time on the event loop).
"""

from __future__ import annotations

from parley.protocol.crypto import sha256


class IdempotencyKey(str):
    """The header's value, carrying the digest of the request it came with (hex SHA-256)."""

    request: str

    def __new__(cls, key: str, request: str) -> IdempotencyKey:
        made = super().__new__(cls, key)
        made.request = request
        return made


def request_digest(method: str, path: str, body: bytes) -> str:
    """What names a request for its idempotency key."""
    return sha256(b"\n".join((method.encode(), path.encode(), body))).hex()


def asked_for(key: str) -> str:
    """The request digest `key` came with; "" for a key made inside the station (no request)."""
    return key.request if isinstance(key, IdempotencyKey) else ""


def same_request(first: str, key: str) -> bool:
    """Whether `key`, seen before with the request digest `first`, comes with that request
    again. A key stored before its request was (schema version 24), or one made inside the
    station, names no request and is taken as the same."""
    asked = asked_for(key)
    return not first or not asked or first == asked
