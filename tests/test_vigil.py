"""Link health, check calls and crises between stations: in memory with a controlled clock
(tests/pair.py), through the operator API in process, and once with real station processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from parley.app.build import build_app
from parley.domain import notices as notice_bodies
from parley.errors import Code, Conflict, NotFound, ParleyError
from parley.protocol.encoding import b64e
from parley.station import checkcalls, crises, notices, vigil
from parley.station.config import Timings
from parley.station.dispatcher import Dispatcher
from parley.station.node import Station
from parley.station.users import User
from parley.store import vigil as db
from parley.store.base import SqlStore
from parley.transport.base import TransportError
from parley.transport.memory import MemoryNet
from tests.net import Stations, wait
from tests.pair import Clock, Net, introduce, make_station, open_channel

pytest_plugins = ["tests.stores"]  # the store fixture, on SQLite and on PostgreSQL

SEC = 1000
H1 = bytes([1]) * 32
MIN = 60 * SEC
HOUR = 60 * MIN
KIM = User("kim", frozenset({"operator"}))  # North's duty operator
LEE = User("lee", frozenset({"operator", "admin"}))  # South's


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


@dataclass
class Pair:
    clock: Clock
    net: Net
    south: Station
    north: Station
    channel: str

    def heartbeat(self, rtt_ms: int = 20) -> None:
        """A successful round trip from South to North, recorded by the dispatcher's own code."""
        Dispatcher(self.south, MemoryNet().transport(self.south.id)).contact_ok(
            self.north.id, rtt_ms
        )

    def failure(self) -> None:
        Dispatcher(self.south, MemoryNet().transport(self.south.id)).contact_failed(
            self.north.id, TransportError(Code.STATION_UNREACHABLE, "connection refused")
        )

    def deliver(self) -> None:
        self.net.deliver(self.south, self.north)
        self.net.deliver(self.north, self.south)

    def tick(self) -> None:
        self.south.tick()
        self.north.tick()


def make_pair(tmp: Path, start_ms: int = 1_790_000_000_000) -> Pair:
    clock = Clock(start_ms)
    south = make_station(tmp / "south", "South", "en", clock)
    north = make_station(tmp / "north", "North", "ko", clock)
    introduce(south, north)
    net = Net()
    return Pair(clock, net, south, north, open_channel(net, south, north))


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    return make_pair(tmp_path)


def alarms(st: Station, kind: str) -> list[Any]:
    return [a for a in st.store.alarms() if a.kind == kind]


def bodies(st: Station, channel: str, kind: str) -> list[dict[str, Any]]:
    return [m.body for m in st.messages(channel) if m.body.get("type") == kind]


def link_of(st: Station) -> dict[str, Any]:
    [row] = vigil.links(st, LEE)
    return row


# --- link state ----------------------------------------------------------------------------


def test_link_state_follows_the_configured_thresholds_and_every_change_is_an_alarm(
    pair: Pair,
) -> None:
    t = pair.south.cfg.timings
    assert link_of(pair.south)["state"] == "down"  # never reached: no evidence the link works
    pair.heartbeat()
    pair.south.tick()
    assert link_of(pair.south)["state"] == "up"
    assert alarms(pair.south, "link") == []  # the first state seen is not a change

    pair.clock.advance(t.degraded_after_missed * t.heartbeat_ms)
    pair.south.tick()
    assert link_of(pair.south)["state"] == "degraded"
    pair.clock.advance(t.heartbeat_ms)
    pair.south.tick()
    down = link_of(pair.south)
    assert (down["state"], down["reason"]) == ("down", f"{t.down_after_missed} heartbeats missed")
    pair.heartbeat(rtt_ms=t.degraded_rtt_ms + 1)  # back, but slow
    pair.south.tick()
    assert link_of(pair.south)["reason"] == f"round trip {t.degraded_rtt_ms + 1} ms"
    pair.heartbeat()
    pair.south.tick()

    every = [a for a in pair.south.store.alarms(include_cleared=True) if a.kind == "link"]
    got = [(a.severity, a.message) for a in reversed(every)]
    assert [s for s, _ in got] == ["warning", "high", "warning", "info"]
    # Back up: every alarm of the link is resolved by the station, none is left to a person.
    assert alarms(pair.south, "link") == []
    assert {(a.cleared_by, a.resolution) for a in every} == {("station", "resolved")}
    assert got[1][1] == f"link to North: degraded → down ({t.down_after_missed} heartbeats missed)"
    events = db.link_events(pair.south.store)
    assert [(e.old, e.new) for e in events] == [
        ("up", "degraded"), ("degraded", "down"), ("down", "degraded"), ("degraded", "up"),
    ]  # fmt: skip
    assert link_of(pair.south)["since"] == events[-1].at_ms


