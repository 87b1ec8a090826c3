"""People at a station: argon2 passwords, rate-limited login, expiring sessions, revocable API
tokens, disabled users, admin-only user management, the audit log, and back channels readable
only by their named representatives, proved through the real API and CLI of running stations."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from parley.app.build import build_app
from parley.cli.client import Api
from parley.domain.channels import text_body
from parley.errors import Code, Conflict, LocalError, NotFound, Unauthorized
from parley.protocol import crypto
from parley.station import users
from parley.station.node import Station
from parley.station.users import RateLimited
from parley.store.base import SqlStore
from tests.net import Stations, wait
from tests.pair import Clock, Net, introduce, make_station

pytest_plugins = ["tests.stores"]  # the store fixture, on SQLite and on PostgreSQL

PW = "correct horse battery staple"
MIN = 60_000
HOUR = 3600_000


@pytest.fixture
def station(tmp_path: Path) -> Station:
    return make_station(tmp_path / "south", "South", "en", Clock())


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheaper argon2 parameters for tests that hash many times; the rules are the same."""
    monkeypatch.setattr(crypto, "_passwords", PasswordHasher(time_cost=1, memory_cost=1024))


def audit(st: Station, action: str) -> list[tuple[str, dict[str, object]]]:
    return [(a, json.loads(d)) for _, a, act, d in st.store.audit_log(1000) if act == action]


# --- passwords, login, sessions, tokens (functions called directly, clock controlled) ---------


def test_passwords_and_tokens_are_stored_only_as_hashes(station: Station, tmp_path: Path) -> None:
    now = station.clock()
    alice = users.create_user(station, "alice", ["representative"], PW, now, "admin")
    tid, secret = users.create_token(station, "alice", "laptop", now, "alice")
    session = users.new_session(station, users.authenticate(station, "alice", PW, now, "lo"), now)

    row = users.get_user(station, "alice")
    assert row.password.startswith("$argon2id$v=19$m=65536,t=3,p=4$") and PW not in row.password
    files = b"".join(p.read_bytes() for p in (tmp_path / "south").glob("parley.db*"))
    assert files, "the database files should exist"
    for plain in (PW, secret, session):
        assert plain.encode() not in files
    assert users.token_hash(secret) in files  # what is kept instead
    assert users.token_user(station, secret, now) == alice
    with pytest.raises(Unauthorized) as exc:
        users.authenticate(station, "alice", PW + "!", now, "lo")
    assert exc.value.code == Code.UNAUTHORIZED
    assert "wrong user name or password" in exc.value.message
    assert [d["user"] for _, d in audit(station, "user.add")] == ["alice"]
    assert audit(station, "login") == [("alice", {"source": "lo"})]
    assert audit(station, "login.failed") == [
        ("alice", {"source": "lo", "reason": "wrong password"})
    ]
    assert audit(station, "token.create") == [
        ("alice", {"user": "alice", "id": tid, "label": "laptop"})
    ]


def test_user_names_roles_and_passwords_are_checked(station: Station, fast: None) -> None:
    now = station.clock()
    for name in ("admin", "station", "Alice", "1x", "", "a" * 65, "al ice"):
        with pytest.raises(LocalError):
            users.create_user(station, name, ["operator"], PW, now, "admin")
    with pytest.raises(LocalError, match="unknown role"):
        users.create_user(station, "alice", ["king"], PW, now, "admin")
    with pytest.raises(LocalError, match="password"):
        users.create_user(station, "alice", ["operator"], "short", now, "admin")
    users.create_user(station, "alice", ["operator"], PW, now, "admin")
    with pytest.raises(Conflict):
        users.create_user(station, "alice", ["operator"], PW, now, "admin")
    assert [u.name for u in users.list_users(station)] == ["alice"]


