"""Receiving a batch, in process: does a pool for the crypto phase (verify + open) pay on this
machine? Two stations (real SQLite stores, in one process, no HTTP); A queues N messages, B
receives them in batches of 512 as a push would bring them.

Prints, each against the serial crypto phase measured in the same run:
- the crypto phase (parse, signature, open: `Receiver.prepare`) serially,
- the same in a thread pool and in a process pool of as many workers as there are cores,
- the whole receive (crypto, then the one transaction that applies a batch), and its crypto share.

    .venv/bin/python bench/receive.py [--messages 5000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, wait
from pathlib import Path

from parley.domain import channels
from parley.protocol import crypto
from parley.protocol.envelope import Opened, open_envelope, parse_envelope, verify_signature
from parley.protocol.identity import parse_invitation
from parley.station import features
from parley.station.config import Config, Timings
from parley.station.cryptopool import CryptoPool
from parley.station.node import Station
from parley.station.receiving import _Keys
from parley.store.sqlite import SqliteStore

BATCH = 512


def station(root: Path, name: str) -> Station:
    root.mkdir(parents=True)
    cfg = Config(name=name, lang="en", listen="127.0.0.1:9", timings=Timings())
    st = Station(cfg, SqliteStore(root / "parley.db"), crypto.SigningKey.generate(), clock)
    st.rotate_prekeys()
    return features.install(st)


def clock() -> int:
    return int(time.time() * 1000)


def deliver(a: Station, b: Station) -> None:
    while batch := a.store.pending(b.id, BATCH):
        results, receipts = b.receive_batch([r.raw for r in batch])
        for r in receipts:
            a.store.mark_delivered(r.channel, b.id, r.seq, clock())
        if not receipts:
            raise RuntimeError(f"nothing receipted: {[x.to_json() for x in results[:3]]}")


# --- the process pool's worker: only the crypto, with the keys it is given once -------------------
_keys: tuple[str, bytes, bytes] = ("", b"", b"")


def _init(me: str, identity: bytes, secret: bytes) -> None:
    global _keys
    _keys = (me, identity, secret)


def _crypto(raw: bytes) -> Opened:
    me, identity, secret = _keys
    env = parse_envelope(raw)
    verify_signature(env, identity)
    return open_envelope(env, me, crypto.KemKey(secret))


def cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes `pids` have used so far (/proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        a, b = station(Path(tmp) / "a", "South"), station(Path(tmp) / "b", "North")
        a.add_peer(parse_invitation(b.invitation().encode()))
        b.add_peer(parse_invitation(a.invitation().encode()))
        ch = a.propose_channel("hotline", "Line", [b.id])
        deliver(a, b)
        b.control(ch, "consent")
        deliver(b, a)
        for start in range(0, args.messages, 1000):
            n = min(1000, args.messages - start)
            a.send_many(
                ch, [(channels.text_body(f"m{start + i}", "en"), "ROUTINE") for i in range(n)]
            )
        raws = [r.raw for r in a.store.pending(b.id, args.messages + 10)]
        n = len(raws)

        t0 = time.perf_counter()
        serial = [b.receiver.prepare(raw) for raw in raws]
        t_serial = time.perf_counter() - t0
        assert all(x.opened is not None for x in serial)

        with ThreadPoolExecutor(cores) as pool:
            t0 = time.perf_counter()
            threaded = list(pool.map(b.receiver.prepare, raws))
            t_thread = time.perf_counter() - t0
        assert all(x.opened is not None for x in threaded)

        kid = serial[0].env.key_for(b.id).kid  # type: ignore[union-attr]
        secret = b.store.prekey_secret(kid)
        assert secret is not None
        with ProcessPoolExecutor(cores, initargs=(b.id, a.identity.public, secret),
                                 initializer=_init) as procs:  # fmt: skip
            list(procs.map(_crypto, raws[:cores], chunksize=1))  # workers started and warm
            t0 = time.perf_counter()
            opened = list(procs.map(_crypto, raws, chunksize=64))
            t_proc = time.perf_counter() - t0
        assert len(opened) == n

        def station_way(pool: CryptoPool | None) -> tuple[float, float, float]:
            """The station's own phase 1 (`Receiver.prepare_all`): wall time, its process's
            CPU and its workers' CPU."""
            b.receiver.pool = pool
            pids = pool.pids() if pool is not None else []
            w0, c0, k0 = time.perf_counter(), time.process_time(), cpu_of(pids)
            for i in range(0, n, BATCH):
                got = b.receiver.prepare_all(raws[i : i + BATCH], _Keys())
                assert all(x.opened is not None for x in got)
            return time.perf_counter() - w0, time.process_time() - c0, cpu_of(pids) - k0

        own = {}
        for name, pool in (("serial", None), ("pool (opens)", CryptoPool(cores)),
                           ("pool (verifies only)", CryptoPool(cores, opens=False))):  # fmt: skip
            if pool is not None:
                wait(pool.start())
            own[name] = station_way(pool)
            if pool is not None:
                pool.close()
        b.receiver.pool = CryptoPool.for_cores()

        t0 = time.perf_counter()
        for i in range(0, n, BATCH):
            results, _ = b.receive_batch(raws[i : i + BATCH])
            assert all(r.status == "accepted" for r in results), results[0].to_json()
        t_all = time.perf_counter() - t0
        a.store.close()
        b.store.close()

    def line(what: str, s: float) -> str:
        return (f"{what:<34}{s * 1e6 / n:8.0f} µs/envelope  {n / s:8,.0f} env/s  "
                f"ratio {t_serial / s:5.2f}")  # fmt: skip

    print(f"envelopes           {n}, batches of {BATCH}, {cores} cores,"
          f" load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(line("crypto phase, serial (baseline)", t_serial))
    print(line(f"crypto phase, {cores} threads", t_thread))
    print(line(f"crypto phase, {cores} processes", t_proc))
    for name, (wall, cpu, workers) in own.items():
        print(
            line(f"station's way, {name}", wall)
            + f"  CPU µs/env: station {cpu * 1e6 / n:4.0f}, workers {workers * 1e6 / n:4.0f}"
        )
    print(line("whole receive (crypto + apply)", t_all))
    print(f"crypto share of the whole receive: {t_serial / t_all:.0%}")


if __name__ == "__main__":
    main()
