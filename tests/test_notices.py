"""Notices, acknowledgements, deadlines and escalation between real stations (issue 8, points 1,
2, 3 and 8): in memory with a controlled clock (tests/pair.py), a loopback webhook receiver, and
one run of real station processes driven through the API and the `parley` command."""

from __future__ import annotations

import copy
import json
import shutil
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from parley.app.build import build_app
from parley.domain import channels, notices
from parley.domain.forms import Catalogue, packaged_folder, render
from parley.domain.notices import InvalidNotice, read_notice
from parley.errors import Code, LocalError, NotFound
from parley.protocol.encoding import b64d, b64e
from parley.protocol.envelope import Ref, seal
from parley.station import notices as feature
from parley.station import notify
from parley.station.config import Config, load_token
from parley.station.node import Station
from parley.station.notices import desk
from parley.station.users import BOOTSTRAP, User
from parley.store import notices as db
from parley.store.base import SqlStore
from tests.net import Stations, wait
from tests.pair import Clock, Net, introduce, make_station, open_channel

pytest_plugins = ["tests.stores"]  # the store fixture, on SQLite and on PostgreSQL

HOUR = 3_600_000
MIN = 60_000
OP = BOOTSTRAP  # acts at either station: operator (and admin), and names who answers (`by`)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Net, Clock, Station, Station, str]]:
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    introduce(a, b)
    net = Net()
    yield net, clock, a, b, open_channel(net, a, b)
    notices.use_catalogue(Catalogue.load())  # a test may have installed extra forms


def launch_fields(clock: Clock, ahead_ms: int = 30 * HOUR) -> dict[str, Any]:
    form = notices.catalogue().get("launch_notice")
    assert form.example is not None
    fields = copy.deepcopy(dict(form.example))
    fields["launch_window"] = {"start_ms": clock() + ahead_ms, "end_ms": clock() + ahead_ms + HOUR}
    return fields


def counts(st: Station) -> tuple[int, ...]:
    """Everything a refused notice must leave untouched."""
    q = st.store.q
    return tuple(
        int(q(f"SELECT COUNT(*) FROM {t}")[0][0])
        for t in ("envelopes", "bodies", "outbox", "notices", "notice_deadlines", "audit")
    )


def alarms(st: Station, kind: str) -> list[str]:
    return [a.message for a in st.store.alarms() if a.kind == kind]


def send_launch(
    net: Net, clock: Clock, a: Station, b: Station, ch: str, who: User = OP, **kw: Any
) -> dict[str, Any]:
    r = desk(a).send_notice(who, ch, "launch_notice", launch_fields(clock), **kw)
    net.deliver(a, b)
    return r


# --- notices: validated before sealing, read in the receiver's language ---------------------------


