"""Two real station processes on loopback, 1,000 messages each way, each station SIGKILLed and
restarted mid-stream: afterwards both hold all 2,000 exactly once, in order, with identical
transcripts (issue 2 item 9). Every loop is bounded in count and time."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from parley.cli.client import Api, ApiError
from parley.cli.demo import init, start
from parley.station.config import Timings

N = 1000
DEADLINE_S = 300
FAST = Timings(retry_base_ms=50, retry_max_ms=1000, heartbeat_ms=500)


class Proc:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.log = data.parent / f"{data.name}.log"
        self.p = start(data, self.log)
        self.lock = threading.Lock()

    def kill_and_restart(self) -> None:
        with self.lock:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait(10)
            self.p = start(self.data, self.log)

    def stop(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)


def call(data: Path, method: str, path: str, deadline: float, **kw: object) -> object:
    """Call the API, retrying while the station is down (bounded by `deadline`)."""
    while True:
        try:
            return Api(data, timeout_s=5).call(method, path, **kw)
        except ApiError as exc:
            if exc.code != "station_unreachable" or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.slow
def test_thousand_each_way_survive_sigkill(tmp_path: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    init(tmp_path / "a", "South", "en", FAST)
    init(tmp_path / "b", "North", "ko", FAST)
    a, b = Proc(tmp_path / "a"), Proc(tmp_path / "b")
    try:
        inv_a = call(a.data, "GET", "/invitation", deadline)["invitation"]  # type: ignore[index]
        inv_b = call(b.data, "GET", "/invitation", deadline)["invitation"]  # type: ignore[index]
        call(a.data, "POST", "/peers", deadline, json={"invitation": inv_b})
        b_info = call(b.data, "POST", "/peers", deadline, json={"invitation": inv_a})
        b_id = Api(b.data).get("/station")["station"]
        ch = call(a.data, "POST", "/channels", deadline,
                  json={"title": "hotline", "peers": [b_id]})["channel"]  # type: ignore[index]  # fmt: skip
        while not any(c["channel"] == ch for c in Api(b.data).get("/channels")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        call(b.data, "POST", f"/channels/{ch}/consent", deadline, json={})
        while Api(a.data).get(f"/channels/{ch}")["state"] != "open":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert b_info

        progress = {"a": 0, "b": 0}
        errors: list[BaseException] = []

        def sender(proc: Proc, tag: str) -> None:
            try:
                for i in range(N):
                    key = {"Idempotency-Key": f"{tag}-{i}"}
                    call(proc.data, "POST", f"/channels/{ch}/messages", deadline,
                         json={"text": f"{tag} {i}"}, headers=key)  # fmt: skip
                    progress[tag] = i + 1
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [
            threading.Thread(target=sender, args=(a, "a")),
            threading.Thread(target=sender, args=(b, "b")),
        ]
        for t in threads:
            t.start()
        kills = 0
        for proc, tag, at in ((a, "a", 300), (b, "b", 600)):
            while progress[tag] < at and not errors and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.kill_and_restart()
            kills += 1
        for t in threads:
            t.join(max(1.0, deadline - time.monotonic()))
        assert not errors, errors
        assert progress == {"a": N, "b": N} and kills == 2

        def settled() -> bool:
            for proc in (a, b):
                st = call(proc.data, "GET", "/status", deadline)
                if st["peers"][0]["pending"] != 0:  # type: ignore[index]
                    return False
            return True

        while not settled():
            assert time.monotonic() < deadline, "delivery did not finish in time"
            time.sleep(0.2)

        for proc in (a, b):
            msgs = call(proc.data, "GET", f"/channels/{ch}/messages", deadline,
                        params={"limit": 10_000})  # fmt: skip
            texts = [m["body"]["text"] for m in msgs if m["body"]["type"] == "text"]  # type: ignore[union-attr]
            for tag in ("a", "b"):
                mine = [t for t in texts if t.startswith(tag + " ")]
                assert mine == [f"{tag} {i}" for i in range(N)], f"{proc.data.name} {tag}"
            assert len(texts) == 2 * N
            others = {m["body"]["type"] for m in msgs} - {"text"}  # type: ignore[index]
            assert others <= {"channel.propose", "channel.consent", "checkpoint",
                              "checkpoint.cosign"}  # fmt: skip

        def transcripts() -> tuple[object, object]:
            return (
                Api(a.data).get(f"/channels/{ch}/transcript"),
                Api(b.data).get(f"/channels/{ch}/transcript"),
            )

        while transcripts()[0] != transcripts()[1]:  # the last cosignatures may be in flight
            assert time.monotonic() < deadline, "transcripts did not converge"
            time.sleep(0.2)
        da, _ = transcripts()
        assert sum(da["chains"].values()) == len(msgs)  # type: ignore[index]
    finally:
        a.stop()
        b.stop()
