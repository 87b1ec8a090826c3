"""Delivery benchmark: N messages between two real station processes on loopback.

Prints messages/s (first send to last receipt) and p50/p99 delivery latency (sealed at the
sender -> durably stored at the receiver), beside the floor measured in the same run: the
per-message cost of sign + verify + seal + open + two durable SQLite commits + one loopback HTTP
round trip, done one message at a time with nothing else running. Ratios above 1 for throughput
mean batching beats the one-at-a-time floor.

    .venv/bin/python bench/delivery.py [--messages 10000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
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
from parley.station.config import Timings, load_config, load_token


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def floor_ms(samples: int = 300) -> dict[str, float]:
    """Median cost of each step of one message, measured here and now."""
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
            n = int(self.headers["Content-Length"])
            self.rfile.read(n)
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


async def send_all(data: Path, channel: str, n: int, concurrency: int) -> None:
    cfg = load_config(data)
    headers = {"Authorization": f"Bearer {load_token(data)}"}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    async with httpx.AsyncClient(base_url=f"http://{cfg.listen}", headers=headers, timeout=60) as c:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                r = await c.post(
                    f"/api/v1/channels/{channel}/messages",
                    json={"text": f"bench {i}"},
                    headers={"Idempotency-Key": f"bench-{i}"},
                )
                r.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    floor = floor_ms()
    fast = Timings(retry_base_ms=50, retry_max_ms=1000, heartbeat_ms=1000)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        init(root / "a", "A", "en", fast)
        init(root / "b", "B", "ko", fast)
        procs = [start(root / "a", root / "a.log"), start(root / "b", root / "b.log")]
        try:
            a, b = Api(root / "a"), Api(root / "b")
            a.post("/peers", json={"invitation": b.get("/invitation")["invitation"]})
            b.post("/peers", json={"invitation": a.get("/invitation")["invitation"]})
            ch = a.post(
                "/channels", json={"title": "bench", "peers": [b.get("/station")["station"]]}
            )
            ch_id = ch["channel"]
            while not any(c["channel"] == ch_id for c in b.get("/channels")):
                time.sleep(0.02)
            b.post(f"/channels/{ch_id}/consent", json={})
            while a.get(f"/channels/{ch_id}")["state"] != "open":
                time.sleep(0.02)
            t0 = time.perf_counter()
            asyncio.run(send_all(root / "a", ch_id, args.messages, args.concurrency))
            deadline = time.monotonic() + 600
            while a.get("/status")["peers"][0]["pending"] and time.monotonic() < deadline:
                time.sleep(0.05)
            elapsed = time.perf_counter() - t0
            lat: list[float] = []
            after = 0
            while True:
                page = b.get(f"/channels/{ch_id}/messages", params={"after": after})
                if not page:
                    break
                after = page[-1]["id"]
                lat += [m["stored"] - m["ts"] for m in page if m["body"].get("type") == "text"]
        finally:
            for p in procs:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(10)
    assert len(lat) == args.messages, f"only {len(lat)} of {args.messages} arrived"
    rate = args.messages / elapsed
    floor_rate = 1000 / floor["total"]
    p50, p99 = pct(lat, 50), pct(lat, 99)
    print(f"messages            {args.messages} (concurrency {args.concurrency})")
    print(
        f"floor per message   {floor['total']:.3f} ms = seal {floor['seal']:.3f} + "
        f"open {floor['open']:.3f} + 2 x commit {floor['commit']:.3f} + rtt {floor['rtt']:.3f}"
    )
    print(f"throughput          {rate:,.0f} msg/s  floor {floor_rate:,.0f} msg/s  "
          f"ratio {rate / floor_rate:.2f}")  # fmt: skip
    print(f"latency p50         {p50:.0f} ms  ratio to floor {p50 / floor['total']:.1f}")
    print(f"latency p99         {p99:.0f} ms  ratio to floor {p99 / floor['total']:.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