def test_launch_notice_written_in_english_is_read_in_korean_from_the_same_fields(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    fields = launch_fields(clock)
    sent = desk(a).send_notice(OP, ch, "launch_notice", fields)
    assert sent["precedence"] == "IMMEDIATE"  # the form's precedence
    assert sent["deadline_ms"] == clock() + 2 * HOUR  # the form's ack_deadline_hours
    assert not sent["late"]
    assert [r.status for r in net.deliver(a, b)] == ["accepted"]

    ko = desk(b).notice_view(OP, ch, sent["hash"])  # North reads in its own language by default
    form = notices.catalogue().get("launch_notice")
    assert ko["lang"] == "ko" and ko["original_lang"] == "en"
    assert ko["fields"] == fields
    assert ko["text"] == render(form, fields, "ko", lateness=None)
    assert ko["text"].startswith("발사 통보") and "북위 39.650000°" in ko["text"]
    en = desk(a).notice_view(OP, ch, sent["hash"])
    assert en["text"].startswith("LAUNCH NOTICE") and "39.650000°N" in en["text"]
    assert en["fields"] == ko["fields"]
    svg = ET.fromstring(ko["svg"])
    assert svg.tag.endswith("svg")
    assert "발사 구역" in ko["svg"] and "낙하 구역" in ko["svg"]  # areas labelled in Korean
    assert desk(b).notice_map(OP, ch, sent["hash"], "en") == en["svg"]


def test_bad_fields_are_refused_with_every_field_named_in_the_senders_language(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    fields = launch_fields(clock)
    fields["launch_area"]["points"][0]["lat_e6"] = 91_000_000
    del fields["impact_area"]
    fields["launch_window"]["end_ms"] = fields["launch_window"]["start_ms"] - 1
    before = counts(a)
    for lang, words in (("en", "is required"), ("ko", "필수 항목이 없습니다")):
        with pytest.raises(InvalidNotice) as exc:
            desk(a).send_notice(OP, ch, "launch_notice", fields, lang=lang)
        assert exc.value.status == 422 and exc.value.code == Code.BAD_BODY
        errors = {e["field"]: e for e in exc.value.details["fields"]}  # type: ignore[union-attr]
        assert set(errors) == {
            "impact_area",
            "launch_area.points[0].lat_e6",
            "launch_window.end_ms",
        }
        assert errors["impact_area"]["message"].endswith(words)
        assert errors["launch_area.points[0].lat_e6"]["code"] == "lat_range"
    assert errors["impact_area"]["message"].startswith("낙하 구역")  # the form's Korean label
    assert counts(a) == before
    assert net.deliver(a, b) == []


def test_a_launch_notice_under_24_hours_ahead_is_marked_late_on_both_sides(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    r = desk(a).send_notice(OP, ch, "launch_notice", launch_fields(clock, ahead_ms=10 * HOUR))
    assert r["late"] and r["lateness"]["lead_ms"] == 10 * HOUR
    assert r["lateness"]["required_ms"] == 24 * HOUR
    net.deliver(a, b)
    ko = desk(b).notice_view(OP, ch, r["hash"])
    assert ko["late"] and ko["text"].startswith("*** 기한 경과 통보: 10시간 00분 전에 통보됨")
    assert desk(a).notice_view(OP, ch, r["hash"])["text"].startswith("*** LATE NOTICE")
    assert [n["late"] for n in desk(b).notice_list(OP, ch)] == [True]


def test_an_auditor_rerenders_text_and_map_from_the_transcript_alone(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    r = send_launch(net, clock, a, b, ch)
    for st in (a, b):
        env = st.store.envelope_by_hash(b64d(r["hash"]))
        held = st.store.body(b64d(r["hash"]))
        assert env is not None and held is not None
        fresh = Catalogue.load()  # nothing from the station, only the stored body and timestamp
        for lang in ("en", "ko"):
            again = read_notice(held.body, env.ts, lang, fresh)
            shown = desk(b).notice_view(OP, ch, r["hash"], lang)
            assert (again.text, again.svg) == (shown["text"], shown["svg"])


def _forge(a: Station, b: Station, ch: str, body: dict[str, Any]) -> bytes:
    """A notice really signed by `a` but never checked by it (as a faulty or hostile sender)."""
    head = a.store.head(ch, a.id)
    theirs = b.store.head(ch, b.id)
    assert head is not None and theirs is not None
    env, _ = seal(
        body, identity=a.identity, sender=a.id, channel=ch, seq=head.seq + 1, prev=head.hash,
        seen={b.id: Ref(theirs.seq, theirs.hash)},
        recipients=[a.recipient_key(b.id, a.clock())], now_ms=a.clock(),
    )  # fmt: skip
    return env.raw


def test_the_receiver_validates_a_notice_again_and_stores_nothing_bad(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    _, clock, a, b, ch = world
    good, _ = notices.notice_body(
        notices.catalogue(), "launch_notice", launch_fields(clock), "en", clock()
    )
    bad = copy.deepcopy(good)
    bad["fields"]["impact_area"]["points"].pop()  # no longer a closed ring
    unknown = good | {"form": "secret_weapon_notice"}
    extra = good | {"late": False}
    before = counts(b)
    for body, words in (
        (bad, "fields invalid"),
        (unknown, "not in this station's catalogue"),
        (extra, "expected exactly the fields"),
    ):
        res = b.receive(_forge(a, b, ch, body))
        assert (res.status, res.code) == ("rejected", "bad_body"), res
        assert words in res.message
    assert counts(b) == before


# --- acknowledgements and deadlines ---------------------------------------------------------------


def test_deadline_is_open_then_answered_on_both_sides(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    r = send_launch(net, clock, a, b, ch)
    clock.advance(30 * MIN)
    [awaited] = desk(a).deadlines(OP)
    [owed] = desk(b).deadlines(OP)
    assert (awaited["direction"], owed["direction"]) == ("awaited", "owed")
    assert awaited["answerer"] == owed["answerer"] == b.id
    assert awaited["status"] == owed["status"] == "open"
    assert awaited["time_left_ms"] == owed["time_left_ms"] == 90 * MIN
    assert owed["title"] == "발사 통보" and awaited["title"] == "Launch notice"

    ack = desk(b).acknowledge(OP, ch, r["hash"], "acknowledged", "확인했습니다.", "Lt. Kim")
    net.deliver(b, a)
    assert desk(a).deadlines(OP) == desk(b).deadlines(OP) == []
    [done] = desk(a).deadlines(OP, include_answered=True)
    assert (done["status"], done["answer"], done["answered_ts"]) == (
        "answered", "acknowledged", clock(),
    )  # fmt: skip
    [seen] = desk(a).acks(OP, ch, r["hash"])
    assert (seen["hash"], seen["by"], seen["text"]) == (ack["hash"], "Lt. Kim", "확인했습니다.")
    assert seen["station_name"] == "North"
    clock.advance(10 * HOUR)
    a.tick()
    b.tick()
    assert alarms(a, feature.ALARM_OVERDUE) == alarms(b, feature.ALARM_OVERDUE) == []


def test_questions_meet_the_deadline_and_a_later_answer_becomes_the_current_one(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    r = send_launch(net, clock, a, b, ch)
    desk(b).acknowledge(OP, ch, r["hash"], "questions", "발사 횟수는 몇 회입니까?", "Lt. Kim")
    net.deliver(b, a)
    clock.advance(3 * HOUR)  # past the deadline
    desk(b).acknowledge(OP, ch, r["hash"], "acknowledged", "", "Lt. Kim")
    net.deliver(b, a)
    [row] = desk(a).deadlines(OP, include_answered=True)
    assert (row["status"], row["answer"]) == ("answered", "acknowledged")
    assert [x["answer"] for x in desk(a).notice_view(OP, ch, r["hash"])["acks"]] == [
        "questions", "acknowledged",
    ]  # fmt: skip


def test_an_overdue_acknowledgement_is_an_alarm_at_both_ends_once_and_cleared_by_the_answer(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    r = send_launch(net, clock, a, b, ch)
    clock.advance(2 * HOUR)  # exactly at the deadline: not yet overdue
    a.tick()
    assert alarms(a, feature.ALARM_OVERDUE) == []
    clock.advance(1)
    [row] = desk(a).deadlines(OP)
    assert row["status"] == "overdue" and row["time_left_ms"] == -1
    for _ in range(3):
        a.tick()
        b.tick()
        clock.advance(MIN)
    [at_a] = alarms(a, feature.ALARM_OVERDUE)
    [at_b] = alarms(b, feature.ALARM_OVERDUE)
    assert "North has not acknowledged the Launch notice" in at_a
    assert "our acknowledgement of the Launch notice" in at_b and "from South" in at_b
    assert desk(a).deadlines(OP)[0]["escalation_level"] == 1

    desk(b).acknowledge(OP, ch, r["hash"], "rejected", "The impact area is ours.", "Lt. Kim")
    net.deliver(b, a)
    assert alarms(a, feature.ALARM_OVERDUE) == alarms(b, feature.ALARM_OVERDUE) == []
    [done] = desk(a).deadlines(OP, include_answered=True)
    assert (done["status"], done["answer"]) == ("answered_late", "rejected")


def test_escalation_levels_are_remembered_across_a_restart(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    send_launch(net, clock, a, b, ch)
    clock.advance(3 * HOUR)
    a.tick()
    restarted = feature.NoticeDesk(a, notices.catalogue())
    restarted.escalate(a, clock())
    assert len(alarms(a, feature.ALARM_OVERDUE)) == 1


def test_acknowledging_is_checked_before_anything_is_sent(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    r = send_launch(net, clock, a, b, ch)
    proposal = a.store.envelopes(ch, a.id)[0]
    before = counts(b)
    with pytest.raises(LocalError, match="only messages from other stations"):
        desk(a).acknowledge(OP, ch, r["hash"], "acknowledged", "", "Park")
    with pytest.raises(LocalError, match="questions must be written out"):
        desk(b).acknowledge(OP, ch, r["hash"], "questions", " ", "Kim")
    with pytest.raises(LocalError, match="answer"):
        desk(b).acknowledge(OP, ch, r["hash"], "maybe", "", "Kim")
    with pytest.raises(LocalError, match=r"channel\.propose envelope is not acknowledged"):
        desk(b).acknowledge(OP, ch, b64e(proposal.hash), "acknowledged", "", "Kim")
    with pytest.raises(NotFound):
        desk(b).acknowledge(OP, ch, "A" * 43, "acknowledged", "", "Kim")
    with pytest.raises(LocalError):
        desk(b).acknowledge(OP, ch, "not-a-hash", "acknowledged", "", "Kim")
    assert counts(b) == before


def test_a_plain_message_can_be_acknowledged_without_a_deadline(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, _, a, b, ch = world
    row, _ = a.send(ch, channels.text_body("Exercise ends at 18:00.", "en"))
    net.deliver(a, b)
    h = b64e(row.hash)
    desk(b).acknowledge(OP, ch, h, "acknowledged", "", "Kim")
    net.deliver(b, a)
    assert [x["answer"] for x in desk(a).acks(OP, ch, h)] == ["acknowledged"]
    assert desk(a).deadlines(OP, include_answered=True) == []
    with pytest.raises(NotFound, match="not a notice"):
        desk(a).notice_view(OP, ch, h)


def test_an_explicit_deadline_must_lie_ahead(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    before = counts(a)
    with pytest.raises(LocalError, match="deadline"):
        desk(a).send_notice(OP, ch, "launch_notice", launch_fields(clock), deadline_ms=clock() - 1)
    assert counts(a) == before
    r = send_launch(net, clock, a, b, ch, deadline_ms=clock() + 5 * MIN)
    assert desk(b).deadlines(OP)[0]["deadline_ms"] == r["deadline_ms"] == clock() + 5 * MIN


def test_back_channel_deadlines_are_hidden_from_others_and_escalations_are_discreet(
    tmp_path: Path,
) -> None:
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    introduce(a, b)
    net = Net()
    reps = {a.id: ["envoy.s"], b.id: ["envoy.n"]}
    ch = a.propose_channel("backchannel", "Envoys", [b.id], representatives=reps)
    net.deliver(a, b)
    b.control(ch, "consent")
    net.deliver(b, a)
    envoy = User("envoy.s", frozenset({"representative"}))
    other = User("duty", frozenset({"operator"}))
    send_launch(net, clock, a, b, ch, envoy)
    assert len(desk(a).deadlines(envoy)) == 1
    assert desk(a).deadlines(other) == []
    clock.advance(3 * HOUR)
    a.tick()
    [text] = alarms(a, feature.ALARM_OVERDUE)
    assert "a notice on a back channel" in text and "Launch" not in text


# --- escalation to webhooks --------------------------------------------------------------------


class Hook:
    """A webhook receiver on loopback: records each JSON body, answers with `statuses` in turn
    (the last one repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                hook.bodies.append(json.loads(data))
                status = hook.statuses[min(len(hook.bodies), len(hook.statuses)) - 1]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/parley"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook([200])
    yield h
    h.close()


def tick(st: Station) -> None:
    """A tick, then the notification duty's pass (app/serve.py runs it on its own)."""
    st.tick()
    notify.desk(st).deliver()


def test_an_overdue_notice_escalates_to_a_console_alarm_then_a_webhook(
    world: tuple[Net, Clock, Station, Station, str], hook: Hook
) -> None:
    net, clock, a, b, ch = world
    a.cfg.escalation = [
        {"after_overdue_ms": 0, "action": "console_alarm"},
        {"after_overdue_ms": HOUR, "action": "webhook", "target": hook.url},
    ]
    r = send_launch(net, clock, a, b, ch)
    clock.advance(2 * HOUR + MIN)
    tick(a)
    assert len(alarms(a, feature.ALARM_OVERDUE)) == 1 and hook.bodies == []
    clock.advance(HOUR)
    tick(a)
    tick(a)
    [call] = hook.bodies
    assert call["event"] == "parley.ack_overdue" and call["level"] == 2
    assert (call["ref"], call["channel"], call["form"]) == (r["hash"], ch, "launch_notice")
    assert (call["direction"], call["answerer_name"]) == ("awaited", "North")
    assert call["overdue_ms"] == HOUR + MIN
    assert desk(a).deadlines(OP)[0]["escalation_level"] == 2
    assert alarms(a, notify.ALARM) == []
    clock.advance(5 * HOUR)
    tick(a)
    assert len(hook.bodies) == 1  # each level fires once


def test_a_failing_webhook_is_alarmed_once_retried_and_given_up_after_a_bounded_number_of_tries(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    hook = Hook([500])
    try:
        a.cfg.escalation = [{"after_overdue_ms": 0, "action": "webhook", "target": hook.url}]
        r = send_launch(net, clock, a, b, ch)
        clock.advance(2 * HOUR + 1)
        tick(a)
        assert len(hook.bodies) == 1
        [warning] = alarms(a, notify.ALARM)
        assert "HTTP 500" in warning and f"up to {notify.ATTEMPTS} times" in warning
        tick(a)
        assert len(hook.bodies) == 1  # backing off, not hammering
        for _ in range(3 * notify.ATTEMPTS):
            clock.advance(notify.RETRY_MAX_MS)
            tick(a)
        assert len(hook.bodies) == notify.ATTEMPTS
        assert all(body["ref"] == r["hash"] for body in hook.bodies)
        raised = [x for x in a.store.alarms() if x.kind == notify.ALARM]
        assert [x.severity for x in raised] == ["critical", "warning"]  # newest first
        assert "giving up" in raised[0].message
        [row] = [d for d in notify.desk(a).deliveries(OP) if d["kind"] == "ack_overdue"]
        assert (row["target"], row["attempts"], row["state"], row["last_error"]) == (
            hook.url, notify.ATTEMPTS, "failed", "HTTP 500",
        )  # fmt: skip
    finally:
        hook.close()


def test_a_webhook_that_recovers_is_delivered_on_a_retry_and_its_alarm_resolves(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    hook = Hook([503, 200])
    try:
        a.cfg.escalation = [{"after_overdue_ms": 0, "action": "webhook", "target": hook.url}]
        send_launch(net, clock, a, b, ch)
        clock.advance(2 * HOUR + 1)
        tick(a)
        assert len(alarms(a, notify.ALARM)) == 1
        clock.advance(notify.RETRY_MAX_MS)
        tick(a)
        clock.advance(notify.RETRY_MAX_MS)
        tick(a)
        assert len(hook.bodies) == 2 and hook.bodies[0] == hook.bodies[1]
        [row] = [d for d in notify.desk(a).deliveries(OP) if d["kind"] == "ack_overdue"]
        assert (row["attempts"], row["state"]) == (2, "delivered")
        assert alarms(a, notify.ALARM) == []  # resolved by the success
    finally:
        hook.close()


def test_escalation_settings_are_checked_when_the_station_starts() -> None:
    for bad in (
        [{"action": "webhook"}],
        [{"action": "webhook", "target": "ftp://x"}],
        [{"action": "page_the_president"}],
        [{"after_overdue_ms": HOUR, "action": "console_alarm"}, {"action": "console_alarm"}],
        [{"action": "console_alarm", "when": 1}],
    ):
        with pytest.raises(LocalError):
            feature.escalation_policy(Config("x", "en", escalation=bad))
    assert len(feature.escalation_policy(Config("x", "en")).levels) == 1


# --- the forms catalogue: a form dropped into a folder --------------------------------------------


def test_a_form_dropped_into_the_forms_folder_can_be_sent_and_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "forms"
    drill = folder / "drill_notice"
    shutil.copytree(Path(str(packaged_folder())) / "launch_notice", drill)
    meta = json.loads((drill / "form.json").read_text())
    meta["id"] = "drill_notice"
    meta["ack_deadline_hours"] = 5
    (drill / "form.json").write_text(json.dumps(meta))
    monkeypatch.setenv("PARLEY_FORMS_DIR", str(folder))
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    try:
        introduce(a, b)
        net = Net()
        ch = open_channel(net, a, b)
        assert "drill_notice" in desk(a).catalogue
        r = desk(a).send_notice(OP, ch, "drill_notice", launch_fields(clock))
        assert r["deadline_ms"] == clock() + 5 * HOUR
        assert [x.status for x in net.deliver(a, b)] == ["accepted"]
        assert desk(b).notice_view(OP, ch, r["hash"])["text"].startswith("발사 통보")
    finally:
        notices.use_catalogue(Catalogue.load())


# --- the HTTP API in process ---------------------------------------------------------------------


def test_api_routes_for_forms_notices_acks_and_deadlines(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    api_a = TestClient(build_app(a, "tok-a"), headers={"Authorization": "Bearer tok-a"})
    api_b = TestClient(build_app(b, "tok-b"), headers={"Authorization": "Bearer tok-b"})
    forms = api_b.get("/api/v1/forms").json()
    assert {f["id"]: f["name"] for f in forms}["launch_notice"] == "발사 통보"
    form = api_b.get("/api/v1/forms/launch_notice").json()
    labels = {f["name"]: f["label"] for f in form["fields"]}
    assert labels["impact_area"] == "낙하 구역" and form["lead_time"]["min_hours"] == 24
    assert api_b.get("/api/v1/forms/nope").status_code == 404

    before = counts(a)
    bad = launch_fields(clock)
    bad["launch_count"] = 0
    resp = api_a.post(f"/api/v1/channels/{ch}/notices", json={"form": "launch_notice",
                                                              "fields": bad})  # fmt: skip
    assert resp.status_code == 422
    err = resp.json()
    assert err["code"] == "bad_body"
    assert [f["field"] for f in err["details"]["fields"]] == ["launch_count"]
    assert counts(a) == before

    sent = api_a.post(
        f"/api/v1/channels/{ch}/notices",
        json={"form": "launch_notice", "fields": launch_fields(clock), "deadline_hours": 1},
        headers={"Idempotency-Key": "n-1"},
    ).json()
    again = api_a.post(
        f"/api/v1/channels/{ch}/notices",
        json={"form": "launch_notice", "fields": launch_fields(clock), "deadline_hours": 1},
        headers={"Idempotency-Key": "n-1"},
    ).json()
    assert sent["hash"] == again["hash"] and not again["created"]
    assert sent["deadline_ms"] == clock() + HOUR
    net.deliver(a, b)

    view = api_b.get(f"/api/v1/channels/{ch}/notices/{sent['hash']}").json()
    assert view["lang"] == "ko" and view["text"].startswith("발사 통보")
    en = api_b.get(f"/api/v1/channels/{ch}/notices/{sent['hash']}", params={"lang": "en"}).json()
    assert en["text"].startswith("LAUNCH NOTICE")
    svg = api_b.get(f"/api/v1/channels/{ch}/notices/{sent['hash']}/map.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text == view["svg"]
    [listed] = api_b.get(f"/api/v1/channels/{ch}/notices").json()
    assert listed["hash"] == sent["hash"] and listed["answers"][0]["status"] == "open"
    [due] = api_b.get("/api/v1/deadlines").json()
    assert (due["ref"], due["direction"], due["time_left_ms"]) == (sent["hash"], "owed", HOUR)

    ack = api_b.post(
        f"/api/v1/channels/{ch}/messages/{sent['hash']}/ack",
        json={"answer": "acknowledged", "text": "확인", "by": "Lt. Kim"},
    )
    assert ack.status_code == 200, ack.text
    net.deliver(b, a)
    assert api_a.get("/api/v1/deadlines").json() == []
    [done] = api_a.get("/api/v1/deadlines", params={"all": "true"}).json()
    assert (done["status"], done["answer"]) == ("answered", "acknowledged")
    [got] = api_a.get(f"/api/v1/channels/{ch}/messages/{sent['hash']}/acks").json()
    assert (got["by"], got["text"], got["station_name"]) == ("Lt. Kim", "확인", "North")
    bad_ack = api_b.post(
        f"/api/v1/channels/{ch}/messages/{sent['hash']}/ack", json={"answer": "maybe"}
    )
    assert bad_ack.status_code == 422


# --- real station processes: the API and the `parley` command ----------------------------------


@pytest.mark.slow
def test_real_stations_send_a_launch_notice_read_in_korean_and_acknowledged(
    tmp_path: Path,
) -> None:
    with Stations(tmp_path, [("South", "en"), ("North", "ko")]) as net:
        ch = net.open_channel("South", ["North"])
        south, north = net.api("South"), net.api("North")
        listing = net.cli("North", "forms", "list").stdout
        assert "launch_notice" in listing and "발사 통보" in listing
        shown = net.cli("North", "forms", "show", "launch_notice").stdout
        assert "낙하 구역" in shown and "24 h" in shown

        fields = launch_fields(Clock(time.time_ns() // 1_000_000))  # the stations' wall clock
        messages = len(south.get(f"/channels/{ch}/messages"))

        bad = copy.deepcopy(fields)
        bad["impact_area"]["points"][2] = {"lat_e6": 39_000_000, "lon_e6": 190_000_000}
        resp = httpx.post(
            f"{south.base}/api/v1/channels/{ch}/notices",
            json={"form": "launch_notice", "fields": bad},
            headers={"Authorization": f"Bearer {load_token(net.dirs['South'])}"},
        )
        assert resp.status_code == 422
        assert [f["field"] for f in resp.json()["details"]["fields"]] == [
            "impact_area.points[2].lon_e6"
        ]
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        res = net.cli("South", "notice", "send", ch, "launch_notice", "--fields",
                      f"@{tmp_path / 'bad.json'}", ok=False)  # fmt: skip
        assert res.returncode == 1
        assert "impact_area.points[2].lon_e6: Impact area › points[2] › longitude" in res.stderr
        assert len(south.get(f"/channels/{ch}/messages")) == messages

        (tmp_path / "good.json").write_text(json.dumps(fields))
        out = net.cli("South", "notice", "send", ch, "launch_notice", "--fields",
                      f"@{tmp_path / 'good.json'}").stdout  # fmt: skip
        h = out.split(" hash ")[1].split()[0]
        wait(lambda: any(n["hash"] == h for n in north.get(f"/channels/{ch}/notices")),
                 what="North to receive the notice")  # fmt: skip
        svg_file = tmp_path / "map.svg"
        read = net.cli("North", "notice", "show", "--svg", str(svg_file), "--", ch, h[:10]).stdout
        assert "발사 통보" in read and "낙하 구역" in read and "South" in read
        assert ET.parse(svg_file).getroot().tag.endswith("svg")
        assert "owed" in json.dumps(north.get("/deadlines"))

        net.cli("North", "ack", "--answer", "acknowledged", "--text", "확인했습니다",
                "--by", "Lt. Kim", "--", ch, h[:10])  # fmt: skip

        def answered() -> bool:
            rows = south.get("/deadlines", params={"all": True})
            return bool(rows) and rows[0]["status"] == "answered"

        wait(answered, what="South to receive the acknowledgement")
        [row] = south.get("/deadlines", params={"all": True})
        assert (row["answer"], row["answerer_name"]) == ("acknowledged", "North")
        shown_en = net.cli("South", "notice", "show", "--", ch, h).stdout
        assert "LAUNCH NOTICE" in shown_en and "Lt. Kim" in shown_en and "확인했습니다" in shown_en


# --- the store, on SQLite and PostgreSQL ---------------------------------------------------------


def test_store_keeps_notices_acks_deadlines_and_escalations(
    store: SqlStore,
) -> None:
    t = 1_790_000_000_000
    ref, other = "R" * 43, "Q" * 43
    with store.tx():
        db.add_notice(store, db.NoticeRow(ref, "ch", "south", 2, t, "launch_notice", 1, "en",
                                          t + 2 * HOUR, True))  # fmt: skip
        db.add_deadline(store, ref, "north", "ch", "south", t + 2 * HOUR, None)
        db.add_deadline(store, ref, "east", "ch", "south", t + 2 * HOUR, None)
    assert db.notice(store, ref) == db.notices(store, "ch")[0]
    assert db.notice(store, ref).late  # type: ignore[union-attr]
    assert db.notice(store, other) is None and db.notices(store, "elsewhere") == []
    assert [d.answerer for d in db.overdue(store, t + 2 * HOUR)] == []
    assert [d.answerer for d in db.overdue(store, t + 2 * HOUR + 1)] == ["east", "north"]

    db.add_escalation(store, ref, "north", 0, "console_alarm", t)
    db.add_escalation(store, ref, "north", 1, "webhook", t)
    assert sorted(db.fired(store, ref, "north")) == [0, 1] and db.fired(store, ref, "east") == []
    assert {d.answerer: d.level for d in db.deadlines_for(store, ref)} == {"east": 0, "north": 2}

    db.add_ack(store, db.AckRow("A" * 43, "ch", ref, "north", 3, t + HOUR, "questions", "?", "K"))
    db.add_ack(store, db.AckRow("B" * 43, "ch", ref, "north", 4, t + 3 * HOUR, "acknowledged",
                                "", "K"))  # fmt: skip
    assert [a.answer for a in db.acks(store, ref)] == ["questions", "acknowledged"]
    assert db.first_ack_ts(store, "ch", ref, "north") == t + HOUR
    assert db.first_ack_ts(store, "other-channel", ref, "north") is None
    assert not db.mark_answered(store, "other-channel", ref, "north", t + HOUR)
    assert db.mark_answered(store, "ch", ref, "north", t + 3 * HOUR)
    assert db.mark_answered(store, "ch", ref, "north", t + HOUR)  # an earlier answer wins
    assert not db.mark_answered(store, "ch", ref, "north", t + 3 * HOUR)
    assert db.unanswered(store, ref) == 1
    assert [d.answered_ts for d in db.deadlines(store, only_unanswered=False)] == [None, t + HOUR]

    store.add_alarm(feature.ALARM_OVERDUE, "warning", ref, "late", t)
    store.add_alarm(feature.ALARM_OVERDUE, "warning", other, "late", t)
    assert db.clear_alarms(store, feature.ALARM_OVERDUE, ref, t) == 1
    assert [a.subject for a in store.alarms()] == [other]
