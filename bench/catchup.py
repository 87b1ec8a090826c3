"""Catch-up: B is down while N messages (default 100,000) queue at A; then B restarts. Prints the
time from B's restart to all receipted, as msg/s beside the one-at-a-time floor measured in the
same run (seal + verify/open + two durable commits + one loopback round trip per message).

The backlog is queued through A's own Station.send (A stopped, its data directory opened in this
process) in transactions of 1,000, because queueing 100,000 through the HTTP API would measure the
API instead.

Each station's busy share is its CPU time (user + system, from /proc) over the catch-up's wall
time: a share well below 1 at both ends means they wait for each other, not for the CPU.

    .venv/bin/python bench/catchup.py [--messages 100000] [--profile DIR]

`--profile DIR` records both stations with py-spy during the catch-up (DIR/a.txt, DIR/b.txt).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from common import cpu_s, describe_floor, finish, floor_ms, pair, profile

from parley.domain import channels
from parley.station.boot import open_station


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--profile", type=Path, help="py-spy both stations into DIR")
    args = ap.parse_args()
    floor = floor_ms()
    with pair() as p:
        p.stop("b")
        p.stop("a")
        t0 = time.perf_counter()
        st = open_station(p.root / "a")
        for start in range(0, args.messages, 1000):
            with st.store.tx():
                for i in range(start, min(start + 1000, args.messages)):
                    st.send(p.channel, channels.text_body(f"backlog {i}", "en"))
        st.store.close()
        queued_s = time.perf_counter() - t0
        p.start("a")
        t1 = time.perf_counter()
        cpu0 = {n: cpu_s(p.procs[n].pid) for n in ("a",)}
        p.start("b")
        cpu0["b"] = 0.0
        spies = [profile(p.procs[n].pid, args.profile / f"{n}.txt", 3600) for n in ("a", "b")
                 if args.profile]  # fmt: skip
        p.wait_delivered(timeout_s=3600)
        catchup_s = time.perf_counter() - t1
        busy = {n: (cpu_s(p.procs[n].pid) - cpu0[n]) / catchup_s for n in ("a", "b")}
        for spy in spies:
            finish(spy)
        got = len(p.latencies())
    assert got == args.messages, f"only {got} of {args.messages} arrived"
    print(f"busy share          A {busy['a']:.2f}  B {busy['b']:.2f} of one core "
          f"(CPU time over the catch-up's wall time)")  # fmt: skip
    rate, floor_rate = args.messages / catchup_s, 1000 / floor["total"]
    print(f"messages            {args.messages} queued in {queued_s:.0f} s while B was down")
    print(f"floor per message   {describe_floor(floor)}")
    print(f"catch-up            {catchup_s:.1f} s from B's restart to all receipted")
    print(f"load average        {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"rate                {rate:,.0f} msg/s  floor {floor_rate:,.0f} msg/s  "
          f"ratio {rate / floor_rate:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
