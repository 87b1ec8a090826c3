"""Real station processes on loopback for tests: start N, introduce them, open channels.

    with Stations(tmp_path, [("South", "en"), ("North", "ko"), ("UN", "en")]) as net:
        ch = net.open_channel("South", ["North"], kind="hotline")
        net.api("South").post(f"/channels/{ch}/messages", json={"text": "hello"})
        net.wait(lambda: len(net.api("North").get(f"/channels/{ch}/messages")) == 3)
        net.cli("North", "inbox")

Each station is `parley station run` in its own process group with its own data directory
(SQLite), so the tests drive exactly what an operator runs. `timings` shortens heartbeats etc.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from parley.cli.client import Api
from parley.cli.demo import init, start
from parley.station.config import Timings


def parley(
    *args: str, data: Path | None = None, ok: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `parley` command; with ok=True, fail the test unless it exits 0."""
    cmd = [sys.executable, "-m", "parley.cli", *args]
    if data is not None:
        # Before a "--" (after which a hash or id that starts with "-" is not read as an option).
        at = cmd.index("--") if "--" in cmd else len(cmd)
        cmd[at:at] = ["--data", str(data)]
    res = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )
    if ok:
        assert res.returncode == 0, res.stderr + res.stdout
    return res


LIVENESS_S = 120.0  # how long a wait may take before the test fails: CI is a loaded 2-core machine


def wait(
    pred: Callable[[], object],
    timeout_s: float = LIVENESS_S,
    what: str = "condition",
    every_s: float = 0.1,
) -> None:
    """Poll `pred` until it holds. The bound is a liveness bound, not a timing assertion: a wait
    that succeeds returns at once, so it costs nothing to make it generous. A test that needs
    "before X happens" bounds X itself (e.g. a backoff far longer than this)."""
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every_s)


class Stations:
    def __init__(
        self, root: Path, people: list[tuple[str, str]], timings: Timings | None = None
    ) -> None:
        self.root = root
        self.people = people
        self.timings = timings
        self.dirs: dict[str, Path] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ids: dict[str, str] = {}

    def __enter__(self) -> Stations:
        try:
            for name, lang in self.people:
                d = self.root / name.lower()
                init(d, name, lang, self.timings)
                self.dirs[name] = d
                self.procs[name] = start(d, self.root / f"{name.lower()}.log")
                self.ids[name] = self.api(name).get("/station")["station"]
            names = [n for n, _ in self.people]
            for a in names:
                for b in names:
                    if a < b:
                        self.introduce(a, b)
        except BaseException:
            self.stop_all()
            raise
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()

    def api(self, name: str) -> Api:
        return Api(self.dirs[name])

    def person(self, station: str, name: str, roles: list[str]) -> Api:
        """A user of `station` with `roles`, made by its admin, signed in with their password."""
        password = secrets.token_urlsafe(18)
        self.api(station).post("/users", json={"name": name, "roles": roles, "password": password})
        session = self.api(station).post("/login", json={"name": name, "password": password})
        return Api(self.dirs[station], as_token=session["token"])

    def cli(self, name: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return parley(*args, data=self.dirs[name], ok=ok)

    def introduce(self, a: str, b: str) -> None:
        inv_a = self.api(a).get("/invitation")["invitation"]
        inv_b = self.api(b).get("/invitation")["invitation"]
        self.api(b).post("/peers", json={"invitation": inv_a})
        self.api(a).post("/peers", json={"invitation": inv_b})

    def open_channel(
        self, proposer: str, others: list[str], kind: str = "hotline", title: str = "Hotline",
        **extra: Any,
    ) -> str:  # fmt: skip
        """Propose a channel and have every other member consent; returns once all see it open."""
        req = {"kind": kind, "title": title, "peers": [self.ids[o] for o in others], **extra}
        ch: str = self.api(proposer).post("/channels", json=req)["channel"]
        for o in others:
            wait(lambda o=o: self._has(o, ch), what=f"{o} to receive the proposal")
            self.api(o).post(f"/channels/{ch}/consent")
        for n in [proposer, *others]:
            wait(
                lambda n=n: self.api(n).get(f"/channels/{ch}")["state"] == "open",
                what=f"{n} to see the channel open",
            )
        return ch

    def _has(self, name: str, ch: str) -> bool:
        return any(c["channel"] == ch for c in self.api(name).get("/channels"))

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        p = self.procs.pop(name, None)
        if p is not None and p.poll() is None:
            os.killpg(p.pid, sig)
            p.wait(LIVENESS_S)  # a clean stop on a loaded machine, not a hang

    def restart(self, name: str) -> None:
        self.stop(name)
        self.procs[name] = start(self.dirs[name], self.root / f"{name.lower()}.log")

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
