"""What the benchmarks share: two real stations on loopback with a channel open, the per-message
floor measured in the same run, percentiles and process memory.

Every benchmark prints its figures beside a baseline measured in the same run, as a ratio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from parley.cli.client import Api
from parley.cli.demo import init, start
from parley.protocol import crypto
from parley.protocol.encoding import b64e
from parley.protocol.envelope import (
    ZERO_HASH,
    RecipientKey,
    open_envelope,
    parse_envelope,
    seal,
    verify_signature,
)
from parley.protocol.identity import station_id
from parley.station.config import Timings, load_config, load_token, save_config
from parley.transport.h1 import H1Client

FAST = Timings(retry_base_ms=50, retry_max_ms=1000, heartbeat_ms=1000)
# The HTTP stacks a station can serve on (station.json `event_loop`, `http_parser`; app/conn.py):
# the default, and the pure-Python one it replaced, for A/B runs (`--stack`).
STACKS = {"fast": ("uvloop", "httptools"), "plain": ("asyncio", "h11")}


def use_stack(data: Path, stack: str) -> None:
    """Make the station in `data` serve on `stack` from its next start."""
    cfg = load_config(data)
    cfg.event_loop, cfg.http_parser = STACKS[stack]
    save_config(data, cfg)


def profile(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    """py-spy on one station for up to `seconds`, if py-spy is installed (it is not a
    dependency: `pip install py-spy`)."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        print("  (py-spy not installed: no profile)")
        return None
    return subprocess.Popen(
        [str(exe), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "50",
         "-f", "raw", "-o", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def finish(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes what it has
        spy.wait(60)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def rss_kb(pid: int) -> int:
    """Resident set size of a process (and its children are separate processes: not counted)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of one process group."""
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # the process group, after state and ppid
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def floor_ms(samples: int = 300) -> dict[str, float]:
    """Median cost of each step of one message, measured here and now: seal, verify + open, one
    durable SQLite commit, one loopback HTTP round trip."""
    a, b = crypto.SigningKey.generate(), crypto.KemKey.generate()
    rk = RecipientKey(station_id(b"\x01" * 32), b64e(bytes(9)), b.public)
    body = {"type": "text", "text": "x" * 120, "lang": "en"}
    t_seal, t_open, t_commit, t_rtt = [], [], [], []
    for _ in range(samples):
        t0 = time.perf_counter()
        env, _ = seal(
            body, identity=a, sender=station_id(a.public), channel=b64e(bytes(16)), seq=1,
            prev=ZERO_HASH, seen={}, recipients=[rk], now_ms=1,
        )  # fmt: skip
        t1 = time.perf_counter()
        e2 = parse_envelope(env.raw)
        verify_signature(e2, a.public)
        open_envelope(e2, rk.station, b)
        t2 = time.perf_counter()
        t_seal.append(t1 - t0)
        t_open.append(t2 - t1)
    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(Path(d) / "f.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE t (x BLOB)")
        for _ in range(samples):
            t0 = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (?)", (env.raw,))
            db.execute("COMMIT")
            t_commit.append(time.perf_counter() - t0)

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    with httpx.Client() as c:
        url = f"http://127.0.0.1:{srv.server_address[1]}/"
        for _ in range(samples):
            t0 = time.perf_counter()
            c.post(url, content=env.raw)
            t_rtt.append(time.perf_counter() - t0)
    srv.shutdown()
    med = {k: statistics.median(v) * 1000 for k, v in
           {"seal": t_seal, "open": t_open, "commit": t_commit, "rtt": t_rtt}.items()}  # fmt: skip
    med["total"] = med["seal"] + med["open"] + 2 * med["commit"] + med["rtt"]
    return med


def describe_floor(floor: dict[str, float]) -> str:
    return (
        f"{floor['total']:.3f} ms = seal {floor['seal']:.3f} + open {floor['open']:.3f} + "
        f"2 x commit {floor['commit']:.3f} + rtt {floor['rtt']:.3f}"
    )


@dataclass
class Pair:
    """Two station processes, A and B, with an open hotline from A to B."""

    root: Path
    timings: Timings = field(default_factory=lambda: FAST)
    stack: str = "fast"
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    channel: str = ""

    def api(self, name: str) -> Api:
        return Api(self.root / name, timeout_s=120)

    def start(self, name: str) -> None:
        self.procs[name] = start(self.root / name, self.root / f"{name}.log")

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        p = self.procs.pop(name)
        os.killpg(p.pid, sig)
        p.wait(30)

    def open(self) -> Pair:
        init(self.root / "a", "A", "en", self.timings)
        init(self.root / "b", "B", "ko", self.timings)
        use_stack(self.root / "a", self.stack)
        use_stack(self.root / "b", self.stack)
        self.start("a")
        self.start("b")
        a, b = self.api("a"), self.api("b")
        a.post("/peers", json={"invitation": b.get("/invitation")["invitation"]})
        b.post("/peers", json={"invitation": a.get("/invitation")["invitation"]})
        ch = a.post("/channels", json={"title": "bench", "peers": [b.get("/station")["station"]]})
        self.channel = ch["channel"]
        while not any(c["channel"] == self.channel for c in b.get("/channels")):
            time.sleep(0.02)
        b.post(f"/channels/{self.channel}/consent", json={})
        while a.get(f"/channels/{self.channel}")["state"] != "open":
            time.sleep(0.02)
        return self

    def close(self) -> None:
        for name in list(self.procs):
            with contextlib.suppress(ProcessLookupError):
                self.stop(name)

    def pending(self, name: str = "a") -> int:
        return int(self.api(name).get("/status")["peers"][0]["pending"])

    def wait_delivered(self, timeout_s: float = 1800) -> None:
        deadline = time.monotonic() + timeout_s
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.pending():
            raise RuntimeError("not everything was receipted in time")

    def latencies(self) -> list[float]:
        """Per text message at B: stored at B minus sealed at A, in ms."""
        b, lat, after = self.api("b"), [], 0
        while True:
            page = b.get(f"/channels/{self.channel}/messages", params={"after": after})
            if not page:
                return lat
            after = page[-1]["id"]
            lat += [m["stored"] - m["ts"] for m in page if m["body"].get("type") == "text"]


@contextlib.contextmanager
def pair(timings: Timings = FAST, stack: str = "fast") -> Iterator[Pair]:
    with tempfile.TemporaryDirectory() as d:
        p = Pair(Path(d), timings, stack)
        try:
            yield p.open()
        finally:
            p.close()


class Load:
    """The clients of a load run: keep-alive connections to one server, as many as there are
    concurrent clients, over the station's own HTTP/1.1 client (transport/h1.py) rather than
    httpx, whose CPU per request (~1.6 ms here, as much as the sending station's) was taken from
    the servers under test on this 2-core machine. bench/synapse.py drives both servers with it."""

    def __init__(self, base: str, headers: dict[str, str], concurrency: int) -> None:
        self.base, self.headers = base, headers
        self.client = H1Client(timeout_s=60, max_idle=concurrency)

    async def call(
        self, method: str, path: str, payload: object, headers: dict[str, str] | None = None
    ) -> bytes:
        """One request with a JSON body; its answer's body, or RuntimeError if not 2xx."""
        data = json.dumps(payload).encode()
        head = {**self.headers, "Content-Type": "application/json",
                "Content-Length": str(len(data)), **(headers or {})}  # fmt: skip
        answer = await self.client.request(method, self.base + path, head, data, (1 << 22, 4096))
        if not 200 <= answer.status < 300:
            raise RuntimeError(f"{method} {path}: {answer.status} {answer.body[:300]!r}")
        return answer.body

    async def aclose(self) -> None:
        await self.client.aclose()


def client_cpu_s() -> float:
    """CPU seconds this (benchmark) process has used so far: the load it generates has a cost."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


PASSWORD = "quiet harbour lantern 42"  # passes the password policy


def user_token(data: Path, name: str, roles: list[str]) -> str:
    """A new user of the station at `data` with `roles`, and an API token of their own (made by
    them, as the station requires): what a duty operator's program would send with."""
    Api(data, timeout_s=120).post("/users", json={"name": name, "roles": roles,
                                                  "password": PASSWORD})  # fmt: skip
    login = Api(data, anonymous=True).post("/login", json={"name": name, "password": PASSWORD})
    own = Api(data, as_token=login["token"], timeout_s=120)
    return str(own.post(f"/users/{name}/tokens", json={"label": "bench"})["token"])


async def send_all(
    data: Path, channel: str, n: int, concurrency: int, rate: float = 0.0, prefix: str = "bench",
    batch: int = 1, token: str | None = None,
) -> None:  # fmt: skip
    """Send n text messages through the operator API; with rate > 0, paced at that many per s;
    with batch > 1, that many per request (POST …/messages/batch, one transaction each). As
    `token` (default: the station's bootstrap token)."""
    cfg = load_config(data)
    bearer = token or load_token(data)
    load = Load(f"http://{cfg.listen}", {"Authorization": f"Bearer {bearer}"}, concurrency)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for first in range(0, n, batch):
        queue.put_nowait(first)
    t0 = time.perf_counter()

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            if batch > 1:
                texts = [{"text": f"{prefix} {k}"} for k in range(i, min(i + batch, n))]
                path, payload = f"/api/v1/channels/{channel}/messages/batch", {"messages": texts}
                key = f"{prefix}-batch-{i}"
            else:
                if rate:
                    await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
                path, payload = f"/api/v1/channels/{channel}/messages", {"text": f"{prefix} {i}"}
                key = f"{prefix}-{i}"
            await load.call("POST", path, payload, {"Idempotency-Key": key})

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await load.aclose()
