"""Reading and finding: a channel's whole history page by page (both directions, by date, by
hash), search over what a user may read (Korean included), and alarms that resolve or are
acknowledged with a note. Store queries on SQLite and PostgreSQL; the use cases on real stations
joined in memory (tests/pair.py)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from parley.domain.search import text_of
from parley.errors import Forbidden, LocalError, NotFound
from parley.station import alarms, history, search
from parley.station.alarms import AlarmDesk
from parley.station.channels import ChannelDesk
from parley.station.node import Station
from parley.station.overview import StationDesk
from parley.station.users import User
from parley.store import reading as db
from parley.store.base import SqlStore
from parley.store.sqlite import SqliteStore
from tests.pair import Clock, Net, hotline, introduce, make_station, open_channel

pytest_plugins = ["tests.stores"]

DUTY = User("duty", frozenset({"operator"}))
AUDITOR = User("audit", frozenset({"auditor"}))
NOBODY = User("nobody", frozenset())
ENVOY = User("envoy", frozenset({"representative", "operator"}))


def _envelopes(store: SqlStore, n: int, channel: str = "ch") -> None:
    store.add_channel(channel, 1)
    with store.tx():
        for i in range(1, n + 1):
            h = (channel + str(i)).encode().ljust(32, b".")
            store.insert_envelope(channel, "st", i, h, b"raw", 1000 * i, "ROUTINE", 1000 * i)
            store.put_body(h, "text", f'{{"text":"m{i}"}}', b"salt")


def test_keyset_pages_and_jumps_on_both_stores(store: SqlStore) -> None:
    _envelopes(store, 25)
    _envelopes(store, 3, "other")
    newest = db.page(store, "ch", limit=10)
    assert [e.seq for e, _ in newest] == list(range(16, 26))
    older = db.page(store, "ch", before=newest[0][0].id, limit=10)
    assert [e.seq for e, _ in older] == list(range(6, 16))
    first = db.page(store, "ch", before=older[0][0].id, limit=10)
    assert [e.seq for e, _ in first] == [1, 2, 3, 4, 5]
    assert not db.exists(store, "ch", before=first[0][0].id)
    assert db.exists(store, "ch", after=first[-1][0].id)
    again = db.page(store, "ch", after=first[-1][0].id, limit=10)
    assert again == older
    at = db.first_at(store, "ch", 7_500)
    assert at is not None and db.page(store, "ch", after=at - 1, limit=1)[0][0].seq == 8
    assert db.first_at(store, "ch", 10**9) is None
    assert db.count(store, "ch") == 25


def test_search_index_finds_substrings_korean_included_on_both_stores(store: SqlStore) -> None:
    _envelopes(store, 4)
    texts = {
        1: "미사일 발사 통보: 발사 구역 동해",
        2: "Launch window opens at 09:00 UTC",
        3: "hello 100% sure_thing",
        4: "",
    }
    rows = db.page(store, "ch", limit=10)
    with store.tx():
        for e, _ in rows:
            db.index(store, e.hash, "ch", texts[e.seq])
        # SQLite: the rows wait until moved into FTS5 in a batch (the station does it at each
        # tick and before every search); PostgreSQL indexed them as they were written.
        assert db.index_pending(store, 100) == (3 if store.dialect == "sqlite" else 0)
    assert db.waiting(store) == 0
    store.add_channel("hidden", 1)

    def seqs(*terms: str, channels: tuple[str, ...] = ("ch",), **kw: Any) -> list[int]:
        return [e.seq for e, _ in db.search(store, list(channels), list(terms), **kw)]

    assert seqs("발사") == [1]  # two syllables: shorter than a trigram
    assert seqs("미사일") == [1]
    assert seqs("발사", "동해") == [1]
    assert seqs("launch") == [2] and seqs("LAUNCH", "utc") == [2]
    assert seqs("launch", "동해") == []
    assert seqs("100%") == [3] and seqs("%") == [3] and seqs("_") == [3]  # literal, not patterns
    assert seqs("발사", channels=("hidden",)) == []
    assert seqs("o") == [3, 2]  # newest first
    assert seqs("o", before=rows[2][0].id) == [2]
    assert seqs("o", limit=1) == [3]


def test_alarm_resolution_is_kept_on_both_stores(store: SqlStore) -> None:
    a = store.add_alarm("link", "high", "peer", "link down", 5, ref="link:peer")
    b = store.add_alarm("crisis", "high", "ch", "crisis opened", 6)
    assert store.open_alarms(["link"], "link:peer") == [a]
    assert store.clear_alarm(a, 7, "station", "resolved", "up again")
    assert not store.clear_alarm(a, 8, "kim", "acknowledged", "late")  # the first close stands
    assert store.clear_alarm(b, 9, "kim", "acknowledged", "seen, calling the duty officer")
    got = {x.id: x for x in store.alarms(include_cleared=True)}
    assert (got[a].cleared, got[a].cleared_by, got[a].resolution, got[a].note) == (
        7, "station", "resolved", "up again",
    )  # fmt: skip
    assert (got[b].cleared_by, got[b].note) == ("kim", "seen, calling the duty officer")
    assert store.alarms() == []


# --- the use cases ---------------------------------------------------------------------------


def test_history_pages_through_the_whole_channel_both_ways_and_jumps(tmp_path: Path) -> None:
    net, clock, a, b, ch = hotline(tmp_path)
    sent = []
    for i in range(130):
        clock.advance(60_000)
        row, _ = a.send(ch, {"type": "text", "text": f"message {i}", "lang": "en"})
        sent.append(row)
    net.deliver(a, b)
    newest = history.page(b, DUTY, ch, limit=50)
    texts = [m.body.get("text") for m in newest["messages"]]
    assert texts[-1] == "message 129" and len(texts) == 50 and newest["newer"] is None
    # Walk back to the very first record of the channel (its proposal), then forward again.
    pages = [newest]
    while pages[-1]["older"] is not None:
        pages.append(history.page(b, DUTY, ch, before=pages[-1]["older"], limit=50))
    first = pages[-1]["messages"]
    assert first[0].body["type"] == "channel.propose" and pages[-1]["older"] is None
    every = [m for p in reversed(pages) for m in p["messages"]]
    assert [m.body.get("text") for m in every if m.body.get("type") == "text"] == [
        f"message {i}" for i in range(130)
    ]
    forward = history.page(b, DUTY, ch, after=pages[-1]["messages"][-1].extra["id"], limit=50)
    assert forward["messages"] == pages[-2]["messages"]
    # A date: from the first message signed at or after it.
    at = history.page(b, DUTY, ch, at=sent[40].ts, limit=5)
    assert at["messages"][0].body["text"] == "message 40"
    # A hash: the page holds it near its middle.
    around = history.page(b, DUTY, ch, message_hash=around_hash(sent[70]), limit=11)
    got = [m.body.get("text") for m in around["messages"]]
    assert got[5] == "message 70" and len(got) == 11
    assert around["anchor"] == around["messages"][5].extra["id"]
    with pytest.raises(NotFound):
        history.page(b, DUTY, ch, message_hash="A" * 43)
    with pytest.raises(LocalError):
        history.page(b, DUTY, ch, message_hash="short")
    with pytest.raises(LocalError):
        history.page(b, DUTY, ch, before=10, after=3)
    with pytest.raises(LocalError):
        history.page(b, DUTY, ch, limit=history.MAX_PAGE + 1)
    with pytest.raises(Forbidden):
        history.page(b, NOBODY, ch)
    assert history.parse_when("2026-12-05") == 1_796_428_800_000
    assert history.parse_when("2026-12-05T09:00+09:00") == 1_796_428_800_000
    with pytest.raises(LocalError):
        history.parse_when("yesterday")


def around_hash(row: Any) -> str:
    from parley.protocol.encoding import b64e

    return b64e(row.hash)


def _backchannel(tmp_path: Path) -> tuple[Net, Station, Station, str, str]:
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    introduce(a, b)
    net = Net()
    hot = open_channel(net, a, b)
    reps = {a.id: ["envoy"], b.id: ["envoy"]}
    back = a.propose_channel("backchannel", "Envoys", [b.id], representatives=reps)
    net.deliver(a, b)
    b.control(back, "consent")
    net.deliver(b, a)
    return net, a, b, hot, back


def test_search_finds_what_a_user_may_read_and_never_a_back_channel_they_cannot(
    tmp_path: Path,
) -> None:
    net, a, b, hot, back = _backchannel(tmp_path)
    a.send(hot, {"type": "text", "text": "내일 미사일 발사 예정", "lang": "ko"})
    a.send(hot, {"type": "text", "text": "Planned launch tomorrow", "lang": "en"})
    a.send(back, {"type": "text", "text": "발사 계획은 비공개입니다", "lang": "ko"})
    net.deliver(a, b)
    for st in (a, b):  # indexed as sent and as received
        found = search.search(st, DUTY, "발사")
        assert [r["body"]["text"] for r in found["results"]] == ["내일 미사일 발사 예정"]
        assert [r["channel"] for r in search.search(st, ENVOY, "발사")["results"]] == [
            back, hot,
        ]  # fmt: skip
        assert search.search(st, DUTY, "launch")["results"][0]["signature"] == "verified"
        with pytest.raises(Forbidden):
            search.search(st, DUTY, "발사", channel=back)
        assert search.search(st, AUDITOR, "미사일 발사")["results"]  # every role reads
    with pytest.raises(Forbidden):
        search.search(b, NOBODY, "발사")
    with pytest.raises(LocalError):
        search.search(b, DUTY, "x" * 201)
    with pytest.raises(LocalError):
        search.search(b, DUTY, "   ")
    with pytest.raises(LocalError):
        search.search(b, DUTY, " ".join("abcdefghij"))


def test_a_notice_is_found_by_its_rendering_in_each_language() -> None:
    body = {"type": "text", "text": "free words", "lang": "en", "ref": "SECRETREF"}
    assert "free words" in text_of(body) and "SECRETREF" not in text_of(body)
    assert text_of({"type": "checkpoint", "note": "size 3"}) == ""
    assert text_of({"type": "notice", "form": "nope", "fields": {"remarks": "바다"}}) == "바다"


def test_a_search_finds_every_body_stored_before_it_though_the_index_is_written_later(
    tmp_path: Path,
) -> None:
    # On SQLite a body's search row waits outside the FTS5 index until a tick or a search moves
    # it there (store/reading.py): neither may lose or repeat one.
    _, _, a, _, ch = hotline(tmp_path)
    a.tick()  # the channel's proposal and consent
    assert db.waiting(a.store) == 0
    a.send(ch, {"type": "text", "text": "first words", "lang": "en"})
    assert db.waiting(a.store) == 1
    a.tick()
    assert db.waiting(a.store) == 0
    a.send(ch, {"type": "text", "text": "second words", "lang": "en"})
    assert db.waiting(a.store) == 1
    found = search.search(a, DUTY, "words")["results"]
    assert [m["body"]["text"] for m in found] == ["second words", "first words"]
    assert db.waiting(a.store) == 0
    a.tick()
    assert len(search.search(a, DUTY, "words")["results"]) == 2


def test_bodies_stored_before_the_index_are_indexed_in_the_background(tmp_path: Path) -> None:
    _, _, a, _, ch = hotline(tmp_path)
    a.send(ch, {"type": "text", "text": "before the index existed", "lang": "en"})
    a.store.q("DELETE FROM search_index")
    a.store.q("DELETE FROM search_pending")  # the send's row waiting for the index (SQLite)
    a.store.set_meta("search.backfill_after", "0")
    assert search.search(a, DUTY, "existed")["results"] == []
    a.tick()
    assert len(search.search(a, DUTY, "existed")["results"]) == 1
    # Done at the end of the table: bodies without text (checkpoints, control) stored between
    # ticks kept it going on a busy station.
    assert a.store.get_meta("search.backfill_after") == "done"


def test_alarms_are_acknowledged_with_a_note_one_or_all_and_audited(tmp_path: Path) -> None:
    _, a, _, hot, back = _backchannel(tmp_path)
    one = a.alarm("crisis", "high", hot, "crisis opened on the hotline")
    two = a.alarm("task", "warning", "x", "a task failed")
    secret = a.alarm("crisis", "high", back, "crisis opened on the back channel")
    desk = AlarmDesk(a)
    assert secret not in [x.id for x in desk.alarms(DUTY)]
    with pytest.raises(NotFound):
        desk.ack(DUTY, [one, secret], "no")  # nothing acknowledged when one is not visible
    assert {x.id for x in desk.alarms(DUTY)} == {one, two}
    with pytest.raises(Forbidden):
        desk.ack(AUDITOR, [one])
    with pytest.raises(LocalError):
        desk.ack(DUTY, [one], "x" * (alarms.MAX_NOTE + 1))
    assert desk.ack(DUTY, [one], "called the duty officer") == [one]
    assert desk.ack(DUTY, [one], "again") == []  # closed already: left as it was
    assert desk.ack(DUTY, every_open=True, note="end of shift") == [two]
    assert [x.id for x in desk.alarms(ENVOY)] == [secret]  # still open, for its envoy only
    closed = {x.id: x for x in desk.alarms(DUTY, include_cleared=True)}
    assert (closed[one].cleared_by, closed[one].resolution, closed[one].note) == (
        "duty", "acknowledged", "called the duty officer",
    )  # fmt: skip
    audit = [
        (actor, action) for _, actor, action, _ in a.store.audit_log() if action == "alarm.ack"
    ]
    assert audit == [("duty", "alarm.ack"), ("duty", "alarm.ack")]


def test_kept_answers_follow_every_change_and_every_gate(tmp_path: Path) -> None:
    """The reads everybody polls are kept while nothing changes (station/answers.py): a new
    message, an alarm, an acknowledgement and another connection's edit show on the very next
    read, and a kept answer never reaches a user the role table or a back channel refuses."""
    net, a, b, hot, back = _backchannel(tmp_path)
    chans, desk, al = ChannelDesk(a), StationDesk(a), AlarmDesk(a)

    def texts(raw: bytes) -> list[str]:
        return [m["body"].get("text", "") for m in json.loads(raw)]

    b.send(hot, {"type": "text", "text": "first", "lang": "ko"})
    b.send(back, {"type": "text", "text": "secret", "lang": "ko"})
    net.deliver(b, a)
    assert {"first", "secret"} <= set(texts(chans.inbox_json(ENVOY)))
    kept = chans.inbox_json(DUTY)
    assert "first" in texts(kept) and "secret" not in texts(kept)
    assert chans.inbox_json(DUTY) is kept  # kept: the same bytes
    b.send(hot, {"type": "text", "text": "second", "lang": "ko"})
    net.deliver(b, a)
    assert texts(chans.inbox_json(DUTY))[-1] == "second"  # a write shows at once
    # Pages: the gate first, whatever is kept.
    page = history.page_answer(a, ENVOY, back, limit=50)
    assert "secret" in page.decode()
    with pytest.raises(Forbidden):
        history.page_answer(a, DUTY, back, limit=50)
    with pytest.raises(Forbidden):
        history.page_answer(a, NOBODY, hot, limit=50)
    for read in (chans.inbox_json, desk.status_json, al.alarms_json):
        with pytest.raises(Forbidden):
            read(NOBODY)
    # Alarms and status: a new alarm, its acknowledgement, a back channel's alarm kept apart.
    before = json.loads(desk.status_json(DUTY))["alarms"]
    secret = a.alarm("crisis", "high", back, "crisis opened on the back channel")
    one = a.alarm("crisis", "high", hot, "crisis opened on the hotline")
    assert json.loads(desk.status_json(DUTY))["alarms"] == before + 1
    assert json.loads(desk.status_json(ENVOY))["alarms"] == before + 2
    ids = [x["id"] for x in json.loads(al.alarms_json(DUTY))]
    assert one in ids and secret not in ids
    assert secret in [x["id"] for x in json.loads(al.alarms_json(ENVOY))]
    al.ack(DUTY, [one], "seen")
    assert one not in [x["id"] for x in json.loads(al.alarms_json(DUTY))]
    # Another connection changes a stored text: the next read checks it again and fails it.
    shown = json.loads(history.page_answer(a, DUTY, hot, limit=50))["messages"]
    assert shown[-1]["body"]["text"] == "second"
    assert isinstance(a.store, SqliteStore)
    with closing(sqlite3.connect(a.store.path)) as db, db:
        db.execute("UPDATE bodies SET body = replace(body, 'second', 'altered')")
    shown = json.loads(history.page_answer(a, DUTY, hot, limit=50))["messages"]
    assert shown[-1]["signature"] == "failed" and shown[-1]["body"] == {}
