"""Every promise of delivery under faults: two stations exchange messages both ways through
fault proxies (delay, drop, lost replies, duplicates, reordering, partitions), with SIGKILLs at
random moments and clocks skewed within the allowed window. Afterwards: no message lost,
duplicated or reordered, both transcripts identical, and each member's export verified offline.

The CI-sized run is part of the suite; `PARLEY_FAULTS=long` runs the long one (figures printed
with `-s`). Every loop is bounded in count and time.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from parley.cli.client import Api, ApiError
from parley.cli.demo import free_port, start
from parley.cli.transcript import station_anchors
from parley.protocol import verifier
from parley.protocol.export import read_lines
from parley.station.config import Config, Timings, init_dir
from tests.faultproxy import FaultProxy
from tests.net import wait

LONG = os.environ.get("PARLEY_FAULTS") == "long"


@dataclass
class Node:
    name: str
    data: Path
    offset_ms: int
    proxy: FaultProxy
    proc: subprocess.Popen[bytes] | None = None

    def start(self, log: Path) -> None:
        os.environ["PARLEY_CLOCK_OFFSET_MS"] = str(self.offset_ms)
        try:
            self.proc = start(self.data, log)
        finally:
            del os.environ["PARLEY_CLOCK_OFFSET_MS"]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def api(self) -> Api:
        return Api(self.data, timeout_s=5)


def _call(node: Node, method: str, path: str, deadline: float, **kw: object) -> object:
    """Call the operator API, retrying while the station is down (it may be being killed)."""
    while True:
        try:
            return node.api().call(method, path, **kw)  # type: ignore[arg-type]
        except ApiError as exc:
            if exc.code != "station_unreachable" or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sender(node: Node, ch: str, n: int, deadline: float, errors: list[str]) -> None:
    try:
        for i in range(n):
            _call(
                node, "POST", f"/channels/{ch}/messages", deadline,
                json={"text": f"{node.name} {i}"},
                headers={"Idempotency-Key": f"{node.name}-{i}"},
            )  # fmt: skip
    except Exception as exc:  # reported by the test, not swallowed
        errors.append(f"{node.name}: {exc!r}")


def _texts(node: Node, ch: str, sender: str, deadline: float) -> list[str]:
    msgs = _call(node, "GET", f"/channels/{ch}/messages", deadline, params={"limit": 10_000})
    assert isinstance(msgs, list)
    return [
        m["body"]["text"] for m in msgs if m["sender"] == sender and m["body"]["type"] == "text"
    ]


def run_chaos(root: Path, messages: int, kills: int, budget_s: float, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    timings = Timings(retry_base_ms=50, retry_max_ms=400, heartbeat_ms=300)
    figures: Counter[str] = Counter(messages_each_way=messages)
    with ExitStack() as stack:
        nodes = []
        # Clocks 3 minutes apart, inside the 5-minute window both stations allow.
        for name, lang, offset in (("South", "en", 90_000), ("North", "ko", -90_000)):
            port = free_port()
            proxy = FaultProxy(f"http://127.0.0.1:{port}", seed=rng.randrange(1 << 30)).start()
            stack.callback(proxy.stop)
            cfg = Config(name, lang, f"127.0.0.1:{port}", public_url=proxy.url, timings=timings)
            init_dir(root / name, cfg)
            node = Node(name, root / name, offset, proxy)
            node.start(root / f"{name}.log")
            stack.callback(node.kill)
            nodes.append(node)
        south, north = nodes
        deadline = time.monotonic() + budget_s
        inv = {n.name: _call(n, "GET", "/invitation", deadline)["invitation"] for n in nodes}  # type: ignore[index]
        _call(south, "POST", "/peers", deadline, json={"invitation": inv["North"]})
        _call(north, "POST", "/peers", deadline, json={"invitation": inv["South"]})
        north_id = _call(north, "GET", "/station", deadline)["station"]  # type: ignore[index]
        ch = _call(south, "POST", "/channels", deadline,
                   json={"kind": "hotline", "title": "Chaos", "peers": [north_id]})["channel"]  # type: ignore[index]  # fmt: skip
        wait(lambda: any(c["channel"] == ch for c in north.api().get("/channels")))
        north.api().post(f"/channels/{ch}/consent")
        wait(lambda: south.api().get(f"/channels/{ch}")["state"] == "open")

        for n in nodes:
            n.proxy.enabled = True
        errors: list[str] = []
        senders = [
            threading.Thread(target=_sender, args=(n, ch, messages, deadline, errors))
            for n in nodes
        ]
        for t in senders:
            t.start()
        while any(t.is_alive() for t in senders) and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.2, 0.8))
            action = rng.choice(["kill", "cut", "calm"])
            victim = rng.choice(nodes)
            if action == "kill" and figures["kills"] < kills:
                victim.kill()
                time.sleep(rng.uniform(0, 0.4))
                victim.start(root / f"{victim.name}.log")
                figures["kills"] += 1
            elif action == "cut":
                victim.proxy.cut = True
                time.sleep(rng.uniform(0.3, 1.2))
                victim.proxy.cut = False
                figures["partitions"] += 1
        for t in senders:
            t.join(max(1.0, deadline - time.monotonic()))
        assert not errors, errors
        for n in nodes:
            n.proxy.enabled = False
            figures.update({f"proxy_{k}": v for k, v in n.proxy.counts.items()})

        def settled() -> bool:
            return all(
                len(_texts(a, ch, b_id, deadline)) >= messages
                for a, b_id in ((north, _id(south, deadline)), (south, north_id))
            )

        wait(settled, timeout_s=max(5.0, deadline - time.monotonic()), what="convergence")
        violations = 0
        for reader, writer in ((north, south), (south, north)):
            got = _texts(reader, ch, _id(writer, deadline), deadline)
            want = [f"{writer.name} {i}" for i in range(messages)]
            lost = set(want) - set(got)
            duplicated = [t for t, c in Counter(got).items() if c > 1]
            seen, wanted = set(got), set(want)
            reordered = [t for t in got if t in wanted] != [t for t in want if t in seen]
            violations += len(lost) + len(duplicated) + int(reordered)
        digests = [_call(n, "GET", f"/channels/{ch}/transcript", deadline) for n in nodes]
        violations += int(digests[0] != digests[1])
        for n in nodes:
            violations += len(_call(n, "GET", "/evidence", deadline))  # type: ignore[arg-type]
            # Each member's export passes the offline verifier, every check by name.
            export = n.api().http.get(f"/api/v1/channels/{ch}/export")
            export.raise_for_status()
            # Anchored as `parley transcript verify` run at that station: its key and its peers'.
            trusted = station_anchors(n.data)
            report = verifier.verify_transcript(read_lines(export.content), trust=trusted)
            violations += len(report.failed)
            figures["verified_exports"] += int(report.ok)
        figures["violations"] = violations
    return dict(figures)


def _id(node: Node, deadline: float) -> str:
    return str(_call(node, "GET", "/station", deadline)["station"])  # type: ignore[index]


@pytest.mark.timeout(600)
def test_no_message_lost_duplicated_or_reordered_under_faults(tmp_path: Path) -> None:
    if LONG:
        figures = run_chaos(tmp_path, messages=2000, kills=30, budget_s=540, seed=7)
    else:
        figures = run_chaos(tmp_path, messages=120, kills=4, budget_s=150, seed=1)
    print("fault run:", figures)
    assert figures["violations"] == 0, figures
    assert figures["kills"] >= 1 and figures["partitions"] >= 1, figures
    assert figures["verified_exports"] == 2, figures
