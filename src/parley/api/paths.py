"""Operator API for delivery paths: routes through a relay, offline bundles, and an overview.

GET  /api/v1/paths                 inbound or pull-only, routes, pulling peers, relay queues
POST /api/v1/peers/{peer}/route    {"via": station | null, "fallback": bool}         admin
POST /api/v1/bundles/export        {"peer": station} -> the bundle text and counts   operator
POST /api/v1/bundles/import        body: the bundle file (application/x-ndjson)      operator
GET  /api/v1/bundles               the log of bundles exported and imported
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from parley.api.auth import Auth
from parley.errors import Code, RejectedInput
from parley.protocol.bundle import MAX_BUNDLE_BYTES
from parley.protocol.encoding import b64e
from parley.station import paths
from parley.station.node import Station
from parley.station.users import User
from parley.store import paths as db


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteSet(Strict):
    via: str | None = Field(default=None, max_length=64)
    fallback: bool = False


class BundleExport(Strict):
    peer: str = Field(max_length=64)


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["paths"], dependencies=[Depends(auth.user)])

    @r.get("/paths")
    def overview() -> dict[str, Any]:
        st = station.store
        pulls = []
        for p in st.list_peers():
            cur = db.pull_cursor(st, p.station)
            if cur is not None:
                pulls.append({"peer": p.station, "name": p.name, "last_pull": cur[0],
                              "served": cur[1]})  # fmt: skip
        return {
            "inbound": station.cfg.inbound,
            "routes": [paths.route_json(station, x) for x in db.routes(st)],
            "pulls": pulls,
            "relaying": [
                {"dest": d, "name": station.peer_name(d), "queued": db.relay_count(st, d)}
                for d in db.relay_dests(st)
            ],
        }

    @r.post("/peers/{peer}/route")
    def set_route(
        peer: str, req: RouteSet, who: User = Depends(auth.role("admin"))
    ) -> dict[str, Any]:
        paths.set_route(station, peer, req.via, req.fallback, who.name)
        found = db.route(station.store, peer)
        return {"peer": peer, "route": paths.route_json(station, found) if found else None}

    @r.post("/bundles/export")
    async def export(
        req: BundleExport, who: User = Depends(auth.role("operator", "admin"))
    ) -> dict[str, Any]:
        data, summary = await run_in_threadpool(paths.export_bundle, station, req.peer, who.name)
        return {**summary, "bundle": data.decode()}

    @r.post(
        "/bundles/import",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            }
        },
    )
    async def import_(request: Request, who: User = Depends(auth.role("operator", "admin"))) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BUNDLE_BYTES):
            raise RejectedInput(Code.OVERSIZED, f"a bundle is at most {MAX_BUNDLE_BYTES} bytes")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_BUNDLE_BYTES:
                raise RejectedInput(Code.OVERSIZED, f"a bundle is at most {MAX_BUNDLE_BYTES} bytes")
        return await run_in_threadpool(paths.import_bundle, station, bytes(data), who.name)

    @r.get("/bundles")
    def bundles() -> list[dict[str, Any]]:
        return [
            {
                "direction": b.direction, "peer": b.peer, "peer_name": station.peer_name(b.peer),
                "digest": b64e(b.digest), "created": b.created, "envelopes": b.envelopes,
                "receipts": b.receipts, "at": b.at, "outcome": b.outcome,
            }
            for b in db.bundle_log(station.store)
        ]  # fmt: skip

    return r
