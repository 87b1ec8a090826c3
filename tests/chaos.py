"""The fault run: two stations exchange messages both ways through fault proxies (delay, drop, lost
replies, duplicates, reordering: tests/faultproxy.py) while they are SIGKILLed and partitioned, with
clocks skewed within the allowed window. Afterwards nothing may be lost, duplicated or reordered,
both transcripts must be identical, and each member's export must pass `parley transcript verify`.

Used by tests/test_faults.py (CI sizes) and bench/faults.py (the goal size: 100,000 messages, 200
kills, 50 partitions). The final check streams: messages are read page by page, each sending thread
is tracked with one bit per message, each chain with a running hash, and the exports go to files
that the verifier reads as it goes, so the checker's memory does not grow with the run.

Kills and partitions are spread evenly over the sends (the k-th of K when k/(K+1) of the messages
have been answered), so a run reaches its counts whatever the machine's speed; the sends wait when
they get more than one spacing ahead of the next kill (a restart takes seconds), so the kills stay
among the sends rather than piling up after them. Every loop is bounded in count and time.
"""

from __future__ import annotations

import hashlib
import random
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.cli.demo import free_port
from parley.station.config import Timings
from tests.faultproxy import FaultProxy
from tests.procs import Pair, Proc, call, open_pair, peak_rss_kb, until

TIMINGS = Timings(retry_base_ms=50, retry_max_ms=400, heartbeat_ms=300)
PAGE = 1000  # messages per page of the final check


@dataclass(frozen=True)
class Size:
    messages: int  # in all, half each way
    kills: int
    partitions: int
    seconds: float  # the whole run, set-up to verdict
    senders: int = 2  # concurrent sending threads per station (each its own ordered stream)
    batch: int = 1  # messages per API request (1: POST …/messages; more: …/messages/batch)
    seed: int = 7


@dataclass
class Stream:
    """One sending thread's messages as a reader holds them: one bit each, and the last index."""

    seen: bytearray
    last: int = -1


@dataclass
class Scan:
    """What one station holds of the channel, read page by page."""

    texts: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    unverified: int = 0
    foreign: int = 0  # a text nobody in the run sent
    chain_gaps: int = 0
    chains: dict[str, tuple[int, str]] = field(default_factory=dict)  # sender -> (len, digest)


def scan(proc: Proc, ch: str, names: dict[str, str], per_stream: list[int],
         deadline: float) -> Scan:  # fmt: skip
    """Read every message of `ch` at `proc`, page by page, and check each sending thread's
    stream for loss, duplicates and order, and each chain for gaps (in stored order)."""
    out = Scan()
    streams = {
        (name, k): Stream(bytearray(n)) for name in names.values() for k, n in enumerate(per_stream)
    }
    digests: dict[str, Any] = {}
    heads: dict[str, int] = {}
    api, after = proc.api(timeout_s=60), 0
    while True:
        page = call(proc.data, "GET", f"/channels/{ch}/messages", deadline, api=api,
                    params={"after": after, "limit": PAGE})  # fmt: skip
        if not page:
            break
        after = page[-1]["id"]
        for m in page:
            sender, seq = m["sender"], m["seq"]
            if seq != heads.get(sender, 0) + 1:
                out.chain_gaps += 1
            heads[sender] = seq
            digests.setdefault(sender, hashlib.sha256()).update(f"{seq} {m['hash']}\n".encode())
            if m["signature"] != "verified":
                out.unverified += 1
            body = m["body"]
            if body.get("type") != "text":
                continue
            out.texts += 1
            name, k, i = _parse(body.get("text", ""))
            st = streams.get((name, k))
            if st is None or names.get(sender) != name or not 0 <= i < len(st.seen):
                out.foreign += 1
            elif st.seen[i]:
                out.duplicated += 1
            else:
                out.reordered += int(i < st.last)
                st.seen[i] = 1
                st.last = max(st.last, i)
    out.lost = sum(len(st.seen) - sum(st.seen) for st in streams.values())
    out.chains = {s: (heads[s], d.hexdigest()) for s, d in digests.items()}
    return out


def _parse(text: str) -> tuple[str, int, int]:
    parts = text.split(" ")
    if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
        return "", -1, -1
    return parts[0], int(parts[1]), int(parts[2])


