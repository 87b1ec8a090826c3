"""The witness API (C2SP tlog-witness): `POST /witness/add-checkpoint`, and `GET /witness` that
describes this witness (name, vkey, submission prefix) to whoever names it in a channel.

Unauthenticated by design (the spec authenticates nothing but the checkpoint's signature), so it
is bounded like anything anonymous: the body is read only up to protocol/witness.py's
MAX_REQUEST_BYTES (the anonymous route class's 16 KiB applies first, credentials or not:
api/limits.py), each client address may make `witness.per_minute` requests a minute (429 with
Retry-After), and only logs its admin configured get past the origin check (404 otherwise),
before any signature is verified or anything is stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from parley.api.actions import PUBLIC, acts
from parley.protocol import witness as core
from parley.station import witness
from parley.station.node import Station


def router(station: Station) -> APIRouter:
    r = APIRouter(prefix="/witness", tags=["witness"])
    window = witness.RateWindow(witness.settings(station).per_minute)

    @r.get("", **acts(PUBLIC))
    async def describe() -> dict[str, Any]:
        return witness.describe(station, station.cfg.url)

    @r.post("/add-checkpoint", **acts(PUBLIC))
    async def add_checkpoint(request: Request) -> Response:
        who = request.client.host if request.client else ""
        if not window.allow(who):
            return Response(
                "too many add-checkpoint requests from this address; try again in a minute\n",
                status_code=429, media_type=core.TEXT_CONTENT_TYPE,
                headers={"Retry-After": "60"},
            )  # fmt: skip
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > core.MAX_REQUEST_BYTES):
            return _answer(core.refusal(413, "the request body is too large"))
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > core.MAX_REQUEST_BYTES:
                return _answer(core.refusal(413, "the request body is too large"))
        return _answer(witness.add_checkpoint(station, body))

    return r


def _answer(a: core.Answer) -> Response:
    # Given as a header, not media_type, so that Starlette adds no charset: the spec names
    # the 409 answer's type exactly (text/x.tlog.size).
    return Response(a.body, status_code=a.status, headers={"Content-Type": a.content_type})