def test_failed_sends_take_the_link_down_before_heartbeats_are_missed(pair: Pair) -> None:
    pair.heartbeat()
    pair.south.tick()
    for _ in range(pair.south.cfg.timings.down_after_missed):
        pair.failure()
    row = link_of(pair.south)
    assert (row["state"], row["why"]) == ("down", "down")
    assert row["reason"] == "3 sends failed in a row"
    assert row["last_error"] == "connection refused"


def test_impossible_thresholds_are_refused_when_the_station_opens(tmp_path: Path) -> None:
    st = make_station(tmp_path / "s", "South", "en", Clock())
    st.cfg.timings = Timings(degraded_after_missed=3, down_after_missed=3)
    with pytest.raises(ParleyError) as err:
        vigil.install(st)
    assert err.value.code is Code.INVALID_REQUEST


# --- check-call schedules ------------------------------------------------------------------


def _run_schedule(pair: Pair, until_ms: int, step_ms: int = 10 * MIN) -> list[int]:
    """Tick both stations every `step_ms` up to `until_ms`; the due times South called."""
    while pair.clock.now < until_ms:
        pair.clock.advance(step_ms)
        pair.tick()
    pair.deliver()
    return [c["due_ms"] for c in checkcalls.list_calls(pair.south, LEE, direction="outgoing")]


def test_seoul_calls_at_nine_and_four_on_working_days(tmp_path: Path) -> None:
    pair = make_pair(tmp_path, utc(2026, 3, 26, 12))  # Thursday 21:00 in Seoul
    checkcalls.set_schedule(
        pair.south, pair.channel, ["16:00", "09:00"], "Asia/Seoul", [0, 1, 2, 3, 4], 10 * MIN,
        [], LEE,
    )  # fmt: skip
    due = _run_schedule(pair, utc(2026, 3, 30, 8))  # Monday 17:00 in Seoul
    # Seoul is UTC+9 all year: 09:00 is 00:00 UTC and 16:00 is 07:00 UTC; nothing on the weekend.
    assert due == [
        utc(2026, 3, 27, 0),
        utc(2026, 3, 27, 7),
        utc(2026, 3, 30, 0),
        utc(2026, 3, 30, 7),
    ]
    incoming = checkcalls.list_calls(pair.north, KIM, direction="incoming")
    assert [c["due_ms"] for c in incoming] == due
    assert all(c["caller_name"] == "South" for c in incoming)
    assert len(bodies(pair.north, pair.channel, "checkcall.call")) == 4  # in the transcript


def test_london_calls_move_in_utc_when_the_clocks_go_forward(tmp_path: Path) -> None:
    pair = make_pair(tmp_path, utc(2026, 3, 27, 6))
    checkcalls.set_schedule(
        pair.south, pair.channel, ["09:00"], "Europe/London", [0, 1, 2, 3, 4], 10 * MIN, [], LEE
    )
    due = _run_schedule(pair, utc(2026, 3, 30, 10))
    # Friday 09:00 GMT is 09:00 UTC; after Sunday's change, Monday 09:00 BST is 08:00 UTC.
    assert due == [utc(2026, 3, 27, 9), utc(2026, 3, 30, 8)]


def test_slots_missed_while_the_station_was_not_running_are_skipped_not_called(
    tmp_path: Path,
) -> None:
    pair = make_pair(tmp_path, utc(2026, 3, 26, 12))
    checkcalls.set_schedule(
        pair.south, pair.channel, ["09:00"], "Asia/Seoul", [0, 1, 2, 3, 4], 10 * MIN, [], LEE
    )
    pair.clock.now = utc(2026, 3, 27, 0, 30)  # the 09:00 KST call's answer time has passed
    pair.south.tick()
    assert checkcalls.list_calls(pair.south, LEE) == []
    skipped = [a for a in pair.south.store.audit_log() if a[2] == "checkcall.skipped"]
    assert len(skipped) == 1 and "its answer time passed" in skipped[0][3]
    assert alarms(pair.south, "checkcall_missed") == []