class Senders:
    """Each station's `senders` threads, each sending its own numbered stream in order, retrying
    through kills with the same idempotency key (at-least-once from the client's side)."""

    def __init__(self, pair: Pair, size: Size, per_stream: list[int], deadline: float) -> None:
        self.pair, self.size, self.per_stream, self.deadline = pair, size, per_stream, deadline
        self.answered = 0
        self.limit = sys.maxsize  # sends wait while this many are answered (see Faults.gate)
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(p, k), daemon=True)
            for p in pair.procs
            for k in range(len(per_stream))
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def _run(self, proc: Proc, k: int) -> None:
        ch, n, batch = self.pair.channel, self.per_stream[k], self.size.batch
        api = proc.api(timeout_s=15)
        try:
            for i in range(0, n, batch):
                while self.answered >= self.limit and time.monotonic() < self.deadline:
                    time.sleep(0.05)
                texts = [f"{proc.name} {k} {j}" for j in range(i, min(i + batch, n))]
                key = {"Idempotency-Key": f"{proc.name}-{k}-{i}"}
                if batch == 1:
                    call(proc.data, "POST", f"/channels/{ch}/messages", self.deadline, api=api,
                         json={"text": texts[0]}, headers=key)  # fmt: skip
                else:
                    many = {"messages": [{"text": t} for t in texts]}
                    call(proc.data, "POST", f"/channels/{ch}/messages/batch", self.deadline,
                         api=api, json=many, headers=key)  # fmt: skip
                with self._lock:
                    self.answered += len(texts)
        except Exception as exc:  # reported in the figures, not swallowed
            self.errors.append(f"{proc.name} {k}: {exc!r}")


