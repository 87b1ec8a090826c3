"""Operator API for delivery paths: routes through a relay, offline bundles, and an overview.

GET  /api/v1/paths                 inbound or pull-only, routes, pulling peers, relay queues
POST /api/v1/peers/{peer}/route    {"via": station | null, "fallback": bool}     peer.route
POST /api/v1/bundles/export        {"peer": station} -> the bundle text, counts  bundle.export
POST /api/v1/bundles/import        body: the bundle file (application/x-ndjson)  bundle.import
GET  /api/v1/bundles               the log of bundles exported and imported

station/paths.py checks the role table and keeps back channels out of the export of a user
not named on them; these routes parse and render. The import's role is checked before its
body is read.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from parley.api.actions import acts
from parley.api.auth import Auth
from parley.errors import Code, RejectedInput
from parley.protocol.bundle import MAX_BUNDLE_BYTES
from parley.station import paths
from parley.station.node import Station
from parley.station.roles import Action
from parley.station.users import User


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteSet(Strict):
    via: str | None = Field(default=None, max_length=64)
    fallback: bool = False


class BundleExport(Strict):
    peer: str = Field(max_length=64)


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["paths"], dependencies=[Depends(auth.user)])

    @r.get("/paths", **acts(Action.STATION_READ))
    def overview(who: User = Depends(auth.user)) -> dict[str, Any]:
        return paths.overview(station, who)

    @r.post("/peers/{peer}/route", **acts(Action.PEER_ROUTE))
    def set_route(peer: str, req: RouteSet, who: User = Depends(auth.user)) -> dict[str, Any]:
        return paths.set_route(station, peer, req.via, req.fallback, who)

    @r.post("/bundles/export", **acts(Action.BUNDLE_EXPORT))
    async def export(req: BundleExport, who: User = Depends(auth.user)) -> dict[str, Any]:
        data, summary = await run_in_threadpool(paths.export_bundle, station, req.peer, who)
        return {**summary, "bundle": data.decode()}

    @r.post(
        "/bundles/import",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            },
            **acts(Action.BUNDLE_IMPORT)["openapi_extra"],
        },
    )
    async def import_(request: Request, who: User = Depends(auth.user)) -> Any:
        paths.may_import(station, who)  # before a byte of the body is read
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BUNDLE_BYTES):
            raise RejectedInput(Code.OVERSIZED, f"a bundle is at most {MAX_BUNDLE_BYTES} bytes")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_BUNDLE_BYTES:
                raise RejectedInput(Code.OVERSIZED, f"a bundle is at most {MAX_BUNDLE_BYTES} bytes")
        return await run_in_threadpool(paths.import_bundle, station, bytes(data), who)

    @r.get("/bundles", **acts(Action.STATION_READ))
    def bundles(who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        return paths.bundle_log(station, who)

    return r
