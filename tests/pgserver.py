"""A throwaway PostgreSQL server for the test session, and a fresh database per test.

Import the fixtures into a test module: `from tests.pgserver import pg_db, pg_dsn`.

- `pg_dsn` (session): initdb into a temporary directory, start `postgres` listening only on a Unix
  socket inside that directory (no TCP port to collide over), yield a DSN to its `postgres`
  database, stop the server and delete the directory at the end. As root, the server runs as the
  `postgres` user (PostgreSQL refuses to run as root). Durability is switched off: it is a test.
- `pg_db` (function): a new empty database on that server, dropped after the test.

`PARLEY_TEST_PG_DSN` points the fixtures at an existing server instead (a CI service container);
its user must be allowed to CREATE DATABASE. Without binaries the tests skip, except on CI
(`CI=true`), where missing PostgreSQL is a failure: run scripts/ensure-postgres first.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

ENV_DSN = "PARLEY_TEST_PG_DSN"
_PORT = 5432  # only names the socket file inside our own directory; no TCP listener


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or the one holding `pg_ctl` on PATH."""
    versions = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")]
    versions = [b for b in versions if b.parent.name.isdigit()]
    if versions:
        return max(versions, key=lambda b: int(b.parent.name))
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


class PgServer:
    """One `postgres` process in a temporary directory; `start()` then `stop()`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="parley-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.user: str | None = None  # the OS user to run as, when we are root
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise RuntimeError("running as root, but there is no `postgres` user") from exc
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.user = "postgres"
        self.dbuser = "postgres"

    @property
    def dsn(self) -> str:
        return f"host={self.root} port={_PORT} user={self.dbuser} dbname=postgres"

    def _run(self, *argv: str) -> None:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}{res.stderr}{log}"
            )

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", self.dbuser, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        opts = " ".join(
            [
                "-c listen_addresses=''",
                f"-c unix_socket_directories='{self.root}'",
                f"-p {_PORT}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=50",
            ]
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "start")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a maintenance database on a PostgreSQL server that lives for the whole session."""
    external = os.environ.get(ENV_DSN)
    if external:
        yield external
        return
    bindir = find_bindir()
    if bindir is None:
        reason = "PostgreSQL server binaries not found (run scripts/ensure-postgres)"
        if on_ci():
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    server = PgServer(bindir)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    try:
        yield server.dsn
    finally:
        server.stop()


_names = itertools.count(1)


@pytest.fixture
def pg_db(pg_dsn: str) -> Iterator[str]:
    """DSN of a new, empty database, dropped (with any connections left open) after the test."""
    name = f"parley_test_{os.getpid()}_{next(_names)}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(pg_dsn, dbname=name)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
