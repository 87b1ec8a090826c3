"""Two real station processes on loopback, 1,000 messages each way, each station SIGKILLed and
restarted mid-stream: afterwards both hold all 2,000 exactly once, in order, with identical
transcripts (issue 2 item 9). Every loop is bounded in count and time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from parley.cli.client import Api
from tests.procs import FAST, Proc, call, open_pair

N = 1000
# A liveness bound for the whole test, under pytest's 600 s: 211 s were seen on a loaded machine.
DEADLINE_S = 540


@pytest.mark.slow
def test_thousand_each_way_survive_sigkill(tmp_path: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    pair = open_pair(tmp_path, FAST, deadline)
    a, b, ch = pair.south, pair.north, pair.channel
    try:
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
        pair.stop()
