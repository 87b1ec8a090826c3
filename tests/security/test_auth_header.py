"""The operator API reads `Authorization: Bearer` itself (api/auth.py `credentials`, issue 14):
it must read exactly what FastAPI's HTTPBearer read before, for any header a client may send."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from parley.api.auth import bearer, credentials

HEADERS = [
    None, "", " ", "Bearer", "Bearer ", "Bearer x", "bearer x", "BEARER  x ", "Bearer a b",
    "Basic dXNlcjpwYXNz", "Bearerx y", " Bearer x", "Bearer\tx", "Token pt_abc", "Bearer pt_ü",
]  # fmt: skip


@pytest.mark.parametrize("header", HEADERS)
def test_a_bearer_header_is_read_as_httpbearer_reads_it(header: str | None) -> None:
    raw = [] if header is None else [(b"authorization", header.encode())]
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": raw})
    theirs = asyncio.run(bearer(request))
    ours = credentials(request.headers.get("authorization"))
    pairs = [None if c is None else (c.scheme, c.credentials) for c in (ours, theirs)]
    assert pairs[0] == pairs[1]
