"""Several API workers on one PostgreSQL database with exactly one dispatcher.

A station runs `parley station run --workers 2` on a real PostgreSQL server (tests/pgserver.py),
next to a peer on SQLite. Messages go in through both workers; then, with the peer stopped so that
they stay queued, the dispatcher's process is SIGKILLed: another worker must take the lock and
deliver everything, each message exactly once and in order, while the supervisor replaces the
dead worker. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from parley.cli.client import Api
from parley.cli.demo import free_port, init, start
from parley.station.config import Timings, load_config, load_token, save_config
from parley.station.metrics import HOLDER_KEY
from parley.store.postgres import DISPATCHER_LOCK, lock_key
from tests.net import parley, wait

pytest_plugins = ["tests.pgserver"]  # the pg_dsn and pg_db fixtures

FAST = Timings(retry_base_ms=100, retry_max_ms=1_000, heartbeat_ms=1_000)


def url_of(dsn: str) -> str:
    """A libpq key=value DSN as the postgresql:// URL station.json takes."""
    params = {k: v for k, v in psycopg.conninfo.conninfo_to_dict(dsn).items() if v is not None}
    db = str(params.pop("dbname", ""))
    return f"postgresql:///{quote(db)}?{urlencode({k: str(v) for k, v in params.items()})}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child stays a zombie until the supervisor reaps it: not alive either.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Workers:
    """Station A: `parley station run --workers 2` on PostgreSQL, reached over fresh connections
    so the kernel spreads requests over the workers; each answer names its worker."""

    def __init__(self, data: Path, dsn: str, log: Path) -> None:
        self.data, self.dsn, self.log = data, dsn, log
        cfg = load_config(data)
        self.base = f"http://{cfg.host}:{cfg.port}"
        self.auth = {"Authorization": f"Bearer {load_token(data)}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parley.cli", "station", "run", "--data", str(data),
             "--workers", "2", "--log-format", "json"],
            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> tuple[int, httpx.Response]:
        """One request on a new connection: (worker pid, response)."""
        headers = {**self.auth, **(headers or {})}
        r = httpx.request(method, self.base + path, headers=headers, timeout=30, **kw)
        r.raise_for_status()
        return int(r.headers["x-parley-worker"]), r

    def api(self, method: str, path: str, **kw: Any) -> Any:
        return self.call(method, "/api/v1" + path, **kw)[1].json()

    def up(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            self.call("GET", "/api/v1/station")
        except httpx.HTTPError:
            return False
        return True

    def holder(self) -> int | None:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = %s", (HOLDER_KEY,)).fetchone()
        return int(json.loads(row[0])["pid"]) if row else None

    def lock_holders(self) -> int:
        """Sessions holding the dispatcher lock now: an advisory lock on one bigint key, which
        pg_locks shows as its high and low 32 bits."""
        k = lock_key(DISPATCHER_LOCK) & 0xFFFF_FFFF_FFFF_FFFF
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND objsubid = 1 AND classid::bigint = %s AND objid::bigint = %s AND database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())",
                (k >> 32, k & 0xFFFF_FFFF),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def scrape(self) -> tuple[int, dict[str, float]]:
        """(worker pid, the samples of /metrics as name{labels} -> value)."""
        pid, r = self.call("GET", "/metrics")
        samples = {}
        for fam in text_string_to_metric_families(r.text):
            for smp in fam.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(smp.labels.items()))
                samples[f"{smp.name}{{{labels}}}"] = smp.value
        return pid, samples


class Peer:
    """Station B: one `parley station run` on SQLite that the test stops and starts again."""

    def __init__(self, data: Path, log: Path) -> None:
        self.data, self.log = data, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = Api(data)

    def start(self) -> None:
        self.proc = start(self.data, self.log)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@pytest.fixture
def stations(tmp_path: Path, pg_db: str) -> Iterator[tuple[Workers, Peer]]:
    a_dir, b_dir = tmp_path / "south", tmp_path / "north"
    parley("station", "init", "--name", "South", "--listen", f"127.0.0.1:{free_port()}",
           "--database", url_of(pg_db), data=a_dir)  # fmt: skip
    cfg = load_config(a_dir)
    cfg.timings = FAST
    save_config(a_dir, cfg)
    init(b_dir, "North", "ko", FAST)
    a = Workers(a_dir, pg_db, tmp_path / "south.log")
    b = Peer(b_dir, tmp_path / "north.log")
    try:
        wait(a.up, what="the workers to answer")
        b.start()
        yield a, b
    finally:
        b.stop()
        stop(a.proc)
    # Every line the supervisor, the workers and the SQLite station wrote is one JSON object.
    for log in (a.log, b.log):
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            assert {"ts", "level", "logger", "message", "pid"} <= set(rec), line


