"""Running a station: open the data directory, wire the parts, serve HTTP, run background tasks.

- One process serves HTTP and runs the duties (dispatcher, key rotation, scheduled tick). That is
  the default, and the only choice on SQLite.
- On PostgreSQL, `--workers N` starts N worker processes under a supervisor that restarts any
  that dies. Each binds the listening port with SO_REUSEPORT, so the kernel spreads incoming
  connections over the live workers and a dead one simply stops receiving them. Each opens its
  own store and serves both APIs.
- On PostgreSQL the duties run only in the process holding the dispatcher lock, a session-level
  advisory lock (`PostgresStore.try_dispatcher_lock`) that every worker tries to take every
  LEAD_POLL_S; the lock dies with its holder's connection, so a killed holder is replaced within
  about LEAD_POLL_S. Two dispatchers can overlap only for that long after a holder loses its
  connection, and that is harmless: pushes are idempotent at the receiver.
- A send commits on whichever worker took the request; its transaction also issues
  `NOTIFY parley_queued`, which PostgreSQL delivers at commit (and only if it commits) to the
  holder's LISTEN connection, waking its dispatcher at once. If that connection is down, the
  dispatcher still finds the envelope on its next heartbeat round.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import psycopg
import uvicorn

from parley.app.build import build_app
from parley.app.conn import quiet_accept_errors, server_config
from parley.errors import Code, LocalError, ParleyError
from parley.protocol.request import HEADER, parse_auth, sign_request
from parley.station import boot, handovers, logs, metrics, notify, selfaudit, vigil
from parley.station.boot import open_station
from parley.station.config import Config, check_private, load_token
from parley.station.dispatcher import Dispatcher
from parley.station.node import Station
from parley.store.postgres import PostgresStore
from parley.transport.base import Transport
from parley.transport.bundle import SCHEME as FOLDER
from parley.transport.bundle import BundleTransport
from parley.transport.http import HttpTransport
from parley.transport.routing import ByScheme

log = logging.getLogger("parley.station")

LEAD_POLL_S = 1.0
QUEUED = "parley_queued"  # the NOTIFY channel a send signals on
EXIT_STARTUP = 78  # sysexits' EX_CONFIG: a worker could not start, and restarting will not help
EXIT_DB_LOST = 75  # sysexits' EX_TEMPFAIL: the database connection died; a restart may help
RESTART_MIN_S, RESTART_MAX_S, STABLE_S = 0.5, 30.0, 30.0


async def _rotation(station: Station) -> None:
    while True:
        await asyncio.sleep(60)
        station.rotate_prekeys()


async def _ticker(station: Station) -> None:
    while True:
        await asyncio.sleep(1)
        await asyncio.to_thread(station.tick)


def _duties(station: Station, dispatcher: Dispatcher) -> list[Coroutine[Any, Any, None]]:
    """The background work that exactly one process of a station runs."""
    return [
        dispatcher.run(),
        _rotation(station),
        _ticker(station),
        selfaudit.run(station),  # the whole store re-checked, on start and periodically
        notify.run(station),  # webhooks and e-mail, off the event loop
    ]


# --- one process ---------------------------------------------------------------------------------
class Duties:
    """Starts and stops the duties; on PostgreSQL, only while this process holds the lock."""

    def __init__(self, station: Station, client: Transport) -> None:
        self.station = station
        self.client = client
        self.tasks: list[asyncio.Task[None]] = []
        store = station.store
        self.pg = store if isinstance(store, PostgresStore) else None
        # A send on this worker must wake the dispatcher wherever it runs.
        self.idle_hook = self._notify if self.pg else station.on_queued
        station.on_queued = self.idle_hook

    def _notify(self) -> None:
        # Runs inside the sending transaction: PostgreSQL delivers it at commit, if it commits.
        self.station.store.q(f"NOTIFY {QUEUED}")

    async def start(self) -> None:
        st = self.station
        await asyncio.to_thread(metrics.record_holder, st)
        await asyncio.to_thread(vigil.begin, st)
        dispatcher = Dispatcher(st, self.client)
        loop = asyncio.get_running_loop()
        poke = st.on_queued  # the dispatcher's own wake-up, set by its constructor
        scheduled = [False]  # a poke is on its way to the loop: a group of sends needs one

        def poke_now() -> None:
            scheduled[0] = False  # before the poke: a send after this schedules another
            poke()

        def kick() -> None:
            # Sends come from API threads; the dispatcher's event belongs to this loop.
            if not scheduled[0]:
                scheduled[0] = True
                loop.call_soon_threadsafe(poke_now)

        def wake() -> None:
            if self.pg:
                self._notify()
            # Once the send's group has committed: woken earlier, the dispatcher would find the
            # store held by that very commit and wait for it on the event loop.
            st.store.after_commit(kick)

        st.on_queued = wake
        work = _duties(st, dispatcher)
        if self.pg:
            work.append(_listen(self.pg.dsn, poke))
        self.tasks = [asyncio.create_task(w) for w in work]
        log.info("this process runs the dispatcher")

    def failure(self) -> BaseException | None:
        for t in self.tasks:
            if t.done() and not t.cancelled():
                return t.exception() or RuntimeError("a background task returned")
        return None

    async def stop(self) -> None:
        self.station.on_queued = self.idle_hook
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []


async def _listen(dsn: str, poke: Callable[[], None]) -> None:
    """Wake the dispatcher whenever any worker queues an envelope."""
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(
                dsn, autocommit=True, application_name="parley-listen"
            )
            async with conn:
                await conn.execute(f"LISTEN {QUEUED}".encode())
                poke()  # whatever was queued while nobody listened
                async for _ in conn.notifies():
                    poke()
        except psycopg.Error as exc:
            log.warning("listening for queued envelopes failed (%s); retrying", exc)
            await asyncio.sleep(LEAD_POLL_S)


async def _keep(duties: Duties) -> None:
    """One process, no lock: run the duties, and start them afresh if one fails."""
    try:
        while True:
            if not duties.tasks:
                await duties.start()
            elif (exc := duties.failure()) is not None:
                log.error("a background task failed; starting them again", exc_info=exc)
                await duties.stop()
            await asyncio.sleep(LEAD_POLL_S)
    finally:
        await duties.stop()


async def _lead(duties: Duties, store: PostgresStore, db_lost: Callable[[], None]) -> None:
    """Try the dispatcher lock every LEAD_POLL_S; run the duties exactly while holding it.

    The store does not reconnect: once its connection is gone (a database restart or failover),
    `db_lost` ends this process so that a fresh one (the supervisor's, or the service manager's)
    starts over."""
    try:
        while True:
            if not await asyncio.to_thread(_connected, store):
                log.error("the database connection is gone; this process stops to start afresh")
                await duties.stop()
                db_lost()
                return
            try:
                held = await asyncio.to_thread(store.try_dispatcher_lock)
                if held and not duties.tasks:
                    await duties.start()
                elif not held and duties.tasks:
                    log.warning("lost the dispatcher lock; stopping the dispatcher here")
                    await duties.stop()
                elif duties.tasks and (exc := duties.failure()) is not None:
                    log.error("a background task failed; handing the dispatcher on", exc_info=exc)
                    await duties.stop()
                    await asyncio.to_thread(store.release_dispatcher_lock)
            except psycopg.Error as exc:
                log.warning("cannot reach PostgreSQL for the dispatcher lock: %s", exc)
            await asyncio.sleep(LEAD_POLL_S)
    finally:
        await duties.stop()
        store.release_dispatcher_lock()


def _connected(store: PostgresStore) -> bool:
    try:
        store.q("SELECT 1")
    except psycopg.Error:
        return not (store.conn.closed or store.conn.broken)
    return True


def freeze_heap() -> None:
    """Take what start-up built (modules, the app, its routes and models: about 100,000 objects)
    out of the garbage collector's sight. A full collection walked all of it, 50 to 185 ms with
    every request waiting, and one during a run of `bench/latency.py` was its p99 (issue 14).
    The price: a start-up object that later becomes cyclic garbage is never reclaimed; start-up
    state lives as long as the process, so that is little."""
    gc.collect()
    gc.freeze()


class _Observed:
    """ASGI wrapper: logs failed requests with their peer or channel, and with several workers
    names the one that answered (`X-Parley-Worker`, its pid)."""

    def __init__(self, app: Any, worker: bool) -> None:
        self.app = app
        self.header = [(b"x-parley-worker", str(os.getpid()).encode())] if worker else []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_(msg: Any) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
                if self.header:
                    msg = {**msg, "headers": [*msg.get("headers", []), *self.header]}
            await send(msg)

        with logs.context(**_request_fields(scope)):
            await self.app(scope, receive, send_)
            if status >= 400:
                level = logging.ERROR if status >= 500 else logging.WARNING
                log.log(level, "%s %s answered %d", scope["method"], scope["path"], status)


def _request_fields(scope: Any) -> dict[str, str]:
    path: str = scope.get("path", "")
    parts = path.split("/")
    if path.startswith("/peer/"):
        for k, v in scope.get("headers", []):
            if k.decode("latin-1").lower() == HEADER.lower():
                with contextlib.suppress(ParleyError, UnicodeDecodeError):
                    return {"peer": parse_auth(v.decode()).station}
        return {}
    if len(parts) > 4 and parts[1:4] == ["api", "v1", "channels"]:
        return {"channel": parts[4]}
    return {}


def _listener(cfg: Config) -> socket.socket:
    """A socket on the station's address that other workers of this station may bind too."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        cfg.host, cfg.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(addr)
    return sock


