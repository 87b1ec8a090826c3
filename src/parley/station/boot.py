"""Opening a station from its data directory: configuration, store, identity, features."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from parley.errors import Code, LocalError
from parley.protocol import handover
from parley.station import features
from parley.station.config import load_config, load_identity, recover_identity, stage_identity
from parley.station.node import Clock, Station
from parley.store.base import SqlStore
from parley.store.postgres import PostgresStore
from parley.store.sqlite import SqliteStore


def system_clock() -> Clock:
    """Wall clock in Unix ms; PARLEY_CLOCK_OFFSET_MS shifts it (fault-injection of clock skew)."""
    offset = int(os.environ.get("PARLEY_CLOCK_OFFSET_MS", "0"))
    return lambda: time.time_ns() // 1_000_000 + offset


def open_store(data: Path, database: str) -> SqlStore:
    if database.startswith(("postgresql://", "postgres://")):
        return PostgresStore(database)
    if database:
        raise LocalError(
            Code.INVALID_REQUEST,
            f"unsupported database {database!r}; give a postgresql:// URL, or nothing for SQLite",
        )
    return SqliteStore(data / "parley.db")


def open_station(data: Path, clock: Clock | None = None) -> Station:
    cfg = load_config(data)
    store = open_store(data, cfg.database)
    own = store.get_meta("station_id")
    last = store.handovers(own)[-1:] if own else []
    recover_identity(data, handover.parse_handover(last[0].encode()).new if last else None)
    station = Station(cfg, store, load_identity(data), clock or system_clock())
    station.stage_identity = lambda key: stage_identity(data, key)
    station.rotate_prekeys()
    return features.install(station)


@contextmanager
def in_use(data: Path) -> Iterator[None]:
    """Holds `data` for one process: `parley station run` for its whole life, an offline CLI
    command for its own. An advisory lock (flock on `station.lock`), released by the kernel when
    the holder dies, so a killed station never leaves it stale. Two writers on one data
    directory would each trust caches the other makes stale; this makes the second one stop."""
    fd = os.open(data / "station.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LocalError(
            Code.CONFLICT, f"{data} is in use by a running station (`parley station run`)"
        ) from None
    try:
        yield
    finally:
        os.close(fd)


@contextmanager
def offline_station(data: Path) -> Iterator[Station]:
    """The station at `data` opened by this process while no station process runs on it, for the
    CLI commands that can work without one (invitations, peers, bundles). SQLite only: on
    PostgreSQL other workers may run elsewhere, beyond this machine's lock."""
    cfg = load_config(data)
    if cfg.database:
        raise LocalError(
            Code.STATION_UNREACHABLE,
            f"the station at {data} does not answer and keeps its data in PostgreSQL: "
            "start it (`parley station run`) and try again",
        )
    with in_use(data):
        station = open_station(data)
        try:
            yield station
        finally:
            station.receiver.close()
            station.store.close()
