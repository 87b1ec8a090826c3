"""Detection: time from a peer's death (SIGKILL) to the "link down" alarm at the other station,
beside the heartbeat interval configured in the same run (the ratio says how many intervals it
takes; the design bound is one interval to the first failed probe plus two confirming probes a
quarter interval apart, 1.5 intervals: transport/policy.py).

    .venv/bin/python bench/detection.py [--heartbeat-ms 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import time

from common import pair

from parley.cli.client import Api
from parley.station.config import Timings


def downs(api: Api) -> list[dict[str, str]]:
    """The link watch's alarms of a link going down."""
    alarms = api.get("/alarms", params={"all": True})
    return [x for x in alarms if x["kind"] == "link" and "→ down" in x["message"]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heartbeat-ms", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    timings = Timings(retry_base_ms=50, retry_max_ms=1000, heartbeat_ms=args.heartbeat_ms)
    times = []
    with pair(timings) as p:
        a = p.api("a")
        for _ in range(args.rounds):
            seen = len(
                [
                    x
                    for x in a.get("/alarms", params={"all": True})
                    if x["kind"] == "link" and "→ down" in x["message"]
                ]
            )
            time.sleep(2 * args.heartbeat_ms / 1000)  # a quiet, healthy link first
            t0 = time.perf_counter()
            p.stop("b", signal.SIGKILL)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                downs = [
                    x
                    for x in a.get("/alarms", params={"all": True})
                    if x["kind"] == "link" and "→ down" in x["message"]
                ]
                if len(downs) > seen:
                    break
                time.sleep(0.01)
            times.append((time.perf_counter() - t0) * 1000)
            p.start("b")
            while a.get("/status")["peers"][0]["link"] != "up":
                time.sleep(0.05)
    med = statistics.median(times)
    print(f"rounds              {args.rounds}, heartbeat {args.heartbeat_ms} ms, "
          f"down after {timings.down_after_failures} failures")  # fmt: skip
    print(f"detection median    {med:.0f} ms (min {min(times):.0f}, max {max(times):.0f})")
    print(f"ratio to heartbeat  {med / args.heartbeat_ms:.2f}")


if __name__ == "__main__":
    main()