def test_killing_the_dispatcher_hands_it_to_another_worker(
    stations: tuple[Workers, Peer],
) -> None:
    a, b = stations
    b_id = b.api.get("/station")["station"]
    b.api.post("/peers", json={"invitation": a.api("GET", "/invitation")["invitation"]})
    a.api("POST", "/peers", json={"invitation": b.api.get("/invitation")["invitation"]})
    wait(lambda: a.holder() is not None, what="a worker to take the dispatcher lock")
    assert a.lock_holders() == 1

    req = {"kind": "hotline", "title": "Hotline", "peers": [b_id]}
    ch = a.api("POST", "/channels", json=req)["channel"]
    wait(lambda: any(c["channel"] == ch for c in b.api.get("/channels")), what="the proposal")
    b.api.post(f"/channels/{ch}/consent")
    wait(lambda: a.api("GET", f"/channels/{ch}")["state"] == "open", what="South to see it open")

    sent: list[str] = []
    workers: set[int] = set()

    def send(text: str) -> int:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        body = {"text": text, "lang": "en"}
        pid, _ = a.call("POST", f"/api/v1/channels/{ch}/messages", json=body, headers=headers)
        workers.add(pid)
        sent.append(text)
        return pid

    def pending() -> int:
        peers = a.api("GET", "/status")["peers"]
        return int(next(p["pending"] for p in peers if p["station"] == b_id))

    # Phase 1: sends through both workers reach North, whichever worker holds the dispatcher.
    while len(sent) < 10 or (len(workers) < 2 and len(sent) < 60):
        send(f"first {len(sent)}")
    assert len(workers) == 2, "the kernel gave every connection to one worker"
    for i in range(5):
        b.api.post(f"/channels/{ch}/messages", json={"text": f"from North {i}", "lang": "ko"})
    wait(lambda: pending() == 0, what="phase 1 to be receipted")
    wait(
        lambda: len(a.api("GET", f"/channels/{ch}/messages")) == 2 + len(sent) + 5,
        what="North's messages at South",
    )

    # Phase 2: with North down the messages stay queued; then the dispatcher's process dies.
    b.stop()
    for i in range(10):
        send(f"second {i}")
    assert pending() == 10
    killed = a.holder()
    assert killed in workers
    os.kill(killed, signal.SIGKILL)
    wait(
        lambda: (h := a.holder()) not in (None, killed) and alive(h),
        what="another worker to take the dispatcher over",
    )
    assert a.lock_holders() == 1
    b.start()
    wait(lambda: pending() == 0, what="the new dispatcher to deliver the queue")

    mine = [m for m in b.api.get(f"/channels/{ch}/messages") if m["sender"] != b_id]
    assert [m["seq"] for m in mine] == list(range(1, len(mine) + 1))
    texts = [m["body"]["text"] for m in mine if m["body"].get("type") == "text"]
    assert texts == sent  # every message, exactly once, in the order sent
    digest = a.api("GET", f"/channels/{ch}/transcript")["digest"]
    assert b.api.get(f"/channels/{ch}/transcript")["digest"] == digest

    # The supervisor replaced the dead worker, and any worker reports the same metrics.
    answers: dict[int, dict[str, float]] = {}
    deliveries = f"parley_deliveries_total{{peer=North,peer_id={b_id}}}"
    wait(lambda: a.scrape()[1].get(deliveries) == len(mine), what="the deliveries to settle")
    for _ in range(60):
        pid, samples = a.scrape()
        answers[pid] = samples
        if len(answers) == 2:
            break
    assert len(answers) == 2 and killed not in answers
    # Link round trips and alarms move with every heartbeat; the store-derived counts do not.
    first, second = (
        {k: v for k, v in samples.items() if k.startswith(("parley_deliver", "parley_queue"))}
        for samples in answers.values()
    )
    assert first == second
    assert first[f"parley_queue_depth{{peer=North,peer_id={b_id}}}"] == 0

    # The database drops every connection of the station (a restart, a failover): each worker
    # notices within a second and exits, the supervisor starts fresh ones, delivery resumes.
    with psycopg.connect(a.dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
            " current_database() AND pid <> pg_backend_pid() AND application_name LIKE 'parley%'"
        )
    took: list[int] = []

    def send_again() -> bool:
        try:
            took.append(send("after the database dropped every connection"))
        except httpx.HTTPError:
            return False
        return True

    wait(send_again, what="a fresh worker to take a send")
    assert took[0] not in answers  # not a worker from before
    wait(lambda: pending() == 0, what="the send to be receipted")
    mine = [m for m in b.api.get(f"/channels/{ch}/messages") if m["sender"] != b_id]
    assert [m["body"]["text"] for m in mine if m["body"].get("type") == "text"] == sent


def test_a_sqlite_station_refuses_several_workers(tmp_path: Path) -> None:
    data = tmp_path / "solo"
    init(data, "Solo", "en")
    res = parley("station", "run", "--workers", "2", data=data, ok=False)
    assert res.returncode == 1
    assert "error [invalid_request]: --workers above 1 needs PostgreSQL" in res.stderr
    assert parley("station", "run", "--workers", "0", data=data, ok=False).returncode != 0