def test_login_locks_a_name_after_five_failures_for_fifteen_minutes(
    station: Station, fast: None
) -> None:
    clock = station.clock
    assert isinstance(clock, Clock)
    users.create_user(station, "alice", ["operator"], PW, clock(), "admin")
    for i in range(5):
        with pytest.raises(Unauthorized) as exc:
            users.authenticate(station, "alice", f"guess number {i}", clock(), f"10.0.0.{i}")
        assert exc.value.code == Code.UNAUTHORIZED
        clock.advance(MIN)
    fifth = clock() - MIN
    # Locked: even the right password is not checked, from any address.
    with pytest.raises(RateLimited) as exc:
        users.authenticate(station, "alice", PW, clock(), "10.9.9.9")
    assert exc.value.code == Code.RATE_LIMITED and exc.value.status == 429
    assert "try again in" in exc.value.message
    clock.now = fifth + 15 * MIN - 1
    with pytest.raises(RateLimited):
        users.authenticate(station, "alice", PW, clock(), "10.9.9.9")
    clock.now = fifth + 15 * MIN
    assert users.authenticate(station, "alice", PW, clock(), "10.9.9.9").name == "alice"
    assert len(audit(station, "login.failed")) == 5
    assert len(audit(station, "login.refused")) == 2
    assert [d["source"] for _, d in audit(station, "login")] == ["10.9.9.9"]


def test_login_locks_a_source_address_guessing_many_names(station: Station, fast: None) -> None:
    clock = station.clock
    assert isinstance(clock, Clock)
    users.create_user(station, "alice", ["operator"], PW, clock(), "admin")
    for name in ("bob", "carol", "dave", "erin", "frank"):
        with pytest.raises(Unauthorized):
            users.authenticate(station, name, PW, clock(), "203.0.113.7")
        clock.advance(MIN)
    with pytest.raises(RateLimited):
        users.authenticate(station, "alice", PW, clock(), "203.0.113.7")
    # The user herself, from her own address, is not locked out by someone else's guessing.
    assert users.authenticate(station, "alice", PW, clock(), "192.0.2.1").name == "alice"


def test_failures_spread_over_more_than_the_window_do_not_lock(
    station: Station, fast: None
) -> None:
    clock = station.clock
    assert isinstance(clock, Clock)
    users.create_user(station, "alice", ["operator"], PW, clock(), "admin")
    for _ in range(6):
        with pytest.raises(Unauthorized) as exc:
            users.authenticate(station, "alice", "not the password", clock(), "lo")
        assert exc.value.code == Code.UNAUTHORIZED
        clock.advance(4 * MIN)
    assert users.authenticate(station, "alice", PW, clock(), "lo").name == "alice"


def test_sessions_expire_when_idle_and_after_a_day(station: Station) -> None:
    clock = station.clock
    assert isinstance(clock, Clock)
    alice = users.create_user(station, "alice", ["operator"], PW, clock(), "admin")
    start = clock()
    idle = users.new_session(station, alice, start)
    assert users.session_user(station, idle, start + 8 * HOUR) == alice
    assert users.session_user(station, idle, start + 16 * HOUR) == alice  # sliding
    assert users.session_user(station, idle, start + 24 * HOUR + MIN) is None
    assert users.session_user(station, idle, start + 16 * HOUR) is None  # gone for good

    busy = users.new_session(station, alice, start)
    for h in range(1, 24):
        assert users.session_user(station, busy, start + h * HOUR) == alice
    assert users.session_user(station, busy, start + 24 * HOUR + 1) is None  # absolute end

    short = users.new_session(station, alice, start, ttl_ms=10 * MIN)
    assert users.session_user(station, short, start + 10 * MIN) == alice
    assert users.session_user(station, short, start + 20 * MIN + 1) is None

    ended = users.new_session(station, alice, start)
    assert users.end_session(station, ended, start + MIN)
    assert users.session_user(station, ended, start + 2 * MIN) is None
    assert not users.end_session(station, ended, start + 3 * MIN)
    assert audit(station, "logout") == [("alice", {})]
    assert users.session_user(station, "ps_made-up", start) is None