def test_a_schedule_is_refused_with_a_bad_zone_or_time(pair: Pair) -> None:
    for tz, times in (("Asia/Nowhere", ["09:00"]), ("Asia/Seoul", ["9am"])):
        with pytest.raises(ParleyError) as err:
            checkcalls.set_schedule(pair.south, pair.channel, times, tz, [0], MIN, [], LEE)
        assert err.value.code is Code.INVALID_REQUEST
    assert db.schedules(pair.south.store) == []


# --- answering -----------------------------------------------------------------------------


def test_a_person_answers_in_time_and_both_transcripts_record_it(pair: Pair) -> None:
    call = checkcalls.call_now(pair.south, pair.channel, 10 * MIN, LEE)
    pair.deliver()
    [pending] = checkcalls.list_calls(pair.north, KIM, status="pending", direction="incoming")
    assert pending["call_id"] == call["call_id"]

    pair.clock.advance(3 * MIN)
    checkcalls.answer(pair.north, pair.channel, call["call_id"], KIM)
    pair.deliver()
    [seen] = checkcalls.list_calls(pair.south, LEE)
    assert seen["status"] == "answered"
    assert (seen["answers"][0]["by"], seen["answers"][0]["name"]) == ("kim", "North")
    for st in (pair.south, pair.north):
        assert bodies(st, pair.channel, "checkcall.answer") == [
            {"type": "checkcall.answer", "call_id": call["call_id"], "by": "kim"}
        ]
    pair.clock.advance(HOUR)
    pair.heartbeat()
    pair.tick()
    assert alarms(pair.south, "checkcall_missed") == []
    with pytest.raises(Conflict):  # the first answer stands
        checkcalls.answer(pair.north, pair.channel, call["call_id"], KIM)


def test_a_station_cannot_answer_its_own_call_or_an_unknown_one(pair: Pair) -> None:
    call = checkcalls.call_now(pair.south, pair.channel, 10 * MIN, LEE)
    with pytest.raises(NotFound):
        checkcalls.answer(pair.south, pair.channel, call["call_id"], LEE)
    with pytest.raises(NotFound):
        checkcalls.answer(pair.north, pair.channel, "cc-1.nothing", KIM)


def test_a_missed_call_alarms_the_caller_only_and_says_the_link_is_up(pair: Pair) -> None:
    pair.heartbeat()
    pair.tick()
    call = checkcalls.call_now(pair.south, pair.channel, 10 * MIN, LEE)
    pair.deliver()
    pair.clock.advance(10 * MIN)
    pair.heartbeat()
    pair.tick()
    assert alarms(pair.south, "checkcall_missed") == []  # due at answer_by, not yet missed

    pair.clock.advance(SEC)
    pair.heartbeat()
    pair.tick()
    pair.tick()  # once per call, however often the task runs
    [alarm] = alarms(pair.south, "checkcall_missed")
    assert alarm.severity == "critical"
    assert alarm.message == (
        f"no answer from North to check call {call['call_id']} while the link is up: "
        "heartbeats arrive, nobody answers"
    )
    assert pair.north.store.alarms() == []  # the called side is not alarmed about itself
    row = link_of(pair.south)
    assert (row["state"], row["why"], row["overdue_checkcalls"]) == ("up", "silent", 1)
    assert "nobody answers" in row["explain"]["en"]
    [seen] = checkcalls.list_calls(pair.south, LEE)
    assert seen["status"] == "missed"


