"""Anchor: the same 10,000 messages through Parley and through a Matrix homeserver (Synapse), on
this machine, in this run. Synapse runs from its own virtual environment (pip-installed on first
use), with SQLite, on loopback: two users in one room; a message counts as delivered when the
receiving user's /sync has returned it. Parley: two stations; a message counts as delivered when
the receiving station's operator API lists it (durably stored, signature verified, decrypted).
Both receiving sides are read on a thread of their own while the messages are sent, and the
clock stops when the last message is listed there.
Prints both rates and Parley's rate over Synapse's.

What differs: Synapse here is one server with two local users and no end-to-end encryption;
Parley is two servers, each message signed, encrypted for the peer, verified, decrypted and
committed durably at both ends, with a signed receipt.

Both servers are sent their messages by the same load generator (common.Load: one keep-alive
HTTP/1.1 connection per client); the clients' CPU per message is printed beside each rate, since
on a small machine it is taken from the server under test.

    .venv/bin/python bench/synapse.py [--messages 10000] [--concurrency 16] [--venv DIR]
                                      [--stacks fast,plain]   (one Parley run per HTTP stack)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from common import Load, client_cpu_s, pair, send_all

from parley.cli.demo import free_port

SYNAPSE = "matrix-synapse==1.163.2"
DEFAULT_VENV = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "parley-bench-synapse"
)

OVERRIDES = """
import sys, yaml
path, port = sys.argv[1], int(sys.argv[2])
cfg = yaml.safe_load(open(path))
cfg["listeners"] = [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http",
                     "tls": False, "x_forwarded": False,
                     "resources": [{"names": ["client"], "compress": False}]}]
cfg["trusted_key_servers"] = []
cfg["suppress_key_server_warning"] = True
cfg["federation_domain_whitelist"] = []
cfg["presence"] = {"enabled": False}
many = {"per_second": 100000, "burst_count": 100000}
for key in ("rc_message", "rc_registration", "rc_joins", "rc_invites", "rc_login",
            "rc_admin_redaction", "rc_room_creation", "rc_3pid_validation"):
    cfg[key] = dict(many) if key not in ("rc_login", "rc_joins", "rc_invites") else {
        k: dict(many) for k in {"rc_login": ("address", "account", "failed_attempts"),
                                "rc_joins": ("local", "remote"),
                                "rc_invites": ("per_room", "per_user", "per_issuer")}[key]}