def test_a_password_change_ends_sessions(station: Station) -> None:
    now = station.clock()
    alice = users.create_user(station, "alice", ["operator"], PW, now, "admin")
    s = users.new_session(station, alice, now)
    users.set_password(station, "alice", "a new long password", now, "admin")
    assert users.session_user(station, s, now) is None
    with pytest.raises(Unauthorized):
        users.authenticate(station, "alice", PW, now, "lo")
    assert users.authenticate(station, "alice", "a new long password", now, "lo") == alice
    assert audit(station, "user.password") == [("admin", {"user": "alice"})]


def test_revoked_tokens_stop_working(station: Station) -> None:
    now = station.clock()
    users.create_user(station, "alice", ["operator"], PW, now, "admin")
    t1, s1 = users.create_token(station, "alice", "laptop", now, "alice")
    t2, s2 = users.create_token(station, "alice", "phone", now, "alice")
    users.revoke_token(station, "alice", t1, now + MIN, "admin")
    assert users.token_user(station, s1, now + MIN) is None
    assert users.token_user(station, s2, now + MIN) is not None
    with pytest.raises(NotFound):
        users.revoke_token(station, "alice", t1, now + MIN, "admin")
    rows = {t.id: t for t in users.list_tokens(station, "alice")}
    assert rows[t1].revoked == now + MIN and rows[t2].revoked is None
    assert rows[t2].used == now + MIN
    assert audit(station, "token.revoke") == [("admin", {"user": "alice", "id": t1})]


def test_disabled_users_are_refused_everywhere(station: Station) -> None:
    now = station.clock()
    alice = users.create_user(station, "alice", ["operator"], PW, now, "admin")
    _, tok = users.create_token(station, "alice", "laptop", now, "alice")
    s = users.new_session(station, alice, now)
    users.set_disabled(station, "alice", True, now, "admin")
    assert users.token_user(station, tok, now) is None
    assert users.session_user(station, s, now) is None
    with pytest.raises(Unauthorized, match="disabled"):
        users.authenticate(station, "alice", PW, now, "lo")
    with pytest.raises(Conflict):
        users.create_token(station, "alice", "again", now, "alice")
    users.set_disabled(station, "alice", False, now, "admin")
    assert users.authenticate(station, "alice", PW, now, "lo") == alice
    assert users.token_user(station, tok, now) is None  # re-enabling restores no old credential
    assert [a for a, _ in audit(station, "user.disable")] == ["admin"]
    assert [a for a, _ in audit(station, "user.enable")] == ["admin"]


def test_people_on_both_backends(store: SqlStore, fast: None) -> None:
    now = 1_790_000_000_000
    alice = users.create_user(store, "alice", ["operator", "admin"], PW, now, "admin")
    users.create_user(store, "bob", ["auditor"], PW, now, "admin")
    assert [(u.name, u.roles) for u in users.list_users(store)] == [
        ("alice", ("admin", "operator")), ("bob", ("auditor",)),
    ]  # fmt: skip
    assert users.authenticate(store, "alice", PW, now, "lo") == alice
    s = users.new_session(store, alice, now)
    assert users.session_user(store, s, now + 2 * MIN) == alice
    assert users.session_user(store, s, now + 2 * MIN + users.SESSION_IDLE_MS + 1) is None
    tid, tok = users.create_token(store, "alice", "cli", now, "alice")
    assert users.token_user(store, tok, now) == alice
    users.revoke_token(store, "alice", tid, now, "admin")
    assert users.token_user(store, tok, now) is None
    for _ in range(users.MAX_FAILURES):
        with pytest.raises(Unauthorized):
            users.authenticate(store, "bob", "wrong!wrong!", now, "lo")
    with pytest.raises(RateLimited):
        users.authenticate(store, "bob", PW, now + MIN, "elsewhere")
    users.set_roles(store, "bob", ["auditor", "operator"], now, "alice")
    users.set_disabled(store, "bob", True, now, "alice")
    assert users.get_user(store, "bob").disabled == now
    actions = [(a, act) for _, a, act, _ in store.audit_log(100)]
    assert ("alice", "user.roles") in actions and ("alice", "user.disable") in actions
    assert actions.count(("bob", "login.failed")) == users.MAX_FAILURES