def _serve_one(data: Path, worker: bool) -> None:
    try:
        station = open_station(data)
        sock = _listener(station.cfg) if worker else None
    except (ParleyError, OSError) as exc:
        if not worker:
            raise
        log.error("worker cannot start: %s", getattr(exc, "message", exc))
        sys.exit(EXIT_STARTUP)
    except psycopg.Error as exc:
        if not worker:
            raise
        log.error("worker cannot reach PostgreSQL: %s", exc)  # the supervisor tries again
        sys.exit(1)
    logs.bind(station=station.cfg.name, station_id=station.id)
    token = load_token(data)
    client = _transport(station)
    station.on_alarm = _log_alarm(station.on_alarm)
    duties = Duties(station, client)
    app = build_app(station, token)

    @contextlib.asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        lead = _lead(duties, duties.pg, stop_for_db) if duties.pg else _keep(duties)
        tasks = [asyncio.create_task(lead)]
        freeze_heap()
        log.info("station %s (%s) serving on %s", station.cfg.name, station.id, station.cfg.listen)
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await duties.stop()
            await client.close()
            station.receiver.close()
            station.store.close()

    app.router.lifespan_context = lifespan
    quiet_accept_errors()
    config = server_config(_Observed(app, worker), station.cfg)
    server = uvicorn.Server(config)
    db_lost = False

    def stop_for_db() -> None:
        nonlocal db_lost
        db_lost = server.should_exit = True

    server.run(sockets=[sock] if sock else None)
    if db_lost:
        sys.exit(EXIT_DB_LOST)


