"""Latency under a steady load: messages paced at a fixed rate (default 100 msg/s) from A to B;
p50/p99 from sealed at A to durably stored at B, beside the per-message floor measured in the same
run (seal + verify/open + two durable commits + one loopback round trip).

--stacks fast,plain runs it once per HTTP stack the stations serve on (common.STACKS), in one
run against the same floor: an A/B of the stack (CPU per message is the figure a loaded
machine disturbs least).

    .venv/bin/python bench/latency.py [--rate 100] [--seconds 30] [--stacks fast]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from common import STACKS, cpu_s, describe_floor, floor_ms, pair, pct, send_all


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--stacks", default="fast", help="HTTP stacks, one run each (common.STACKS)")
    args = ap.parse_args()
    n = int(args.rate * args.seconds)
    floor = floor_ms()
    print(f"messages            {n} at {args.rate:.0f} msg/s")
    print(f"floor per message   {describe_floor(floor)}")
    for stack in args.stacks.split(","):
        one(stack, n, args.rate, floor)


def one(stack: str, n: int, rate: float, floor: dict[str, float]) -> None:
    with pair(stack=stack) as p:
        groups = [p.procs[s].pid for s in ("a", "b")]  # each station leads its process group
        cpu0 = [cpu_s(g) for g in groups]
        t0 = time.perf_counter()
        asyncio.run(send_all(p.root / "a", p.channel, n, concurrency=8, rate=rate))
        sent_in = time.perf_counter() - t0
        p.wait_delivered()
        cpu = [(cpu_s(g) - c) * 1000 / n for g, c in zip(groups, cpu0, strict=True)]
        lat = p.latencies()
    assert len(lat) == n, f"only {len(lat)} of {n} arrived"
    p50, p99 = pct(lat, 50), pct(lat, 99)
    print(f"-- stack {stack} ({'/'.join(STACKS[stack])}), offered in {sent_in:.1f} s")
    print(f"latency p50         {p50:.0f} ms  ratio to floor {p50 / floor['total']:.1f}")
    print(f"latency p99         {p99:.0f} ms  ratio to floor {p99 / floor['total']:.1f}")
    # Where the time goes when the machine is shared: each message's CPU in the two stations
    # (API request, seal, commits, push, receive, receipt, settle), beside the floor's.
    print(
        f"CPU per message     sender {cpu[0]:.2f} ms, receiver {cpu[1]:.2f} ms  ratio to floor "
        f"{cpu[0] / floor['total']:.1f} / {cpu[1] / floor['total']:.1f}"
    )


if __name__ == "__main__":
    main()
