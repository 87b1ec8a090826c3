"""Many parties: N real stations on loopback in one facilitated channel, one notice to all, each
party acknowledges it; the time until every acknowledgement is receipted everywhere, the CPU each
station spent on it and each station's RSS, beside the same run at 2 stations (the baseline).

    python bench/network.py --stations 20 [--baseline 2] [--heartbeat-ms 5000] [--profile DIR]

Set-up goes through the operator API, as operators do it: every station is initialised and
started as its own `parley station run` process; each adds every other's invitation (a full mesh,
so envelopes go directly between parties and the facilitator relays nothing); the facilitator
(station 0) proposes the facilitated channel with the other N-1 as parties and each of them
consents. Then the facilitator sends a launch notice; each party acknowledges it as soon as it
holds it. Done when the facilitator sees N-1 answers and no station has anything pending for any
peer (every notice and acknowledgement envelope receipted by every member).

Work grows with N on its own: the notice goes to N-1 parties and each acknowledgement to N-1
members, N(N-1) deliveries in all, so the per-delivery figures are the ones that should stay flat
if nothing grows faster than the traffic. CPU seconds per station come from /proc and do not
depend on what else the machine is doing; the wall-clock times do.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from common import finish, profile, rss_kb

from parley.cli.client import Api
from parley.cli.demo import _await_up, _spawn, init, stop
from parley.station.config import Timings

TICK = os.sysconf("SC_CLK_TCK")
NOTICE = {
    "form": "launch_notice",
    "inputs": {
        "launch_window.start": "2031-03-01 15:00",
        "launch_window.end": "+4h",
        "launch_area": "39°39'N 124°42'E; 39°39'N 124°45'E; 39°36'N 124°45'E; 39°36'N 124°42'E",
        "launch_area.name": "Sohae launch site",
        "impact_area": "40N 131E; 40N 132E; 39N 132E; 39N 131E",
        "impact_area.name": "East Sea area B",
        "vehicle_kind": "space launch vehicle",
        "launch_count": "1",
    },
}


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait(what: str, pred: Callable[[], object], timeout_s: float, poll_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


def spread(values: Sequence[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


@dataclass
class Network:
    """N station processes; station 0 is the facilitator."""

    root: Path
    n: int
    timings: Timings
    parallel: int = 8
    dirs: list[Path] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    apis: list[Api] = field(default_factory=list)
    channel: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    phase_cpu: dict[str, float] = field(default_factory=dict)

    def pool(self, fn: Callable[[int], Any], items: Sequence[int]) -> list[Any]:
        with ThreadPoolExecutor(self.parallel) as ex:
            return list(ex.map(fn, items))

    def timed(self, phase: str, fn: Callable[[], None]) -> None:
        c0 = self.cpu()
        t0 = time.perf_counter()
        fn()
        self.phases[phase] = time.perf_counter() - t0
        if c0:  # the median station's CPU seconds in this phase
            used = [b - a for a, b in zip(c0, self.cpu(), strict=True)]
            self.phase_cpu[phase] = statistics.median(used)

    def start(self) -> None:
        names = ["Facilitator"] + [f"Party {i}" for i in range(1, self.n)]
        for i, name in enumerate(names):
            d = self.root / f"s{i}"
            init(d, name, "ko" if i % 2 else "en", self.timings)
            self.dirs.append(d)
        # Spawned a wave at a time, then awaited: their imports overlap, but not so many at
        # once that one misses the start timeout on a loaded machine.
        for first in range(0, self.n, self.parallel):
            wave = range(first, min(first + self.parallel, self.n))
            self.procs += [_spawn(self.dirs[i], self.log(i)) for i in wave]
            for i in wave:
                _await_up(self.procs[i], self.dirs[i], self.log(i))
        self.apis = [Api(d, timeout_s=300) for d in self.dirs]
        self.ids = [a.get("/station")["station"] for a in self.apis]

    def log(self, i: int) -> Path:
        return self.root / f"s{i}.log"

    def mesh(self) -> None:
        invitations = [a.get("/invitation")["invitation"] for a in self.apis]

        def add_all(i: int) -> None:
            for j, inv in enumerate(invitations):
                if j != i:
                    self.apis[i].post("/peers", json={"invitation": inv})

        self.pool(add_all, range(self.n))

    def open_channel(self) -> None:
        fac = self.apis[0]
        req = {
            "kind": "facilitated", "title": f"Network of {self.n}",
            "peers": self.ids[1:], "facilitator": self.ids[0],
        }  # fmt: skip
        self.channel = ch = fac.post("/channels", json=req)["channel"]

        def consent(i: int) -> None:
            wait(f"station {i} to hold the proposal", partial(self._has_channel, i), 600)
            self.apis[i].post(f"/channels/{ch}/consent", json={})

        self.pool(consent, range(1, self.n))
        for i in range(self.n):
            wait(f"station {i} to see the channel open", partial(self._open, i), 600, 0.2)
        self.settle()

    def _has_channel(self, i: int) -> bool:
        return any(c["channel"] == self.channel for c in self.apis[i].get("/channels"))

    def _open(self, i: int) -> bool:
        return bool(self.apis[i].get(f"/channels/{self.channel}")["state"] == "open")

    def idle(self, i: int) -> bool:
        """Station i has nothing pending for any peer."""
        return not any(int(p["pending"]) for p in self.apis[i].get("/status")["peers"])

    def settle(self, timeout_s: float = 900) -> None:
        """Until no station has anything pending for any peer."""
        for i in range(self.n):
            wait(f"station {i} to have its outbox receipted", partial(self.idle, i), timeout_s, 0.2)

    def notice_round(self) -> str:
        """The facilitator's notice to all; each party acknowledges once it holds it. Returns
        once every acknowledgement is receipted everywhere. The polls are cheap reads (the
        channel's newest messages, the list of answers), not the rendered notice."""
        ch = self.channel
        last = self.pool(self._last_id, range(self.n))
        ref = self.apis[0].post(f"/channels/{ch}/notices", json=NOTICE)["hash"]

        def holds(i: int) -> bool:
            page = self.apis[i].get(f"/channels/{ch}/messages", params={"after": last[i]})
            return any(m["hash"] == ref for m in page)

        def ack(i: int) -> None:
            wait(f"station {i} to receive the notice", lambda: holds(i), 900, 0.1)
            self.apis[i].post(f"/channels/{ch}/messages/{ref}/ack", json={"answer": "acknowledged"})

        with ThreadPoolExecutor(self.n) as ex:  # each party watches for the notice at once
            list(ex.map(ack, range(1, self.n)))
        acks = f"/channels/{ch}/messages/{ref}/acks"
        wait("the facilitator to hold every answer",
             lambda: len(self.apis[0].get(acks)) == self.n - 1, 900, 0.2)  # fmt: skip
        self.settle()
        return str(ref)

    def _last_id(self, i: int) -> int:
        after = 0
        while page := self.apis[i].get(
            f"/channels/{self.channel}/messages", params={"after": after}
        ):
            after = int(page[-1]["id"])
        return after

    def cpu(self) -> list[float]:
        return [cpu_s(p.pid) for p in self.procs]

    def rss_mib(self) -> list[float]:
        return [rss_kb(p.pid) / 1024 for p in self.procs]

    def close(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                stop(p)


@dataclass
class Result:
    n: int
    phases: dict[str, float]
    phase_cpu: dict[str, float]
    round_s: float
    round_cpu: list[float]
    idle_cpu: list[float]
    idle_s: float
    rss: list[float]

    @property
    def deliveries(self) -> int:
        return self.n * (self.n - 1)


def run(n: int, timings: Timings, idle_s: float, prof: Path | None, parallel: int) -> Result:
    """One network of `n` from start to stop; `prof`: a directory for py-spy's profiles."""
    with tempfile.TemporaryDirectory() as d:
        net = Network(Path(d), n, timings, parallel)
        try:
            net.timed("start", net.start)
            net.timed("peers", net.mesh)
            net.timed("channel", net.open_channel)
            # Idle: the channel open, nothing to send: what heartbeats and ticks cost.
            spy = profile(net.procs[1].pid, prof / f"idle-n{n}.txt", 600) if prof else None
            c0 = net.cpu()
            time.sleep(idle_s)
            idle = [b - a for a, b in zip(c0, net.cpu(), strict=True)]
            finish(spy)
            spy = profile(net.procs[1].pid, prof / f"round-n{n}.txt", 600) if prof else None
            c0 = net.cpu()
            t0 = time.perf_counter()
            net.notice_round()
            took = time.perf_counter() - t0
            used = [b - a for a, b in zip(c0, net.cpu(), strict=True)]
            finish(spy)
            return Result(n, net.phases, net.phase_cpu, took, used, idle, idle_s, net.rss_mib())
        finally:
            net.close()


def report(r: Result, base: Result | None) -> None:
    med = statistics.median
    per_ms = r.round_s / r.deliveries * 1000
    cpu_ms = sum(r.round_cpu) / r.deliveries * 1000
    idle_pct = [c / r.idle_s * 100 for c in r.idle_cpu]
    lines = [
        f"N = {r.n}: {r.n - 1} parties and the facilitator, {r.deliveries} deliveries",
        "  set-up: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in r.phases.items())
        + " (CPU of the median station: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in r.phase_cpu.items())
        + ")",
        f"  idle, channel open ({r.idle_s:.0f} s): CPU per station {spread(idle_pct)} % of a core"
        " (min / median / max)",
        f"  notice + every acknowledgement receipted everywhere: {r.round_s:.2f} s"
        f" ({per_ms:.1f} ms per delivery)",
        f"  CPU of that round per station {spread(r.round_cpu)} s; all stations"
        f" {sum(r.round_cpu):.1f} s = {cpu_ms:.1f} ms per delivery",
        f"  RSS per station {spread(r.rss)} MiB; all {sum(r.rss):.0f} MiB",
    ]
    if base is not None:
        base_ms = base.round_s / base.deliveries * 1000
        base_cpu = sum(base.round_cpu) / base.deliveries * 1000
        lines += [
            f"  against N = {base.n} in this run (x {r.deliveries / base.deliveries:.0f} the"
            f" deliveries, x {(r.n - 1) / (base.n - 1):.0f} the peers of each station):",
            f"    round time x {r.round_s / base.round_s:.1f}; per delivery"
            f" {per_ms / base_ms:.2f}; CPU per delivery {cpu_ms / base_cpu:.2f}",
            f"    CPU per station: round x {med(r.round_cpu) / med(base.round_cpu):.1f},"
            f" channel open x {r.phase_cpu['channel'] / base.phase_cpu['channel']:.1f},"
            f" idle x {med(r.idle_cpu) / max(med(base.idle_cpu), 0.01):.1f};"
            f" RSS x {med(r.rss) / med(base.rss):.2f}",
        ]
    print("\n".join(lines), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--stations", type=int, nargs="+", default=[20],
        help="N, the facilitator included; several: one network each, in turn",
    )  # fmt: skip
    ap.add_argument("--baseline", type=int, default=2, help="the baseline's N, same run (0: none)")
    ap.add_argument("--heartbeat-ms", type=int, default=Timings().heartbeat_ms)
    ap.add_argument("--idle-s", type=float, default=10.0, help="idle measure with the channel open")
    ap.add_argument("--parallel", type=int, default=8, help="set-up API calls at once")
    ap.add_argument("--profile", type=Path, help="py-spy one party (idle, round) into DIR")
    a = ap.parse_args()
    if min(a.stations) < 2 or a.baseline == 1:
        ap.error("a network has at least 2 stations (a facilitator and one party)")
    timings = Timings(heartbeat_ms=a.heartbeat_ms)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    if a.profile:
        a.profile.mkdir(parents=True, exist_ok=True)
    base = None
    if a.baseline:
        base = run(a.baseline, timings, a.idle_s, None, a.parallel)
        report(base, None)
    for n in a.stations:
        report(run(n, timings, a.idle_s, a.profile, a.parallel), base)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
