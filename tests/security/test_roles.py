"""Every operator API route × every role, against the one role table (station/roles.py).

The routes come from the app's own OpenAPI document, so a route added without naming its action
(`x-parley-action`), or without a sample request here, fails this test. For each route, every
role the table refuses (and a user with no role at all) gets 403 `forbidden` and the database is
byte-for-byte unchanged; every role the table allows is not refused for its role.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from parley.api.actions import KEY, PUBLIC
from parley.app.build import build_app
from parley.protocol.encoding import b64e
from parley.station import users
from parley.station.roles import ROLES, TABLE, Action, allowed, table_markdown
from parley.station.users import User
from tests.pair import hotline

TOKEN = "bootstrap-" + "t" * 32
ROOT = Path(__file__).resolve().parents[2]
# Tables whose rows a refused request may touch without changing anything a person did: the
# audit log (refusals may be recorded), and "last seen" stamps of the caller's own credentials.
VOLATILE = {"audit", "sessions", "login_attempts"}
VOLATILE_COLUMNS = {("api_tokens", "used")}

# A request per route that passes the schema, so that what answers is the service, not the
# parser. Path parameters are filled in from PARAMS. Add one here for every new route.
SAMPLES: dict[str, dict[str, Any]] = {
    "GET /api/v1/station": {},
    "GET /api/v1/invitation": {},
    "POST /api/v1/peers": {"json": {"invitation": "not an invitation"}},
    "GET /api/v1/peers": {},
    "POST /api/v1/channels": {"json": {"kind": "hotline", "title": "Another", "peers": ["{peer}"]}},
    "GET /api/v1/channels": {},
    "GET /api/v1/channels/{channel}": {},
    "POST /api/v1/channels/{channel}/messages": {"json": {"text": "hello", "precedence": "FLASH"}},
    "POST /api/v1/channels/{channel}/messages/batch": {"json": {"messages": [{"text": "a"}]}},
    "GET /api/v1/channels/{channel}/messages": {},
    "GET /api/v1/channels/{channel}/transcript": {},
    "GET /api/v1/channels/{channel}/printout": {},
    "POST /api/v1/channels/{channel}/consent": {"json": {}},
    "POST /api/v1/channels/{channel}/suspend": {"json": {"reason": "test"}},
    "POST /api/v1/channels/{channel}/reopen": {"json": {}},
    "POST /api/v1/channels/{channel}/close": {"json": {}},
    "GET /api/v1/inbox": {},
    "GET /api/v1/status": {},
    "GET /api/v1/alarms": {},
    "POST /api/v1/alarms/{alarm_id}/clear": {},
    "POST /api/v1/alarms/ack": {"json": {"all_open": True, "note": "seen"}},
    "GET /api/v1/channels/{channel}/history": {"params": {"limit": 10}},
    "GET /api/v1/search": {"params": {"q": "hello"}},
    "GET /api/v1/evidence": {},
    # talks, road maps, translations
    "POST /api/v1/channels/{channel}/talks": {"json": {"terms": {}}},
    "GET /api/v1/channels/{channel}/talks": {},
    "POST /api/v1/channels/{channel}/talks/{nid}/counter": {
        "json": {"parent": "{ref}", "terms": {}}
    },
    "POST /api/v1/channels/{channel}/talks/{nid}/withdraw": {"json": {"version": "{ref}"}},
    "POST /api/v1/channels/{channel}/talks/{nid}/accept": {"json": {"version": "{ref}"}},
    "GET /api/v1/channels/{channel}/talks/{nid}": {},
    "POST /api/v1/channels/{channel}/roadmap/steps": {
        "json": {"owner": "South", "description": "a step"}
    },
    "POST /api/v1/channels/{channel}/roadmap/steps/{step_id}/agree": {},
    "POST /api/v1/channels/{channel}/roadmap/steps/{step_id}/update": {"json": {"status": "done"}},
    "GET /api/v1/channels/{channel}/roadmap": {},
    "POST /api/v1/channels/{channel}/messages/{ref}/translations": {
        "json": {"lang": "ko", "text": "번역", "status": "certified"}
    },
    "GET /api/v1/channels/{channel}/messages/{ref}/translations": {},
    "POST /api/v1/channels/{channel}/messages/{ref}/translate": {"json": {"lang": "ko"}},
    "GET /api/v1/translation/engine": {},
    # notices
    "GET /api/v1/forms": {},
    "GET /api/v1/forms/{form_id}": {},
    "POST /api/v1/channels/{channel}/notices": {"json": {"form": "launch_notice", "fields": {}}},
    "GET /api/v1/channels/{channel}/notices": {},
    "POST /api/v1/channels/{channel}/notices/preview": {
        "json": {"form": "launch_notice", "inputs": {"launch_count": "1"}}
    },
    "GET /api/v1/channels/{channel}/notices/{ref}": {},
    "GET /api/v1/channels/{channel}/notices/{ref}/map.svg": {},
    "POST /api/v1/channels/{channel}/messages/{ref}/ack": {"json": {"answer": "acknowledged"}},
    "GET /api/v1/channels/{channel}/messages/{ref}/acks": {},
    "GET /api/v1/deadlines": {},
    # transcripts
    "GET /api/v1/channels/{channel}/checkpoints": {},
    "GET /api/v1/channels/{channel}/chains/{sender}/checkpoint": {},
    "GET /api/v1/channels/{channel}/chains/{sender}/tile/{path}": {},
    "POST /api/v1/channels/{channel}/checkpoint": {},
    "GET /api/v1/channels/{channel}/export": {},
    "GET /api/v1/channels/{channel}/proof": {"params": {"sender": "{peer}", "seq": 1}},
    # people
    "POST /api/v1/login": {"json": {"name": "nobody.here", "password": "wrong wrong wrong"}},
    # The C2SP witness API: public, limited by itself (api/witness.py).
    "GET /witness": {},
    "POST /witness/add-checkpoint": {"content": b"old 0\n\nnot a checkpoint\n"},
    "POST /api/v1/logout": {},
    "GET /api/v1/me": {},
    "POST /api/v1/me/password": {"json": {"current": "wrong guess", "password": "{password}"}},
    "PUT /api/v1/me/language": {"json": {"lang": "ko"}},
    "GET /api/v1/users": {},
    "POST /api/v1/users": {"json": {"name": "new.user", "password": "{password}"}},
    "PATCH /api/v1/users/{name}": {"json": {"disabled": True}},
    "POST /api/v1/users/{name}/tokens": {"json": {"label": "laptop"}},
    "GET /api/v1/users/{name}/tokens": {},
    "DELETE /api/v1/users/{name}/tokens/{token_id}": {},
    "GET /api/v1/audit": {},
    "GET /metrics": {},
    # vigil
    "GET /api/v1/links": {},
    "GET /api/v1/links/events": {},
    "GET /api/v1/checkcalls/schedules": {},
    "PUT /api/v1/checkcalls/schedules/{channel}": {
        "json": {"times": ["09:00"], "tz": "Asia/Seoul", "answer_within_ms": 600_000}
    },
    "DELETE /api/v1/checkcalls/schedules/{channel}": {},
    "GET /api/v1/checkcalls": {},
    "POST /api/v1/checkcalls/{channel}/call": {"json": {}},
    "POST /api/v1/checkcalls/{channel}/{call_id}/answer": {},
    "GET /api/v1/crises": {},
    "POST /api/v1/crises": {"json": {"channel": "{channel}", "title": "x", "severity": "low"}},
    "GET /api/v1/crises/{incident_id}": {},
    "GET /api/v1/crises/{incident_id}/timeline": {},
    "POST /api/v1/crises/{incident_id}/status": {"json": {"status": "contained"}},
    "POST /api/v1/crises/{incident_id}/link": {"json": {"ref": "{ref}"}},
    # paths
    "GET /api/v1/paths": {},
    "POST /api/v1/peers/{peer}/route": {"json": {}},
    "POST /api/v1/peers/{peer}/remove": {"json": {}},
    "POST /api/v1/peers/{peer}/revoke": {"json": {"reason": "key lost"}},
    "POST /api/v1/identity/rotate": {"json": {"grace_days": 7}},
    "POST /api/v1/bundles/export": {"json": {"peer": "{peer}"}},
    "POST /api/v1/bundles/import": {
        "content": b"{}\n",
        "headers": {"Content-Type": "application/x-ndjson"},
    },
    "GET /api/v1/bundles": {},
    # notifications
    "GET /api/v1/notify": {},
    "PUT /api/v1/notify/targets/{name}": {
        "json": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}
    },
    "DELETE /api/v1/notify/targets/{name}": {},
    "PUT /api/v1/notify/routes/{kind}": {"json": {"targets": []}},
    "POST /api/v1/notify/targets/{name}/test": {},
    "GET /api/v1/notify/deliveries": {},
}


def operator_routes(spec: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(method, path, action) for every route except the peer API's (peers sign each request)."""
    for path, ops in spec["paths"].items():
        if path.startswith("/peer/"):
            continue
        for method, op in ops.items():
            yield method.upper(), path, op.get(KEY, "")


