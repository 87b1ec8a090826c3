"""Notifications beyond the console (issue 15): every alarm kind routed to its own targets, webhooks
and e-mail through one durable outbox, bursts coalesced, back channels kept from targets not
named for them. Real stations in memory with a controlled clock (tests/pair.py), a loopback
webhook receiver, and a local SMTP server (aiosmtpd) with STARTTLS and authentication."""

from __future__ import annotations

import ast
import importlib
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from fastapi.testclient import TestClient

from parley.app.build import build_app
from parley.cli.demo import free_port
from parley.errors import LocalError
from parley.station import alarm_kinds, features, notify
from parley.station.config import Config, Timings
from parley.station.node import Station
from parley.station.users import BOOTSTRAP
from parley.store import notify as ndb
from parley.store.base import SqlStore
from parley.store.sqlite import SqliteStore
from parley.transport import clients
from tests.net import Stations, wait
from tests.pair import Clock, hotline
from tests.security.test_backchannels import Side, propose
from tests.test_notices import Hook

pytest_plugins = ["tests.stores"]  # the store fixture, on SQLite and on PostgreSQL

SRC = Path(__file__).resolve().parents[1] / "src" / "parley"
ADMIN = BOOTSTRAP

# Call sites whose kind is not one constant: (module, expression) -> the kinds it can be.
DYNAMIC = {
    ("parley.station.talks", "str(kind).split('.')[0]"): {"talks", "roadmap", "translation"},
    ("parley.station.talks", "area"): {"talks", "roadmap", "translation"},
    ("parley.station.alarms", "kind"): set(),  # settled() passes on its callers' kinds
}


def raised_kinds() -> tuple[set[str], list[str]]:
    """Every alarm kind the source raises (Station.alarm and alarms.settled), and the call sites
    whose kind could not be told."""
    kinds: set[str] = set()
    unknown: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        module = "parley." + ".".join(path.relative_to(SRC).with_suffix("").parts)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name == "alarm" and len(node.args) >= 4:
                arg = node.args[0]
            elif name == "settled" and len(node.args) >= 2:
                arg = node.args[1]
            else:
                continue
            text = ast.unparse(arg)
            if (module, text) in DYNAMIC:
                kinds |= DYNAMIC[(module, text)]
                continue
            try:
                value = eval(text, vars(importlib.import_module(module)))
            except Exception:
                value = None
            if isinstance(value, str):
                kinds.add(value)
            else:
                unknown.append(f"{path.relative_to(SRC)}:{node.lineno} {text}")
    return kinds, unknown


def test_every_alarm_kind_raised_anywhere_has_a_routing_rule() -> None:
    kinds, unknown = raised_kinds()
    assert not unknown, f"alarm kinds this test cannot read; add them to DYNAMIC: {unknown}"
    missing = kinds - set(alarm_kinds.KINDS)
    assert not missing, f"add these kinds to station/alarm_kinds.py: {sorted(missing)}"
    stale = set(alarm_kinds.KINDS) - kinds
    assert not stale, f"kinds nothing raises any more: {sorted(stale)}"
    for kind in kinds:  # each can be routed by name, and `*` covers it
        assert notify.parse_route(kind, [], {}) == []
    conf = notify.Settings(routes={"*": ["all"], "link": ["links"]})
    assert conf.route("crisis") == ["all"] and conf.route("link") == ["links"]
    print(f"{len(kinds)} alarm kinds, each with a routing rule")


# --- routing per kind -----------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Clock, Station, Station, str]]:
    _, clock, a, b, ch = hotline(tmp_path)
    yield clock, a, b, ch


@pytest.fixture
def hooks() -> Iterator[tuple[Hook, Hook]]:
    one, two = Hook([200]), Hook([200])
    yield one, two
    one.close()
    two.close()


def configure(st: Station, targets: dict[str, Any], routes: dict[str, list[str]]) -> None:
    d = notify.desk(st)
    for name, spec in targets.items():
        d.set_target(ADMIN, name, spec)
    for kind, names in routes.items():
        d.set_route(ADMIN, kind, names)


