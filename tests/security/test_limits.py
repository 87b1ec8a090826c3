"""Issue 13 §4 (and §3's X-Forwarded-For): limits no client or peer can exhaust.

Each test beats the figure the issue measured, against real station processes on loopback
(tests/net.py's way of starting them) or the real app and store:
- a 512 MiB login body (issue: 2.2 GB peak) is refused with 413 before it is read;
- 5,000 slow connections (issue: never timed out, fds exhausted, 230 MB of log in 40 s) delay
  neither a peer push nor an operator request;
- a peer answering a heartbeat with 1.5 GiB (issue: 3.2 GB on every heartbeat) is cut off;
- a peer's envelopes for unknown channels (issue: 120 MB held in 6 s) are not held, and what a
  peer may hold is bounded, with one alarm;
- the data directory and its files are private (issue: 0755 / 0644), and a station refuses to
  run from an open one;
- a local client's fake X-Forwarded-For does not move the login lockout to another address.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import secrets
import select
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from parley.app.build import build_app
from parley.app.conn import RateLimited
from parley.cli.demo import free_port, init, stop
from parley.domain import channels
from parley.protocol.encoding import b64e
from parley.protocol.envelope import seal
from parley.protocol.request import HEADER, sign_request
from parley.station.config import Limits, Timings, load_config, load_token, save_config
from parley.station.node import Station
from tests.net import LIVENESS_S, Stations, parley, wait
from tests.pair import hotline, introduce, make_station

MiB = 1024 * 1024


# --- real station processes ----------------------------------------------------------------------
class Proc:
    """`parley station run` in its own process group, as tests/net.py starts one."""

    def __init__(
        self, tmp: Path, name: str = "South", nofile: int | None = None, **cfg: Any
    ) -> None:
        self.data = tmp / name.lower()
        init(self.data, name, "en", Timings(heartbeat_ms=500, retry_max_ms=1000))
        c = load_config(self.data)
        for k, v in cfg.items():
            setattr(c, k, v)
        save_config(self.data, c)
        self.cfg = c
        self.log = tmp / f"{name.lower()}.log"
        self.token = load_token(self.data)
        self.base = f"http://{c.listen}"

        def limit_files() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with self.log.open("ab") as sink:
            self.p = subprocess.Popen(
                [sys.executable, "-m", "parley.cli", "station", "run", "--data", str(self.data)],
                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=limit_files,
            )  # fmt: skip
        wait(self._up, what="the station to start")

    def _up(self) -> bool:
        assert self.p.poll() is None, self.log.read_text()
        try:
            return self.api("GET", "/station").status_code == 200
        except httpx.HTTPError:
            return False

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return httpx.request(
            method, self.base + "/api/v1" + path, headers=headers, timeout=30, **kw
        )

    def status(self, field: str) -> int:
        """A /proc/PID/status figure of the station process, in KiB (VmHWM: peak RSS)."""
        for line in Path(f"/proc/{self.p.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(field)

    def close(self) -> None:
        stop(self.p)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.close()


def _now() -> int:
    return time.time_ns() // 1_000_000


def _admitted_peer(tmp: Path, station: Proc, url: str = "http://127.0.0.1:9") -> Station:
    """An in-memory station (real keys, real SQLite) that `station` knows as a peer at `url`."""
    peer = make_station(tmp / "peer", "Hostile", "en", _now)  # type: ignore[arg-type]
    peer.cfg.public_url = url
    r = station.api("POST", "/peers", json={"invitation": peer.invitation().encode()})
    assert r.status_code == 200, r.text
    return peer


# --- 1. request bodies ---------------------------------------------------------------------------
def _raw_request(
    host: str, port: int, head: bytes, chunked: bool, total: int
) -> tuple[int, dict[str, Any], int]:
    """Send `head`, then up to `total` body bytes generated as they go (never held), until the
    station answers or closes. Returns (status, JSON answer, body bytes the kernel took)."""
    sock = socket.create_connection((host, port), timeout=30)
    sock.sendall(head)
    piece = b"x" * MiB
    frame = (b"%x\r\n" % len(piece)) + piece + b"\r\n" if chunked else piece
    sent = 0
    try:
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is there: it came before the body was read
            sock.sendall(frame)
            sent += len(piece)
    except OSError:
        pass  # the station closed the connection
    answer = b""
    sock.settimeout(30)
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except OSError:
        pass
    sock.close()
    head_part, _, body = answer.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1])
    return status, json.loads(body), sent


def test_a_512_mib_login_body_is_refused_before_it_is_read(
    tmp_path: Path, procs: list[Proc]
) -> None:
    st = Proc(tmp_path)
    procs.append(st)
    host, port = st.cfg.host, st.cfg.port
    before = st.status("VmHWM")
    cases = 0
    for chunked in (False, True):
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % (512 * MiB)
        head = (
            b"POST /api/v1/login HTTP/1.1\r\nHost: station\r\nContent-Type: application/json\r\n"
            + framing + b"\r\n\r\n"
        )  # fmt: skip
        status, answer, sent = _raw_request(host, port, head, chunked, 512 * MiB)
        cases += 1
        print(f"chunked={chunked}: {status} {answer['code']}; body bytes sent {sent // MiB} MiB")
        assert (status, answer["code"]) == (413, "oversized"), answer
        assert sent < 64 * MiB, f"the station read {sent} bytes of the body before refusing"
    after = st.status("VmHWM")
    print(f"station peak RSS (VmHWM) {before // 1024} MiB before, {after // 1024} MiB after")
    assert after - before < 32 * 1024, f"peak RSS grew {after - before} KiB (issue: 2.2 GB)"
    assert st.api("GET", "/station").status_code == 200
    assert cases == 2, f"{cases} cases"


def test_each_route_class_has_its_limit(tmp_path: Path) -> None:
    """At the limit a body goes through to the route; one byte more is 413 `oversized`, whether
    its length is declared or it streams (chunked)."""
    st = make_station(tmp_path / "s", "South", "en", _now)  # type: ignore[arg-type]
    lim = Limits(
        anonymous_body_bytes=1000, console_body_bytes=2000, operator_body_bytes=3000,
        upload_body_bytes=4000, peer_body_bytes=5000,
    )  # fmt: skip
    st.cfg.limits = lim
    client = TestClient(build_app(st, "tok"))
    bearer = {"Authorization": "Bearer tok", "Content-Type": "application/json"}
    anon = {"Content-Type": "application/json"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    peer = make_station(tmp_path / "p", "North", "ko", _now)  # type: ignore[arg-type]
    introduce(st, peer)
    path = "/peer/v1/envelopes"
    signed = {HEADER: sign_request(peer.identity, peer.id, "POST", path, b"", _now())}
    routes = [
        ("anonymous", "/api/v1/login", anon),
        ("anonymous", "/api/v1/login", bearer),  # the login route is small even with a token
        ("anonymous", "/api/v1/channels", anon),  # no credential at all
        ("anonymous", "/console/login", form),
        ("operator", "/api/v1/channels", bearer),
        ("console", "/console/alarms/1/clear", {**form, "Cookie": "parley_session=x"}),
        ("upload", "/api/v1/bundles/import", bearer),
        ("peer", "/peer/v1/envelopes", signed),  # a known peer's header (the body is read)
    ]
    cases = 0
    for cls, path, headers in routes:
        limit = getattr(lim, f"{cls}_body_bytes")
        for size in (limit, limit + 1):
            for streamed in (False, True):
                body = b"{" * size
                content: Any = iter([body[: size // 2], body[size // 2 :]]) if streamed else body
                r = client.post(path, content=content, headers=headers)
                cases += 1
                if size > limit:
                    assert (r.status_code, r.json()["code"]) == (413, "oversized"), (cls, path)
                    assert str(limit) in r.json()["message"]
                else:
                    assert r.status_code != 413, (cls, path, size, r.text)
    print(f"{cases} cases")
    assert cases == len(routes) * 4, f"{cases} cases"


def test_bodies_with_made_up_credentials_share_one_budget(
    tmp_path: Path, procs: list[Proc]
) -> None:
    """A made-up token buys the operator class, but all bodies being received share one budget:
    the request that would pass it is answered 503 `busy`; once another ends, there is room."""
    lim = Limits(operator_body_bytes=1_000_000, bodies_in_flight_bytes=2_000_000)
    st = Proc(tmp_path, limits=lim)
    procs.append(st)
    head = (
        b"POST /api/v1/channels HTTP/1.1\r\nHost: station\r\nAuthorization: Bearer made-up\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    )

    def start(part: int) -> socket.socket:
        s = socket.create_connection((st.cfg.host, st.cfg.port), timeout=30)
        s.sendall(head + b"{" * part)
        return s

    def answer(s: socket.socket) -> tuple[int, str]:
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        top, _, body = data.partition(b"\r\n\r\n")
        return int(top.split(b" ", 2)[1]), json.loads(body)["code"]

    first, second = start(900_000), start(900_000)
    # Both bodies are being received (1.8 MB of the 2 MB budget) once the station has read every
    # byte of them from its sockets (less what its HTTP layer buffers, well under the 0.2 MB left).
    wait(lambda: _unread(st.cfg.port) == 0, what="the station to read both bodies")
    third_sock = start(0)
    for _ in range(60):  # 16 KB at a time, so the station has read all of it when it answers
        if select.select([third_sock], [], [], 0.01)[0]:
            break
        third_sock.sendall(b"{" * 16_000)
    third = answer(third_sock)
    first.close()
    deadline = time.monotonic() + LIVENESS_S
    while True:  # until the station has seen the first end (a moment)
        after = answer(start(1_000_000))  # the whole body: read, then refused as not JSON
        if after != (503, "busy") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    second.close()
    print(f"4 requests: two in flight; the third {third}; after the first ended {after}")
    assert third == (503, "busy")
    assert after == (422, "invalid_request")
    assert st.api("GET", "/station").status_code == 200


# --- 2. slow connections -------------------------------------------------------------------------
HEAD = b"GET /api/v1/status HTTP/1.1\r\nHost: station\r\nX-Slow: "


class Slowloris:
    """`n` connections that each send one more byte of a request head every `every_s` seconds,
    re-opened when the station closes them; runs until stop() (bounded by `for_s`)."""

    def __init__(self, host: str, port: int, n: int, every_s: float, for_s: float) -> None:
        self.addr, self.n, self.every_s, self.for_s = (host, port), n, every_s, for_s
        self.socks: list[socket.socket | None] = [None] * n
        self.pos = [0] * n  # how much of HEAD each has sent
        self.closed_by_station = 0
        self.refused = 0
        self.open_now = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, i: int) -> None:
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect_ex(self.addr)
        except OSError:
            self.refused += 1
            s.close()
            return
        self.socks[i] = s
        self.pos[i] = 0

    def _lost(self, i: int, s: socket.socket) -> None:
        self.closed_by_station += 1
        s.close()
        self._open(i)

    def _run(self) -> None:
        end = time.monotonic() + self.for_s
        for i in range(self.n):
            self._open(i)
        step = 0
        while not self.done.is_set() and time.monotonic() < end:
            # One byte to a quarter of the connections each every_s/4: each gets one every every_s.
            for i in range(step % 4, self.n, 4):
                s = self.socks[i]
                if s is None:
                    self._open(i)
                    continue
                k = self.pos[i]
                try:
                    if s.recv(1, socket.MSG_DONTWAIT) == b"":
                        raise ConnectionResetError  # the station closed it
                except BlockingIOError:
                    try:
                        s.send(HEAD[k : k + 1] if k < len(HEAD) else b"a")
                        self.pos[i] += 1
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._lost(i, s)
                except OSError:
                    self._lost(i, s)
            self.open_now = sum(1 for s in self.socks if s is not None)
            step += 1
            self.done.wait(self.every_s / 4)

    def __enter__(self) -> Slowloris:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.thread.join(30)
        for s in self.socks:
            if s is not None:
                s.close()


def _raise_nofile(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def _established(port: int) -> int:
    """Established TCP connections to `port` on loopback, as the kernel sees them."""
    n = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, state = parts[1], parts[3]
        if state == "01" and int(local.split(":")[1], 16) == port:
            n += 1
    return n


def _unread(port: int) -> int:
    """Bytes sent to `port` on loopback that the listening process has not read yet: those
    waiting in its sockets plus those not yet accepted into them from the senders' sockets."""
    n = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote, state, (tx, rx) = parts[1], parts[2], parts[3], parts[4].split(":")
        if state == "01" and int(local.split(":")[1], 16) == port:
            n += int(rx, 16)
        if state == "01" and int(remote.split(":")[1], 16) == port:
            n += int(tx, 16)
    return n


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    r = fn()
    assert r.status_code == 200, r.text
    return time.perf_counter() - t