def test_a_late_answer_is_answered_late_and_ends_the_silence(pair: Pair) -> None:
    pair.heartbeat()
    call = checkcalls.call_now(pair.south, pair.channel, 10 * MIN, LEE)
    pair.deliver()
    pair.clock.advance(15 * MIN)
    pair.heartbeat()
    pair.tick()
    assert link_of(pair.south)["why"] == "silent"

    # Missed on North too: answering late is allowed.
    checkcalls.answer(pair.north, pair.channel, call["call_id"], KIM)
    pair.deliver()
    [seen] = checkcalls.list_calls(pair.south, LEE)
    assert (seen["status"], seen["answers"][0]["answered_ms"]) == ("answered_late", pair.clock.now)
    [late] = [
        a for a in pair.south.store.alarms(include_cleared=True) if a.kind == "checkcall_late"
    ]
    assert late.resolution == "resolved"  # nothing for a person to do
    assert (
        late.message
        == f"kim (North) answered check call {call['call_id']} 300 s after its answer time"
    )
    # The missed-call alarm is settled by the answer: kept, resolved by the station.
    assert alarms(pair.south, "checkcall_missed") == []
    [missed] = [
        a for a in pair.south.store.alarms(include_cleared=True) if a.kind == "checkcall_missed"
    ]
    assert (missed.cleared_by, missed.resolution, missed.note) == (
        "station",
        "resolved",
        late.message,
    )
    assert (link_of(pair.south)["why"], link_of(pair.south)["overdue_checkcalls"]) == ("ok", 0)


def test_an_unanswered_call_while_the_link_is_down_is_a_fault_not_silence(pair: Pair) -> None:
    pair.heartbeat()
    pair.tick()
    call = checkcalls.call_now(pair.south, pair.channel, 10 * MIN, LEE)
    pair.clock.advance(11 * MIN)  # no heartbeats: the link went down, the call never arrived
    pair.tick()
    [alarm] = alarms(pair.south, "checkcall_missed")
    assert alarm.severity == "high"
    assert alarm.message.startswith(f"no answer from North to check call {call['call_id']}, but")
    assert "the link is down" in alarm.message and "a technical fault, not silence" in alarm.message
    row = link_of(pair.south)
    assert (row["state"], row["situation"], row["why"]) == ("down", "link_down", "down")
    assert row["overdue_checkcalls"] == 1  # counted, but not read as silence
    assert "technical fault" in row["explain"]["en"]


def test_an_overdue_acknowledgement_while_heartbeats_arrive_is_silence(pair: Pair) -> None:
    desk = notices.desk(pair.south)
    fields = desk.catalogue.get("statement_of_intention").example
    sent = desk.send_notice(
        LEE, pair.channel, "statement_of_intention", fields, deadline_ms=pair.clock.now + HOUR
    )
    pair.deliver()
    pair.clock.advance(HOUR + SEC)
    pair.heartbeat()
    row = link_of(pair.south)
    assert (row["why"], row["overdue_acks"], row["overdue_checkcalls"]) == ("silent", 1, 0)
    notices.desk(pair.north).acknowledge(KIM, pair.channel, sent["hash"], "acknowledged")
    pair.deliver()
    assert (link_of(pair.south)["why"], link_of(pair.south)["overdue_acks"]) == ("ok", 0)


# --- crises --------------------------------------------------------------------------------


def test_a_crisis_timeline_gathers_its_thread_answers_and_link_changes_in_order(
    pair: Pair,
) -> None:
    s, n, ch = pair.south, pair.north, pair.channel
    pair.heartbeat()
    s.tick()
    pair.clock.advance(SEC)
    inc = crises.open_incident(s, LEE, ch, "Unannounced launch", "high", "Tracked at 06:12 KST.")
    iid = inc["incident_id"]
    pair.deliver()
    pair.clock.advance(SEC)
    msg, _ = n.send(ch, {"type": "text", "text": "A test flight, not a threat.", "lang": "en"})
    n.send(ch, {"type": "text", "text": "Unrelated chatter.", "lang": "en"})
    pair.deliver()
    pair.clock.advance(SEC)
    crises.link(s, LEE, iid, b64e(msg.hash))
    s.send(ch, notice_bodies.ack_body(b64e(msg.hash), "questions", "Which range?", "lee"))
    pair.deliver()
    pair.clock.advance(20 * SEC)  # no heartbeat: South sees the link go down, then come back
    s.tick()
    pair.clock.advance(SEC)
    pair.heartbeat()
    s.tick()
    pair.clock.advance(SEC)
    crises.move(s, LEE, iid, "contained", "Debris fell at sea.")
    pair.deliver()
    pair.clock.advance(SEC)
    crises.move(n, KIM, iid, "closed", "")
    pair.deliver()
    pair.clock.advance(HOUR)
    s.tick()  # down again, after the closing: not part of the incident

    tl = crises.timeline(s, LEE, iid)
    items = [(i["kind"], i["summary"]) for i in tl["items"]]
    assert items == [
        ("crisis.open", "opened [high] Unannounced launch"),
        ("message", "North: A test flight, not a threat."),
        ("ack", "South questions (lee): Which range?"),
        ("link", "link North: up → down (4 heartbeats missed)"),
        ("link", "link North: down → up (heartbeats arrive)"),
        ("crisis.status", "contained: Debris fell at sea."),
        ("crisis.status", "closed"),
    ]
    ts = [i["ts"] for i in tl["items"]]
    assert ts == sorted(ts)
    assert tl["incident"]["status"] == "closed"
    assert [h["by_name"] for h in tl["incident"]["history"]] == ["South", "North"]
    # North holds the same thread; link changes are each station's own observations.
    there = crises.timeline(n, KIM, iid)
    assert [i for i in there["items"] if i["kind"] != "link"] == [
        i for i in tl["items"] if i["kind"] != "link"
    ]