def test_each_alarm_kind_reaches_the_targets_chosen_for_it(
    world: tuple[Clock, Station, Station, str], hooks: tuple[Hook, Hook]
) -> None:
    _, a, _, ch = world
    duty, desk_hook = hooks
    configure(
        a,
        {
            "duty": {"type": "webhook", "url": duty.url},
            "desk": {"type": "webhook", "url": desk_hook.url},
        },
        {"link": ["duty"], "crisis": ["duty", "desk"], "*": ["desk"]},
    )
    a.alarm("link", "high", "peer-x", "link to North is down", "link:peer-x")
    a.alarm("crisis", "critical", ch, "South opened a crisis")
    a.alarm("equivocation", "critical", "peer-x", "two envelopes at seq 4")
    assert notify.desk(a).deliver() == 4
    assert [b["kind"] for b in duty.bodies] == ["link", "crisis"]
    assert sorted(b["kind"] for b in desk_hook.bodies) == ["crisis", "equivocation"]
    first = duty.bodies[0]
    assert (first["event"], first["severity"], first["message"]) == (
        "parley.alarm", "high", "link to North is down",
    )  # fmt: skip
    assert first["urgent"] is True and first["station_name"] == "South"
    # An empty route silences a kind; dropping it lets `*` apply again.
    notify.desk(a).set_route(ADMIN, "link", [])
    a.alarm("link", "high", "peer-x", "down again", "link:peer-x")
    assert notify.desk(a).deliver() == 0
    notify.desk(a).set_route(ADMIN, "link", None)
    a.alarm("link", "high", "peer-x", "down once more", "link:peer-x")
    notify.desk(a).deliver()
    assert desk_hook.bodies[-1]["message"] == "down once more" and len(duty.bodies) == 2
    overview = notify.desk(a).overview(ADMIN)
    row = next(k for k in overview["kinds"] if k["kind"] == "link")
    assert (row["targets"], row["route"]) == (["desk"], "*")


def test_a_flash_from_a_peer_is_notified_and_needs_no_acknowledgement(
    world: tuple[Clock, Station, Station, str], hooks: tuple[Hook, Hook]
) -> None:
    from tests.pair import Net

    _, a, b, ch = world
    hook, _ = hooks
    configure(b, {"duty": {"type": "webhook", "url": hook.url}}, {"flash_received": ["duty"]})
    a.send(ch, {"type": "text", "text": "secret words", "lang": "en"}, "FLASH")
    Net().deliver(a, b)
    notify.desk(b).deliver()
    [body] = hook.bodies
    assert body["kind"] == "flash_received" and "FLASH from South" in body["message"]
    assert "secret words" not in json.dumps(body)  # never the message itself
    assert not [x for x in b.store.alarms() if x.kind == "flash_received"]  # settled at birth


def test_a_burst_of_alarms_is_coalesced_per_target_and_kind(
    world: tuple[Clock, Station, Station, str], hooks: tuple[Hook, Hook]
) -> None:
    clock, a, _, _ = world
    hook, _ = hooks
    configure(a, {"duty": {"type": "webhook", "url": hook.url}}, {"*": ["duty"]})
    for i in range(40):  # a hostile peer making the station refuse envelope after envelope
        a.alarm("rejected", "high", "peer-x", f"refused envelope {i}")
    a.alarm("link", "high", "peer-x", "down")
    for _ in range(5):
        notify.desk(a).deliver()
    assert [b["kind"] for b in hook.bodies].count("rejected") == notify.BURST
    assert [b["kind"] for b in hook.bodies].count("link") == 1  # another kind is not held back
    clock.advance(notify.WINDOW_MS)
    notify.desk(a).deliver()
    summary = hook.bodies[-1]
    assert summary["event"] == "parley.alarm_summary" and summary["count"] == 40 - notify.BURST
    assert len(hook.bodies) == notify.BURST + 2


def test_a_peer_sending_flash_after_flash_cannot_flood_the_mailbox(
    world: tuple[Clock, Station, Station, str], hooks: tuple[Hook, Hook]
) -> None:
    """Admitted but hostile: North sends 30 FLASH messages in a burst. South's watch officer
    hears of the first BURST, then one summary; South's other kinds still get through."""
    from tests.pair import Net

    clock, south, north, ch = world
    hook, _ = hooks
    configure(south, {"watch": {"type": "webhook", "url": hook.url}}, {"*": ["watch"]})
    for i in range(30):
        north.send(ch, {"type": "text", "text": f"urgent {i}", "lang": "en"}, "FLASH")
    Net().deliver(north, south)
    south.alarm("link", "high", north.id, "link to North is down", f"link:{north.id}")
    while notify.desk(south).deliver():
        pass
    kinds = [b["kind"] for b in hook.bodies]
    assert kinds.count("flash_received") == notify.BURST and kinds.count("link") == 1
    clock.advance(notify.WINDOW_MS)
    notify.desk(south).deliver()
    assert hook.bodies[-1]["count"] == 30 - notify.BURST
    assert len(hook.bodies) == notify.BURST + 2
    assert ndb.pending(south.store) == 0