def test_5000_slow_connections_delay_neither_a_peer_push_nor_an_operator(
    tmp_path: Path, procs: list[Proc]
) -> None:
    _raise_nofile(12_000)
    # A header deadline of 30 s (not 10): the 5,000 are opened together and so closed together,
    # and while the attacker re-opens them fewer than 5,000 are open. On a loaded machine a 10 s
    # cycle left too few moments with all 5,000 open to take 20 samples (CI got 5 in 60 s).
    st = Proc(tmp_path, limits=Limits(header_timeout_ms=30_000))
    procs.append(st)
    peer = _admitted_peer(tmp_path, st)
    path = "/peer/v1/envelopes"

    def push() -> httpx.Response:
        auth = sign_request(peer.identity, peer.id, "POST", path, b"", _now())
        return httpx.post(st.base + path, content=b"", headers={HEADER: auth}, timeout=30)

    def operator() -> httpx.Response:
        return st.api("GET", "/status")

    header_s = st.cfg.limits.header_timeout_ms / 1000
    pushes: list[float] = []
    ops: list[float] = []
    # The attack lasts until the block ends (for_s only bounds it), so every wait below is a
    # liveness bound, however slow the machine.
    with Slowloris(st.cfg.host, st.cfg.port, 5000, every_s=2.0, for_s=900) as attack:
        wait(lambda: _established(st.cfg.port) >= 5000, what="5,000 connections")
        end = time.monotonic() + 2 * LIVENESS_S
        # Measure only while at least 5,000 slow connections are open at the station (the
        # attacker re-opens those the station closes at their header deadline).
        while len(pushes) < 20 and time.monotonic() < end:
            if _established(st.cfg.port) >= 5000:
                pushes.append(_timed(push))
                ops.append(_timed(operator))
            time.sleep(0.2)
        # Without a header deadline none would ever be closed: the attack keeps trickling.
        wait(
            lambda: attack.closed_by_station >= 5000,
            what="the station to close slow connections at the header deadline",
        )
    print(
        f"{len(pushes)} peer pushes and {len(ops)} operator requests, each with at least 5,000"
        f" slow connections open: push max {max(pushes):.3f} s, median"
        f" {sorted(pushes)[len(pushes) // 2]:.3f} s; operator max {max(ops):.3f} s, median"
        f" {sorted(ops)[len(ops) // 2]:.3f} s; the station closed {attack.closed_by_station}"
        f" slow connections (header deadline {header_s:g} s)"
    )
    # Every push and every operator request was answered (200) while the slow connections held
    # their sockets: starvation would show as a refused or timed-out request. How long each took
    # is a figure (printed above), never asserted: a loaded CI machine sets the time.
    assert len(pushes) == len(ops) == 20, f"{len(pushes)} + {len(ops)} cases"
    assert st.p.poll() is None