yaml.safe_dump(cfg, open(path, "w"))
log = cfg["log_config"]
text = open(log).read().replace("level: INFO", "level: WARNING")
open(log, "w").write(text)
"""


def ensure_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"installing {SYNAPSE} into {venv} (first run only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", SYNAPSE], check=True)
    return py


@contextlib.contextmanager
def homeserver(py: Path, root: Path) -> Iterator[str]:
    port = free_port()
    cfg = root / "hs.yaml"
    subprocess.run(
        [str(py), "-m", "synapse.app.homeserver", "--server-name", "localhost",
         "--config-path", str(cfg), "--generate-config", "--report-stats=no"],
        check=True, cwd=root, capture_output=True,
    )  # fmt: skip
    subprocess.run([str(py), "-c", OVERRIDES, str(cfg), str(port)], check=True)
    log = (root / "synapse.out").open("wb")
    proc = subprocess.Popen(
        [str(py), "-m", "synapse.app.homeserver", "-c", str(cfg)],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{base}/_matrix/client/versions", timeout=2).raise_for_status()
                break
            except httpx.HTTPError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"synapse did not start; see {root / 'synapse.out'}"
                    ) from exc
                time.sleep(0.2)
        for user in ("alice", "bob"):
            subprocess.run(
                [str(py.parent / "register_new_matrix_user"), "-u", user, "-p", "bench-password",
                 "--no-admin", "-c", str(cfg), base],
                check=True, capture_output=True,
            )  # fmt: skip
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def login(base: str, user: str) -> str:
    r = httpx.post(
        f"{base}/_matrix/client/v3/login",
        json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
              "password": "bench-password"},
    )  # fmt: skip
    r.raise_for_status()
    return str(r.json()["access_token"])


def synapse_rate(base: str, n: int, concurrency: int) -> tuple[float, float]:
    alice, bob = login(base, "alice"), login(base, "bob")
    ha, hb = {"Authorization": f"Bearer {alice}"}, {"Authorization": f"Bearer {bob}"}
    room = httpx.post(
        f"{base}/_matrix/client/v3/createRoom", headers=ha,
        json={"preset": "private_chat", "invite": ["@bob:localhost"]},
    ).json()["room_id"]  # fmt: skip
    httpx.post(f"{base}/_matrix/client/v3/join/{room}", headers=hb, json={}).raise_for_status()
    filt = json.dumps({"room": {"timeline": {"limit": 50_000}}, "presence": {"types": []}})
    since = httpx.get(
        f"{base}/_matrix/client/v3/sync", headers=hb, params={"filter": filt}, timeout=60
    ).json()["next_batch"]
    seen: set[str] = set()
    done = threading.Event()

    def sync() -> None:
        nonlocal since
        with httpx.Client(headers=hb, timeout=90) as c:
            while len(seen) < n:
                params = {"since": since, "timeout": 30_000, "filter": filt}
                r = c.get(f"{base}/_matrix/client/v3/sync", params=params).json()
                since = r["next_batch"]
                joined = r.get("rooms", {}).get("join", {}).get(room, {})
                tl = joined.get("timeline", {})
                if tl.get("limited"):
                    raise RuntimeError("sync skipped events (limited timeline)")
                for ev in tl.get("events", []):
                    if ev.get("type") == "m.room.message":
                        seen.add(ev["content"]["body"])
        done.set()

    async def send() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)
        load = Load(base, ha, concurrency)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                path = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t{i}"
                await load.call("PUT", path, {"msgtype": "m.text", "body": f"bench {i}"})

        try:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            await load.aclose()

    t = threading.Thread(target=sync, daemon=True)
    t.start()
    t0, cpu0 = time.perf_counter(), client_cpu_s()
    asyncio.run(send())
    if not done.wait(1800):
        raise RuntimeError(f"bob saw only {len(seen)} of {n}")
    return n / (time.perf_counter() - t0), (client_cpu_s() - cpu0) / n * 1000


def parley_rate(n: int, concurrency: int, stack: str = "fast") -> tuple[float, float]:
    """As synapse_rate: the receiving side is read on a thread of its own while the messages
    are sent (there by /sync, here by pages of the history API), and the clock stops when it
    has listed the last one."""
    with pair(stack=stack) as p:
        b = p.api("b")
        got, done = 0, threading.Event()

        def read() -> None:
            nonlocal got
            after, deadline = 0, time.monotonic() + 1800
            while got < n and time.monotonic() < deadline:
                page = b.get(f"/channels/{p.channel}/messages", params={"after": after})
                if not page:
                    time.sleep(0.02)
                    continue
                after = page[-1]["id"]
                got += sum(1 for m in page if m["body"].get("type") == "text")
            done.set()

        t0, cpu0 = time.perf_counter(), client_cpu_s()
        threading.Thread(target=read, daemon=True).start()
        asyncio.run(send_all(p.root / "a", p.channel, n, concurrency))
        done.wait(1800)
        elapsed, cpu = time.perf_counter() - t0, client_cpu_s() - cpu0
    if got < n:
        raise RuntimeError(f"the receiving station listed only {got} of {n}")
    return n / elapsed, cpu / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument(
        "--stacks", default="fast", help="the stations' HTTP stacks, one run each (common.STACKS)"
    )
    args = ap.parse_args()
    py = ensure_venv(args.venv)
    with tempfile.TemporaryDirectory() as d, homeserver(py, Path(d)) as base:
        syn, syn_cpu = synapse_rate(base, args.messages, args.concurrency)
    print(f"messages            {args.messages} (concurrency {args.concurrency})")
    print(f"synapse             {syn:,.0f} msg/s (one homeserver, two users, /sync); "
          f"clients' CPU {syn_cpu:.2f} ms/msg")  # fmt: skip
    for stack in args.stacks.split(","):
        par, par_cpu = parley_rate(args.messages, args.concurrency, stack)
        print(f"parley ({stack:<5})      {par:,.0f} msg/s (two stations, end-to-end encrypted); "
              f"clients' CPU {par_cpu:.2f} ms/msg")  # fmt: skip
        print(f"ratio parley/synapse {par / syn:.2f}")


if __name__ == "__main__":
    main()
