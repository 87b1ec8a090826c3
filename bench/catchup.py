"""Catch-up: B is down while N messages (default 100,000) queue at A; then B restarts. Prints the
time from B's restart to all receipted, as msg/s beside the one-at-a-time floor measured in the
same run (seal + verify/open + two durable commits + one loopback round trip per message).

The backlog is queued through A's own Station.send (A stopped, its data directory opened in this
process) in transactions of 1,000, because queueing 100,000 through the HTTP API would measure the
API instead.

    .venv/bin/python bench/catchup.py [--messages 100000]
"""

from __future__ import annotations

import argparse
import time

from common import describe_floor, floor_ms, pair

from parley.domain import channels
from parley.station.boot import open_station


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
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
        p.start("b")
        p.wait_delivered(timeout_s=3600)
        catchup_s = time.perf_counter() - t1
        got = len(p.latencies())
    assert got == args.messages, f"only {got} of {args.messages} arrived"
    rate, floor_rate = args.messages / catchup_s, 1000 / floor["total"]
    print(f"messages            {args.messages} queued in {queued_s:.0f} s while B was down")
    print(f"floor per message   {describe_floor(floor)}")
    print(f"catch-up            {catchup_s:.1f} s from B's restart to all receipted")
    print(f"rate                {rate:,.0f} msg/s  floor {floor_rate:,.0f} msg/s  "
          f"ratio {rate / floor_rate:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