def test_connections_beyond_the_file_limit_give_way_and_the_log_stays_small(
    tmp_path: Path, procs: list[Proc]
) -> None:
    """A station allowed 1,024 open files (a common default) keeps its cap below that: 2,000
    slow connections make it close the longest-waiting ones, accept() does not run out of
    descriptors (or, if it ever did, says so a few times, not 230 MB), and requests still get
    through."""
    _raise_nofile(4_000)
    st = Proc(tmp_path, nofile=1024)
    procs.append(st)
    log_before = st.log.stat().st_size
    with Slowloris(st.cfg.host, st.cfg.port, 2000, every_s=2.0, for_s=900) as attack:
        wait(lambda: attack.closed_by_station >= 1000, what="evictions")
        took = [_timed(lambda: st.api("GET", "/status")) for _ in range(20)]
        served = len(took)
        open_at_station = _established(st.cfg.port)
    grown = st.log.stat().st_size - log_before
    text = st.log.read_text()
    print(
        f"{served} requests served (max {max(took):.3f} s); the station closed"
        f" {attack.closed_by_station} connections to stay under its cap; {open_at_station} open;"
        f" its log grew {grown} bytes;"
        f" {text.count('socket.accept() out of system resource')} accept() errors logged"
    )
    assert "max_connections lowered" in text
    accept_errors = text.count("socket.accept() out of system resource")
    assert accept_errors <= 5, f"{accept_errors} accept() errors logged"
    assert grown < 64 * 1024, f"the log grew {grown} bytes (issue: 230 MB in 40 s)"
    assert open_at_station <= 1024
    assert served == 20, f"{served} cases"