def snapshot(db: Path) -> str:
    """A digest of every row the station holds, but for VOLATILE bookkeeping."""
    h = hashlib.sha256()
    with closing(sqlite3.connect(db)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for t in sorted(tables):
            if t in VOLATILE or t.startswith("sqlite_"):
                continue
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({t})")]
            keep = [c for c in cols if (t, c) not in VOLATILE_COLUMNS]
            rows = conn.execute(f"SELECT {', '.join(keep)} FROM {t}").fetchall()
            h.update(f"{t}:{sorted(map(repr, rows))}".encode())
    return h.hexdigest()


def fill(value: Any, params: dict[str, str]) -> Any:
    if isinstance(value, str):
        for k, v in params.items():
            value = value.replace("{" + k + "}", v)
        return value
    if isinstance(value, dict):
        return {k: fill(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, params) for v in value]
    return value


def refused_for_role(resp: Any, action: str) -> bool:
    if resp.status_code != 403:
        return False
    body = resp.json()
    return bool(body.get("code") == "forbidden" and body.get("details", {}).get("action") == action)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    _, clock, a, b, ch = hotline(tmp_path)
    msg = a.send(ch, {"type": "text", "text": "hello", "lang": "en"})[0]
    client = TestClient(build_app(a, TOKEN))
    tokens: dict[str, str] = {}
    password = secrets.token_urlsafe(18)
    people = {f"u.{r}": [r] for r in ROLES} | {"u.none": [], "target.user": ["operator"]}
    for name, roles in people.items():
        users.create_user(a, name, roles, password, clock(), "test")
        r = client.post("/api/v1/login", json={"name": name, "password": password})
        assert r.status_code == 200, r.text
        tokens[name] = r.json()["token"]
    yield {
        "client": client,
        "db": tmp_path / "a" / "parley.db",
        "tokens": tokens,
        "params": {
            "channel": ch,
            "peer": b.id,
            "sender": b.id,
            "path": "0/000.p/1",
            "ref": b64e(msg.hash),
            "nid": "n1",
            "action": "accept",
            "step_id": "s1",
            "form_id": "launch_notice",
            "incident_id": "i1",
            "call_id": "c1",
            "token_id": "1",
            "alarm_id": "1",
            "kind": "link",
            "password": secrets.token_urlsafe(18),
        },
    }


def test_every_route_names_an_action_of_the_table_and_has_a_sample(world: dict[str, Any]) -> None:
    spec = world["client"].app.openapi()
    routes = list(operator_routes(spec))
    assert len(routes) >= 75, len(routes)
    unnamed = [f"{m} {p}" for m, p, a in routes if a != PUBLIC and a not in set(Action)]
    assert not unnamed, f"routes without an x-parley-action of the role table: {unnamed}"
    missing = [f"{m} {p}" for m, p, _ in routes if f"{m} {p}" not in SAMPLES]
    assert not missing, f"add a sample request to SAMPLES for: {missing}"
    stale = set(SAMPLES) - {f"{m} {p}" for m, p, _ in routes}
    assert not stale, f"samples for routes that no longer exist: {sorted(stale)}"
    print(f"{len(routes)} operator routes, each with an action and a sample")


def test_every_route_refuses_every_role_the_table_refuses_and_changes_nothing(
    world: dict[str, Any],
) -> None:
    client, db, tokens = world["client"], world["db"], world["tokens"]
    spec = client.app.openapi()
    refusals = admissions = 0
    wrong: list[str] = []
    for method, path, action in operator_routes(spec):
        if action in (PUBLIC, Action.ME) or action not in set(Action):
            continue  # the test above names routes without an action
        sample = SAMPLES[f"{method} {path}"]
        for name in sorted(tokens):
            if name == "target.user":
                continue
            user = User(name, frozenset(r for r in ROLES if name == f"u.{r}"))
            params = world["params"] | {"name": name if "/tokens" in path else "target.user"}
            kw = {k: fill(v, params) for k, v in sample.items()}
            headers = {"Authorization": f"Bearer {tokens[name]}", **kw.pop("headers", {})}
            before = snapshot(db)
            resp = client.request(method, fill(path, params), headers=headers, **kw)
            if not allowed(user, Action(action)):
                refusals += 1
                if not refused_for_role(resp, action):
                    wrong.append(f"{method} {path} as {name}: {resp.status_code} {resp.text[:120]}")
                elif snapshot(db) != before:
                    wrong.append(f"{method} {path} as {name}: refused but changed the database")
            else:
                admissions += 1
                if refused_for_role(resp, action):
                    wrong.append(f"{method} {path} as {name}: refused a role the table allows")
    print(f"{refusals} refused and {admissions} allowed requests checked")
    assert not wrong, "\n".join(wrong)
    assert refusals > 200 and admissions > 250


def test_a_user_with_no_role_can_only_read_who_they_are(world: dict[str, Any]) -> None:
    client, tokens = world["client"], world["tokens"]
    headers = {"Authorization": f"Bearer {tokens['u.none']}"}
    assert client.get("/api/v1/me", headers=headers).json()["name"] == "u.none"
    closed = [a for a in Action if a is not Action.ME and not allowed(User("x", frozenset()), a)]
    assert len(closed) == len(Action) - 1


def test_the_published_role_table_is_the_one_the_station_enforces() -> None:
    table = table_markdown()
    for doc in (ROOT / "README.md", ROOT / "docs" / "roles.md"):
        assert table in doc.read_text(encoding="utf-8"), f"{doc.name}: paste table_markdown()"
    # The rules the issue names, read from the table itself.
    assert not any(TABLE[a] & {"auditor"} for a in Action if a.value.split(".")[1] in
                   {"send", "suspend", "propose", "accept", "human", "add"})  # fmt: skip
    assert TABLE[Action.AUDIT_READ] >= {"auditor"} and TABLE[Action.TRANSCRIPT_EXPORT] >= {
        "auditor"
    }
    assert TABLE[Action.TRANSLATION_HUMAN] == {"translator"}
    assert "facilitator" in TABLE[Action.TALKS_PROPOSE]
    assert TABLE[Action.PEER_ADD] == TABLE[Action.USER_MANAGE] == {"admin"}
