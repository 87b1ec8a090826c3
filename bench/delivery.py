"""Burst: N messages (default 10,000) between two real station processes on loopback until all
are receipted.

Prints messages/s (first send to last receipt) and p50/p99 delivery latency (sealed at the
sender -> durably stored at the receiver), beside the floor measured in the same run: the
per-message cost of seal + verify/open + two durable SQLite commits + one loopback HTTP round
trip, one message at a time with nothing else running. A throughput ratio above 1 means batching
beats the one-at-a-time floor.

    .venv/bin/python bench/delivery.py [--messages 10000] [--concurrency 16] [--batch 1]
                                       [--operator]

--operator sends with a duty operator's own API token instead of the station's bootstrap token
(the remembered-credential path every real operator's request takes).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from common import describe_floor, floor_ms, pair, pct, send_all, user_token


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1, help="messages per API request")
    ap.add_argument("--operator", action="store_true", help="send as an operator, own token")
    args = ap.parse_args()
    floor = floor_ms()
    with pair() as p:
        token = user_token(p.root / "a", "duty", ["operator"]) if args.operator else None
        t0 = time.perf_counter()
        asyncio.run(
            send_all(
                p.root / "a", p.channel, args.messages, args.concurrency, batch=args.batch,
                token=token,
            )
        )  # fmt: skip
        p.wait_delivered()
        elapsed = time.perf_counter() - t0
        lat = p.latencies()
    assert len(lat) == args.messages, f"only {len(lat)} of {args.messages} arrived"
    rate = args.messages / elapsed
    floor_rate = 1000 / floor["total"]
    p50, p99 = pct(lat, 50), pct(lat, 99)
    who = "an operator" if token else "the bootstrap admin"
    print(f"messages            {args.messages} (concurrency {args.concurrency}, "
          f"{args.batch} per request, as {who})")  # fmt: skip
    print(f"floor per message   {describe_floor(floor)}")
    print(f"throughput          {rate:,.0f} msg/s  floor {floor_rate:,.0f} msg/s  "
          f"ratio {rate / floor_rate:.2f}")  # fmt: skip
    print(f"latency p50         {p50:.0f} ms  ratio to floor {p50 / floor['total']:.1f}")
    print(f"latency p99         {p99:.0f} ms  ratio to floor {p99 / floor['total']:.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