def _closed_after(sock: socket.socket, trickle: bytes, bound_s: float) -> float | None:
    """Send `trickle` one byte every 0.25 s (then more of its last byte) until the station
    closes the connection; the seconds that took, or None if it stayed open for `bound_s`."""
    start = time.monotonic()
    sock.setblocking(False)
    k = 0
    while time.monotonic() - start < bound_s:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - start
        except BlockingIOError:
            pass
        except OSError:
            return time.monotonic() - start
        try:
            sock.send(trickle[k : k + 1] or trickle[-1:])
            k += 1
        except BlockingIOError:
            pass
        except OSError:
            return time.monotonic() - start
        time.sleep(0.25)
    return None


@pytest.mark.parametrize(("parser", "loop"), [("httptools", "uvloop"), ("h11", "asyncio")])
def test_every_phase_of_a_connection_has_a_deadline(
    tmp_path: Path, procs: list[Proc], parser: str, loop: str
) -> None:
    """Deadlines count from the start of a phase; bytes that keep trickling do not renew them.
    With either HTTP parser and event loop station.json may choose."""
    lim = Limits(header_timeout_ms=1500, body_timeout_ms=2500, keepalive_timeout_ms=1000)
    st = Proc(tmp_path, limits=lim, http_parser=parser, event_loop=loop)
    procs.append(st)
    addr = (st.cfg.host, st.cfg.port)
    head = b"GET /api/v1/station HTTP/1.1\r\nHost: s\r\nX-Slow: " + b"a" * 400
    body_head = b"POST /api/v1/login HTTP/1.1\r\nHost: s\r\nContent-Length: 1000\r\n\r\n"
    done = b"GET /api/v1/station HTTP/1.1\r\nHost: s\r\n\r\n"
    # Each bound is a liveness bound far above the deadlines: a connection a deadline should
    # have closed, kept open by trickling bytes, is the failure.
    bound = LIVENESS_S
    took: dict[str, float | None] = {}
    took["silent"] = _closed_after(socket.create_connection(addr), b"", bound)
    took["head"] = _closed_after(socket.create_connection(addr), head, bound)
    s = socket.create_connection(addr)
    s.sendall(body_head)
    took["body"] = _closed_after(s, b"{" * 1000, bound)
    s = socket.create_connection(addr)
    s.sendall(done)  # one whole request: answered, then the connection idles
    took["idle"] = _closed_after(s, b"", bound)
    s = socket.create_connection(addr, timeout=LIVENESS_S)
    s.sendall(done)
    assert s.recv(65536).startswith(b"HTTP/1.1 ")  # answered; now a second head, trickled
    took["second head"] = _closed_after(s, head, bound)
    print({k: None if v is None else round(v, 2) for k, v in took.items()})
    assert all(v is not None for v in took.values()), took
    assert len(took) == 5, f"{len(took)} cases"