def test_the_outbox_survives_a_restart(tmp_path: Path, hooks: tuple[Hook, Hook]) -> None:
    hook, _ = hooks
    _, clock, a, _, _ = hotline(tmp_path)
    configure(a, {"duty": {"type": "webhook", "url": hook.url}}, {"*": ["duty"]})
    a.alarm("crisis", "critical", "x", "queued before the crash")
    a.store.close()
    again = Station(a.cfg, SqliteStore(tmp_path / "a" / "parley.db"), a.identity, clock)
    features.install(again)
    assert notify.desk(again).deliver() == 1
    assert hook.bodies[0]["message"] == "queued before the crash"


def test_the_webhook_client_is_handed_in(world: tuple[Clock, Station, Station, str]) -> None:
    _, a, _, _ = world
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    client = clients.sync_client(5.0, transport=httpx.MockTransport(answer))
    notify.install(a, notify.NotifyDesk(a, http=client))
    configure(a, {"duty": {"type": "webhook", "url": "https://ops.example/hook"}}, {"*": ["duty"]})
    a.alarm("crisis", "critical", "x", "through the client we gave")
    notify.desk(a).deliver()
    [request] = seen
    assert request.url == "https://ops.example/hook"
    assert json.loads(request.content)["message"] == "through the client we gave"
    assert request.headers["Parley-Delivery"] == str(notify.desk(a).deliveries(ADMIN)[0]["id"])


def test_a_webhook_answer_is_read_bounded(world: tuple[Clock, Station, Station, str]) -> None:
    _, a, _, _ = world
    sent = {"bytes": 0}

    class Endless(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(4096):  # 256 MiB, if anyone read it all
                    self.wfile.write(chunk)
                    sent["bytes"] += len(chunk)
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        configure(a, {"endless": {"type": "webhook", "url": url}}, {"*": ["endless"]})
        a.alarm("crisis", "critical", "x", "hello")
        notify.desk(a).deliver()
        [row] = notify.desk(a).deliveries(ADMIN)
        assert row["state"] == "delivered"
        assert sent["bytes"] < 4096 * 65536
    finally:
        server.shutdown()
        server.server_close()


# --- e-mail ---------------------------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.mails.append((list(envelope.rcpt_tos), bytes(envelope.content or b"")))
        return "250 OK"


def _check_login(server: Any, session: Session, envelope: Envelope, mechanism: str,
                 data: Any) -> AuthResult:  # fmt: skip
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"parley", b"s3cret")
    return AuthResult(success=ok, handled=False)


def tls_pair(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: the server's context and a client's trusting it."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    return server_ctx, ssl.create_default_context(cafile=str(cert))


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Inbox, int, ssl.SSLContext]]:
    """A local SMTP server that requires STARTTLS, then a login."""
    server_ctx, client_ctx = tls_pair(tmp_path)
    inbox = Inbox()
    port = free_port()
    ctl = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=server_ctx, require_starttls=True,
        authenticator=_check_login, auth_require_tls=True,
    )  # fmt: skip
    ctl.start()
    yield inbox, port, client_ctx
    ctl.stop()


def with_context(a: Station, ctx: ssl.SSLContext) -> None:
    """Trust the test's own certificate (the station trusts the system's store)."""
    real = notify.desk(a).mailer
    notify.desk(a).mailer = lambda s, to, subj, text: real(
        notify.mail.SmtpSettings(**{**s.__dict__, "context": ctx}), to, subj, text
    )


