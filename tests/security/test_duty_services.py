"""Duty work through the station's services (issue 13 §1 and §2): notices and acknowledgements,
check calls and crises, paths and bundles, checkpoints and transcripts, metrics.

Two stations joined in memory (real SQLite stores and crypto), South's operator API and console
on the real app. Each write of each feature is tried by a user with no role, an auditor and a
translator: every try is refused with 403 `forbidden` naming the action, and South's database
is unchanged. The same request by a user the role table allows then succeeds and changes it,
so the refusals are the table's and not a bad request's. A bundle export by an operator who is
not named on a back channel carries none of it and names it nowhere; one by its representative
carries it. One run of a real station shows the `parley` command printing the refusal.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from parley.api.auth import SESSION_COOKIE
from parley.app.build import build_app
from parley.domain import notices as notice_bodies
from parley.protocol.bundle import parse_bundle
from parley.protocol.encoding import b64e
from parley.protocol.envelope import parse_envelope
from parley.station import checkcalls, crises, paths
from parley.station.node import Station
from parley.station.notices import desk
from parley.station.roles import TABLE, Action
from parley.station.users import BOOTSTRAP, User, create_user
from parley.web import session
from tests.net import Stations, parley
from tests.pair import Clock, Net, hotline, introduce, make_station
from tests.security.test_roles import snapshot

TOKEN = "bootstrap-" + "d" * 32
REFUSED = ("nobody", "audra", "tran")  # no role, auditor, translator
PEOPLE = {
    "nobody": [],
    "audra": ["auditor"],
    "tran": ["translator"],
    "duty": ["operator"],
    "boss": ["admin"],
    "envoy.s": ["representative", "operator"],
}
MIN = 60_000


@dataclass
class World:
    tmp: Path
    net: Net
    clock: Clock
    a: Station
    b: Station
    ch: str
    client: TestClient
    password: str
    tokens: dict[str, str] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def call(self, who: str, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def db(self) -> str:
        return snapshot(self.tmp / "a" / "parley.db")


def launch_fields(clock: Clock) -> dict[str, Any]:
    form = notice_bodies.catalogue().get("launch_notice")
    fields = copy.deepcopy(dict(form.example or {}))
    start = clock() + 30 * 3_600_000
    fields["launch_window"] = {"start_ms": start, "end_ms": start + 3_600_000}
    return fields


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    net, clock, a, b, ch = hotline(tmp_path)
    w = World(tmp_path, net, clock, a, b, ch, TestClient(build_app(a, TOKEN)), "")
    w.password = secrets.token_urlsafe(18)
    for name, roles in PEOPLE.items():
        create_user(a, name, roles, w.password, clock(), "test")
        r = w.client.post("/api/v1/login", json={"name": name, "password": w.password})
        assert r.status_code == 200, r.text
        w.tokens[name] = r.json()["token"]
    # What the writes act on: North's notice and check call, South's incident and schedule.
    notice = desk(b).send_notice(BOOTSTRAP, ch, "launch_notice", launch_fields(clock))
    call = checkcalls.call_now(b, ch, 10 * MIN, BOOTSTRAP)
    net.deliver(b, a)
    crises.open_incident(a, BOOTSTRAP, ch, "Radar contact", "low", incident_id="inc-1")
    checkcalls.set_schedule(a, ch, ["09:00"], "UTC", [0, 1, 2, 3, 4], 10 * MIN, [], BOOTSTRAP)
    b.send(ch, {"type": "text", "text": "by courier", "lang": "ko"})
    bundle, _ = paths.export_bundle(b, a.id, BOOTSTRAP)
    w.refs = {"notice": notice["hash"], "call": call["call_id"], "bundle": bundle.decode()}
    yield w


def refuse_then_allow(
    w: World, cases: list[tuple[str, str, str, dict[str, Any], Action, str]]
) -> int:
    """Each case (method, path, allowed user, request, action, note): every REFUSED user gets
    403 forbidden naming `action` and changes nothing; then the allowed user's request
    succeeds and changes the database. Returns the number of requests tried."""
    tried = 0
    for method, path, allowed, kw, action, note in cases:
        for who in REFUSED:
            before = w.db()
            r = w.call(who, method, path, **copy.deepcopy(kw))
            tried += 1
            assert r.status_code == 403, f"{note} as {who}: {r.status_code} {r.text[:200]}"
            body = r.json()
            assert body["code"] == "forbidden", f"{note} as {who}: {body}"
            assert body["details"]["action"] == action.value, f"{note} as {who}: {body}"
            assert w.db() == before, f"{note} as {who}: refused but changed the database"
        before = w.db()
        r = w.call(allowed, method, path, **copy.deepcopy(kw))
        tried += 1
        assert 200 <= r.status_code < 300, f"{note} as {allowed}: {r.status_code} {r.text[:300]}"
        assert w.db() != before, f"{note} as {allowed}: succeeded but changed nothing"
    return tried


def test_notices_and_acknowledgements_refuse_the_roles_the_table_refuses(world: World) -> None:
    w = world
    ch, ref = w.ch, w.refs["notice"]
    cases = [
        ("POST", f"/api/v1/channels/{ch}/notices", "duty",
         {"json": {"form": "launch_notice", "fields": launch_fields(w.clock)}},
         Action.NOTICE_SEND, "send a notice"),
        ("POST", f"/api/v1/channels/{ch}/messages/{ref}/ack", "duty",
         {"json": {"answer": "acknowledged"}}, Action.NOTICE_ACK, "acknowledge"),
    ]  # fmt: skip
    tried = refuse_then_allow(w, cases)
    # Reading is an action too: a user with no role reads no notice and no deadline.
    for path in (f"/api/v1/channels/{ch}/notices", "/api/v1/deadlines", "/api/v1/forms"):
        r = w.call("nobody", "GET", path)
        tried += 1
        assert r.status_code == 403 and r.json()["code"] == "forbidden", path
    print(f"notices: {tried} requests tried")
    assert tried == 2 * 4 + 3, tried


def test_check_calls_and_crises_refuse_the_roles_the_table_refuses(world: World) -> None:
    w = world
    ch = w.ch
    schedule = {"times": ["10:00"], "tz": "Asia/Seoul", "answer_within_ms": 10 * MIN}
    cases = [
        ("PUT", f"/api/v1/checkcalls/schedules/{ch}", "boss", {"json": schedule},
         Action.CHECKCALL_SCHEDULE, "set a schedule"),
        ("DELETE", f"/api/v1/checkcalls/schedules/{ch}", "boss", {},
         Action.CHECKCALL_SCHEDULE, "remove a schedule"),
        ("POST", f"/api/v1/checkcalls/{ch}/call", "duty", {"json": {}},
         Action.CHECKCALL_CALL, "call now"),
        ("POST", f"/api/v1/checkcalls/{ch}/{w.refs['call']}/answer", "duty", {},
         Action.CHECKCALL_ANSWER, "answer a call"),
        ("POST", "/api/v1/crises", "duty",
         {"json": {"channel": ch, "title": "Debris at sea", "severity": "medium"}},
         Action.CRISIS_OPEN, "open an incident"),
        ("POST", "/api/v1/crises/inc-1/status", "duty", {"json": {"status": "contained"}},
         Action.CRISIS_UPDATE, "move an incident"),
        ("POST", "/api/v1/crises/inc-1/link", "duty", {"json": {"ref": w.refs["notice"]}},
         Action.CRISIS_UPDATE, "link an envelope"),
    ]  # fmt: skip
    tried = refuse_then_allow(w, cases)
    for path in ("/api/v1/links", "/api/v1/checkcalls", "/api/v1/crises"):
        r = w.call("nobody", "GET", path)
        tried += 1
        assert r.status_code == 403 and r.json()["code"] == "forbidden", path
    print(f"vigil: {tried} requests tried")
    assert tried == 7 * 4 + 3, tried


def test_paths_and_bundles_refuse_the_roles_the_table_refuses(world: World) -> None:
    w = world
    relay = make_station(w.tmp / "un", "UN", "en", w.clock)
    introduce(w.a, relay)
    cases = [
        ("POST", f"/api/v1/peers/{w.b.id}/route", "boss", {"json": {"via": relay.id}},
         Action.PEER_ROUTE, "route through a relay"),
        ("POST", "/api/v1/bundles/export", "duty", {"json": {"peer": w.b.id}},
         Action.BUNDLE_EXPORT, "export a bundle"),
        ("POST", "/api/v1/bundles/import", "duty",
         {"content": w.refs["bundle"].encode(),
          "headers": {"Content-Type": "application/x-ndjson"}},
         Action.BUNDLE_IMPORT, "import a bundle"),
    ]  # fmt: skip
    tried = refuse_then_allow(w, cases)
    # The import's role is checked before its body is read: an over-size body gets 403, not 413.
    r = w.call("tran", "POST", "/api/v1/bundles/import", content=b"x" * (1 << 20))
    tried += 1
    assert r.status_code == 403 and r.json()["details"]["action"] == "bundle.import"
    print(f"paths: {tried} requests tried")
    assert tried == 3 * 4 + 1, tried


def test_checkpoints_and_transcripts_refuse_the_roles_the_table_refuses(world: World) -> None:
    w = world
    ch = w.ch
    cases = [
        ("POST", f"/api/v1/channels/{ch}/checkpoint", "duty", {}, Action.CHECKPOINT_MAKE,
         "make a checkpoint"),
    ]  # fmt: skip
    tried = refuse_then_allow(w, cases)
    # An export carries plaintext out: a translator and a user with no role get none; an
    # auditor does (and it is audited under their name).
    for who, status in (("nobody", 403), ("tran", 403), ("audra", 200)):
        r = w.call(who, "GET", f"/api/v1/channels/{ch}/export")
        tried += 1
        assert r.status_code == status, (who, r.status_code)
    assert ("audra", "transcript.export") in [(x[1], x[2]) for x in w.a.store.audit_log()]
    print(f"transcripts: {tried} requests tried")
    assert tried == 4 + 3, tried


def test_metrics_are_for_the_roles_the_table_names(world: World) -> None:
    w = world
    tried = 0
    for who, status in (("nobody", 403), ("tran", 403), ("duty", 403), ("audra", 200)):
        r = w.call(who, "GET", "/metrics")
        tried += 1
        assert r.status_code == status, (who, r.status_code, r.text[:200])
        if status == 403:
            assert r.json()["details"]["action"] == "metrics.read"
        else:
            assert "parley_" in r.text
    print(f"metrics: {tried} requests tried")
    assert tried == 4


# --- the console ---------------------------------------------------------------------------------


def console_as(w: World, name: str) -> tuple[TestClient, str]:
    """A console session of `name` and its CSRF token (a user with no role sees no page that
    would show the token, so it is derived as the console derives it)."""
    web = TestClient(build_app(w.a, TOKEN))
    form = web.get("/console/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    r = web.post(
        "/console/login",
        data={"csrf": csrf[1], "name": name, "password": w.password},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:200]
    return web, session.csrf_for(web.cookies[SESSION_COOKIE])


def test_the_console_refuses_the_same_writes_and_changes_nothing(world: World) -> None:
    """Each console write with the action its service checks: every REFUSED user the role table
    refuses gets 403 and changes nothing (a machine draft is the translator's to ask for)."""
    w = world
    ch, ref = w.ch, w.refs["notice"]
    said = w.a.send(ch, {"type": "text", "text": "Radar contact", "lang": "en"})[0]
    text = b64e(said.hash)  # a text a machine draft would translate
    posts = [
        (f"/console/channels/{ch}/notice", {"form": "launch_notice"}, Action.NOTICE_SEND),
        (f"/console/channels/{ch}/ack", {"ref": ref, "answer": "acknowledged"},
         Action.NOTICE_ACK),
        ("/console/admin/schedules", {"channel": ch, "times": "09:00", "tz": "UTC",
                                      "weekdays": "0", "within": "10"},
         Action.CHECKCALL_SCHEDULE),
        (f"/console/admin/schedules/{ch}/remove", {}, Action.CHECKCALL_SCHEDULE),
        ("/console/crises", {"channel": ch, "title": "x", "severity": "low"},
         Action.CRISIS_OPEN),
        ("/console/crises/inc-1/status", {"channel": ch, "status": "contained"},
         Action.CRISIS_UPDATE),
        (f"/console/channels/{ch}/checkpoint", {}, Action.CHECKPOINT_MAKE),
        (f"/console/channels/{ch}/machine-draft", {"ref": text, "lang": "en"},
         Action.TRANSLATION_MACHINE),
    ]  # fmt: skip
    tried = 0
    for who in REFUSED:
        web, csrf = console_as(w, who)
        user = User(who, frozenset(PEOPLE[who]))
        for path, data, action in posts:
            if TABLE[action] & user.roles:  # the table lets this one do it
                continue
            before = w.db()
            r = web.post(path, data={"csrf": csrf, **data}, follow_redirects=False)
            tried += 1
            assert r.status_code == 403, f"{path} as {who}: {r.status_code} {r.text[:300]}"
            assert "forbidden" in r.text and action.value in r.text, f"{path} as {who}"
            assert w.db() == before, f"{path} as {who}: refused but changed the database"
    print(f"console: {tried} requests tried")
    assert tried == len(REFUSED) * len(posts) - 1, tried  # all but the translator's draft


# --- back channels in bundles --------------------------------------------------------------------


def test_a_bundle_export_names_no_back_channel_its_user_is_not_named_on(world: World) -> None:
    w = world
    a, b, net = w.a, w.b, w.net
    net.deliver(a, b)
    net.deliver(b, a)
    reps = {a.id: ["envoy.s"], b.id: ["envoy.n"]}
    bc = a.propose_channel("backchannel", "Envoys", [b.id], representatives=reps)
    net.deliver(a, b)
    b.control(bc, "consent")
    net.deliver(b, a)  # South now holds North's chain on the back channel: a receipt to carry
    for i in range(3):
        a.send(w.ch, {"type": "text", "text": f"hotline {i}", "lang": "en"})
        a.send(bc, {"type": "text", "text": f"quiet word {i}", "lang": "en"})
    hotline_pending = sum(1 for r in a.store.pending(b.id, 1000) if r.channel == w.ch)
    cases = 0

    # The duty operator (not named): the hotline travels, the back channel waits, unnamed.
    r = w.call("duty", "POST", "/api/v1/bundles/export", json={"peer": b.id})
    assert r.status_code == 200, r.text
    cases += 1
    assert bc not in r.text  # not in the answer, not in the bundle text it carries
    got = r.json()
    assert got["envelopes"] == hotline_pending, (got["envelopes"], hotline_pending)
    plain = parse_bundle(got["bundle"].encode())
    assert {parse_envelope(e).channel for e in plain.envelopes} == {w.ch}
    assert {rc["ch"] for rc in plain.receipts} == {w.ch}
    log = w.call("duty", "GET", "/api/v1/bundles")
    cases += 1
    assert log.status_code == 200 and bc not in log.text

    # Her representative: the same export carries the back channel too.
    r = w.call("envoy.s", "POST", "/api/v1/bundles/export", json={"peer": b.id})
    assert r.status_code == 200, r.text
    cases += 1
    full = parse_bundle(r.json()["bundle"].encode())
    assert {parse_envelope(e).channel for e in full.envelopes} == {w.ch, bc}
    assert bc in {rc["ch"] for rc in full.receipts}
    # The log every reader sees counts no back-channel envelope, for either export.
    log = w.call("duty", "GET", "/api/v1/bundles").json()
    cases += 1
    exports = [x for x in log if x["direction"] == "export" and x["peer"] == b.id]
    assert [x["envelopes"] for x in exports[:2]] == [hotline_pending, hotline_pending]
    for entry in w.a.store.audit_log():
        if entry[2] == "bundle.export":
            assert bc not in entry[3]
            assert json.loads(entry[3])["envelopes"] == hotline_pending

    # North applies both: the hotline from the first, the back channel from the second.
    first = paths.import_bundle(b, got["bundle"].encode(), BOOTSTRAP)
    second = paths.import_bundle(b, r.json()["bundle"].encode(), BOOTSTRAP)
    cases += 2
    assert first["accepted"] == hotline_pending and first["problems"] == []
    assert second["accepted"] == 3 and second["duplicate"] == hotline_pending
    assert [m.body["text"] for m in b.messages(bc) if m.body.get("type") == "text"] == [
        f"quiet word {i}" for i in range(3)
    ]
    print(f"bundles and back channels: {cases} cases")
    assert cases == 6


# --- the command line ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_cli_prints_the_refusal(tmp_path: Path) -> None:
    with Stations(tmp_path, [("South", "en"), ("North", "ko")]) as net:
        ch = net.open_channel("South", ["North"])
        password = secrets.token_urlsafe(18)
        api = net.api("South")
        api.post("/users", json={"name": "aud", "roles": ["auditor"], "password": password})
        token = api.post("/login", json={"name": "aud", "password": password})["token"]
        tried = 0
        for args in (
            ("bundle", "export", "--peer", "North", "--out", str(tmp_path / "x.bundle")),
            ("checkcall", "call", ch),
            ("transcript", "checkpoint", ch),
        ):
            res = parley(*args, data=net.dirs["South"], ok=False, env={"PARLEY_TOKEN": token})
            tried += 1
            assert res.returncode == 1, (args, res.stdout, res.stderr)
            said = res.stdout + res.stderr
            assert "forbidden" in said and "aud may not do" in said, (args, said)
        assert not (tmp_path / "x.bundle").exists()
        print(f"cli: {tried} commands tried")
        assert tried == 3


def test_the_console_admin_page_is_the_role_tables_answer(world: World) -> None:
    """The admin page and its user and peer forms go through the same services as the API: a
    person without the admin role sees 403 and changes nothing; the admin sees users and audit."""
    w = world
    posts = [
        ("/console/admin/users", {"name": "mallory", "password": w.password, "roles": "admin"}),
        ("/console/admin/users/duty", {"roles": "admin"}),
        ("/console/admin/users/boss", {"disabled": "yes"}),
        ("/console/admin/peers", {"invitation": w.b.invitation().encode()}),
    ]
    tried = 0
    for who in ("nobody", "audra", "tran", "duty", "envoy.s"):
        web, csrf = console_as(w, who)
        r = web.get("/console/admin")
        tried += 1
        assert r.status_code == 403 and "boss" not in r.text, f"GET /admin as {who}"
        for path, data in posts:
            before = w.db()
            r = web.post(path, data={"csrf": csrf, **data}, follow_redirects=False)
            tried += 1
            assert r.status_code == 403, f"{path} as {who}: {r.status_code} {r.text[:300]}"
            assert w.db() == before, f"{path} as {who}: refused but changed the database"
    web, csrf = console_as(w, "boss")
    page = web.get("/console/admin")
    assert page.status_code == 200 and "envoy.s" in page.text and "peer.add" in page.text
    tried += 1
    print(f"console admin: {tried} requests tried")
    assert tried == 5 * 5 + 1, tried