def _answer_to(addr: tuple[str, int], head: bytes, pieces: int = 1) -> bytes:
    """Send `head` in `pieces` parts, a little apart; the station's first answer (or b"")."""
    with socket.create_connection(addr, timeout=30) as s:
        step = -(-len(head) // pieces)
        try:
            for k in range(0, len(head), step):
                s.sendall(head[k : k + step])
                time.sleep(0.05)
        except OSError:
            pass  # the station closed it before the rest: its answer is read below
        try:
            return s.recv(65536)
        except OSError:
            return b""


@pytest.mark.parametrize(("parser", "loop"), [("httptools", "uvloop"), ("h11", "asyncio")])
def test_a_request_head_is_bounded_with_either_parser(
    tmp_path: Path, procs: list[Proc], parser: str, loop: str
) -> None:
    """A head beyond `limits.header_bytes` gets 400 and a closed connection, whether it comes at
    once, in pieces, or never ends (llhttp bounds nothing itself); one within it is served."""
    st = Proc(tmp_path, limits=Limits(header_bytes=4096), http_parser=parser, event_loop=loop)
    procs.append(st)
    addr = (st.cfg.host, st.cfg.port)
    top = b"GET /api/v1/station HTTP/1.1\r\nHost: s\r\n"
    fits = top + b"X-Pad: " + b"a" * 3000 + b"\r\n\r\n"
    big = top + b"X-Pad: " + b"a" * 6000 + b"\r\n\r\n"
    many = top + b"".join(b"X-%d: a\r\n" % i for i in range(1000)) + b"\r\n"
    endless = top + b"X-Pad: " + b"a" * 64 * 1024  # never finished
    answers = {
        "fits": _answer_to(addr, fits),
        "big": _answer_to(addr, big),
        "big, in pieces": _answer_to(addr, big, pieces=8),
        "many headers": _answer_to(addr, many, pieces=4),
        "endless": _answer_to(addr, endless, pieces=16),
    }
    status = {k: v.split(b"\r\n", 1)[0].decode() for k, v in answers.items()}
    print(status)
    assert status["fits"].startswith("HTTP/1.1 401"), status  # served: no credential
    refused = [k for k in answers if k != "fits"]
    assert all(status[k].startswith("HTTP/1.1 400") for k in refused), status
    assert len(status) == 5, f"{len(status)} cases"
    assert st.p.poll() is None


def test_a_repeated_log_line_is_rate_limited() -> None:
    """The filter on the loggers of accept() and connection errors: 10,000 identical errors give
    at most a handful of lines (the issue saw 230 MB in 40 s)."""
    f = RateLimited(burst=5, period_s=60)
    rec = logging.LogRecord(
        "asyncio", logging.ERROR, "x", 1, "socket.accept() out of system resource", None, None
    )
    passed = sum(f.filter(rec) for _ in range(10_000))
    other = logging.LogRecord("asyncio", logging.ERROR, "x", 1, "another message", None, None)
    assert f.filter(other)
    assert passed == 5, f"{passed} of 10000 cases logged"


# --- 3. what a peer answers ----------------------------------------------------------------------
class HostilePeer:
    """A tiny HTTP server on loopback that answers every request with `size` bytes, generated
    as it sends them, with a Content-Length or chunked, alternately."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        chunked = self.requests % 2 == 1
        self.requests += 1
        conn.settimeout(10)
        try:
            conn.recv(65536)
            framing = (
                b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % self.size
            )
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + framing + b"\r\n\r\n"
            )
            piece = b"[" * MiB
            frame = (b"%x\r\n" % len(piece)) + piece + b"\r\n" if chunked else piece
            for _ in range(self.size // MiB):
                if self.stop.is_set():
                    break
                conn.sendall(frame)
                self.sent += len(piece)
        except OSError:
            pass  # the station hung up: what we want
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def test_a_peer_answering_a_heartbeat_with_1_5_gib_is_cut_off(
    tmp_path: Path, procs: list[Proc]
) -> None:
    hostile = HostilePeer(1536 * MiB)
    try:
        st = Proc(tmp_path)
        procs.append(st)
        before = st.status("VmHWM")
        peer = _admitted_peer(tmp_path, st, hostile.url)
        wait(lambda: hostile.requests >= 6, what="six heartbeats to the peer")
        link = next(x for x in st.api("GET", "/links").json() if x["station"] == peer.id)
        after = st.status("VmHWM")
    finally:
        hostile.close()
    print(
        f"{hostile.requests} answers of 1.5 GiB offered; the station read about"
        f" {hostile.sent // MiB} MiB in all; peak RSS {before // 1024} -> {after // 1024} MiB;"
        f" link {link['state']}: {link['last_error']}"
    )
    assert "exceeds" in (link["last_error"] or ""), link
    assert link["state"] != "up", link
    assert after - before < 128 * 1024, f"peak RSS grew {after - before} KiB (issue: 3.2 GB)"
    assert hostile.requests >= 6, f"{hostile.requests} cases"


# --- 4. held envelopes ---------------------------------------------------------------------------
def test_envelopes_for_unknown_channels_are_not_held(tmp_path: Path) -> None:
    """The issue's attack: seq=2 on random channel ids from an admitted peer."""
    _, _, a, b, _ = hotline(tmp_path)
    recipients = [a.recipient_key(b.id, a.clock())]
    raws = []
    for _ in range(200):
        env, _ = seal(
            channels.text_body("x" * 4000, "en"), identity=a.identity, sender=a.id,
            channel=b64e(secrets.token_bytes(16)), seq=2, prev=secrets.token_bytes(32), seen={},
            recipients=recipients, now_ms=a.clock(),
        )  # fmt: skip
        raws.append(env.raw)
    results, _ = b.receive_batch(raws)
    codes = {(r.status, r.code, r.expected_seq) for r in results}
    print(f"{len(results)} envelopes on unknown channels: {codes}; held {b.store.held_usage(a.id)}")
    assert codes == {("gap", "unknown_channel", 1)}
    assert b.store.held_usage(a.id) == (0, 0)
    assert len(results) == 200, f"{len(results)} cases"


@pytest.mark.parametrize("bound", ["count", "bytes"])
def test_held_envelopes_are_bounded_per_peer_with_one_alarm(tmp_path: Path, bound: str) -> None:
    net, _, a, b, ch = hotline(tmp_path)
    n = 120
    for i in range(n + 1):
        a.send(ch, channels.text_body(f"message {i} " + "x" * 2000, "en"))
    pending = a.store.pending(b.id, 1000)
    first, rest = pending[0], pending[1:]  # hold back one: everything after it waits
    size = len(rest[0].raw)
    b.cfg.limits = (
        Limits(held_per_peer=50) if bound == "count" else Limits(held_bytes_per_peer=50 * size)
    )
    alarms_before = len([x for x in b.store.alarms() if x.kind == "held_limit"])
    results, _ = b.receive_batch([r.raw for r in rest])
    count, nbytes = b.store.held_usage(a.id)
    alarms = [x for x in b.store.alarms() if x.kind == "held_limit"]
    print(
        f"{len(rest)} envelopes ahead of a gap: held {count} ({nbytes} bytes), alarms {len(alarms)}"
    )
    assert {r.status for r in results} <= {"gap", "wait"}
    assert count <= 50 and nbytes <= 50 * size + size
    assert count >= 49
    assert len(alarms) - alarms_before == 1, alarms
    # The missing one arrives: what was held applies, the rest is asked for again and comes.
    b.receive_batch([first.raw])
    for _ in range(10):
        net.deliver(a, b)
    assert b.store.held_usage(a.id) == (0, 0)
    assert len(b.messages(ch)) >= n + 1
    assert len(results) == len(rest) >= n, f"{len(results)} cases"


# --- 5. files ------------------------------------------------------------------------------------
def _modes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root.parent)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in [root, *root.iterdir()]
    }


