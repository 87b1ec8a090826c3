"""Operator API reads under load: status, the inbox, a page of a channel's history and the alarm
list, each asked by 50 concurrent clients of a real station process on loopback that holds
realistic data (several hotlines and a back channel, ~20,000 envelopes received and sent, a few
users, some alarms), authenticated as a real low-role user (an auditor, with their own API token;
the back channel is hidden from them).

Baseline, measured in the same run with the same clients: GET /api/v1/me, the most trivial
authenticated route of the same server (framework, auth and JSON, no store reads beyond it).
Each endpoint's req/s is printed with its ratio to that baseline; then the four read endpoints
round-robin (the mix), whose req/s is the issue's target (>= 1,000 req/s). Each row also prints
the station's CPU per answer (its process group, from /proc), which the clients' share of the
cores and other load move much less than req/s.

The clients are several processes (default 2; --procs), each an asyncio loop keeping its share
of --clients connections alive and sending plain HTTP/1.1 GETs on them (a few lines, not httpx:
httpx cost as much CPU per request as the station, so the clients were the bottleneck). The
baseline says how far the clients and the framework go on this machine; an endpoint near it is
limited by them, not by its reads.

The whole table is asked once per HTTP stack (--stacks, default "fast,plain": uvloop and
httptools, then asyncio and h11, common.STACKS), the same station and data restarted on each,
and the mixes' ratio printed: an A/B of the stack in one run. --profile DIR records the station
with py-spy (if installed; not a dependency) during each mix.

    .venv/bin/python bench/api.py [--envelopes 20000] [--clients 50] [--seconds 8] [--procs 2]
                                  [--stacks fast,plain] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sqlite3
import time
from pathlib import Path
from typing import Any

from common import PASSWORD, STACKS, cpu_s, finish, pair, pct, profile, use_stack

from parley.cli.client import Api
from parley.station.config import load_config

CHANNELS = 6  # hotlines; plus one back channel
BATCH = 500  # messages per send request while filling


def _fill(p: Any, envelopes: int) -> dict[str, Any]:
    """Channels, users, messages both ways and alarms at A; returns what the clients need."""
    a, b = p.api("a"), p.api("b")
    a_id, b_id = a.get("/station")["station"], b.get("/station")["station"]
    for api in (a, b):
        api.post("/users", json={"name": "rep", "roles": ["representative"], "password": PASSWORD})
    a.post("/users", json={"name": "reader", "roles": ["auditor"], "password": PASSWORD})
    a.post("/users", json={"name": "duty", "roles": ["operator"], "password": PASSWORD})
    chans = [p.channel]
    for i in range(CHANNELS - 1):
        chans.append(a.post("/channels", json={"title": f"line {i}", "peers": [b_id]})["channel"])
    back = a.post(
        "/channels",
        json={"kind": "backchannel", "title": "quiet", "peers": [b_id],
              "representatives": {a_id: ["rep"], b_id: ["rep"]}},
    )["channel"]  # fmt: skip
    b_rep = _login(p.root / "b", "rep")
    _until(lambda: len(b.get("/channels")) >= CHANNELS and bool(b_rep.get(f"/channels/{back}")))
    for ch in chans[1:]:
        b.post(f"/channels/{ch}/consent", json={})
    b_rep.post(f"/channels/{back}/consent", json={})
    _until(lambda: all(c["state"] == "open" for c in a.get("/channels")))
    # Most envelopes come from B (what A's inbox shows); a tenth are A's own.
    theirs = envelopes * 9 // 10
    for n, (api, count) in enumerate(((b, theirs), (a, envelopes - theirs))):
        for first in range(0, count, BATCH):
            ch = chans[(first // BATCH) % len(chans)]
            msgs = [{"text": f"message {n}-{i}: " + "x" * 80}
                    for i in range(first, min(first + BATCH, count))]  # fmt: skip
            api.post(f"/channels/{ch}/messages/batch", json={"messages": msgs})
    _login(p.root / "a", "rep").post(f"/channels/{back}/messages", json={"text": "quiet word"})
    _until(lambda: not p.pending("a") and not p.pending("b"), timeout_s=900)
    _until(lambda: len(a.get("/inbox", params={"limit": 10})) == 10)
    _alarms(p.root / "a" / "parley.db", back)
    reader = _login(p.root / "a", "reader")
    token = reader.post("/users/reader/tokens", json={"label": "bench"})["token"]
    held = sum(len(a.get(f"/channels/{c}/messages", params={"limit": 10_000})) for c in chans)
    return {"token": token, "channel": chans[0], "held": held}


def _alarms(db: Path, back: str) -> None:
    """A few open and settled alarms, some about the back channel, as a station collects them
    (written beside the running station: it reads alarms from the table, nothing caches them)."""
    now = int(time.time() * 1000)
    rows = []
    for i in range(60):
        subject = back if i % 10 == 0 else f"peer-{i % 3}"
        cleared = now - i if i % 2 else None
        rows.append((now - 1000 * i, "link", "warning", subject, f"link {i} degraded", cleared))
    con = sqlite3.connect(db, timeout=30)
    with con:
        con.executemany(
            "INSERT INTO alarms (ts, kind, severity, subject, message, cleared)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    con.close()


def _login(data: Path, name: str) -> Api:
    anon = Api(data, anonymous=True)
    token = anon.post("/login", json={"name": name, "password": PASSWORD})["token"]
    return Api(data, as_token=token, timeout_s=120)


def _until(cond: Any, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError("the set-up did not finish in time")
        time.sleep(0.1)


# --- the clients ----------------------------------------------------------------------------------
def _client(args: tuple[str, str, list[str], int, float, float]) -> tuple[int, list[float], int]:
    """One client process: `conns` connections asking `paths` round-robin from `start` (wall
    clock) for `seconds`. Returns (answers, latencies in ms, failures)."""
    base, token, paths, conns, start, seconds = args
    return asyncio.run(_load(base, token, paths, conns, start, seconds))


async def _load(
    base: str, token: str, paths: list[str], conns: int, start: float, seconds: float
) -> tuple[int, list[float], int]:
    lat: list[float] = []
    failed = 0
    host, port = base.removeprefix("http://").rsplit(":", 1)
    heads = [
        f"GET {p} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        for p in paths
    ]
    links = [await asyncio.open_connection(host, int(port)) for _ in range(conns)]
    for link in links:  # one request each, before the clock starts
        await _get(*link, heads[0])
    await asyncio.sleep(max(0.0, start - time.time()))
    end = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        nonlocal failed
        reader, writer = links[k]
        i = k
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            if await _get(reader, writer, heads[i % len(heads)]) != 200:
                failed += 1
            lat.append((time.perf_counter() - t0) * 1000)
            i += 1

    await asyncio.gather(*(worker(k) for k in range(conns)))
    for _, writer in links:
        writer.close()
    return len(lat), lat, failed


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> int:
    """One keep-alive GET on an open connection: its status (the body is read and dropped).
    A few lines of HTTP/1.1 rather than httpx, whose per-request cost in Python was as high as
    the station's and made the clients the bottleneck."""
    writer.write(head)
    top = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in top.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(top.split(b" ", 2)[1])


