"""Where the slow messages of a paced run wait: bench/latency.py's run with stage stamps.

The stations run with bench/stagehook on their path (stamps only there, none in the stations'
code): per message, the time from sealed at A to each stage (A: committed, poked, round,
planning, planned, pushed, answered, settled; B: routed, authed, arrived, verified, applied,
stored; bench/stagehook says what each is), as medians over all messages and over the slowest 1%,
then the slowest few one by one; the latency by distance after A's checkpoints, and the stages
of the message that issued one and the four after it (with how many of each are among the
slowest 1%); collector pauses over 2 ms.

    .venv/bin/python bench/stages.py [--rate 100] [--seconds 20] [--show 8]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import pair, pct, send_all

A_STAGES = ("committed", "poked", "round", "planning", "planned", "pushed", "answered", "settled")
B_STAGES = ("routed", "authed", "arrived", "verified", "applied", "stored")


def read(folder: Path, pids: dict[int, str]) -> dict[str, dict[str, dict[int, float]]]:
    """station -> stage -> seq -> first time seen (wall ms); for the work beside the messages
    (`ev-` stages), station -> stage -> when it began (wall µs) -> how long it took (µs)."""
    out: dict[str, dict[str, dict[int, float]]] = {s: defaultdict(dict) for s in pids.values()}
    for f in folder.glob("stages.*"):
        who = pids.get(int(f.suffix[1:]))
        if who is None:
            continue  # a worker process of the receive pool
        for line in f.read_text().splitlines():
            stage, seq, t = line.split()
            if stage.startswith("ev-"):
                out[who][stage][int(float(t) * 1000)] = float(seq)
            else:
                out[who][stage].setdefault(int(seq), float(t))
    return out


def row(label: str, msgs: list[dict[str, Any]], st: dict[str, dict[str, dict[int, float]]]) -> str:
    cells = []
    for who, stages in (("a", A_STAGES), ("b", B_STAGES)):
        for stage in stages:
            got = [st[who][stage][m["seq"]] - m["ts"] for m in msgs if m["seq"] in st[who][stage]]
            cells.append(f"{statistics.median(got):10.1f}" if got else f"{'-':>10s}")
    lat = [m["stored"] - m["ts"] for m in msgs]
    return f"{label:14s}{statistics.median(lat):8.0f}" + "".join(cells)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--show", type=int, default=8)
    args = ap.parse_args()
    n = int(args.rate * args.seconds)
    folder = Path(tempfile.mkdtemp(prefix="parley-stages-"))
    hook = str(Path(__file__).resolve().parent / "stagehook")
    os.environ["PARLEY_STAGES"] = str(folder)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [hook, os.environ.get("PYTHONPATH")]))
    with pair() as p:
        pids = {p.procs[s].pid: s for s in ("a", "b")}
        asyncio.run(send_all(p.root / "a", p.channel, n, concurrency=8, rate=args.rate))
        p.wait_delivered()
        b, msgs, after = p.api("b"), [], 0
        while page := b.get(f"/channels/{p.channel}/messages", params={"after": after}):
            after = page[-1]["id"]
            msgs += page
    st = read(folder, pids)
    texts = [m for m in msgs if m["body"].get("type") == "text"]
    texts.sort(key=lambda m: m["stored"] - m["ts"])
    lat = [m["stored"] - m["ts"] for m in texts]
    print(
        f"messages            {len(texts)} at {args.rate:.0f} msg/s, load {os.getloadavg()[0]:.2f}"
    )
    print(
        f"latency p50 / p99   {pct(lat, 50):.0f} / {pct(lat, 99):.0f} ms (sealed at A, stored at B)"
    )
    print("median ms after sealing, per stage:")
    print(f"{'':14s}{'latency':>8s}" + "".join(f"{s:>10s}" for s in A_STAGES + B_STAGES))
    print(row("all", texts, st))
    print(row("slowest 1%", texts[-max(1, len(texts) // 100) :], st))
    for m in texts[-args.show :]:
        print(row(f"seq {m['seq']}", [m], st))
    # Distance after A's checkpoints: the witness and the cosignature's round trip come then. By
    # stage too: the message whose transaction issued a checkpoint ("issuing") and the next four,
    # with how many of each are among the run's slowest 1%.
    checkpoints = sorted(st["a"]["checkpoint"])
    issuing = {c - 1 for c in checkpoints}
    by: dict[str, list[float]] = defaultdict(list)
    near: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in texts:
        i = bisect.bisect_left(checkpoints, m["seq"]) - 1
        d = m["seq"] - checkpoints[i] if i >= 0 else 0
        by["1-3" if 1 <= d <= 3 else "other"].append(m["stored"] - m["ts"])
        kind = "issuing" if m["seq"] in issuing else f"after {d}" if 1 <= d <= 4 else "other"
        near[kind].append(m)
    cut = pct(lat, 99)
    print(f"by distance from A's checkpoints (median ms after sealing; n at or over p99 {cut:.0f})")
    for k in ("issuing", "after 1", "after 2", "after 3", "after 4", "other"):
        if near[k]:
            over = sum(m["stored"] - m["ts"] >= cut for m in near[k])
            print(row(f"{k} ({len(near[k])})", near[k], st) + f"  {over:5d}")
    for k in ("1-3", "other"):
        if by[k]:
            mid = statistics.median(by[k])
            print(
                f"after a checkpoint {k:5s}: n {len(by[k])}, median {mid:.1f},"
                f" p90 {pct(by[k], 90):.0f}, p99 {pct(by[k], 99):.0f} ms"
            )
    # The work beside the messages: how often it overlaps a message's way (sealed to stored),
    # over all messages and over the slowest 1%.
    slow = texts[-max(1, len(texts) // 100) :]
    for who in ("a", "b"):
        for stage in sorted(k for k in st[who] if k.startswith("ev-")):
            spans = sorted((t / 1000, t / 1000 + us / 1000) for t, us in st[who][stage].items())
            starts = [b for b, _ in spans]

            def hit(m: dict[str, Any], spans: list[tuple[float, float]] = spans,
                    starts: list[float] = starts) -> bool:  # fmt: skip
                i = bisect.bisect_right(starts, m["stored"])
                return any(e >= m["ts"] for _, e in spans[max(0, i - 3) : i])

            took = sorted(e - b for b, e in spans)
            print(
                f"{who} {stage[3:]:6s} x{len(spans):<5d} median {statistics.median(took):.2f},"
                f" longest {took[-1]:.1f} ms; on the way of {sum(map(hit, texts))} of all,"
                f" {sum(map(hit, slow))} of the slowest {len(slow)}"
            )
    # Only during the run: start-up's full collections come before the heap is frozen.
    start = min(st["a"]["committed"].values(), default=0.0)
    end = max(st["b"]["stored"].values(), default=0.0)
    for who in ("a", "b"):
        pauses = sorted(
            (round(us / 1000, 1), stage)
            for stage, v in st[who].items()
            if stage.startswith("gc")
            for us, t in v.items()
            if start <= t <= end
        )
        print(f"collections > 2 ms at {who} during the run: {len(pauses)} {pauses[-5:]}")


if __name__ == "__main__":
    main()