def test_mail_over_implicit_tls_and_an_untrusted_server_refused(
    tmp_path: Path, world: tuple[Clock, Station, Station, str]
) -> None:
    _, a, _, _ = world
    server_ctx, client_ctx = tls_pair(tmp_path)
    inbox, port = Inbox(), free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=server_ctx)
    ctl.start()
    try:
        a.cfg.notify = {"smtp": {"host": "127.0.0.1", "port": port, "security": "ssl"}}
        configure(a, {"m": {"type": "email", "to": "duty@south.test"}}, {"crisis": ["m"]})
        a.alarm("crisis", "critical", "x", "without a trusted certificate")
        notify.desk(a).deliver()  # the system's trust store does not know the test's CA
        [row] = notify.desk(a).deliveries(ADMIN)
        assert row["state"] == "pending" and "CERTIFICATE_VERIFY_FAILED" in row["last_error"]
        assert inbox.mails == []
        with_context(a, client_ctx)
        a.alarm("crisis", "critical", "x", "over TLS from the first byte")
        notify.desk(a).deliver()
        [(rcpt, raw)] = inbox.mails
        assert rcpt == ["duty@south.test"]
        assert "over TLS from the first byte" in message_from_bytes(raw).get_payload()
    finally:
        ctl.stop()


def test_alarms_go_out_by_email_over_starttls_with_a_login(
    tmp_path: Path, world: tuple[Clock, Station, Station, str],
    smtp: tuple[Inbox, int, ssl.SSLContext],
) -> None:  # fmt: skip
    _, a, _, _ = world
    inbox, port, ctx = smtp
    (tmp_path / "smtp.pw").write_text("s3cret\n")
    a.cfg.notify = {
        "smtp": {"host": "127.0.0.1", "port": port, "security": "starttls", "username": "parley",
                 "password_file": str(tmp_path / "smtp.pw"), "from": "south@parley.test"},
    }  # fmt: skip
    with_context(a, ctx)
    configure(a, {"duty": {"type": "email", "to": ["duty@south.test", "chief@south.test"]}},
              {"link": ["duty"]})  # fmt: skip
    a.alarm("link", "high", "peer-x", "link to North is down", "link:peer-x")
    notify.desk(a).deliver()
    [(rcpt, raw)] = inbox.mails
    mail = message_from_bytes(raw)
    assert rcpt == ["duty@south.test", "chief@south.test"]
    assert mail["From"] == "south@parley.test"
    assert "link" in mail["Subject"] and "[Parley South]" in mail["Subject"]
    assert "link to North is down" in mail.get_payload()
    [row] = notify.desk(a).deliveries(ADMIN)
    assert (row["state"], row["target"]) == ("delivered", "duty")
    # A wrong password: the failure is in the log and one alarm, retried with backoff.
    (tmp_path / "smtp.pw").write_text("wrong\n")
    a.alarm("link", "high", "peer-x", "down again", "link:peer-x")
    notify.desk(a).deliver()
    latest = notify.desk(a).deliveries(ADMIN)[0]
    assert latest["state"] == "pending" and "Authentication" in (latest["last_error"] or "")
    assert [x.kind for x in a.store.alarms()].count(notify.ALARM) == 1


def test_smtp_settings_are_checked_when_the_station_starts() -> None:
    for bad in (
        {"smtp": {"port": 25}},
        {"smtp": {"host": "mx", "security": "tls13"}},
        {"smtp": {"host": "mx", "username": "u"}},
        {"targets": {"Bad Name": {"type": "webhook", "url": "http://x"}}},
        {"targets": {"m": {"type": "email", "to": ["not an address"]}}},
        {"targets": {"m": {"type": "webhook", "url": "ftp://x"}}},
        {"routes": {"no_such_kind": []}},
        {"routes": {"link": ["nobody"]}},
        {"pager": {}},
    ):
        with pytest.raises(LocalError):
            notify.file_settings(Config("x", "en", notify=bad).notify)


# --- back channels --------------------------------------------------------------------------------