def test_the_data_directory_and_its_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a usual login umask: the station must not depend on a careful user
    try:
        _private(tmp_path)
    finally:
        os.umask(old)


def _private(tmp_path: Path) -> None:
    data = tmp_path / "station"
    data.mkdir(mode=0o755)
    parley("station", "init", "--name", "South", "--listen", f"127.0.0.1:{free_port()}", data=data)
    with Stations(tmp_path / "net", [("South", "en"), ("North", "ko")]) as net:
        ch = net.open_channel("South", ["North"])
        net.api("South").post(f"/channels/{ch}/messages", json={"text": "for members only"})
        export = tmp_path / "exports" / "transcript.ndjson"
        export.parent.mkdir()
        net.cli("South", "transcript", "export", "--out", str(export), "--", ch)
        bundle = tmp_path / "exports" / "bundle.ndjson"
        net.cli("South", "bundle", "export", "--peer", "North", "--out", str(bundle))
        south = net.dirs["South"]
        modes = {**_modes(data), **_modes(south)}
        modes[export.name] = oct(stat.S_IMODE(export.stat().st_mode))
        modes[bundle.name] = oct(stat.S_IMODE(bundle.stat().st_mode))
        print(modes)
        assert any(k.endswith("parley.db-wal") for k in modes), modes
        for name, mode in modes.items():
            want = "0o700" if name in ("station", "south") else "0o600"
            assert mode == want, (name, mode)
        net.stop("South")
        refused = 0
        for mode in (0o755, 0o750, 0o701, 0o770):
            south.chmod(mode)
            r = parley("station", "run", data=south, ok=False)
            assert r.returncode == 1, r.stdout + r.stderr
            said = "".join(r.stderr.split())  # as one line, however the terminal wrapped it
            assert f"chmod700{south}`" in said, r.stderr
            refused += 1
        south.chmod(0o700)
        net.restart("South")  # and with the directory private again it runs
        assert net.api("South").get("/station")["name"] == "South"
    assert len(modes) >= 10 and refused == 4, f"{len(modes)} files and {refused} modes refused"