def test_crossing_status_moves_end_in_the_same_status_at_both_stations(pair: Pair) -> None:
    s, n, ch = pair.south, pair.north, pair.channel
    iid = crises.open_incident(s, LEE, ch, "Incident at sea", "medium")["incident_id"]
    pair.deliver()
    crises.move(s, LEE, iid, "contained", "holding")
    pair.deliver()
    pair.clock.advance(SEC)
    crises.move(s, LEE, iid, "open", "it flared up")  # crosses North's move on the wire
    crises.move(n, KIM, iid, "closed", "over")
    pair.deliver()
    pair.deliver()
    [south_view] = crises.list_incidents(s, LEE)
    [north_view] = crises.list_incidents(n, KIM)
    assert south_view["status"] == north_view["status"]
    assert [h["status"] for h in south_view["history"]] == [
        h["status"] for h in north_view["history"]
    ]


def test_an_illegal_move_is_a_conflict_and_nothing_is_sent(pair: Pair) -> None:
    inc = crises.open_incident(pair.south, LEE, pair.channel, "Incident at sea", "medium")
    crises.move(pair.south, LEE, inc["incident_id"], "closed", "resolved")
    before = len(pair.south.messages(pair.channel))
    with pytest.raises(Conflict):
        crises.move(pair.south, LEE, inc["incident_id"], "contained", "")
    with pytest.raises(Conflict):
        crises.open_incident(
            pair.south, LEE, pair.channel, "Again", "low", incident_id=inc["incident_id"]
        )
    assert len(pair.south.messages(pair.channel)) == before
    crises.move(
        pair.south, LEE, inc["incident_id"], "open", "flared up again"
    )  # reopening is legal


def test_a_peer_opening_an_incident_is_an_alarm_for_its_severity(pair: Pair) -> None:
    crises.open_incident(pair.north, KIM, pair.channel, "Aircraft lost contact", "critical")
    pair.deliver()
    [alarm] = alarms(pair.south, "crisis")
    assert alarm.severity == "critical"
    assert alarm.message.endswith("[critical]: Aircraft lost contact")
    assert alarms(pair.north, "crisis") == []
    [listed] = crises.list_incidents(pair.south, LEE, status="open")
    assert (listed["opened_by_name"], listed["severity"]) == ("North", "critical")


def test_only_envelopes_of_the_incidents_channel_can_be_linked(tmp_path: Path) -> None:
    pair = make_pair(tmp_path)
    other = open_channel(pair.net, pair.south, pair.north)
    row, _ = pair.south.send(other, {"type": "text", "text": "elsewhere", "lang": "en"})
    inc = crises.open_incident(pair.south, LEE, pair.channel, "Incident", "low")
    with pytest.raises(NotFound):
        crises.link(pair.south, LEE, inc["incident_id"], b64e(row.hash))