def test_back_channel_alarms_reach_only_targets_named_for_them_and_carry_no_text(
    tmp_path: Path, hooks: tuple[Hook, Hook]
) -> None:
    from tests.pair import Net, introduce, make_station

    marked, plain = hooks
    clock = Clock()
    a = make_station(tmp_path / "s", "South", "en", clock)
    b = make_station(tmp_path / "n", "North", "ko", clock)
    introduce(a, b)
    south, north = Side(a, clock), Side(b, clock)
    south.person("south.rep", "representative", "admin")
    south.person("south.admin", "admin")
    north.person("north.rep", "representative")
    net = Net()
    ch = propose(south, north, "south.rep", {a.id: ["south.rep"], b.id: ["north.rep"]})
    ch = ch.json()["channel"]
    net.deliver(a, b)
    assert north.call("north.rep", "POST", f"/channels/{ch}/consent").status_code == 200
    net.deliver(b, a)
    # The plain admin cannot name the back channel, nor mark a target for every back channel.
    r = south.call("south.admin", "PUT", "/notify/targets/marked",
                   json={"type": "webhook", "url": marked.url, "channels": [ch]})  # fmt: skip
    assert r.status_code == 403, r.text
    r = south.call("south.admin", "PUT", "/notify/targets/marked",
                   json={"type": "webhook", "url": marked.url, "backchannels": True})  # fmt: skip
    assert r.status_code == 400 and r.json()["code"] == "invalid_request"
    # One of its representatives, an admin too, can.
    r = south.call("south.rep", "PUT", "/notify/targets/marked",
                   json={"type": "webhook", "url": marked.url, "channels": [ch]})  # fmt: skip
    assert r.status_code == 200, r.text
    r = south.call("south.admin", "PUT", "/notify/targets/plain",
                   json={"type": "webhook", "url": plain.url})  # fmt: skip
    assert r.status_code == 200
    r = south.call("south.admin", "PUT", "/notify/routes/*", json={"targets": ["marked", "plain"]})
    assert r.status_code == 200
    # What the plain admin sees of the marked target: not the channel it names.
    shown = south.call("south.admin", "GET", "/notify").json()["targets"]
    assert all(ch not in json.dumps(t) for t in shown)
    # Changing the target keeps the channel the admin cannot see.
    r = south.call("south.admin", "PUT", "/notify/targets/marked",
                   json={"type": "webhook", "url": marked.url})  # fmt: skip
    assert r.status_code == 200
    a.alarm("crisis", "critical", ch, "Envoys: South opened a crisis about the meeting venue")
    a.alarm("crisis", "critical", "elsewhere", "a crisis on the hotline")
    notify.desk(a).deliver()
    assert [x["message"] for x in plain.bodies] == ["a crisis on the hotline"]
    [secret, _] = marked.bodies
    assert secret["channel"] == ch and secret["message"] == notify.BACKCHANNEL_TEXT
    assert "venue" not in json.dumps(secret) and secret["subject"] is None
    # The delivery log: the representative sees three rows, the plain admin one.
    rep_log = south.call("south.rep", "GET", "/notify/deliveries").json()
    admin_log = south.call("south.admin", "GET", "/notify/deliveries").json()
    assert len(rep_log) == 3 and len(admin_log) == 2
    assert not any(row["backchannel"] for row in admin_log)
    # A notice escalation webhook on the back channel: withheld from a URL no target may use.
    a.cfg.escalation = [{"after_overdue_ms": 0, "action": "webhook", "target": plain.url}]
    overdue = {"event": "parley.ack_overdue", "channel": ch, "message": "secret"}
    notify.queue_escalation(a, plain.url, ch, True, overdue)
    notify.queue_escalation(a, marked.url, ch, True, overdue)
    notify.desk(a).deliver()
    assert len(plain.bodies) == 1
    assert marked.bodies[-1]["event"] == "parley.ack_overdue"
    assert "secret" not in marked.bodies[-1]["message"]


# --- the admin API --------------------------------------------------------------------------------


def test_the_api_checks_targets_routes_and_their_number(
    world: tuple[Clock, Station, Station, str], hooks: tuple[Hook, Hook]
) -> None:
    _, a, _, _ = world
    hook, _ = hooks
    token = "bootstrap-" + "n" * 32
    client = TestClient(build_app(a, token))
    h = {"Authorization": f"Bearer {token}"}

    def put(path: str, body: Any) -> Any:
        return client.put("/api/v1/notify" + path, json=body, headers=h)

    assert client.get("/api/v1/notify").status_code == 401  # no credential: nothing
    assert put("/targets/duty", {"type": "webhook", "url": hook.url}).status_code == 200
    for path, body in (
        ("/targets/duty", {"type": "webhook", "url": "ftp://nowhere"}),
        ("/targets/duty", {"type": "email", "to": ["a@b"] * (notify.MAX_RECIPIENTS + 1)}),
        ("/targets/Bad Name", {"type": "webhook", "url": hook.url}),
        ("/routes/no_such_kind", {"targets": ["duty"]}),
        ("/routes/link", {"targets": ["nobody"]}),
    ):
        r = put(path, body)
        assert r.status_code in (400, 422), (path, r.text)
        assert r.json()["code"] == "invalid_request"
    for i in range(notify.MAX_TARGETS - 1):
        assert put(f"/targets/t{i}", {"type": "webhook", "url": hook.url}).status_code == 200
    r = put("/targets/one-too-many", {"type": "webhook", "url": hook.url})
    assert r.status_code == 400 and str(notify.MAX_TARGETS) in r.json()["message"]
    assert put("/routes/link", {"targets": ["duty"]}).json()["targets"] == ["duty"]
    r = client.post("/api/v1/notify/targets/duty/test", headers=h)
    assert r.status_code == 200 and r.json()["state"] == "delivered"
    assert hook.bodies[-1]["event"] == "parley.test"
    assert client.delete("/api/v1/notify/targets/duty", headers=h).status_code == 200
    assert client.get("/api/v1/notify", headers=h).json()["routes"]["link"] == []
    actions = [row[2] for row in a.store.audit_log(100)]
    assert {"notify.target", "notify.route", "notify.test", "notify.target.remove"} <= set(actions)


