"""Running a station: open the data directory, wire the parts, serve HTTP, run background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn

from parley.api.app import build_app
from parley.errors import Code, LocalError
from parley.protocol.request import sign_request
from parley.station import features
from parley.station.config import load_config, load_identity, load_token
from parley.station.dispatcher import Dispatcher
from parley.station.node import Clock, Station
from parley.store.base import SqlStore
from parley.store.sqlite import SqliteStore
from parley.transport.http import PeerClient

log = logging.getLogger("parley.station")


def system_clock() -> Clock:
    """Wall clock in Unix ms; PARLEY_CLOCK_OFFSET_MS shifts it (fault-injection of clock skew)."""
    offset = int(os.environ.get("PARLEY_CLOCK_OFFSET_MS", "0"))
    return lambda: time.time_ns() // 1_000_000 + offset


def open_store(data: Path, database: str) -> SqlStore:
    if database.startswith(("postgresql://", "postgres://")):
        from parley.store.postgres import PostgresStore

        return PostgresStore(database)
    if database:
        raise LocalError(Code.INVALID_REQUEST, f"unsupported database {database!r}")
    return SqliteStore(data / "parley.db")


def open_station(data: Path, clock: Clock | None = None) -> Station:
    cfg = load_config(data)
    station = Station(
        cfg, open_store(data, cfg.database), load_identity(data), clock or system_clock()
    )
    station.rotate_prekeys()
    return features.install(station)


async def _rotation(station: Station) -> None:
    while True:
        await asyncio.sleep(60)
        station.rotate_prekeys()


async def _ticker(station: Station) -> None:
    while True:
        await asyncio.sleep(1)
        await asyncio.to_thread(station.tick)


def serve(data: Path) -> None:
    station = open_station(data)
    token = load_token(data)
    client = PeerClient(
        lambda method, path, body: sign_request(
            station.identity, station.id, method, path, body, station.clock()
        )
    )
    dispatcher = Dispatcher(station, client)
    app = build_app(station, token)

    @contextlib.asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(dispatcher.run()),
            asyncio.create_task(_rotation(station)),
            asyncio.create_task(_ticker(station)),
        ]
        log.info("station %s (%s) serving on %s", station.cfg.name, station.id, station.cfg.listen)
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await client.close()

    app.router.lifespan_context = lifespan
    config = uvicorn.Config(
        app, host=station.cfg.host, port=station.cfg.port, log_level="warning", access_log=False
    )
    uvicorn.Server(config).run()