def test_back_channel_incidents_and_calls_are_hidden_and_alarms_are_discreet(
    tmp_path: Path,
) -> None:
    pair = make_pair(tmp_path)
    s, n = pair.south, pair.north
    reps = {s.id: ["envoy.s"], n.id: ["envoy.n"]}
    ch = s.propose_channel("backchannel", "Envoys", [n.id], representatives=reps)
    pair.net.deliver(s, n)
    n.control(ch, "consent")
    pair.net.deliver(n, s)
    envoy_s = User("envoy.s", frozenset({"representative", "operator"}))
    envoy_n = User("envoy.n", frozenset({"representative", "operator"}))
    inc = crises.open_incident(s, envoy_s, ch, "Secret matter", "high")
    call = checkcalls.call_now(s, ch, 10 * MIN, envoy_s)
    pair.deliver()

    assert crises.list_incidents(n, KIM) == [] and checkcalls.list_calls(n, KIM) == []
    with pytest.raises(NotFound):
        crises.find(n, KIM, inc["incident_id"])
    with pytest.raises(ParleyError) as err:
        checkcalls.answer(n, ch, call["call_id"], KIM)
    assert err.value.code is Code.FORBIDDEN
    [alarm] = alarms(n, "crisis")
    assert alarm.message == "South opened an incident on a back channel"
    assert [i["title"] for i in crises.list_incidents(n, envoy_n)] == ["Secret matter"]
    checkcalls.answer(n, ch, call["call_id"], envoy_n)


# --- the operator API ----------------------------------------------------------------------


@pytest.fixture
def api(pair: Pair) -> Iterator[tuple[Pair, TestClient, TestClient]]:
    headers = {"Authorization": "Bearer t0ken"}
    with (
        TestClient(build_app(pair.south, "t0ken"), headers=headers) as south,
        TestClient(build_app(pair.north, "t0ken"), headers=headers) as north,
    ):
        yield pair, south, north


def test_the_api_schedules_calls_answers_and_shows_links(
    api: tuple[Pair, TestClient, TestClient],
) -> None:
    pair, south, north = api
    ch = pair.channel
    req = {"times": ["09:00", "16:00"], "tz": "Asia/Seoul", "answer_within_ms": 10 * MIN}
    r = south.put(f"/api/v1/checkcalls/schedules/{ch}", json=req)
    assert r.status_code == 200, r.text
    sched = r.json()
    assert (sched["weekdays"], sched["tz"]) == ([0, 1, 2, 3, 4], "Asia/Seoul")
    assert sched["next_due_ms"] > pair.clock.now
    assert south.get("/api/v1/checkcalls/schedules").json() == [sched]
    bad = south.put(f"/api/v1/checkcalls/schedules/{ch}", json=req | {"tz": "Mars/Olympus"})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_request")

    call = south.post(f"/api/v1/checkcalls/{ch}/call", json={"answer_within_ms": MIN}).json()
    assert (call["direction"], call["status"]) == ("outgoing", "pending")
    pair.deliver()
    [waiting] = north.get("/api/v1/checkcalls", params={"status": "pending"}).json()
    assert (waiting["direction"], waiting["caller_name"]) == ("incoming", "South")
    answered = north.post(f"/api/v1/checkcalls/{ch}/{call['call_id']}/answer").json()
    assert answered["status"] == "answered"
    again = north.post(f"/api/v1/checkcalls/{ch}/{call['call_id']}/answer")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    pair.deliver()
    [done] = south.get("/api/v1/checkcalls", params={"channel": ch}).json()
    assert done["answers"][0]["by"] == "admin"  # the bootstrap token's user

    pair.heartbeat(rtt_ms=42)
    pair.south.tick()
    [link] = south.get("/api/v1/links").json()
    assert {k: link[k] for k in ("name", "state", "rtt_ms", "last_ok", "why")} == {
        "name": "North", "state": "up", "rtt_ms": 42, "last_ok": pair.clock.now, "why": "ok",
    }  # fmt: skip
    assert south.get("/api/v1/links/events").json() == []
    gone = south.delete(f"/api/v1/checkcalls/schedules/{ch}").json()
    assert gone == {"channel": ch, "deleted": True}


