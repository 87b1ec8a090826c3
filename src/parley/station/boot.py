"""Opening a station from its data directory: configuration, store, identity, features."""

from __future__ import annotations

import os
import time
from pathlib import Path

from parley.errors import Code, LocalError
from parley.station import features
from parley.station.config import load_config, load_identity
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
    station = Station(
        cfg, open_store(data, cfg.database), load_identity(data), clock or system_clock()
    )
    station.rotate_prekeys()
    return features.install(station)
