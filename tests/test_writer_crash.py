"""A station SIGKILLed in the middle of a burst of concurrent sends (group commit, station/
writer.py): after it restarts, every send it answered "queued" is in its transcript, with the
seq and hash it answered, and nothing is there that nobody sent; sending the unanswered ones
again with their idempotency keys leaves each message exactly once, and the peer receives the
whole chain. Real processes on loopback; every loop is bounded in count and time."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from parley.cli.client import Api, ApiError
from tests.procs import FAST, call, open_pair

THREADS = 8
PER_THREAD = 60
KILL_AFTER = 150  # answered sends before the SIGKILL
DEADLINE_S = 540  # a liveness bound for the whole test, under pytest's 600 s (a loaded machine)


def own_texts(data: Path, ch: str, me: str, deadline: float) -> dict[str, tuple[int, str]]:
    msgs: Any = call(data, "GET", f"/channels/{ch}/messages", deadline, params={"limit": 10_000})
    mine = [m for m in msgs if m["sender"] == me and m["body"].get("type") == "text"]
    texts = [m["body"]["text"] for m in mine]
    assert len(texts) == len(set(texts)), "a message is in the transcript twice"
    seqs = [m["seq"] for m in msgs if m["sender"] == me]
    assert sorted(seqs) == list(range(1, len(seqs) + 1)), "the chain has a gap"
    return {m["body"]["text"]: (m["seq"], m["hash"]) for m in mine}


@pytest.mark.slow
def test_every_send_answered_queued_survives_sigkill(tmp_path: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    pair = open_pair(tmp_path, FAST, deadline)
    a, b, ch = pair.south, pair.north, pair.channel
    a_id = pair.ids["South"]
    try:
        answered: dict[str, tuple[int, str]] = {}  # text -> (seq, hash) as answered
        attempted: set[str] = set()
        lock = threading.Lock()
        unexpected: list[BaseException] = []

        def sender(t: int) -> None:
            api = Api(a.data, timeout_s=10)
            for i in range(PER_THREAD):
                text = f"t{t} m{i}"
                with lock:
                    attempted.add(text)
                try:
                    r = api.post(f"/channels/{ch}/messages", json={"text": text},
                                 headers={"Idempotency-Key": text})  # fmt: skip
                except ApiError as exc:
                    if exc.code != "station_unreachable":
                        unexpected.append(exc)
                    return  # the station is gone: this send may or may not have committed
                assert r["status"] == "queued" and r["created"]
                with lock:
                    answered[text] = (r["seq"], r["hash"])

        threads = [threading.Thread(target=sender, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        while len(answered) < KILL_AFTER and time.monotonic() < deadline:
            assert any(t.is_alive() for t in threads), "the burst ended before the kill"
            time.sleep(0.002)
        a.kill_and_restart()
        for t in threads:
            t.join(max(1.0, deadline - time.monotonic()))
        assert not unexpected, unexpected
        assert len(answered) >= KILL_AFTER
        assert len(answered) < len(attempted), "the kill came after the burst"

        held = own_texts(a.data, ch, a_id, deadline)
        for text, ans in answered.items():
            assert held.get(text) == ans, (
                f"{text} was answered queued as {ans}, holds {held.get(text)}"
            )
        assert set(held) <= attempted, set(held) - attempted

        # The unanswered ones again, with their keys: each ends up exactly once.
        api = Api(a.data, timeout_s=30)
        for text in sorted(attempted - set(answered)):
            r = api.post(f"/channels/{ch}/messages", json={"text": text},
                         headers={"Idempotency-Key": text})  # fmt: skip
            assert r["created"] == (text not in held)
            if text in held:
                assert (r["seq"], r["hash"]) == held[text]
        final = own_texts(a.data, ch, a_id, deadline)
        assert set(final) == attempted

        while Api(a.data).get("/status")["peers"][0]["pending"]:
            assert time.monotonic() < deadline, "the peer did not receive the chain in time"
            time.sleep(0.1)
        assert own_texts(b.data, ch, a_id, deadline) == final
    finally:
        pair.stop()