# --- the people API in process ------------------------------------------------------------------


def test_people_api_login_roles_and_admin_only_management(station: Station, fast: None) -> None:
    app = build_app(station, "bootstrap-secret")
    client = TestClient(app)
    boot = {"Authorization": "Bearer bootstrap-secret"}
    r = client.post("/api/v1/users", headers=boot,
                    json={"name": "carol", "roles": ["operator"], "password": PW})  # fmt: skip
    assert r.status_code == 200 and r.json()["roles"] == ["operator"]
    r = client.post("/api/v1/users", headers=boot,
                    json={"name": "ann", "roles": ["auditor"], "password": PW})  # fmt: skip
    assert r.status_code == 200

    login = client.post("/api/v1/login", json={"name": "carol", "password": PW})
    assert login.status_code == 200
    body = login.json()
    assert body["user"] == {"name": "carol", "roles": ["operator"], "lang": "en"}
    assert body["expires"] == station.clock() + users.SESSION_IDLE_MS
    carol = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/v1/me", headers=carol).json()["name"] == "carol"
    console = TestClient(app, cookies={"parley_session": body["token"]})
    assert console.get("/api/v1/me").json()["name"] == "carol"

    # carol is an operator, not an admin: user management and the audit log are refused.
    for method, path, payload in [
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/users", {"name": "mallory", "roles": ["admin"], "password": PW}),
        ("PATCH", "/api/v1/users/carol", {"roles": ["admin"]}),
        ("POST", "/api/v1/users/ann/tokens", {"label": "hers"}),
        ("GET", "/api/v1/users/ann/tokens", None),
        ("DELETE", "/api/v1/users/ann/tokens/1", None),
        ("GET", "/api/v1/audit", None),
    ]:
        r = client.request(method, path, headers=carol, json=payload)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", (path, r.text)
    assert users.get_user(station, "carol").roles == ("operator",)
    assert [u.name for u in users.list_users(station)] == ["ann", "carol"]

    # ann, an auditor, reads the audit log: who did what, including the refused management.
    ann = client.post("/api/v1/login", json={"name": "ann", "password": PW}).json()["token"]
    log = client.get("/api/v1/audit", headers={"Authorization": f"Bearer {ann}"}).json()
    actions = [(e["actor"], e["action"]) for e in log]
    assert ("admin", "user.add") in actions and ("carol", "login") in actions

    # carol makes her own API token (nobody else may); the admin lists it, then revokes it.
    tok = client.post("/api/v1/users/carol/tokens", headers=carol, json={"label": "cli"}).json()
    assert tok["token"].startswith("pt_")
    tok_h = {"Authorization": f"Bearer {tok['token']}"}
    assert client.get("/api/v1/me", headers=tok_h).json()["name"] == "carol"
    listed = client.get("/api/v1/users/carol/tokens", headers=boot).json()
    assert [t["label"] for t in listed] == ["cli"] and "token" not in listed[0]
    assert client.delete(f"/api/v1/users/carol/tokens/{tok['id']}", headers=boot).status_code == 200
    r = client.get("/api/v1/me", headers=tok_h)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"

    # Logging out ends the session; a disabled user cannot log in.
    assert client.post("/api/v1/logout", headers=carol).json() == {"user": "carol", "ended": True}
    assert client.get("/api/v1/me", headers=carol).status_code == 401
    r = client.patch("/api/v1/users/carol", headers=boot, json={"disabled": True})
    assert r.json()["disabled"] is True
    r = client.post("/api/v1/login", json={"name": "carol", "password": PW})
    assert r.status_code == 401 and "disabled" in r.json()["message"]
    assert client.get("/api/v1/me").status_code == 401


def test_login_route_is_rate_limited(station: Station, fast: None) -> None:
    client = TestClient(build_app(station, "bootstrap-secret"))
    users.create_user(station, "alice", ["operator"], PW, station.clock(), "admin")
    for _ in range(5):
        r = client.post("/api/v1/login", json={"name": "alice", "password": "wrong guess"})
        assert r.status_code == 401
    r = client.post("/api/v1/login", json={"name": "alice", "password": PW})
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    assert r.json()["details"]["retry_after_s"] > 0