# --- 6. X-Forwarded-For --------------------------------------------------------------------------
def _logins(st: Proc, n: int) -> list[tuple[int, str]]:
    """n wrong logins, each for another name and claiming another source address."""
    out = []
    for i in range(n):
        r = httpx.post(
            st.base + "/api/v1/login", json={"name": f"nobody{i}", "password": "wrong"},
            headers={"X-Forwarded-For": f"203.0.113.{i + 1}"}, timeout=30,
        )  # fmt: skip
        out.append((r.status_code, r.json()["code"]))
    return out


def test_a_local_client_cannot_fake_its_address_for_the_login_lockout(
    tmp_path: Path, procs: list[Proc]
) -> None:
    st = Proc(tmp_path / "a")
    procs.append(st)
    got = _logins(st, 7)
    print("no trusted proxy:", got)
    # Five failures from 127.0.0.1 lock the address out, whatever the header claims.
    assert got[:5] == [(401, "unauthorized")] * 5
    assert got[5:] == [(429, "rate_limited")] * 2
    # A proxy named in station.json is believed: then each claimed address counts on its own.
    behind = Proc(tmp_path / "b", trusted_proxies=["127.0.0.1"])
    procs.append(behind)
    trusted = _logins(behind, 7)
    print("127.0.0.1 trusted as a proxy:", trusted)
    assert trusted == [(401, "unauthorized")] * 7
    assert len(got) + len(trusted) == 14, f"{len(got) + len(trusted)} cases"