def test_the_api_opens_moves_links_and_shows_crises(
    api: tuple[Pair, TestClient, TestClient],
) -> None:
    pair, south, north = api
    ch = pair.channel
    inc = south.post(
        "/api/v1/crises",
        json={
            "channel": ch,
            "title": "Vessel adrift",
            "severity": "medium",
            "incident_id": "inc-1",
        },
    ).json()
    assert (inc["incident_id"], inc["status"], inc["opened_by_name"]) == ("inc-1", "open", "South")
    pair.deliver()
    pair.clock.advance(SEC)
    msg = north.post(f"/api/v1/channels/{ch}/messages", json={"text": "We see it."}).json()
    pair.deliver()
    pair.clock.advance(SEC)
    linked = south.post("/api/v1/crises/inc-1/link", json={"ref": msg["hash"]}).json()
    assert linked["links"][0]["ref"] == msg["hash"]
    moved = south.post("/api/v1/crises/inc-1/status", json={"status": "contained"}).json()
    assert moved["status"] == "contained"
    illegal = south.post("/api/v1/crises/inc-1/status", json={"status": "contained"})
    assert (illegal.status_code, illegal.json()["code"]) == (409, "conflict")
    pair.deliver()
    assert north.get("/api/v1/crises/inc-1").json()["status"] == "contained"
    tl = north.get("/api/v1/crises/inc-1/timeline").json()
    assert [i["kind"] for i in tl["items"]] == ["crisis.open", "message", "crisis.status"]
    assert [c["incident_id"] for c in north.get("/api/v1/crises").json()] == ["inc-1"]
    assert north.get("/api/v1/crises", params={"status": "closed"}).json() == []
    assert north.get("/api/v1/crises/nope").status_code == 404


# --- real stations -------------------------------------------------------------------------


@pytest.mark.slow
def test_check_calls_links_and_crises_through_the_cli_between_running_stations(
    tmp_path: Path,
) -> None:
    with Stations(tmp_path, [("South", "en"), ("North", "ko")]) as net:
        ch = net.open_channel("South", ["North"])
        south, north = net.api("South"), net.api("North")
        wait(lambda: south.get("/links")[0]["state"] == "up", what="South's link to be up")

        out = net.cli("South", "checkcall", "schedule", ch[:8], "--at", "09:00", "--at", "16:00",
                      "--tz", "Asia/Seoul", "--within", "10m").stdout  # fmt: skip
        assert "09:00, 16:00 Asia/Seoul on mon,tue,wed,thu,fri, answer within 10m" in out
        assert "Asia/Seoul" in net.cli("South", "checkcall", "schedules").stdout

        # A call nobody answers in time: the caller's alarm says the link is up.
        out = net.cli("South", "checkcall", "call", ch[:8], "--within", "1s").stdout
        cid = out.split()[1]
        wait(
            lambda: any(a["kind"] == "checkcall_missed" for a in south.get("/alarms")),
            what="the missed-call alarm",
        )
        [missed] = [a for a in south.get("/alarms") if a["kind"] == "checkcall_missed"]
        assert missed["severity"] == "critical" and "while the link is up" in missed["message"]
        assert south.get("/links")[0]["why"] == "silent"
        assert "silent" in net.cli("South", "links").stdout
        assert not any(a["kind"] == "checkcall_missed" for a in north.get("/alarms"))

        wait(lambda: north.get("/checkcalls", params={"channel": ch}), what="North to see it")
        assert f"answered {cid} (late)" in net.cli("North", "checkcall", "answer", ch[:8]).stdout
        wait(
            lambda: south.get("/checkcalls")[0]["status"] == "answered_late",
            what="South to see the late answer",
        )
        assert south.get("/links")[0]["why"] == "ok"

        out = net.cli("South", "crisis", "open", ch[:8], "--title", "Unannounced launch",
                      "--severity", "high", "--id", "inc-7").stdout  # fmt: skip
        assert out.startswith("opened inc-7 [high] open: Unannounced launch")
        ref = south.get("/checkcalls")[0]["answers"][0]["ref"]
        net.cli("South", "crisis", "link", "--", "inc-7", ref[:10])
        net.cli("South", "crisis", "status", "inc-7", "contained", "--note", "At sea.")
        wait(
            lambda: north.get("/crises/inc-7")["status"] == "contained",
            what="North to see the incident contained",
        )
        shown = net.cli("North", "crisis", "show", "inc-7").stdout
        assert "crisis.open" in shown and "answered" in shown and "contained: At sea." in shown
        bad = net.cli("North", "crisis", "status", "inc-7", "contained", ok=False)
        assert bad.returncode == 1 and "error [conflict]" in bad.stderr


# --- the store on both backends ------------------------------------------------------------


