"""The `Idempotency-Key` header of the routes that send, read with the request it came with
(domain/retries.py) by the one dependency that also names the caller (api/auth.py
`Auth.sender`): no route takes the header on its own and forgets the request, and FastAPI
solves one dependency for both, not two (each costs it 10-25 µs a request: issue 14).
tests/test_routes.py asks every route."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from parley.domain.retries import IdempotencyKey, request_digest

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 128
# The header in the OpenAPI document, for the routes that take it (api/actions.py `acts`).
PARAMETER: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "a retry sends the same key with the same request: it is answered, not sent "
    "again; the same key with another request is 409 conflict",
    "schema": {"type": "string", "maxLength": MAX_KEY_CHARS, "default": ""},
}


async def idempotency_key(request: Request) -> str:
    """The key ("" for none), carrying a digest of the request; the body was read already (the
    route's model), within the body limits. A key too long is refused as FastAPI refuses a
    parameter it checks (422 `invalid_request`, the header named in `details.fields`)."""
    key = request.headers.get(HEADER)
    if not key:
        return ""
    if len(key) > MAX_KEY_CHARS:
        raise RequestValidationError(
            [{"type": "string_too_long", "loc": ("header", HEADER.lower()), "input": key,
              "msg": f"String should have at most {MAX_KEY_CHARS} characters"}]
        )  # fmt: skip
    digest = request_digest(request.method, request.scope["path"], await request.body())
    return IdempotencyKey(key, digest)
