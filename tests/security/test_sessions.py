"""Sessions and requests (issue 13 §3) and credentials for back channels (§2, first item), tried
the way an attacker would: a page on another port of the same host riding a signed-in operator's
cookie, 100 parallel password guesses, weak passwords, responses without security headers, and
an admin or the bootstrap token trying to obtain a representative's credentials."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount

from parley.app.browser import HEADERS, same_origin
from parley.app.build import build_app
from parley.errors import Code, Forbidden
from parley.protocol import crypto
from parley.station import passwords, users
from parley.station.node import Station
from parley.station.users import RateLimited
from parley.store.base import SqlStore
from parley.store.postgres import PostgresStore
from parley.store.sqlite import SqliteStore
from tests.net import Stations
from tests.pair import Clock, Net, introduce, make_station

pytest_plugins = ["tests.stores"]  # the store fixture, on SQLite and on PostgreSQL

STRONG = "correct horse battery staple"
BOOT = "bootstrap-secret"


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheaper argon2 parameters for tests that hash many times; the rules are the same."""
    monkeypatch.setattr(crypto, "_passwords", PasswordHasher(time_cost=1, memory_cost=1024))


def _csrf_in(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def console_login(http: httpx.Client | TestClient, name: str, password: str) -> str:
    """Sign in through the console's own form, as a browser does; the session cookie's value."""
    page = http.get("/console/login")
    r = http.post(
        "/console/login",
        data={"name": name, "password": password, "csrf": _csrf_in(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    token = http.cookies.get("parley_session")
    assert token
    return str(token)


# --- 1. same-site CSRF ----------------------------------------------------------------------------


def test_a_page_on_another_port_cannot_act_through_a_signed_in_operators_cookie(
    tmp_path: Path,
) -> None:
    with Stations(tmp_path, [("South", "en"), ("North", "ko")]) as net:
        ch = net.open_channel("South", ["North"])
        boot = net.api("South")
        boot.post("/users", json={"name": "kim", "roles": ["operator"], "password": STRONG})
        base = boot.base
        port = int(base.rsplit(":", 1)[1])
        evil = f"http://127.0.0.1:{port + 1}"  # same host and "site" to the cookie, another origin
        browser = httpx.Client(base_url=base, timeout=30)
        cookie = console_login(browser, "kim", STRONG)
        csrf = _csrf_in(browser.get(f"/console/channels/{ch}").text)  # the console's own token
        suspend = f"/api/v1/channels/{ch}/suspend"

        def state() -> str:
            return str(boot.get(f"/channels/{ch}")["state"])

        # What a page of another origin can make the browser send: the cookie always comes along.
        refused = [
            ("fetch from another port", {"Origin": evil}),
            ("form from another port", {"Origin": evil, "Content-Type": "text/plain"}),
            ("sandboxed page", {"Origin": "null"}),
            ("another site, no Origin", {"Sec-Fetch-Site": "same-site"}),
            ("cross-site, no Origin", {"Sec-Fetch-Site": "cross-site"}),
            ("another scheme", {"Origin": base.replace("http://", "https://")}),
            ("look-alike host", {"Origin": base + ".evil.example"}),
            ("own origin but no token", {"Origin": base}),
            ("no Origin and no token", {}),
            ("own origin, wrong token", {"Origin": base, "X-CSRF-Token": "x" * 43}),
            ("another session's token", {"Origin": base, "X-CSRF-Token": users.csrf_token("ps_")}),
            ("right token, foreign origin", {"Origin": evil, "X-CSRF-Token": csrf}),
        ]
        for what, headers in refused:
            r = browser.post(suspend, json={"reason": what}, headers=headers)
            assert r.status_code == 403 and r.json()["code"] == "forbidden", (what, r.text)
            assert state() == "open", what
        # The console's own forms are covered by the same Origin check, valid form token or not.
        r = browser.post(
            f"/console/channels/{ch}/control",
            data={"action": "suspend", "reason": "x", "csrf": csrf},
            headers={"Origin": evil},
            follow_redirects=False,
        )
        assert r.status_code == 403 and state() == "open"
        # Even a Bearer credential from a page of another origin is refused.
        r = httpx.post(
            base + suspend, json={}, headers={"Origin": evil, "Authorization": f"Bearer {cookie}"}
        )
        assert r.status_code == 403 and state() == "open"
        log = boot.get("/audit", params={"limit": 1000})
        assert not [e for e in log if e["action"] == "channel.suspend"]
        cases = len(refused) + 2
        print(f"{cases} forged request shapes refused, channel still open")

        # Reading keeps working with the cookie (a foreign page cannot read the answer: no CORS).
        r = browser.get("/api/v1/me", headers={"Origin": evil})
        assert r.status_code == 200 and r.json()["name"] == "kim"
        assert "access-control-allow-origin" not in r.headers
        # The console's live updates (GET, cookie) keep working.
        r = browser.get("/console/live/dashboard", headers={"X-Parley-Live": "1"})
        assert r.status_code == 200
        # The console's own token in X-CSRF-Token, from its own origin, is what the API accepts.
        r = browser.post(
            suspend, json={"reason": "drill"}, headers={"Origin": base, "X-CSRF-Token": csrf}
        )
        assert r.status_code == 200, r.text
        assert state() == "suspended"
        # A program with a Bearer token needs neither Origin nor CSRF token.
        r = httpx.post(base + f"/api/v1/channels/{ch}/reopen", json={},
                       headers={"Authorization": f"Bearer {cookie}"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert cases == 14, cases


EVIL_PAGE = """<!doctype html><html><body>
<form id="api" method="post" action="{station}/api/v1/channels/{ch}/suspend"
      enctype="text/plain" target="f1"><input name='{{"reason":"evil","x":"' value='"}}'></form>
<form id="console" method="post" action="{station}/console/channels/{ch}/control" target="f2">
  <input name="action" value="suspend"><input name="reason" value="evil"></form>
<iframe name="f1"></iframe><iframe name="f2"></iframe>
<script>
  fetch("{station}/api/v1/channels/{ch}/suspend", {{method: "POST", mode: "no-cors",
    credentials: "include"}});
  document.getElementById("api").submit();
  document.getElementById("console").submit();
</script></body></html>"""


def test_a_real_browser_on_another_port_cannot_suspend_the_hotline(tmp_path: Path) -> None:
    """The attack itself: a signed-in operator's Chromium opens a page served from another port
    of the same host, which posts to the station three ways. The cookie goes along (same site);
    each request is refused and the hotline stays open."""
    from tests.test_console import ARGS, CHROMIUM

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (scripts/setup installs it)")
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from playwright.sync_api import sync_playwright

    with Stations(tmp_path, [("South", "en"), ("North", "ko")]) as net:
        ch = net.open_channel("South", ["North"])
        boot = net.api("South")
        boot.post("/users", json={"name": "kim", "roles": ["operator"], "password": STRONG})
        station = boot.base
        page_html = EVIL_PAGE.format(station=station, ch=ch).encode()

        class Evil(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(page_html)

            def log_message(self, *args: Any) -> None:
                pass

        evil = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
        threading.Thread(target=evil.serve_forever, daemon=True).start()
        sent: list[str] = []
        answers: list[int] = []
        try:
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
                try:
                    page = b.new_context().new_page()
                    page.set_default_timeout(15_000)
                    page.goto(station + "/console/")
                    page.get_by_label("User name").fill("kim")
                    page.get_by_label("Password").fill(STRONG)
                    page.get_by_role("button", name="Sign in").click()
                    page.wait_for_url(re.compile(r"/console/(\?.*)?$"))
                    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else 0)
                    page.on("response", lambda r: answers.append(r.status)
                            if r.request.method == "POST" else 0)  # fmt: skip
                    page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
                    deadline = time.monotonic() + 15
                    while time.monotonic() < deadline and len(answers) < 2:
                        page.wait_for_timeout(100)
                    page.wait_for_timeout(1000)  # the fetch, whose answer a no-cors page never sees
                finally:
                    b.close()
        finally:
            evil.shutdown()
        log = boot.get("/audit", params={"limit": 1000})
        suspends = [e for e in log if e["action"] == "channel.suspend"]
        state = boot.get(f"/channels/{ch}")["state"]
        print(f"{len(sent)} forged posts sent by the browser, answers seen: {answers}; {state}")
        assert len(sent) == 3 and all(u.startswith(station) for u in sent), sent
        assert state == "open" and suspends == []
        assert len(answers) >= 2 and all(s == 403 for s in answers), answers


def test_origin_comparison_table() -> None:
    host = "127.0.0.1:8701"
    cases = [
        ("http://127.0.0.1:8701", host, (), True),
        ("http://127.0.0.1:8702", host, (), False),
        ("https://127.0.0.1:8701", host, (), True),  # same host:port; a TLS proxy in front
        ("http://example.org", "example.org:80", (), True),
        ("https://example.org", "example.org", (), True),
        ("https://example.org:8443", "example.org", (), False),
        ("https://hotline.example.org", host, ("https://hotline.example.org",), True),
        ("http://hotline.example.org", host, ("https://hotline.example.org",), False),
        ("null", host, (), False),
        ("", host, (), False),
        ("file://", host, (), False),
        ("http://127.0.0.1:8701/path", host, (), False),
        ("http://127.0.0.1:8701.evil.example", host, (), False),
        ("http://[::1]:8701", "[::1]:8701", (), True),
    ]
    for origin, h, also, want in cases:
        assert same_origin(origin, h, also) is want, (origin, h, also)
    assert len(cases) == 14


# --- 2. login limit under concurrency -------------------------------------------------------------


def test_a_hundred_parallel_guesses_reach_the_password_check_at_most_five_times(
    tmp_path: Path,
) -> None:
    with Stations(tmp_path, [("South", "en")]) as net:
        boot = net.api("South")
        boot.post("/users", json={"name": "kim", "roles": ["operator"], "password": STRONG})
        base = boot.base
        start = threading.Barrier(100, timeout=60)

        def guess(i: int) -> int:
            with httpx.Client(base_url=base, timeout=120) as http:
                start.wait()
                r = http.post("/api/v1/login", json={"name": "kim", "password": f"guess {i}"})
                return r.status_code

        with ThreadPoolExecutor(100) as pool:
            codes = Counter(pool.map(guess, range(100)))
        log = boot.get("/audit", params={"limit": 10_000})
        checked = [e for e in log if e["action"] == "login.failed" and e["actor"] == "kim"]
        refused = [e for e in log if e["action"] == "login.refused" and e["actor"] == "kim"]
        # What the database holds as failures, read from its file, not through the station.
        with closing(sqlite3.connect(net.dirs["South"] / "parley.db")) as db:
            q = "SELECT COUNT(*) FROM login_attempts WHERE name = 'kim'"
            (rows,) = db.execute(q).fetchone()
        print(f"100 parallel wrong logins: {codes[401]} password checks (401), "
              f"{codes[429]} refused (429); audit: {len(checked)} failed, {len(refused)} refused; "
              f"{rows} attempts recorded")  # fmt: skip
        assert sum(codes.values()) == 100
        assert 1 <= len(checked) <= users.MAX_FAILURES
        assert codes[401] == len(checked) == rows
        assert codes[429] == len(refused) == 100 - len(checked)
        # The right password is refused while the lockout lasts, and is not even checked.
        r = httpx.post(base + "/api/v1/login", json={"name": "kim", "password": STRONG})
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"


def _other(store: SqlStore) -> SqlStore:
    """Another connection to the same database: what another worker process would hold."""
    if isinstance(store, SqliteStore):
        return SqliteStore(store.path)
    assert isinstance(store, PostgresStore)
    return PostgresStore(store.dsn)


def test_login_limit_holds_across_connections_on_sqlite_and_postgresql(
    store: SqlStore, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = 1_790_000_000_000
    users.create_user(store, "kim", ["operator"], STRONG, now, "admin")
    checks = Counter[str]()
    lock = threading.Lock()
    real_verify = users._verify

    def counting_verify(encoded: str, password: str) -> bool:
        with lock:
            checks["argon2"] += 1
        return real_verify(encoded, password)

    monkeypatch.setattr(users, "_verify", counting_verify)
    conns = [store, *(_other(store) for _ in range(3))]
    start = threading.Barrier(100, timeout=60)

    def guess(i: int) -> str:
        start.wait()
        try:
            users.authenticate(conns[i % 4], "kim", f"guess {i}", now + i, "10.0.0.1")
        except RateLimited:
            return "refused"
        except users.Unauthorized:
            return "checked"
        return "in"

    try:
        with ThreadPoolExecutor(100) as pool:
            got = Counter(pool.map(guess, range(100)))
    finally:
        for c in conns[1:]:
            c.close()
    print(f"{type(store).__name__}: 100 parallel guesses on 4 connections: {dict(got)}, "
          f"{checks['argon2']} argon2 checks")  # fmt: skip
    assert got["in"] == 0 and got["checked"] + got["refused"] == 100
    assert 1 <= checks["argon2"] == got["checked"] <= users.MAX_FAILURES
    with pytest.raises(RateLimited):
        users.authenticate(store, "kim", STRONG, now + 200, "10.0.0.2")  # same name, new address
    assert checks["argon2"] == got["checked"]  # refused without a check


def test_a_right_password_settles_its_reservation_as_a_success(
    station: Station, fast: None
) -> None:
    now = station.clock()
    users.create_user(station, "kim", ["operator"], STRONG, now, "admin")
    for i in range(users.MAX_FAILURES - 1):
        with pytest.raises(users.Unauthorized):
            users.authenticate(station, "kim", f"guess {i}", now, "lo")
    for _ in range(3):  # successes do not count towards the lockout
        assert users.authenticate(station, "kim", STRONG, now, "lo").name == "kim"
    with pytest.raises(users.Unauthorized):
        users.authenticate(station, "kim", "one more", now, "lo")
    with pytest.raises(RateLimited):
        users.authenticate(station, "kim", STRONG, now, "lo")


@pytest.fixture
def station(tmp_path: Path) -> Station:
    return make_station(tmp_path / "south", "South", "en", Clock())


# --- 3. password policy ---------------------------------------------------------------------------

WEAK: list[tuple[str, str, str]] = [  # (password, user, reason)
    ("password", "kim", "short"),
    ("12345678", "kim", "short"),
    (" " * 8, "kim", "short"),
    ("", "kim", "short"),
    ("x" * 1025, "kim", "long"),
    ("passwordpassword", "kim", "pattern"),
    ("password123", "kim", "common"),
    ("1234567890", "kim", "common"),
    (" " * 12, "kim", "pattern"),
    ("qwertyuiop", "kim", "common"),
    ("zxcvbnm,./asdf", "kim", "pattern"),
    ("abcdefghijkl", "kim", "pattern"),
    ("south.rep", "south.rep", "short"),
    ("south.rep.south.rep", "south.rep", "name"),
    ("southrep2026", "south.rep", "name"),
    ("kimberly.lee", "kimberly.lee", "name"),
    ("iloveyou12", "kim", "common"),
    ("1990-01-01", "kim", "pattern"),
]
STRONG_ONES = [
    STRONG,
    "olga keeps the night watch",
    "Tr0ub4dor&3 gallops",
    "a brand new password",
    "남북 연락선이 다시 열린 아침",
    "x7#Kq!2vLm@9",
    "the first meeting without preconditions " * 20,  # long: judged by its first 72 characters
]


def test_password_policy_table() -> None:
    for pw, name, reason in WEAK:
        with pytest.raises(passwords.WeakPassword) as exc:
            passwords.check(pw, name)
        assert exc.value.code == Code.WEAK_PASSWORD
        assert exc.value.details["reason"] == reason, (pw, exc.value.details)
        assert exc.value.message  # says why, in English for the API
    for pw in STRONG_ONES:
        assert passwords.check(pw, "kim") == pw
    generated = [passwords.generate() for _ in range(50)]  # the demo's
    assert len(set(generated)) == 50 and all(passwords.check(p) for p in generated)
    n = len(WEAK) + len(STRONG_ONES) + len(generated)
    print(f"{n} passwords judged")
    assert n == 75, n


def test_weak_passwords_are_refused_wherever_a_password_is_set(
    station: Station, fast: None
) -> None:
    client = TestClient(build_app(station, BOOT))
    boot = {"Authorization": f"Bearer {BOOT}"}
    cases = 0
    for pw, name, _ in [*WEAK[:6], ("southrep2026", "south.rep", "name")]:
        req = {"name": name, "roles": ["operator"], "password": pw}
        r = client.post("/api/v1/users", headers=boot, json=req)
        body = r.json()
        if not 1 <= len(pw) <= 1024:  # the request model's own bounds come first
            assert r.status_code == 422 and body["code"] == "invalid_request"
        else:
            assert r.status_code == 400 and body["code"] == "weak_password", (pw, body)
            assert body["details"]["reason"] in passwords.REASONS
            assert set(body["details"]["feedback"]) <= {"warning", "suggestions", "score"}
        assert users.list_users(station) == []
        cases += 1
    users.create_user(station, "kim", ["operator", "admin"], STRONG, station.clock(), "admin")
    before = users.get_user(station, "kim").password
    for pw in ("password", "kimkimkimkim", "12345678901"):
        r = client.patch("/api/v1/users/kim", headers=boot, json={"password": pw, "roles": []})
        assert r.status_code == 400 and r.json()["code"] == "weak_password", r.text
        assert users.get_user(station, "kim").password == before
        assert users.get_user(station, "kim").roles == ("admin", "operator")  # nothing changed
        cases += 1
    # A user changing their own password meets the same policy.
    tok = client.post("/api/v1/login", json={"name": "kim", "password": STRONG}).json()["token"]
    r = client.post("/api/v1/me/password", headers={"Authorization": f"Bearer {tok}"},
                    json={"current": STRONG, "password": "password1"})  # fmt: skip
    assert r.status_code == 400 and r.json()["code"] == "weak_password"
    assert users.get_user(station, "kim").password == before
    cases += 1
    # The console's admin page says why, in the reader's language.
    for lang, words in (("ko", "너무 짧습니다"), ("en", "Too short")):
        console = TestClient(build_app(station, BOOT))
        console.get(f"/console/login?lang={lang}")
        console_login(console, "kim", STRONG)
        page = console.get("/console/admin")
        r = console.post("/console/admin/users", data={
            "name": "choi", "password": "12345678", "roles": "operator",
            "csrf": _csrf_in(page.text),
        })  # fmt: skip
        assert r.status_code == 422 and words in r.text, r.text[-2000:]
        assert [u.name for u in users.list_users(station)] == ["kim"]
        cases += 1
    print(f"{cases} attempts to set a weak password refused")
    assert cases == 13


# --- 4. security headers on every response, /docs -------------------------------------------------


def _routes(app: Any) -> Iterator[tuple[str, str]]:
    """(method, path) of every route of the app, mounts included, path parameters filled in."""
    for route in app.routes:
        included = getattr(route, "original_router", None)  # FastAPI's included router
        if included is not None:
            yield from _routes(included)
        elif isinstance(route, APIRoute):
            for method in sorted(route.methods):
                yield method, re.sub(r"\{[^}]+\}", "x", route.path)
        elif isinstance(route, Mount):
            sub = getattr(route, "app", None)
            if hasattr(sub, "routes") and sub.routes:
                for method, path in _routes(sub):
                    yield method, route.path + path
            else:
                yield "GET", route.path + "/live.js"
        elif hasattr(route, "path"):
            yield "GET", route.path


def test_every_route_answers_with_the_security_headers(station: Station, fast: None) -> None:
    app = build_app(station, BOOT)
    client = TestClient(app, raise_server_exceptions=False)
    seen: set[int] = set()
    cases = 0
    extra = [("GET", "/no/such/path"), ("POST", "/api/v1/login"), ("GET", "/docs"),
             ("GET", "/redoc"), ("GET", "/openapi.json")]  # fmt: skip
    for method, path in [*_routes(app), *extra]:
        # Unsafe methods without credentials (401, 422 …: nothing changes); reads both ways.
        auths = [{}] if method not in ("GET", "HEAD") else [{}, {"Authorization": f"Bearer {BOOT}"}]
        for auth in auths:
            r = client.request(method, path, headers=auth, follow_redirects=False)
            for k, v in HEADERS.items():
                assert r.headers.get(k) == v, (method, path, r.status_code, k)
            seen.add(r.status_code)
            cases += 1
    # A request refused by the Origin check, and an internal error, have them too.
    r = client.post("/api/v1/login", headers={"Origin": "http://elsewhere.example"}, json={})
    assert r.status_code == 403 and all(r.headers.get(k) == v for k, v in HEADERS.items())

    def boom() -> None:
        raise RuntimeError("an unexpected failure")

    app.add_api_route("/test-only-boom", boom)
    r = client.get("/test-only-boom")
    assert r.status_code == 500 and all(r.headers.get(k) == v for k, v in HEADERS.items())
    cases += 2
    print(f"{cases} requests over every route, statuses {sorted(seen)}")
    assert {200, 401, 404}.issubset(seen) and cases > 100, (cases, seen)


def test_api_docs_are_off_by_default_and_behind_a_login_when_on(
    station: Station, fast: None
) -> None:
    client = TestClient(build_app(station, BOOT))
    boot = {"Authorization": f"Bearer {BOOT}"}
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        assert client.get(path, headers=boot).status_code == 404, path
    station.cfg.api_docs = True
    users.create_user(station, "kim", ["operator"], STRONG, station.clock(), "admin")
    client = TestClient(build_app(station, BOOT))
    anon = [client.get(p, follow_redirects=False) for p in
            ("/docs", "/docs/init.js", "/docs/assets/swagger-ui-bundle.js")]  # fmt: skip
    assert all(r.status_code == 303 and r.headers["location"] == "/console/login" for r in anon)
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json", headers=boot).json()["info"]["title"].startswith("Parley")
    token = console_login(client, "kim", STRONG)
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    srcs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert srcs and all(s.startswith("/docs/") for s in srcs), srcs
    assert not re.search(r"https?://", page.text) and "cdn" not in page.text.lower()
    assert users.csrf_token(token) in page.text  # for "Try it out"
    for src in srcs:
        r = client.get(src)
        assert r.status_code == 200 and not re.search(r"cdn\.jsdelivr|unpkg\.com", r.text), src
    assert client.get("/docs/assets/../../etc/passwd").status_code == 404
    assert client.get("/docs/assets/index.html").status_code == 404
    assert client.get("/openapi.json").status_code == 200  # with the console session
    print(f"docs: {len(anon) + 4} anonymous requests refused, {len(srcs)} local assets")


# --- 5. credentials for back channels -------------------------------------------------------------


def test_nobody_but_the_representative_obtains_a_back_channel_credential(
    tmp_path: Path, fast: None
) -> None:
    clock = Clock()
    south = make_station(tmp_path / "s", "South", "en", clock)
    north = make_station(tmp_path / "n", "North", "ko", clock)
    introduce(south, north)
    for name, roles in (("south.rep", ["representative"]), ("bob", ["admin"]),
                        ("carol", ["operator"])):  # fmt: skip
        users.create_user(south, name, roles, STRONG, clock(), "admin")
    reps = {south.id: ["south.rep"], north.id: ["north.rep"]}
    ch = south.propose_channel("backchannel", "Envoys", [north.id], representatives=reps)
    Net().deliver(south, north)
    north.control(ch, "consent")
    Net().deliver(north, south)
    client = TestClient(build_app(south, BOOT))
    boot = {"Authorization": f"Bearer {BOOT}"}
    bob_s = client.post("/api/v1/login", json={"name": "bob", "password": STRONG}).json()["token"]
    bob = {"Authorization": f"Bearer {bob_s}"}
    bob_t = client.post("/api/v1/users/bob/tokens", headers=bob, json={"label": "own"}).json()
    assert bob_t["token"].startswith("pt_")  # an admin makes his own token, like anyone
    bob_tok = {"Authorization": f"Bearer {bob_t['token']}"}
    rep_hash = users.get_user(south, "south.rep").password

    def untouched() -> None:
        assert users.list_tokens(south, "south.rep") == []
        assert users.get_user(south, "south.rep").password == rep_hash
        assert users.get_user(south, "south.rep").roles == ("representative",)
        acts = [(a, json.loads(d).get("user")) for _, a, act, d in south.store.audit_log(1000)
                if act in ("token.create", "user.password", "user.roles")]  # fmt: skip
        assert all(u != "south.rep" for _, u in acts), acts

    attempts = [
        ("POST", "/api/v1/users/south.rep/tokens", {"label": "mine now"}),
        ("PATCH", "/api/v1/users/south.rep", {"password": "a brand new password"}),
        ("PATCH", "/api/v1/users/south.rep", {"password": "a brand new password", "roles": []}),
    ]
    cases = 0
    for who in (boot, bob, bob_tok):
        for method, path, payload in attempts:
            r = client.request(method, path, headers=who, json=payload)
            assert r.status_code == 403 and r.json()["code"] == "forbidden", (path, r.text)
            untouched()
            cases += 1
    # The same refusal stands in the service, whatever adapter calls it.
    with pytest.raises(Forbidden):
        users.create_token(south, "south.rep", "x", clock(), "bob")
    with pytest.raises(Forbidden):
        users.set_password(south, "south.rep", "a brand new password", clock(), "bob")
    untouched()
    cases += 2
    # carol is named on no back channel: an admin may still reset her password, not mint her token.
    r = client.patch("/api/v1/users/carol", headers=bob, json={"password": "a brand new password"})
    assert r.status_code == 200
    r = client.post("/api/v1/users/carol/tokens", headers=bob, json={"label": "hers"})
    assert r.status_code == 403 and users.list_tokens(south, "carol") == []
    cases += 2

    # The representative signs in and makes their own token; it reads the back channel.
    s = client.post("/api/v1/login", json={"name": "south.rep", "password": STRONG}).json()
    rep = {"Authorization": f"Bearer {s['token']}"}
    t = client.post("/api/v1/users/south.rep/tokens", headers=rep, json={"label": "laptop"})
    assert t.status_code == 200, t.text
    rep_tok = {"Authorization": f"Bearer {t.json()['token']}"}
    assert client.get(f"/api/v1/channels/{ch}", headers=rep_tok).status_code == 200
    assert client.get(f"/api/v1/channels/{ch}", headers=bob).status_code == 403
    # ... and changes their own password, proving the current one.
    new = "a quiet word in geneva"
    r = client.post("/api/v1/me/password", headers=rep_tok,
                    json={"current": "not it at all", "password": new})  # fmt: skip
    assert r.status_code == 401
    r = client.post("/api/v1/me/password", headers=rep_tok,
                    json={"current": STRONG, "password": new})  # fmt: skip
    assert r.status_code == 200, r.text
    # An admin sees and revokes the representative's tokens, and may disable them: that takes
    # access away and gives the admin none.
    listed = client.get("/api/v1/users/south.rep/tokens", headers=bob).json()
    assert [x["label"] for x in listed] == ["laptop"] and "token" not in listed[0]
    r = client.delete(f"/api/v1/users/south.rep/tokens/{listed[0]['id']}", headers=bob)
    assert r.status_code == 200
    assert client.get(f"/api/v1/channels/{ch}", headers=rep_tok).status_code == 401
    r = client.patch("/api/v1/users/south.rep", headers=bob, json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    cases += 4
    print(f"{cases} credential attempts checked")
    assert cases == 17


def _cli(
    data: Path, *args: str, token: str | None = None, stdin: str = ""
) -> CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PARLEY_TOKEN"}
    if token is not None:
        env["PARLEY_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "parley.cli", *args, "--data", str(data)],
        input=stdin, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_cli_user_token_makes_only_your_own(tmp_path: Path) -> None:
    with Stations(tmp_path, [("South", "en")]) as net:
        data = net.dirs["South"]
        for name in ("alice", "bob"):
            res = _cli(data, "user", "add", name, "--role", "operator", "--password-stdin",
                       stdin=STRONG + "\n")  # fmt: skip
            assert res.returncode == 0, res.stderr
        res = _cli(data, "user", "token", "alice", "--label", "cli", "--password-stdin",
                   stdin=STRONG + "\n")  # fmt: skip
        tok = res.stdout.strip()
        assert res.returncode == 0 and tok.startswith("pt_"), res.stderr
        # With alice's own token in PARLEY_TOKEN, no password is asked.
        again = _cli(data, "user", "token", "alice", "--label", "second", token=tok)
        assert again.returncode == 0 and again.stdout.strip().startswith("pt_"), again.stderr
        # bob's token makes none for alice: it asks alice's password, and a wrong one fails.
        bob = _cli(data, "user", "token", "bob", "--label", "b", "--password-stdin",
                   stdin=STRONG + "\n").stdout.strip()  # fmt: skip
        res = _cli(data, "user", "token", "alice", "--label", "x", "--password-stdin",
                   token=bob, stdin="not her password\n")  # fmt: skip
        assert res.returncode == 1 and "unauthorized" in res.stderr, res.stderr
        # The bootstrap token (the default credential) makes none either: it is not alice.
        labels = [t["label"] for t in net.api("South").get("/users/alice/tokens")]
        assert labels == ["cli", "second"]
        print("4 CLI token requests: 3 made by their own user, 1 refused")


# --- 6. remembered credentials (issue 14) -------------------------------------------------------


def test_a_remembered_credential_stops_working_at_once(station: Station, fast: None) -> None:
    """A proven token or session is remembered for a few seconds (users.REMEMBER_MS), so that
    reads do not look it up each time. Revoking, logging out, a role change (either way),
    disabling, the session's idle limit and another connection's write to the users table
    still take effect on the very next request."""
    assert isinstance(station.store, SqliteStore) and isinstance(station.clock, Clock)
    clock = station.clock
    client = TestClient(build_app(station, BOOT))
    boot = {"Authorization": f"Bearer {BOOT}"}
    users.create_user(station, "kim", ["operator"], STRONG, clock(), "admin")

    def login() -> tuple[str, dict[str, str]]:
        r = client.post("/api/v1/login", json={"name": "kim", "password": STRONG})
        token = r.json()["token"]
        return token, {"Authorization": f"Bearer {token}"}

    def remembered(token: str, h: dict[str, str], role: str = "operator") -> None:
        assert client.get("/api/v1/me", headers=h).status_code == 200
        assert users.known_user(station, token, clock()) == users.User("kim", frozenset({role}))

    session, s_h = login()
    made = client.post("/api/v1/users/kim/tokens", headers=s_h, json={"label": "t"}).json()
    token, t_h = made["token"], {"Authorization": f"Bearer {made['token']}"}
    ack = {"all_open": True, "note": "seen"}
    remembered(token, t_h)
    assert client.post("/api/v1/alarms/ack", headers=t_h, json=ack).status_code == 200
    # A role taken away, then given back: both at once, though the token is remembered.
    client.patch("/api/v1/users/kim", headers=boot, json={"roles": ["auditor"]})
    assert client.post("/api/v1/alarms/ack", headers=t_h, json=ack).status_code == 403
    remembered(token, t_h, "auditor")
    client.patch("/api/v1/users/kim", headers=boot, json={"roles": ["operator"]})
    assert client.post("/api/v1/alarms/ack", headers=t_h, json=ack).status_code == 200
    # Revoked: the token, at once; the session is untouched.
    remembered(token, t_h)
    remembered(session, s_h)
    r = client.delete(f"/api/v1/users/kim/tokens/{made['id']}", headers=s_h)
    assert r.status_code == 200, r.text
    assert client.get("/api/v1/me", headers=t_h).status_code == 401
    remembered(session, s_h)
    # Logged out: at once.
    assert client.post("/api/v1/logout", headers=s_h).json()["ended"] is True
    assert client.get("/api/v1/me", headers=s_h).status_code == 401
    # Disabled: at once.
    session, s_h = login()
    remembered(session, s_h)
    client.patch("/api/v1/users/kim", headers=boot, json={"disabled": True})
    assert client.get("/api/v1/me", headers=s_h).status_code == 401
    client.patch("/api/v1/users/kim", headers=boot, json={"disabled": False})
    # Idle past its limit: the remembered session ends when it would have.
    session, s_h = login()
    remembered(session, s_h)
    clock.advance(users.SESSION_IDLE_MS + 1)
    assert client.get("/api/v1/me", headers=s_h).status_code == 401
    # Another connection disables the user (a tool on the database file): seen at once.
    session, s_h = login()
    remembered(session, s_h)
    with closing(sqlite3.connect(station.store.path)) as db, db:
        db.execute("UPDATE users SET disabled = 1 WHERE name = 'kim'")
    assert client.get("/api/v1/me", headers=s_h).status_code == 401
    assert users.known_user(station, session, clock()) is None