# --- back channels through running stations -----------------------------------------------------


def run_cli(
    data: Path, *args: str, token: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `parley`; options go before a "--" in `args`, as a channel id may start with "-"."""
    env = {k: v for k, v in os.environ.items() if k != "PARLEY_TOKEN"}
    if token is not None:
        env["PARLEY_TOKEN"] = token
    cut = args.index("--") if "--" in args else len(args)
    return subprocess.run(
        [sys.executable, "-m", "parley.cli", *args[:cut], "--data", str(data), *args[cut:]],
        input=stdin, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, res.stderr + res.stdout
    return res.stdout


def as_user(data: Path, token: str) -> httpx.Client:
    api = Api(data)
    api.http.headers["Authorization"] = f"Bearer {token}"
    return api.http


def test_back_channel_is_readable_only_by_its_named_representatives(tmp_path: Path) -> None:
    with Stations(tmp_path, [("South", "en"), ("North", "ko")]) as net:
        south, north = net.dirs["South"], net.dirs["North"]
        # People, made with the CLI and the bootstrap token; each gets their own API token.
        tok: dict[str, str] = {}
        for data, name, roles in [
            (south, "alice", ["representative"]),
            (south, "bob", ["admin"]),
            (south, "carol", ["operator"]),
            (north, "kim", ["representative"]),
        ]:
            flags = [a for r in roles for a in ("--role", r)]
            ok(run_cli(data, "user", "add", name, *flags, "--password-stdin", stdin=PW + "\n"))
            tok[name] = ok(run_cli(data, "user", "token", name, "--label", "test",
                                   "--password-stdin", stdin=PW + "\n")).strip()  # fmt: skip
            assert tok[name].startswith("pt_")
        listed = json.loads(ok(run_cli(south, "user", "list", "--json")))
        assert [(u["name"], u["roles"]) for u in listed] == [
            ("alice", ["representative"]), ("bob", ["admin"]), ("carol", ["operator"]),
        ]  # fmt: skip
        alice, bob, carol = (as_user(south, tok[n]) for n in ("alice", "bob", "carol"))
        kim = as_user(north, tok["kim"])
        boot_south, boot_north = Api(south).http, Api(north).http

        # alice proposes a back channel naming herself and kim; only kim can consent for North.
        ids = net.ids
        r = alice.post("/api/v1/channels", json={
            "kind": "backchannel", "title": "Personal representatives",
            "peers": [ids["North"]],
            "representatives": {ids["South"]: ["alice"], ids["North"]: ["kim"]},
        })  # fmt: skip
        assert r.status_code == 200, r.text
        ch = r.json()["channel"]
        wait(lambda: any(c["channel"] == ch for c in kim.get("/api/v1/channels").json()),
             what="kim to see the proposal")  # fmt: skip
        assert not any(c["channel"] == ch for c in boot_north.get("/api/v1/channels").json())
        assert boot_north.post(f"/api/v1/channels/{ch}/consent").status_code == 403
        assert kim.post(f"/api/v1/channels/{ch}/consent").status_code == 200
        wait(lambda: alice.get(f"/api/v1/channels/{ch}").json()["state"] == "open",
             what="the back channel to open")  # fmt: skip

        r = alice.post(f"/api/v1/channels/{ch}/messages", json={"text": "A quiet word."})
        assert r.status_code == 200, r.text
        wait(lambda: any(m["body"].get("text") == "A quiet word."
                         for m in kim.get(f"/api/v1/channels/{ch}/messages").json()),
             what="kim to read alice's message")  # fmt: skip
        r = kim.post(f"/api/v1/channels/{ch}/messages", json={"text": "Heard you."})
        assert r.status_code == 200, r.text
        wait(lambda: any(m["body"].get("text") == "Heard you."
                         for m in alice.get("/api/v1/inbox").json()),
             what="alice to read kim's answer")  # fmt: skip
        assert alice.get(f"/api/v1/channels/{ch}/transcript").status_code == 200

        # bob (an admin), carol (an operator) and the bootstrap token holder see nothing of it.
        for who in (bob, carol, boot_south):
            assert not any(c["channel"] == ch for c in who.get("/api/v1/channels").json())
            assert not any(m["channel"] == ch for m in who.get("/api/v1/inbox").json())
            for method, path, payload in [
                ("GET", f"/api/v1/channels/{ch}", None),
                ("GET", f"/api/v1/channels/{ch}/messages", None),
                ("GET", f"/api/v1/channels/{ch}/transcript", None),
                ("POST", f"/api/v1/channels/{ch}/messages", {"text": "let me in"}),
                ("POST", f"/api/v1/channels/{ch}/consent", None),
                ("POST", f"/api/v1/channels/{ch}/suspend", {"reason": "curious"}),
                ("POST", f"/api/v1/channels/{ch}/close", None),
            ]:
                r = who.request(method, path, json=payload)
                assert r.status_code == 403, (path, r.text)
                assert r.json()["code"] == "forbidden"
                # Either gate may refuse first; neither names the channel or its contents.
                msg = r.json()["message"]
                assert "named representatives" in msg or "may not do" in msg, msg
                assert "quiet word" not in r.text and "Heard you" not in r.text
        # bob, an admin, reads the audit log, but not the back channel's entries in it.
        log = bob.get("/api/v1/audit", params={"limit": 1000}).json()
        assert ("alice", "send") not in [(e["actor"], e["action"]) for e in log]
        assert all(e["detail"].get("channel") != ch for e in log)
        assert ("admin", "user.add") in [(e["actor"], e["action"]) for e in log]
        assert alice.get("/api/v1/audit").status_code == 403  # a representative is no auditor
        # ... though the log holds them, with alice as the actor (read from the database itself).
        with closing(sqlite3.connect(south / "parley.db")) as db:
            sends = db.execute("SELECT actor, detail FROM audit WHERE action = 'send'").fetchall()
        assert [(a, json.loads(d)["channel"]) for a, d in sends] == [("alice", ch)]
        # Nothing moved: the channel is open and holds exactly the two messages.
        assert alice.get(f"/api/v1/channels/{ch}").json()["state"] == "open"
        texts = [m["body"].get("text") for m in alice.get(f"/api/v1/channels/{ch}/messages").json()]
        assert [t for t in texts if t] == ["A quiet word.", "Heard you."]

        # The same through the CLI, each person with their own PARLEY_TOKEN.
        ok(run_cli(south, "send", "--", ch, "Second word.", token=tok["alice"]))
        assert "Heard you." in ok(run_cli(south, "inbox", token=tok["alice"]))

        def channels_of(name: str) -> list[str]:
            out = ok(run_cli(south, "channel", "list", "--json", token=tok[name]))
            return [c["channel"] for c in json.loads(out)]

        assert ch in channels_of("alice")
        for name in ("bob", "carol"):
            for args in (["send", "--", ch, "let me in"], ["channel", "suspend", "--", ch]):
                res = run_cli(south, *args, token=tok[name])
                assert res.returncode == 1 and "error [forbidden]" in res.stderr, res.stderr
            assert "Heard you." not in ok(run_cli(south, "inbox", token=tok[name]))
            assert ch not in channels_of(name)
        res = run_cli(south, "user", "list", token=tok["carol"])
        assert res.returncode == 1 and "error [forbidden]" in res.stderr
        # An admin acting as himself manages people; his name is the actor in the audit log.
        ok(run_cli(south, "user", "roles", "carol", "operator", "translator", token=tok["bob"]))
        ok(run_cli(south, "user", "passwd", "carol", "--password-stdin", token=tok["bob"],
                   stdin="a brand new password\n"))  # fmt: skip
        r = carol.post("/api/v1/login", json={"name": "carol", "password": "a brand new password"})
        assert r.status_code == 200 and r.json()["user"]["roles"] == ["operator", "translator"]
        audit_out = ok(run_cli(south, "audit", "--json", "--limit", "1000", token=tok["bob"]))
        entries = json.loads(audit_out)
        acts = [(e["actor"], e["action"]) for e in entries]
        assert ("carol", "token.create") in acts and ("admin", "token.create") not in acts
        assert ("bob", "user.roles") in acts and ("bob", "user.password") in acts
        assert ("carol", "login") in acts
        assert all(e["detail"].get("channel") != ch for e in entries)

        # Revoking alice's token shuts her CLI out at once; disabling bob shuts out his.
        tid = ok(run_cli(south, "user", "tokens", "alice", "--json"))
        ok(run_cli(south, "user", "revoke", "alice", str(json.loads(tid)[0]["id"])))
        res = run_cli(south, "inbox", token=tok["alice"])
        assert res.returncode == 1 and "error [unauthorized]" in res.stderr
        ok(run_cli(south, "user", "disable", "bob"))
        assert bob.get("/api/v1/me").status_code == 401
        r = boot_south.post("/api/v1/login", json={"name": "bob", "password": PW})
        assert r.status_code == 401 and "disabled" in r.json()["message"]
        wait(lambda: any(m["body"].get("text") == "Second word."
                         for m in kim.get(f"/api/v1/channels/{ch}/messages").json()),
             what="kim to receive the CLI message")  # fmt: skip


def test_alarms_and_evidence_of_a_back_channel_show_only_to_its_representatives(
    tmp_path: Path, fast: None
) -> None:
    clock = Clock()
    south = make_station(tmp_path / "s", "South", "en", clock)
    north = make_station(tmp_path / "n", "North", "ko", clock)
    introduce(south, north)
    net = Net()
    reps = {south.id: ["alice"], north.id: ["kim"]}
    ch = south.propose_channel("backchannel", "Envoys", [north.id], representatives=reps)
    net.deliver(south, north)
    north.control(ch, "consent")
    net.deliver(north, south)
    north.send(ch, text_body("earlier", "ko"))
    flash, _ = north.send(ch, text_body("urgent", "ko"), "FLASH")
    south.receive_batch([flash.raw])  # ahead of its chain: held, shown early, alarmed
    users.create_user(south, "alice", ["representative"], PW, clock(), "admin")
    _, alice = users.create_token(south, "alice", "laptop", clock(), "alice")

    client = TestClient(build_app(south, "bootstrap-secret"))
    admin = client.get("/api/v1/alarms", headers={"Authorization": "Bearer bootstrap-secret"})
    mine = client.get("/api/v1/alarms", headers={"Authorization": f"Bearer {alice}"})
    assert [a["kind"] for a in mine.json()] == ["flash"]
    assert all(a["subject"] != ch for a in admin.json())


def test_a_user_chooses_their_own_language_and_only_their_own(station: Station, fast: None) -> None:
    from parley.errors import Forbidden, LocalError
    from parley.station.people import PeopleDesk
    from parley.station.users import BOOTSTRAP, User

    desk = PeopleDesk(station)
    users.create_user(station, "alice", ["auditor"], PW, station.clock(), "admin")
    alice = User("alice", frozenset({"auditor"}))
    assert desk.me(alice)["lang"] == station.cfg.lang  # nothing chosen: the station's
    assert desk.set_language(alice, "ko")["lang"] == "ko"
    assert desk.me(alice)["lang"] == "ko"
    assert audit(station, "user.language") == [("alice", {"lang": "ko"})]
    with pytest.raises(LocalError) as exc:
        desk.set_language(alice, "<script>")
    assert exc.value.code == Code.INVALID_REQUEST and desk.me(alice)["lang"] == "ko"
    with pytest.raises(Forbidden):  # the bootstrap token has no profile to keep it in
        desk.set_language(BOOTSTRAP, "ko")
    assert desk.set_language(alice, None)["lang"] == station.cfg.lang