def _transport(station: Station) -> Transport:
    """HTTP to peers at their addresses; the shared folders station.json names (`folders`) for
    the peers reached through one (the dispatcher gives those a `file://` address)."""
    http = HttpTransport(
        lambda method, path, body: sign_request(
            station.identity, station.id, method, path, body, station.clock()
        ),
        extra=_handover_header(station),
    )

    def station_at(addr: str) -> str | None:
        for p in station.store.list_peers():
            folder = station.cfg.folder_for(p.station, p.name)
            if folder and addr == FOLDER + folder:
                return p.station
        return None

    def keys_of(peer: str, ts: int) -> list[bytes]:
        return station.signer_keys(peer, ts) if station.store.get_peer(peer) else []

    # The key is read at each write, so a rotation (station/handovers.py) needs no restart.
    folders = BundleTransport(
        lambda: station.identity, station.id, station.clock, station_at, keys_of, station.prekeys
    )
    return ByScheme(http, {FOLDER: folders})


def _log_alarm(then: Callable[[str, str], None]) -> Callable[[str, str], None]:
    def on_alarm(kind: str, message: str) -> None:
        log.warning("alarm %s: %s", kind, message, extra={"alarm": kind})
        then(kind, message)

    return on_alarm


# --- several workers -----------------------------------------------------------------------------
def _die_with_parent() -> None:
    """In a worker, before exec: be sent SIGTERM if the supervisor dies, even by SIGKILL, so no
    orphan keeps serving or holding the dispatcher lock."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _supervise(data: Path, workers: int, log_format: str, log_level: str) -> None:
    station = open_station(data)  # migrations and the first key happen once, here
    cfg = station.cfg
    logs.bind(station=cfg.name, station_id=station.id)
    multi = isinstance(station.store, PostgresStore)
    station.store.close()
    if not multi:
        raise LocalError(
            Code.INVALID_REQUEST,
            "--workers above 1 needs PostgreSQL: a SQLite station runs as one process; set"
            ' "database": "postgresql://…" in station.json (or `parley station init --database`)',
        )
    try:
        _listener(cfg).close()
    except OSError as exc:
        raise LocalError(
            Code.INVALID_REQUEST, f"cannot listen on {cfg.listen}: {exc.strerror}"
        ) from exc
    argv = [
        sys.executable, "-m", "parley.cli", "station", "run", "--data", str(data),
        "--log-format", log_format, "--log-level", log_level, "--worker",
    ]  # fmt: skip
    stopping = False

    def stop(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    procs: dict[int, subprocess.Popen[bytes]] = {}
    started: dict[int, float] = {}
    delay = dict.fromkeys(range(workers), RESTART_MIN_S)
    due = dict.fromkeys(range(workers), 0.0)
    log.info("supervising %d workers on %s", workers, cfg.listen)
    try:
        while not stopping:
            now = time.monotonic()
            for slot in range(workers):
                p = procs.get(slot)
                if p is not None and (rc := p.poll()) is not None:
                    del procs[slot]
                    if rc == EXIT_STARTUP:
                        raise LocalError(
                            Code.INVALID_REQUEST, "a worker could not start; see its log above"
                        )
                    ran = now - started[slot]
                    delay[slot] = (
                        RESTART_MIN_S if ran >= STABLE_S else min(delay[slot] * 2, RESTART_MAX_S)
                    )
                    due[slot] = now + delay[slot]
                    log.warning(
                        "worker %d exited (%s) after %.1f s; restarting in %.1f s",
                        p.pid, rc, ran, delay[slot], extra={"worker": slot},
                    )  # fmt: skip
                if slot not in procs and now >= due[slot]:
                    procs[slot] = subprocess.Popen(
                        argv, env={**os.environ, "PARLEY_WORKER": str(slot)},
                        preexec_fn=_die_with_parent,
                    )  # fmt: skip
                    started[slot] = now
            time.sleep(0.1)
    finally:
        for p in procs.values():
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.info("all workers stopped")


def serve(
    data: Path,
    workers: int = 1,
    log_format: str = "auto",
    log_level: str = "info",
    worker: bool = False,
) -> None:
    """Run the station in the foreground until SIGTERM or SIGINT."""
    if log_format not in logs.FORMATS or log_level not in logs.LEVELS:
        raise LocalError(
            Code.INVALID_REQUEST,
            f"--log-format is one of {', '.join(logs.FORMATS)};"
            f" --log-level one of {', '.join(logs.LEVELS)}",
        )
    chosen = logs.configure(log_format, log_level)
    os.umask(0o077)  # the database, its -wal/-shm files and exports: this user's only
    check_private(data)
    if worker:
        logs.bind(worker=int(os.environ.get("PARLEY_WORKER", "0")))
        _serve_one(data, worker=True)
    elif workers < 1:
        raise LocalError(Code.INVALID_REQUEST, "--workers must be at least 1")
    else:
        with boot.in_use(data):  # one `station run` per data directory; its workers share it
            if workers > 1:
                _supervise(data, workers, chosen, log_level)
            else:
                _serve_one(data, worker=False)


HANDOVER_REFRESH_S = 1.0
HANDOVER_STALE_S = 10.0  # kept this much longer at most while the store is held elsewhere


def _handover_header(station: Station) -> Callable[[], dict[str, str]]:
    """The Parley-Handover header for each request to a peer, read from the store at most once
    a second, and at once after this process changed its key: it is asked on the event loop,
    where a store read waits for the store's lock while a commit is on its way to disk, once
    per push (issue 14). While another thread holds the store (a group of sends), the header
    read for the same key is sent a while longer (HANDOVER_STALE_S) rather than hold the loop
    until that group has committed: it changes only when the key does (read then, waiting if
    need be), when a hand-over's grace ends, and with the prekeys, which overlap."""
    memo: list[Any] = [None, 0.0, {}]  # the key it was read for, until when, the headers
    lock = station.store.lock

    def extra() -> dict[str, str]:
        now = time.monotonic()
        if memo[0] is not station.identity or now >= memo[1]:
            may_wait = memo[0] is not station.identity or now >= memo[1] + HANDOVER_STALE_S
            if not lock.acquire(blocking=may_wait):
                return dict(memo[2])
            try:
                value = handovers.header(station)
            finally:
                lock.release()
            memo[:] = [station.identity, now + HANDOVER_REFRESH_S, {}]
            if value:
                memo[2] = {handovers.HEADER: value}
        return dict(memo[2])

    return extra