# --- the command line, against running stations ---------------------------------------------------


@pytest.mark.slow
def test_the_cli_routes_a_kind_and_a_running_station_delivers_its_alarm(
    tmp_path: Path, hooks: tuple[Hook, Hook]
) -> None:
    hook, _ = hooks
    timings = Timings(heartbeat_ms=500, retry_base_ms=100, retry_max_ms=500)
    with Stations(tmp_path, [("South", "en"), ("North", "ko")], timings) as net:
        net.cli("South", "notify", "target", "duty", "--webhook", hook.url)
        assert "link: duty" in net.cli("South", "notify", "set", "link", "duty").stdout
        assert "Delivered to duty" in net.cli("South", "notify", "test", "duty").stdout
        bad = net.cli("South", "notify", "set", "no_such_kind", "duty", ok=False)
        assert bad.returncode != 0 and "no alarm kind" in bad.stderr
        net.stop("North")
        wait(lambda: any(b["kind"] == "link" for b in hook.bodies), what="the link alarm's call")
        out = net.cli("South", "notify", "targets").stdout
        assert "duty (webhook, api)" in out and "! link" in out
        out = net.cli("South", "notify", "log").stdout
        assert "delivered" in out and "link" in out and "test" in out


# --- the store, on SQLite and PostgreSQL ----------------------------------------------------------


def test_the_outbox_and_settings_on_both_stores(store: SqlStore) -> None:
    t = 1_790_000_000_000
    assert ndb.setting(store, "targets") is None
    ndb.put_setting(store, "targets", {"duty": {"type": "webhook", "url": "http://x"}}, "kim", t)
    ndb.put_setting(store, "targets", {"desk": {"type": "email", "to": ["a@b"]}}, "kim", t)
    assert ndb.setting(store, "targets") == {"desk": {"type": "email", "to": ["a@b"]}}
    with store.tx():
        first = ndb.add(store, 7, "link", "duty", None, "{}", t)
        second = ndb.add(store, 8, "link", "duty", "bc", "{}", t + 1)
        summary = ndb.add(store, None, "link", "duty", None, "{}", t, coalesced=1, next_ms=t + 9)
    assert first < second < summary
    assert ndb.sent_since(store, "duty", "link", t) == 2
    assert ndb.sent_since(store, "duty", "link", t + 1) == 1
    held = ndb.open_summary(store, "duty", "link")
    assert held is not None and held.id == summary
    ndb.bump_summary(store, summary, 3, '{"count": 3}', t + 2)
    assert [r.id for r in ndb.due(store, t + 1, 10)] == [first, second]
    assert [r.id for r in ndb.due(store, t + 9, 10)] == [first, second, summary]
    ndb.result(store, first, ndb.DELIVERED, 1, t + 1, None, t + 1)
    ndb.result(store, second, ndb.PENDING, 1, t + 30_000, "HTTP 500", t + 1)
    assert ndb.pending(store) == 2
    [last, mid, old] = ndb.recent(store, 10)
    assert (last.coalesced, last.payload) == (3, '{"count": 3}')
    assert (mid.channel, mid.last_error, mid.attempts) == ("bc", "HTTP 500", 1)
    assert old.state == ndb.DELIVERED and ndb.recent(store, 10, alarm_id=7) == [old]
    ndb.prune(store, 1)
    assert {r.id for r in ndb.recent(store, 10)} == {second, summary}  # pending ones stay
