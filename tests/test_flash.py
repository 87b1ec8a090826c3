"""FLASH precedence: sent ahead of a queued backlog on the same channel, shown early by the
receiver, and still applied in chain order; envelopes that arrive ahead of their chain are held."""

from __future__ import annotations

import re
from pathlib import Path

from parley.domain import channels
from parley.station.config import Timings
from parley.station.dispatcher import Dispatcher
from parley.station.node import Station
from parley.transport.memory import MemoryNet
from tests.net import Stations, wait
from tests.pair import Net, hotline


def _pair(tmp_path: Path) -> tuple[Net, Station, Station, str]:
    net, _, a, b, ch = hotline(tmp_path)
    return net, a, b, ch


def _push_one_batch(a: Station, b: Station) -> list[str]:
    batch = a.store.pending(b.id, 128)
    results, receipts = b.receive_batch([r.raw for r in batch])
    Dispatcher(a, MemoryNet().transport(a.id)).answered(
        b.id, [r.to_json() for r in results], [r.to_json() for r in receipts]
    )
    return [r.prec for r in batch]


def test_flash_overtakes_a_backlog_of_a_thousand_routine(tmp_path: Path) -> None:
    net, a, b, ch = _pair(tmp_path)
    with a.store.tx():
        for i in range(1000):
            a.send(ch, channels.text_body(f"routine {i}", "en"))
    flash, _ = a.send(
        ch, channels.text_body("Launch detected: this is not an exercise", "en"), "FLASH"
    )

    precs = _push_one_batch(a, b)
    assert precs[0] == "FLASH"  # the outbox hands it to transport before the backlog

    routine_held = [m for m in b.messages(ch) if m.body.get("text", "").startswith("routine")]
    assert len(routine_held) < 1000
    early = [m for m in b.inbox() if m.extra.get("early")]
    assert [m.body["text"] for m in early] == ["Launch detected: this is not an exercise"]
    assert early[0].to_json()["awaiting"] == flash.seq - 1 - b.store.head_seq(ch, a.id)
    assert any(al.kind == "flash" for al in b.store.alarms())

    net.deliver(a, b)
    texts = [m.body["text"] for m in b.messages(ch, limit=5000) if m.body.get("type") == "text"]
    assert texts == [f"routine {i}" for i in range(1000)] + [
        "Launch detected: this is not an exercise"
    ]
    assert not [m for m in b.inbox() if m.extra.get("early")]
    assert b.store.held_next(ch) == []
    while a.store.pending(b.id, 1) or b.store.pending(a.id, 1):  # cosignatures go both ways
        net.deliver(a, b)
        net.deliver(b, a)
    assert a.transcript_digest(ch) == b.transcript_digest(ch)
    assert a.store.outbox_counts(b.id)[1] == 0


def test_an_envelope_ahead_of_its_chain_is_held_and_applied_when_the_gap_fills(
    tmp_path: Path,
) -> None:
    _, a, b, ch = _pair(tmp_path)
    first, _ = a.send(ch, channels.text_body("one", "en"))
    second, _ = a.send(ch, channels.text_body("two", "en"))
    res, receipts = b.receive_batch([second.raw])
    assert res[0].status == "gap" and not receipts
    assert len(b.store.held_next(ch)) == 1
    assert not [m for m in b.inbox() if m.extra.get("early")]  # only FLASH is shown early

    res, receipts = b.receive_batch([first.raw])
    assert res[0].status == "accepted"
    assert [r.seq for r in receipts] == [second.seq]  # the held one was applied too
    assert [m.body.get("text") for m in b.messages(ch)][-2:] == ["one", "two"]
    assert b.store.held_next(ch) == []


def test_a_repeated_flash_is_held_once_and_alarmed_once(tmp_path: Path) -> None:
    _, a, b, ch = _pair(tmp_path)
    a.send(ch, channels.text_body("backlog", "en"))
    flash, _ = a.send(ch, channels.text_body("FLASH", "en"), "FLASH")
    for _ in range(3):
        b.receive_batch([flash.raw])
    assert len(b.store.held_next(ch)) == 1
    assert len([al for al in b.store.alarms() if al.kind == "flash"]) == 1


def test_between_running_stations_flash_arrives_ahead_of_the_queued_backlog(
    tmp_path: Path,
) -> None:
    timings = Timings(retry_base_ms=100, retry_max_ms=500, heartbeat_ms=500)
    with Stations(tmp_path, [("South", "en"), ("North", "ko")], timings) as net:
        ch = net.open_channel("South", ["North"])
        net.stop("North")
        south = net.api("South")
        for i in range(1000):
            south.post(f"/channels/{ch}/messages", json={"text": f"routine {i}"})
        south.post(
            f"/channels/{ch}/messages", json={"text": "FLASH: launch", "precedence": "FLASH"}
        )
        net.restart("North")
        north = net.api("North")

        def texts() -> list[str]:
            msgs = north.get(f"/channels/{ch}/messages", params={"limit": 5000})
            return [m["body"]["text"] for m in msgs if m["body"]["type"] == "text"]

        wait(
            lambda: len(texts()) == 1001,
            timeout_s=120,
            what="the backlog and the FLASH",
        )
        flash = [a for a in north.get("/alarms") if a["kind"] == "flash"]
        # The first envelope North received after restarting was the FLASH, ahead of all 1000
        # (and of South's checkpoints among them).
        assert len(flash) == 1
        ahead = re.search(r"ahead of (\d+) earlier", flash[0]["message"])
        assert ahead is not None and int(ahead.group(1)) >= 1000
        got = texts()
        assert got[-1] == "FLASH: launch" and got[:3] == ["routine 0", "routine 1", "routine 2"]
        wait(
            lambda: north.get(f"/channels/{ch}/transcript")
            == south.get(f"/channels/{ch}/transcript"),
            what="identical transcripts",
        )