def test_the_vigil_queries_run_on_sqlite_and_postgresql(store: SqlStore) -> None:
    t = 1_790_000_000_000
    db.set_health(store, db.HealthRow("stb", "up", t, "heartbeats arrive"))
    db.set_health(store, db.HealthRow("stb", "down", t + 1, "3 heartbeats missed"))
    assert db.health(store, "stb") == db.HealthRow("stb", "down", t + 1, "3 heartbeats missed")
    for i, peer in enumerate(["stb", "stc", "stb"]):
        db.add_link_event(store, peer, t + i, "up", "down", f"change {i}")
    assert [e.reason for e in db.link_events(store, ["stb"])] == ["change 0", "change 2"]
    assert [e.reason for e in db.link_events(store, None, t + 1, limit=1)] == ["change 2"]

    row = db.ScheduleRow("ch", ["09:00"], "Asia/Seoul", [0, 4], MIN, ["2026-05-05"], t, t, "lee")
    db.put_schedule(store, row)
    db.set_covered(store, "ch", t + 5)
    assert db.schedules(store) == [row.__class__(**(row.__dict__ | {"covered": t + 5}))]
    assert db.delete_schedule(store, "ch") and not db.delete_schedule(store, "ch")

    call = db.CallRow("ch", "sta", "cc-1.a", t, t + MIN, "ref1", t)
    assert db.add_call(store, call, ["stb", "stc"]) and not db.add_call(store, call, ["stb"])
    assert db.calls_named(store, "ch", "cc-1.a") == [call]
    before = db.answer(store, call, "stb", "kim", t + 10, "ref2")
    assert before is not None and before.ts is None
    assert db.answer(store, call, "stx", "who", t + 10, "ref3") is None  # not asked
    late = db.unanswered_past(store, "sta", t + MIN + 1)
    assert [(c.call_id, a.answerer) for c, a in late] == [("cc-1.a", "stc")]
    db.mark_missed_alarmed(store, call, "stc", t + MIN + 1)
    assert db.unanswered_past(store, "sta", t + 2 * MIN) == []
    [(listed, answers)] = db.calls(store, ["ch"], not_caller="stb")
    assert listed == call
    assert [(a.answerer, a.by_name) for a in answers] == [("stb", "kim"), ("stc", None)]
    assert [a.missed_alarmed for _, a in db.recent_for(store, "sta", "stc")] == [t + MIN + 1]

    store.insert_envelope("ch", "sta", 1, H1, b"raw", t, "ROUTINE", t)
    store.put_body(H1, "crisis.open", '{"type": "crisis.open", "incident_id": "i"}', b"salt")
    [(env, body)] = db.typed_events(store, ["crisis.open", "crisis.link"], "ch")
    assert (env.seq, body.body["incident_id"], body.type) == (1, "i", "crisis.open")
    assert db.event(store, H1) == (env, body)


@pytest.mark.slow
def test_a_station_restarted_after_a_long_pause_judges_its_links_afresh(tmp_path: Path) -> None:
    """Down for more than `down_after_missed` heartbeats, a station found its stored link rows
    stale at start-up and alarmed "down, N heartbeats missed" for peers it had not yet tried:
    after a start a link is judged only from attempts since (the peer's grace runs from then)."""
    beat = 400
    with Stations(tmp_path, [("South", "en"), ("North", "ko")], Timings(heartbeat_ms=beat)) as net:
        south = net.api("South")
        wait(lambda: south.get("/links")[0]["state"] == "up", what="South's link to be up")

        # The peer still up: reached again, nothing to report.
        net.stop("South")
        time.sleep(5 * beat / 1000)  # the pause: five heartbeats without South
        restarted = int(time.time() * 1000)
        net.restart("South")
        wait(lambda: (south.get("/links")[0]["last_ok"] or 0) > restarted, what="a contact")
        assert south.get("/links/events", params={"since": restarted}) == []

        # The peer gone meanwhile: its failures since the start judge it, not the pause.
        net.stop("South")
        net.stop("North")
        time.sleep(5 * beat / 1000)
        restarted = int(time.time() * 1000)
        net.restart("South")
        wait(
            lambda: south.get("/links/events", params={"since": restarted}),
            what="South to notice North gone",
        )
        first = south.get("/links/events", params={"since": restarted})[0]
        assert (first["old"], first["new"]) == ("up", "degraded"), first
        assert "missed" not in first["reason"]
        wait(lambda: south.get("/links")[0]["state"] == "down", what="the link down, in time")
        net.restart("North")
        wait(lambda: south.get("/links")[0]["state"] == "up", what="the link up again")
