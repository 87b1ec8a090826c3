"""The peer API: what other stations call. Every request is signed by a known peer.

A station configured with `inbound: false` serves none of it: it reaches its peers itself (push
out, pull in), so nothing may be pushed to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from parley.api import offload
from parley.errors import Code, RejectedInput
from parley.protocol.bundle import split_frame
from parley.protocol.identity import is_station_id
from parley.protocol.request import HEADER, parse_auth, verify_request
from parley.protocol.schema import require_fields
from parley.station import handovers, peerstate
from parley.station.node import Station
from parley.station.onloop import run_unless_held
from parley.station.peering import MAX_BODY_BYTES as MAX_BATCH_BYTES
from parley.station.peering import PeerDesk
from parley.transport.base import MAX_FRAME_ENVELOPES
from parley.transport.http import NDJSON


async def _authenticated(request: Request, station: Station) -> tuple[str, bytes]:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BATCH_BYTES):
        raise RejectedInput(Code.OVERSIZED, f"request body exceeds {MAX_BATCH_BYTES} bytes")
    # Who claims to send it, before its body is read: only a known peer's body is read at all.
    auth = parse_auth(request.headers.get(HEADER))
    carried = request.headers.get(handovers.HEADER)
    if carried is not None:  # the caller rotated its key: follow it first (§3.6)
        await offload.run(handovers.accept, station, carried, auth.station)
    store = station.store
    peer = await run_unless_held(
        store.lock, peerstate.admitted, store, auth.station, elsewhere=offload.run
    )
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
    desk = PeerDesk(station)

    @r.post("/envelopes", response_model=dict[str, Any])
    async def push(request: Request) -> JSONResponse:
        caller, body = await _authenticated(request, station)
        raws = [line for line in body.split(b"\n") if line]
        # Verifying, opening and applying a batch takes a while: a worker thread does it, so
        # the event loop goes on serving other requests (and the dispatcher) meanwhile; the
        # API's own, whose hand-over costs less than AnyIO's (api/offload.py). The answer is
        # plain data: FastAPI would walk it again to encode it (issue 14).
        return JSONResponse(await offload.run(desk.push, caller, raws))

    @r.post("/pull")
    async def pull(request: Request) -> Response:
        caller, body = await _authenticated(request, station)
        return Response(desk.pull(caller, body), media_type=NDJSON)

    @r.post("/relay")
    async def relay(request: Request) -> dict[str, Any]:
        caller, body = await _authenticated(request, station)
        header, raws = split_frame(
            body, "relay", header_limit=4096, max_envelopes=MAX_FRAME_ENVELOPES
        )
        to = require_fields(header, "relay", {"to"})["to"]
        if not is_station_id(to):
            raise RejectedInput(Code.MALFORMED, "relay: to is a station id")
        return desk.relay(caller, to, raws)

    @r.get("/ping")
    async def ping(request: Request) -> dict[str, Any]:
        caller, _ = await _authenticated(request, station)
        return desk.ping(caller)

    @r.get("/prekeys")
    async def prekeys() -> dict[str, Any]:
        return desk.prekeys(None, None)

    @r.get("/prekeys/{other}")
    async def relayed_prekeys(other: str, request: Request) -> dict[str, Any]:
        caller, _ = await _authenticated(request, station)
        return desk.prekeys(caller, other)

    return r
