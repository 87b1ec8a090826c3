"""The FastAPI application of one station: peer API, operator API and console; errors as JSON
with codes, an unexpected one as `internal` with a request id (api/failures.py); security
headers, the Origin check and body limits around all of it (app/gate.py); the API's own
description (/docs, /openapi.json) only when the config switches it on (api/docs.py)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from parley import __version__
from parley.api import docs as docs_api
from parley.api import metrics as metrics_api
from parley.api import notices as notices_api
from parley.api import notify as notify_api
from parley.api import operator, peer, users
from parley.api import paths as paths_api
from parley.api import printout as printout_api
from parley.api import reading as reading_api
from parley.api import talks as talks_api
from parley.api import transcripts as transcripts_api
from parley.api import vigil as vigil_api
from parley.api import witness as witness_api
from parley.api.auth import Auth
from parley.app import gate
from parley.errors import Code, ParleyError
from parley.station.node import Station
from parley.web import console
from parley.web.pages import PAGES


def build_app(station: Station, token: str) -> FastAPI:
    app = gate.StationApp(
        title=f"Parley station {station.cfg.name}",
        version=__version__,
        description="Operator API of a Parley station. Authenticate with `Authorization: Bearer`.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    # One middleware around the routes and exception handlers: the Origin check, body limits,
    # `internal` for the unexpected and the security headers on every answer (app/gate.py).
    public = [station.cfg.public_url] if station.cfg.public_url else []
    gate.install(app, station.cfg.limits, public)

    @app.exception_handler(ParleyError)
    async def parley_error(_: Request, exc: ParleyError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]}
            for e in exc.errors()
        ]
        return JSONResponse(
            {"code": str(Code.INVALID_REQUEST), "message": "the request is invalid",
             "details": {"fields": fields}},
            status_code=422,
        )  # fmt: skip

    auth = Auth(station, token)
    # A request is matched against the routes in this order, each route by its pattern (2-3 us
    # a route): the busiest first (peers' pushes, sends and the reads operators poll: status,
    # the inbox, a history page, alarms; then who is calling, then the console's pages and live
    # updates, which came after all ~120 API routes), since a send was tried against 44 other
    # routes first (issue 14). No route of one router can take a request meant for another's
    # (tests/test_routes.py; the console is all of /console), so the order is free.
    routers = [
        peer.router(station),
        operator.router(station, auth),
        reading_api.router(station, auth),
        users.router(station, auth),
    ]
    later = [
        talks_api.router(station, auth),
        notices_api.router(station, auth),
        transcripts_api.router(station, auth),
        printout_api.router(station, auth),
        witness_api.router(station),  # C2SP tlog-witness, unauthenticated
        metrics_api.router(station, auth),
        vigil_api.router(station, auth),
        paths_api.router(station, auth),
        notify_api.router(station, auth),
    ]
    for r in routers:
        gate.add_routes(app, r)
    console.mount(app, station, PAGES)  # the operator console at /console; / redirects there
    for r in later:
        gate.add_routes(app, r)
    if station.cfg.api_docs:
        gate.add_routes(app, docs_api.router(app, station, auth))
    return app
