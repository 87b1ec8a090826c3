"""app/lean.py: the busiest routes answer through the lean handler, and every lean route answers
exactly as FastAPI's own handler does, for good requests and for each kind of bad one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, request_response
from fastapi.testclient import TestClient
from pydantic import BaseModel

from parley.api.operator import TextBatch, TextMessage
from parley.app import lean
from parley.app.build import build_app
from parley.station import users
from tests.pair import hotline
from tests.test_routes import api_routes

TOKEN = "t" * 32
PASSWORD = "quiet harbour lantern 42"
# A valid body for each body model a lean route takes: a lean route with another model fails
# the comparison below until it is given one here.
EXAMPLES: dict[type[BaseModel], Any] = {
    TextMessage: {"text": "hello", "lang": "en"},
    TextBatch: {"messages": [{"text": "one"}, {"text": "two", "precedence": "PRIORITY"}]},
}
BUSIEST = {
    ("POST", "/api/v1/channels/{channel}/messages"),
    ("POST", "/api/v1/channels/{channel}/messages/batch"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/me"),
    ("POST", "/peer/v1/envelopes"),
    ("GET", "/api/v1/inbox"),
    ("GET", "/api/v1/channels/{channel}/history"),
    ("GET", "/api/v1/alarms"),
}


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """One station, two apps: `lean` as the station serves, `fastapi` with every lean route given
    FastAPI's own handler back."""
    _, clock, a, _, ch = hotline(tmp_path)
    fat = build_app(a, TOKEN)
    for route in api_routes(fat):
        if lean.is_lean(route):
            route.app = request_response(route.get_route_handler())  # FastAPI's own
    lean_app = build_app(a, TOKEN)
    users.create_user(a, "auditor", ["auditor"], PASSWORD, clock(), "test")
    with TestClient(lean_app) as lc, TestClient(fat) as fc:
        r = lc.post("/api/v1/login", json={"name": "auditor", "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield {"lean": lc, "fastapi": fc, "app": lean_app, "channel": ch, "low": r.json()["token"]}


def test_the_busiest_routes_are_lean(apps: dict[str, Any]) -> None:
    found = {(m, r.path) for r in api_routes(apps["app"]) if lean.is_lean(r) for m in r.methods}
    assert found >= BUSIEST


def _cases(body: Any, token: str, low: str) -> Iterator[tuple[str, dict[str, str], bytes | None]]:
    """(what, headers, body): a good request, then each kind of bad one. (The peer routes take
    a signed request from a peer, not an operator's token: they refuse all of these alike, and
    the station's own pushes in the other tests go through them.)"""
    auth = {"Authorization": f"Bearer {token}"}
    as_json = {**auth, "Content-Type": "application/json"}
    good = json.dumps(body).encode() if body is not None else None
    yield "good", as_json if good else auth, good
    yield "no credential", {"Content-Type": "application/json"}, good
    yield (
        "unknown token",
        {"Authorization": "Bearer pt_nobody", "Content-Type": "application/json"},
        good,
    )
    yield (
        "a role without the action",
        {"Authorization": f"Bearer {low}", "Content-Type": "application/json"},
        good,
    )
    yield "key too long", {**as_json, "Idempotency-Key": "k" * 129}, good
    if body is None:
        return
    yield "no body", auth, None
    yield "empty body", as_json, b""
    yield "malformed JSON", as_json, b'{"text": '
    yield "malformed JSON, no credential", {"Content-Type": "application/json"}, b"{"
    yield "a JSON list", as_json, b"[]"
    yield "no fields", as_json, b"{}"
    yield "an unknown field", as_json, json.dumps({**body, "zz": 1}).encode()
    yield "fields of the wrong type", as_json, json.dumps({"text": 5, "messages": 5}).encode()
    yield "text/plain", {**auth, "Content-Type": "text/plain"}, good
    yield "JSON with a charset", {**auth, "Content-Type": "application/json; charset=utf-8"}, good
    yield "JSON of another type", {**auth, "Content-Type": "application/problem+json"}, good
    yield "not UTF-8", as_json, b'{"text": "\xff"}'


def _same(a: Any, b: Any) -> int:
    """The same status, content type and body; a successful JSON body as its keys (a send's
    seq and id differ per call)."""
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.headers.get("content-type") == b.headers.get("content-type")
    if a.status_code == 200 and a.headers.get("content-type") == "application/json":
        assert sorted(a.json()) == sorted(b.json())
    else:
        assert a.content == b.content
    return int(a.status_code)


def test_every_lean_route_answers_as_fastapi_does(apps: dict[str, Any]) -> None:
    compared: dict[tuple[str, str], dict[str, int]] = {}
    for route in api_routes(apps["app"]):
        if not lean.is_lean(route):
            continue
        body_model = route.body_field.field_info.annotation if route.body_field else None
        assert body_model is None or body_model in EXAMPLES, f"add an example for {route.path}"
        body = EXAMPLES[body_model] if body_model is not None else None
        path = route.path.replace("{channel}", apps["channel"])
        assert "{" not in path, f"give {route.path} a path parameter's value here"
        queries = {"": ""}
        for q in route.dependant.query_params:
            for value in ("zz", "0", "1", "-1", "true"):
                queries[f"{q.alias}={value}"] = f"?{q.alias}={value}"
        for method in route.methods:
            seen = compared.setdefault((method, route.path), {})
            for what, headers, content in _cases(body, TOKEN, apps["low"]):
                for name, query in queries.items():
                    answers = [
                        apps[side].request(method, path + query, headers=headers, content=content)
                        for side in ("lean", "fastapi")
                    ]
                    seen[f"{what}{', ' if name else ''}{name}"] = _same(*answers)
    assert set(compared) >= BUSIEST
    # The cases reach every layer: the good request passes, and the rest are refused where
    # FastAPI refuses them (credentials, role, body, header).
    send = compared[("POST", "/api/v1/channels/{channel}/messages")]
    assert send["good"] == send["JSON with a charset"] == 200
    assert send["no credential"] == send["unknown token"] == 401
    assert send["a role without the action"] == 403
    assert send["key too long"] == send["malformed JSON"] == send["no fields"] == 422
    assert send["text/plain"] == send["an unknown field"] == send["fields of the wrong type"] == 422
    assert send["not UTF-8"] == 400  # FastAPI's "There was an error parsing the body"
    assert compared[("GET", "/api/v1/me")]["good"] == 200
    inbox = compared[("GET", "/api/v1/inbox")]
    assert inbox["good"] == inbox["good, limit=1"] == 200
    assert inbox["good, limit=zz"] == inbox["good, limit=0"] == 422
    assert inbox["no credential, limit=zz"] == 401  # the caller first, as FastAPI does


async def who(request: Request) -> str:
    return "x"


async def who_with_more(request: Request, q: str = Query("")) -> str:
    return q


class Body(BaseModel):
    a: int


def test_a_route_of_another_shape_keeps_fastapis_handler() -> None:
    r = APIRouter()

    @r.post("/plain/{p}")
    async def plain(p: str, body: Body, w: str = Depends(who)) -> JSONResponse:
        return JSONResponse({})

    @r.get("/query")
    async def query(q: str = Query(""), w: str = Depends(who)) -> JSONResponse:
        return JSONResponse({})

    @r.get("/sync")
    def sync(w: str = Depends(who)) -> JSONResponse:
        return JSONResponse({})

    @r.get("/dict")
    async def answers_a_dict(w: str = Depends(who)) -> dict[str, str]:
        return {}

    @r.get("/int/{n}")
    async def int_param(n: int) -> JSONResponse:
        return JSONResponse({})

    @r.get("/deeper")
    async def deeper(w: str = Depends(who_with_more)) -> JSONResponse:
        return JSONResponse({})

    @r.get("/request")
    async def takes_the_request(request: Request) -> JSONResponse:
        return JSONResponse({})

    @r.get("/request-and-more")
    async def takes_the_request_and_a_query(request: Request, q: str = "") -> JSONResponse:
        return JSONResponse({})

    @r.get("/header")
    async def header_param(x_thing: str = Header("")) -> JSONResponse:
        return JSONResponse({})

    made = {route.path: lean.install(route) for route in r.routes if isinstance(route, APIRoute)}
    assert made == {
        "/plain/{p}": True,
        "/query": True,
        "/sync": False,
        "/dict": False,
        "/int/{n}": True,
        "/deeper": False,
        "/header": False,
        "/request": True,
        "/request-and-more": True,
    }
