"""Faults at goal size: two stations exchange N messages in all (half each way) through fault
proxies (delay, drop, lost replies, duplicates, reordering) while they are SIGKILLed K times and
partitioned P times, clocks skewed 3 minutes apart. Then: 0 lost, duplicated or reordered
messages, identical transcripts, and `parley transcript verify` passing on both exports; the
final check streams page by page, so the checker's memory stays bounded (tests/chaos.py).

Prints progress every 30 s, the figures, and one summary line; the rate under faults is shown
beside the one-at-a-time floor measured in the same run. Exits 1 on any violation.

    .venv/bin/python bench/faults.py [--messages 100000] [--kills 200] [--partitions 50]
                                     [--seconds 5400] [--senders 2] [--batch 1] [--seed 7]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from common import describe_floor, floor_ms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests/, the fault machinery

from tests.chaos import Size, run, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100_000, help="in all, half each way")
    ap.add_argument("--kills", type=int, default=200, help="SIGKILLs, spread over the sends")
    ap.add_argument("--partitions", type=int, default=50, help="both directions cut, 0.5-2.5 s")
    ap.add_argument("--seconds", type=float, default=5400, help="limit for the whole run")
    ap.add_argument("--senders", type=int, default=2, help="sending threads per station")
    ap.add_argument("--batch", type=int, default=1, help="messages per API request")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    size = Size(args.messages, args.kills, args.partitions, args.seconds, args.senders,
                args.batch, args.seed)  # fmt: skip
    # A `timeout` ends the run through its cleanup, which stops the stations (own sessions).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    floor = floor_ms()
    print(f"size                {size}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="parley-faults-"))
    print(f"data and logs       {root} (removed if the run passes)", flush=True)
    figures = run(root, size, log=sys.stdout)
    for k, v in figures.items():
        print(f"  {k:28} {v}")
    rate, floor_rate = 2 * figures["messages_each_way"] / figures["send_s"], 1000 / floor["total"]
    print(f"floor per message   {describe_floor(floor)}")
    print(f"rate under faults   {rate:,.0f} msg/s sent (both ways, kills and partitions included)"
          f"  floor {floor_rate:,.0f} msg/s  ratio {rate / floor_rate:.3f}")  # fmt: skip
    print(summary(figures), flush=True)
    if figures["violations"] or figures["verified_exports"] != 2:
        return 1
    shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
