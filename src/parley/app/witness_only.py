"""A witness-only party (`parley witness run`): the C2SP witness API and nothing else.

No peer API, no operator API, no console, no background duties: its only user is the admin who
owns the data directory and configures the logs in station.json (`parley witness add-log`). Its
database (SQLite in the directory, or PostgreSQL) holds the witness key and per-log state.
"""

from __future__ import annotations

from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from parley import __version__
from parley.api import witness as witness_api
from parley.app import gate
from parley.app.conn import server_config
from parley.errors import ParleyError
from parley.station.boot import open_station
from parley.station.node import Station


def build_witness_app(station: Station) -> FastAPI:
    app = gate.StationApp(
        title=f"Parley witness {station.cfg.name}", version=__version__,
        docs_url=None, redoc_url=None, openapi_url=None,
    )  # fmt: skip

    @app.exception_handler(ParleyError)
    async def parley_error(_: Request, exc: ParleyError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status)

    gate.add_routes(app, witness_api.router(station))
    gate.install(app, station.cfg.limits)  # body limits, security headers (app/gate.py)
    return app


def serve_witness(data: Path) -> None:
    station = open_station(data)
    config = server_config(build_witness_app(station), station.cfg)
    try:
        uvicorn.Server(config).run()
    finally:
        station.store.close()