def run(
    pool: Any, base: str, token: str, paths: list[str], clients: int, procs: int, seconds: float
) -> tuple[float, float, float, int]:
    """(req/s, p50 ms, p99 ms, failures) of `clients` connections over `procs` processes."""
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    start = time.time() + 1.5
    jobs = [(base, token, paths, n, start, seconds) for n in per if n]
    results = pool.map(_client, jobs)
    lat = [x for _, ls, _ in results for x in ls]
    failed = sum(f for _, _, f in results)
    return len(lat) / seconds, pct(lat, 50), pct(lat, 99), failed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--envelopes", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument(
        "--stacks", default="fast,plain",
        help="HTTP stacks to serve the reads on, one after the other (common.STACKS)",
    )  # fmt: skip
    ap.add_argument("--profile", type=Path, help="py-spy the station during each mix into DIR")
    args = ap.parse_args()
    stacks = args.stacks.split(",")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    with pair(stack=stacks[0]) as p:
        t0 = time.perf_counter()
        info = _fill(p, args.envelopes)
        cfg = load_config(p.root / "a")
        base = f"http://{cfg.listen}"
        ch = info["channel"]
        print(f"set-up: {info['held']:,} envelopes held on A's hotlines, "
              f"{time.perf_counter() - t0:.0f} s; {args.clients} clients in {args.procs} "
              f"processes, {args.seconds:.0f} s per row, as user `reader` (auditor)")  # fmt: skip
        endpoints = {
            "status": "/api/v1/status",
            "inbox": "/api/v1/inbox",
            "history page": f"/api/v1/channels/{ch}/history",
            "alarms": "/api/v1/alarms",
        }
        mixes: dict[str, float] = {}
        ctx = mp.get_context("spawn")
        with ctx.Pool(args.procs) as pool:

            def row(name: str, paths: list[str], base_rate: float | None) -> float:
                group = p.procs["a"].pid  # the station leads its process group
                cpu0 = cpu_s(group)
                rate, p50, p99, failed = run(
                    pool, base, info["token"], paths, args.clients, args.procs, args.seconds
                )
                # The station's own CPU per answer: what a loaded machine changes least.
                cpu_us = (cpu_s(group) - cpu0) * 1e6 / max(1.0, rate * args.seconds)
                ratio = f"  ratio {rate / base_rate:.2f}" if base_rate else ""
                bad = f"  ({failed} failed)" if failed else ""
                print(f"{name:<22} {rate:8.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
                      f"  station {cpu_us:5.0f} us CPU/req{ratio}{bad}", flush=True)  # fmt: skip
                return rate

            for stack in stacks:
                if stack != p.stack:  # the same station and data, restarted on another stack
                    p.stop("a")
                    use_stack(p.root / "a", stack)
                    p.stack = stack
                    p.start("a")
                print(f"-- stack {stack}: event loop and HTTP parser {'/'.join(STACKS[stack])}")
                baseline = row("baseline GET /me", ["/api/v1/me"], None)
                for name, path in endpoints.items():
                    row(name, [path], baseline)
                out = args.profile / f"mix-{stack}.txt" if args.profile else None
                spy = profile(p.procs["a"].pid, out, args.seconds + 5) if out else None
                mixes[stack] = row("mix of the four", list(endpoints.values()), baseline)
                finish(spy)
        if len(mixes) > 1:
            first, *rest = mixes
            for other in rest:
                print(f"mix on {first} against {other}: ratio {mixes[first] / mixes[other]:.2f}")


if __name__ == "__main__":
    main()