def _spread(count: int, total: int) -> list[int]:
    """The progress marks at which each of `count` events happens: evenly over `total`."""
    return [total * (j + 1) // (count + 1) for j in range(count)]


class Faults:
    """Kills and partitions, driven by the senders' progress (see the module docstring)."""

    def __init__(self, pair: Pair, proxies: list[FaultProxy], size: Size, total: int) -> None:
        self.pair, self.proxies = pair, proxies
        self.rng = random.Random(size.seed ^ 0x5EED)
        self.kill_at = _spread(size.kills, total)
        self.cut_at = _spread(size.partitions, total)
        self.spacing = total // (size.kills + 1)
        self.cut_until = 0.0
        self.kills = self.partitions = 0

    def step(self, progress: int) -> None:
        now = time.monotonic()
        if self.cut_until and now >= self.cut_until:
            self._cut(False)
        if self.cut_at and progress >= self.cut_at[0] and not self.cut_until:
            self.cut_at.pop(0)
            self._cut(True)
            self.cut_until = now + self.rng.uniform(0.5, 2.5)
            self.partitions += 1
        if self.kill_at and progress >= self.kill_at[0]:
            self.kill_at.pop(0)
            victim = self.rng.choice(self.pair.procs)
            victim.kill_and_restart(pause_s=self.rng.uniform(0, 0.4))
            self.kills += 1

    def gate(self) -> int:
        """How far the sends may run ahead: one spacing past the next kill, so that kills (a
        restart takes seconds) stay spread over the sends instead of piling up at the end."""
        return self.kill_at[0] + self.spacing if self.kill_at else sys.maxsize

    def remaining(self) -> bool:
        return bool(self.kill_at or self.cut_at or self.cut_until)

    def _cut(self, on: bool) -> None:
        """Both directions at once: neither station reaches the other."""
        for p in self.proxies:
            p.cut = on
        if not on:
            self.cut_until = 0.0


def outboxes_empty(pair: Pair, deadline: float) -> bool:
    """Every envelope either station queued has been receipted by the other."""
    for p in pair.procs:
        st = call(p.data, "GET", "/status", deadline)
        if any(peer["pending"] for peer in st["peers"]):
            return False
    return True


def settle(pair: Pair, names: dict[str, str], per_stream: list[int],
           deadline: float) -> dict[str, Scan]:  # fmt: skip
    """Scan both stations once both outboxes are empty; again (until the run's deadline) while
    their chains differ, as the last checkpoints and cosignatures may still be in flight."""
    while True:
        until(lambda: outboxes_empty(pair, deadline), deadline, "every envelope receipted", 0.5)
        scans = {p.name: scan(p, pair.channel, names, per_stream, deadline) for p in pair.procs}
        if scans["South"].chains == scans["North"].chains or time.monotonic() > deadline:
            return scans  # chains that still differ at the deadline are counted as a violation
        time.sleep(0.5)


def verify_export(proc: Proc, ch: str, root: Path, deadline: float) -> tuple[bool, int]:
    """Stream `proc`'s export of `ch` to a file and run `parley transcript verify` on it, anchored
    at that station (its own key and its peers'). Returns (ok, the verifier's peak RSS in KiB)."""
    path = root / f"{proc.name}.transcript"
    api = proc.api(timeout_s=max(10.0, deadline - time.monotonic()))
    with path.open("wb") as f, api.http.stream("GET", f"/api/v1/channels/{ch}/export") as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            f.write(chunk)
    cmd = [sys.executable, "-m", "parley.cli", "transcript", "verify", str(path),
           "--data", str(proc.data), "--quiet"]  # fmt: skip
    with (root / f"{proc.name}.verify.log").open("wb") as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        # Its own high-water mark, polled (wait4's ru_maxrss would start from this process's
        # RSS at the fork); the worker processes it starts are not counted.
        peak = 0
        while p.poll() is None:
            peak = max(peak, peak_rss_kb(p.pid))
            time.sleep(0.1)
    path.unlink()
    return p.returncode == 0, peak


def run(root: Path, size: Size, log: Any = None) -> dict[str, Any]:
    """One fault run of `size` under `root`; returns its figures (see `summary`)."""
    t0 = time.monotonic()
    deadline = t0 + size.seconds
    rng = random.Random(size.seed)
    each_way = size.messages // 2
    threads = max(1, min(size.senders, each_way))
    per_stream = [each_way // threads + (k < each_way % threads) for k in range(threads)]
    figures: dict[str, Any] = {"messages_each_way": each_way}
    with ExitStack() as stack:
        ports = {name: free_port() for name in ("South", "North")}
        proxies = {
            name: FaultProxy(f"http://127.0.0.1:{port}", seed=rng.randrange(1 << 30)).start()
            for name, port in ports.items()
        }
        for p in proxies.values():
            stack.callback(p.stop)
        # Clocks 3 minutes apart, inside the 5-minute window both stations allow.
        pair = open_pair(
            root, TIMINGS, deadline, ports=ports,
            public_urls={n: p.url for n, p in proxies.items()},
            offsets={"South": 90_000, "North": -90_000},
        )  # fmt: skip
        stack.callback(pair.stop)
        names = {pair.ids[p.name]: p.name for p in pair.procs}
        for p in proxies.values():
            p.enabled = True
        senders = Senders(pair, size, per_stream, deadline)
        faults = Faults(pair, list(proxies.values()), size, 2 * each_way)
        senders.start()
        last_note = time.monotonic()
        while (senders.alive() or faults.remaining()) and time.monotonic() < deadline:
            faults.step(senders.answered if senders.alive() else 2 * each_way)
            senders.limit = faults.gate()
            for p in pair.procs:
                p.sample()
            if log is not None and time.monotonic() - last_note > 30:
                last_note = time.monotonic()
                print(f"  {last_note - t0:6.0f} s  answered {senders.answered:,} of "
                      f"{2 * each_way:,}  kills {faults.kills}  partitions {faults.partitions}",
                      file=log, flush=True)  # fmt: skip
            time.sleep(0.05 if senders.alive() else 0.5)
        faults._cut(False)
        t_sent = time.monotonic()
        figures["send_s"] = round(t_sent - t0, 1)
        figures["send_errors"] = senders.errors[:5]
        figures["answered"] = senders.answered
        figures["kills"], figures["partitions"] = faults.kills, faults.partitions
        for name, p in proxies.items():
            p.enabled = False
            figures.update({f"proxy_{name}_{k}": v for k, v in sorted(p.counts.items())})

        scans = settle(pair, names, per_stream, deadline)
        figures["converge_s"] = round(time.monotonic() - t_sent, 1)
        violations: Counter[str] = Counter()
        for s in scans.values():
            for k in ("lost", "duplicated", "reordered", "unverified", "foreign", "chain_gaps"):
                violations[k] += getattr(s, k)
        figures.update({f"texts_at_{n}": s.texts for n, s in scans.items()})
        violations["chains_differ"] = int(scans["South"].chains != scans["North"].chains)
        # The stations' own digests over every chain (each envelope checked again at rest).
        digests = [call(p.data, "GET", f"/channels/{pair.channel}/transcript", deadline,
                        api=p.api(timeout_s=600)) for p in pair.procs]  # fmt: skip
        violations["digests_differ"] = int(digests[0] != digests[1])
        violations["integrity_failed"] = sum(d["integrity"]["failed"] for d in digests)
        for p in pair.procs:
            violations["evidence"] += len(call(p.data, "GET", "/evidence", deadline))
        figures["verified_exports"] = 0
        for p in pair.procs:
            ok, kb = verify_export(p, pair.channel, root, deadline)
            figures["verified_exports"] += int(ok)
            figures[f"rss_verify_{p.name}_kb"] = kb
        for p in pair.procs:
            figures[f"rss_station_{p.name}_kb"] = p.sample()
            figures[f"slow_starts_{p.name}"] = p.slow_starts
    figures["rss_checker_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    figures.update({k: v for k, v in violations.items()})
    figures["violations"] = sum(violations.values()) + len(senders.errors)
    figures["wall_s"] = round(time.monotonic() - t0, 1)
    return figures


def summary(f: dict[str, Any]) -> str:
    """The one line a run ends with."""
    mib = lambda kb: f"{kb / 1024:.0f} MiB"  # noqa: E731
    verify_kb = max(f["rss_verify_South_kb"], f["rss_verify_North_kb"])
    return (
        f"faults: {f['messages_each_way']:,} messages each way, {f['kills']} kills, "
        f"{f['partitions']} partitions; lost {f.get('lost', 0)}, duplicated "
        f"{f.get('duplicated', 0)}, reordered {f.get('reordered', 0)}, violations "
        f"{f['violations']}, exports verified {f['verified_exports']}/2; max RSS checker "
        f"{mib(f['rss_checker_kb'])}, South {mib(f['rss_station_South_kb'])}, North "
        f"{mib(f['rss_station_North_kb'])}, verify {mib(verify_kb)}; "
        f"wall {f['wall_s']:.0f} s (sending {f['send_s']:.0f} s, catch-up and checks "
        f"{f['wall_s'] - f['send_s']:.0f} s)"
    )
