"""The `store` fixture: a new, empty store on SQLite and again on PostgreSQL, for the queries that
must run on both backends.

A test module takes it with `pytest_plugins = ["tests.stores"]`. The PostgreSQL half uses
tests/pgserver.py's `pg_db`, so it skips where no PostgreSQL is installed (and fails on CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.store.base import SqlStore
from parley.store.postgres import PostgresStore
from parley.store.sqlite import SqliteStore

pytest_plugins = ["tests.pgserver"]  # the pg_db fixture


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """A store on this test's own database, migrated to the latest schema; closed afterwards."""
    s: SqlStore = (
        SqliteStore(tmp_path / "parley.db")
        if request.param == "sqlite"
        else PostgresStore(request.getfixturevalue("pg_db"))
    )
    yield s
    s.close()
