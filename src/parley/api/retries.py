"""The `Idempotency-Key` header of the routes that send: one dependency reads it, with the
request it came with (domain/retries.py), so that no route takes the header on its own and
forgets the request (tests/test_routes.py asks every route)."""

from __future__ import annotations

from fastapi import Header, Request

from parley.domain.retries import IdempotencyKey, request_digest

MAX_KEY_CHARS = 128


async def idempotency_key(
    request: Request, idempotency_key: str = Header(default="", max_length=MAX_KEY_CHARS)
) -> str:
    """The key ("" for none), carrying a digest of the request; the body was read already (the
    route's model), within the body limits."""
    if not idempotency_key:
        return ""
    digest = request_digest(request.method, request.scope["path"], await request.body())
    return IdempotencyKey(idempotency_key, digest)
