"""The receiver's commit with the WAL checkpointed on the store's own thread (store/sqlite.py
`Checkpointer`) against SQLite's default, where the commit that crosses 1,000 pages also copies
the WAL into the database file and syncs it, under the store's lock. Two stations in process
(real SQLite files, synchronous=FULL, no HTTP); B receives A's messages one per batch, paced as
`bench/latency.py` paces them, so B's commits are those of a push of one; the two ways alternate
in the same run (fresh stations each round) and each is printed against the default.

    .venv/bin/python bench/walcheckpoint.py [--messages 600] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import pct
from receive import deliver, station

from parley.domain import channels
from parley.protocol.identity import parse_invitation
from parley.store.sqlite import SqliteStore


def commits(n: int, default: bool) -> list[float]:
    """B's commit times in ms for n pushes of one envelope."""
    with tempfile.TemporaryDirectory() as tmp:
        a, b = station(Path(tmp) / "a", "South"), station(Path(tmp) / "b", "North")
        a.add_peer(parse_invitation(b.invitation().encode()))
        b.add_peer(parse_invitation(a.invitation().encode()))
        ch = a.propose_channel("hotline", "Line", [b.id])
        deliver(a, b)
        b.control(ch, "consent")
        deliver(b, a)
        for i in range(n):
            a.send_many(ch, [(channels.text_body(f"m{i}", "en"), "ROUTINE")])
        raws = [r.raw for r in a.store.pending(b.id, n + 10)]
        store = b.store
        assert isinstance(store, SqliteStore)
        if default:  # SQLite's own: checkpoint in the commit at 1,000 pages, no thread
            store.conn.execute("PRAGMA wal_autocheckpoint=1000")
            store.checkpointer.committed = lambda: None  # type: ignore[method-assign]
        commit, took = store._commit, []

        def timed() -> None:
            t0 = time.perf_counter()
            commit()
            took.append((time.perf_counter() - t0) * 1000)

        store._commit = timed  # type: ignore[method-assign]
        for raw in raws:
            b.receive_batch([raw])
            time.sleep(0.01)  # 100 msg/s
        a.store.close()
        b.store.close()
        return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    got: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for default in (True, False):
            got[default] += commits(args.messages, default)
    base = got[True]
    for default, name in ((True, "in the commit (default)"), (False, "on the store's thread")):
        t = got[default]
        print(
            f"receiver commit, checkpoint {name:<24} p50 {statistics.median(t):6.2f}  "
            f"p99 {pct(t, 99):6.2f}  max {max(t):7.2f} ms   "
            f"ratio p99 {pct(t, 99) / pct(base, 99):.2f}  max {max(t) / max(base):.2f}"
        )


if __name__ == "__main__":
    main()
