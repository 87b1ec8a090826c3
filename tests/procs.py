"""Station processes that can be SIGKILLed and restarted, and two of them with a channel open.

The crash tests (tests/test_crash_integration.py, tests/test_writer_crash.py), the fault run
(tests/chaos.py) and bench/faults.py share this: each station is `parley station run` in its own
process group with its own SQLite data directory, so a SIGKILL takes the whole station down the
way a power cut would. Every wait is bounded by a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.cli.client import Api, ApiError
from parley.cli.demo import free_port, start
from parley.errors import LocalError
from parley.station.config import Config, Timings, init_dir

FAST = Timings(retry_base_ms=50, retry_max_ms=1000, heartbeat_ms=500)


def call(data: Path, method: str, path: str, deadline: float, api: Api | None = None,
         **kw: Any) -> Any:  # fmt: skip
    """Call the operator API, retrying while the station is down (it may be being killed), until
    `deadline` (time.monotonic())."""
    while True:
        try:
            return (api or Api(data, timeout_s=5)).call(method, path, **kw)
        except ApiError as exc:
            if exc.code != "station_unreachable" or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def peak_rss_kb(pid: int) -> int:
    """The peak resident set size of a running process so far (VmHWM), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Proc:
    """One station process: started at once, SIGKILLed and restarted at will. `offset_ms` skews
    its clock (PARLEY_CLOCK_OFFSET_MS); `peak_kb` is the largest peak RSS any of its lives
    reached, sampled before each kill and on `sample()`."""

    def __init__(self, data: Path, offset_ms: int = 0) -> None:
        self.data = data
        self.name = data.name
        self.log = data.parent / f"{data.name}.log"
        self.offset_ms = offset_ms
        self.lock = threading.Lock()
        self.peak_kb = 0
        self.slow_starts = 0
        self.p: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        # Only the thread driving the run starts stations, so the environment is not raced.
        os.environ["PARLEY_CLOCK_OFFSET_MS"] = str(self.offset_ms)
        try:
            try:
                self.p = start(self.data, self.log)
            except LocalError as exc:
                if "did not start" not in str(exc):
                    raise
                # Slower than demo.START_S on a loaded machine: once more, and counted.
                self.slow_starts += 1
                self.p = start(self.data, self.log)
        except LocalError as exc:
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise AssertionError(f"{exc}; the end of its log:\n{tail}") from exc
        finally:
            del os.environ["PARLEY_CLOCK_OFFSET_MS"]

    def sample(self) -> int:
        if self.p is not None:
            self.peak_kb = max(self.peak_kb, peak_rss_kb(self.p.pid))
        return self.peak_kb

    def kill(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.sample()
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait(10)
        self.p = None

    def kill_and_restart(self, pause_s: float = 0.0) -> None:
        with self.lock:
            self.kill()
            time.sleep(pause_s)
            self.start()

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.sample()
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(10)
        self.p = None

    def api(self, timeout_s: float = 5) -> Api:
        return Api(self.data, timeout_s=timeout_s)


@dataclass
class Pair:
    """Two stations, South (en) and North (ko), with an open hotline that South proposed."""

    south: Proc
    north: Proc
    channel: str
    ids: dict[str, str]  # name -> station id

    @property
    def procs(self) -> tuple[Proc, Proc]:
        return self.south, self.north

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


def open_pair(
    root: Path,
    timings: Timings,
    deadline: float,
    public_urls: dict[str, str] | None = None,
    offsets: dict[str, int] | None = None,
    ports: dict[str, int] | None = None,
) -> Pair:
    """Start South and North under `root`, introduce them and open a hotline between them.
    `public_urls` is what each one's invitation advertises (e.g. a fault proxy in front of it),
    listening on `ports`; `offsets` skews their clocks."""
    procs: list[Proc] = []
    try:
        for name, lang in (("South", "en"), ("North", "ko")):
            port = (ports or {}).get(name) or free_port()
            url = (public_urls or {}).get(name, "")
            cfg = Config(name, lang, f"127.0.0.1:{port}", public_url=url, timings=timings)
            init_dir(root / name, cfg)
            procs.append(Proc(root / name, (offsets or {}).get(name, 0)))
        south, north = procs
        ids = {p.name: call(p.data, "GET", "/station", deadline)["station"] for p in procs}
        inv = {p.name: call(p.data, "GET", "/invitation", deadline)["invitation"] for p in procs}
        call(south.data, "POST", "/peers", deadline, json={"invitation": inv["North"]})
        call(north.data, "POST", "/peers", deadline, json={"invitation": inv["South"]})
        hotline = {"kind": "hotline", "title": "Hotline", "peers": [ids["North"]]}
        made = call(south.data, "POST", "/channels", deadline, json=hotline)
        ch = made["channel"]
        until(lambda: any(c["channel"] == ch for c in north.api().get("/channels")), deadline,
              "North to receive the proposal")  # fmt: skip
        call(north.data, "POST", f"/channels/{ch}/consent", deadline, json={})
        until(lambda: south.api().get(f"/channels/{ch}")["state"] == "open", deadline,
              "South to see the channel open")  # fmt: skip
        return Pair(south, north, ch, ids)
    except BaseException:
        for p in procs:
            p.stop()
        raise


def until(pred: Any, deadline: float, what: str, every_s: float = 0.05) -> None:
    """Poll `pred` until it holds; fail once `deadline` (time.monotonic()) has passed. A station
    being restarted counts as "not yet"."""
    while True:
        try:
            if pred():
                return
        except ApiError as exc:
            if exc.code != "station_unreachable":
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every_s)
