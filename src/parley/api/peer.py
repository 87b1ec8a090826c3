"""The peer API: what other stations call. Every request is signed by a known peer.

A station configured with `inbound: false` serves none of it: it reaches its peers itself (push
out, pull in), so nothing may be pushed to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from parley.errors import Code, RejectedInput
from parley.protocol.bundle import split_frame
from parley.protocol.identity import is_station_id
from parley.protocol.request import HEADER, parse_auth, verify_request
from parley.protocol.schema import require_fields
from parley.station import paths
from parley.station.node import Station
from parley.transport.http import NDJSON

MAX_BATCH_BYTES = 16 * 1024 * 1024
MAX_BATCH_ENVELOPES = 512


async def _authenticated(request: Request, station: Station) -> tuple[str, bytes]:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BATCH_BYTES):
        raise RejectedInput(Code.OVERSIZED, f"request body exceeds {MAX_BATCH_BYTES} bytes")
    # Who claims to send it, before its body is read: only a known peer's body is read at all.
    auth = parse_auth(request.headers.get(HEADER))
    peer = station.store.get_peer(auth.station)
    if peer is None:
        raise RejectedInput(Code.UNKNOWN_SENDER, f"{auth.station} is not a known peer")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BATCH_BYTES:
            raise RejectedInput(Code.OVERSIZED, f"request body exceeds {MAX_BATCH_BYTES} bytes")
    verify_request(
        auth, peer.identity, request.method, request.url.path, body, station.clock(),
        station.cfg.timings.skew_ms,
    )  # fmt: skip
    return auth.station, body


def router(station: Station) -> APIRouter:
    r = APIRouter(prefix="/peer/v1", tags=["peer"])
    if not station.cfg.inbound:
        return r
    alarmed: set[str] = set()  # rejections a puller reported, alarmed once each

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

    @r.post("/pull")
    async def pull(request: Request) -> Response:
        caller, body = await _authenticated(request, station)
        req = paths.parse_pull_request(body, MAX_BATCH_BYTES)
        return Response(paths.serve_pull(station, caller, req, alarmed), media_type=NDJSON)

    @r.post("/relay")
    async def relay(request: Request) -> dict[str, Any]:
        caller, body = await _authenticated(request, station)
        header, raws = split_frame(
            body, "relay", header_limit=4096, max_envelopes=MAX_BATCH_ENVELOPES
        )
        to = require_fields(header, "relay", {"to"})["to"]
        if not is_station_id(to):
            raise RejectedInput(Code.MALFORMED, "relay: to is a station id")
        return paths.accept_relay(station, caller, to, raws)

    @r.get("/ping")
    async def ping(request: Request) -> dict[str, Any]:
        await _authenticated(request, station)
        return {"station": station.id, "ts": station.clock()}

    @r.get("/prekeys")
    async def prekeys() -> dict[str, Any]:
        return {"station": station.id, "prekeys": station.prekeys()}

    @r.get("/prekeys/{other}")
    async def relayed_prekeys(other: str, request: Request) -> dict[str, Any]:
        """The signed prekey records we hold for another station, for a peer that reaches it
        only through us. The records verify against that station's identity, not ours."""
        await _authenticated(request, station)
        p = station.store.get_peer(other)
        if p is None:
            raise RejectedInput(Code.NO_ROUTE, f"this station does not know {other}")
        return {"station": other, "prekeys": p.prekeys}

    return r