# --- a peer's answers ----------------------------------------------------------------------------
def test_a_push_answer_beyond_its_counts_is_refused_before_it_is_read() -> None:
    """An honest answer holds a result per envelope pushed and a receipt per chain; a hostile
    peer's answer of 32 MiB could hold 100,000 receipts, each a signature check."""
    from parley.errors import Code
    from parley.transport.base import (
        MAX_CHAIN_RECEIPTS,
        MAX_FRAME_ENVELOPES,
        TransportError,
        push_response,
    )

    ok = push_response({"results": [{}] * MAX_FRAME_ENVELOPES, "receipts": ["r"] * 3}, "p", 1)
    assert len(ok.results) == MAX_FRAME_ENVELOPES
    for results, receipts in ((MAX_FRAME_ENVELOPES + 1, 0), (1, MAX_CHAIN_RECEIPTS + 1)):
        with pytest.raises(TransportError) as exc:
            push_response({"results": [{}] * results, "receipts": ["r"] * receipts}, "p", 1)
        assert exc.value.code == Code.OVERSIZED
    # Counted before any result is looked at: too many, of any kind, is oversized.
    with pytest.raises(TransportError) as exc:
        push_response({"results": ["x"] * (MAX_FRAME_ENVELOPES + 1), "receipts": []}, "p", 1)
    assert exc.value.code == Code.OVERSIZED
    with pytest.raises(TransportError) as exc:
        push_response({"results": ["x"], "receipts": []}, "p", 1)
    assert exc.value.code == Code.MALFORMED


def test_a_peer_rejecting_made_up_hashes_raises_no_alarm(tmp_path: Path) -> None:
    """A `rejected` result alarms only for an envelope of ours, once, with the peer's words cut
    short: made-up hashes (any number of them) raise nothing."""
    from parley.domain import channels
    from parley.protocol.encoding import b64e
    from parley.station import paths
    from tests.pair import hotline

    _, _, a, b, ch = hotline(tmp_path)
    sent, _ = a.send(ch, channels.text_body("one", "en"))
    made_up = [
        {"status": "rejected", "hash": b64e(secrets.token_bytes(32)), "code": "x", "message": "m"}
        for _ in range(50)
    ] + [{"status": "equivocation", "hash": "not base64!", "code": "x", "message": "m"}]
    alarmed: set[str] = set()
    paths.apply_answer(a, b.id, made_up, [], alarmed)
    assert [x for x in a.store.alarms() if x.kind == "rejected"] == []
    real = {"status": "rejected", "hash": b64e(sent.hash), "code": "bad", "message": "w" * 9999}
    paths.apply_answer(a, b.id, [real, real], [], alarmed)
    (alarm,) = [x for x in a.store.alarms() if x.kind == "rejected"]
    assert len(alarm.message) < 1000 and b64e(sent.hash) in alarm.message
