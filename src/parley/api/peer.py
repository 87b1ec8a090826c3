"""The peer API: what other stations call. Every request is signed by a known peer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from parley.errors import Code, RejectedInput
from parley.protocol.request import HEADER, parse_auth, verify_request
from parley.station.node import Station

MAX_BATCH_BYTES = 16 * 1024 * 1024
MAX_BATCH_ENVELOPES = 512


async def _authenticated(request: Request, station: Station) -> tuple[str, bytes]:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BATCH_BYTES):
        raise RejectedInput(Code.OVERSIZED, f"request body exceeds {MAX_BATCH_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BATCH_BYTES:
            raise RejectedInput(Code.OVERSIZED, f"request body exceeds {MAX_BATCH_BYTES} bytes")
    auth = parse_auth(request.headers.get(HEADER))
    peer = station.store.get_peer(auth.station)
    if peer is None:
        raise RejectedInput(Code.UNKNOWN_SENDER, f"{auth.station} is not a known peer")
    verify_request(
        auth, peer.identity, request.method, request.url.path, body, station.clock(),
        station.cfg.timings.skew_ms,
    )  # fmt: skip
    return auth.station, body


def router(station: Station) -> APIRouter:
    r = APIRouter(prefix="/peer/v1", tags=["peer"])

    @r.post("/envelopes")
    async def push(request: Request) -> dict[str, Any]:
        _, body = await _authenticated(request, station)
        raws = [line for line in body.split(b"\n") if line]
        if len(raws) > MAX_BATCH_ENVELOPES:
            raise RejectedInput(Code.OVERSIZED, f"at most {MAX_BATCH_ENVELOPES} envelopes a batch")
        results, receipts = station.receive_batch(raws)
        return {
            "results": [x.to_json() for x in results],
            "receipts": [x.to_json() for x in receipts],
        }

    @r.get("/ping")
    async def ping(request: Request) -> dict[str, Any]:
        await _authenticated(request, station)
        return {"station": station.id, "ts": station.clock()}

    @r.get("/prekeys")
    async def prekeys() -> dict[str, Any]:
        return {"station": station.id, "prekeys": station.prekeys()}

    return r
