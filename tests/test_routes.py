"""The order routers are included in (app/build.py) is chosen for speed, the busiest first; this
holds it free to choose: no route takes a request meant for a route matched after it."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Route

from parley.api import retries
from parley.api.auth import Auth
from parley.app.build import build_app
from tests.pair import Clock, make_station


def station_app(tmp_path: Path) -> FastAPI:
    return build_app(make_station(tmp_path / "a", "South", "en", Clock()), "t" * 32)


def routes_in_match_order(app: FastAPI) -> list[Route]:
    found: list[Route] = []

    def walk(routes: list[object]) -> None:
        for r in routes:
            inner = getattr(r, "original_router", None)
            if inner is not None:
                walk(inner.routes)
            elif isinstance(r, Route):
                found.append(r)

    walk(list(app.router.routes))
    return found


def api_routes(app: FastAPI) -> list[APIRoute]:
    """The routes of `routes_in_match_order` that FastAPI made (APIRoute), in that order."""
    return [r for r in routes_in_match_order(app) if isinstance(r, APIRoute)]


def test_no_route_shadows_a_later_one(tmp_path: Path) -> None:
    routes = routes_in_match_order(station_app(tmp_path))
    assert len(routes) > 50  # the walk reached into the included routers
    shadowed = []
    for j, later in enumerate(routes):
        for filler in ("zz", "1"):
            path = re.sub(r"\{[^}]+\}", filler, later.path)
            for earlier in routes[:j]:
                same = (earlier.methods or set()) & (later.methods or set())
                if same and earlier.path_regex.match(path):
                    shadowed.append((earlier.path, later.path, sorted(same)))
    assert shadowed == []


def test_every_route_reads_an_idempotency_key_with_its_request(tmp_path: Path) -> None:
    """A route that took the Idempotency-Key header on its own would let the same key answer
    another request with the first one's envelope: every route reads it through the one
    dependency that keeps the request with it and names the caller first (`Auth.sender`,
    api/retries.py), and the OpenAPI document describes the header for exactly those routes."""
    takes, on_their_own = set(), []

    def walk(route: str, dependant: Dependant) -> None:
        on_their_own.extend(
            route for p in dependant.header_params if p.alias.lower() == "idempotency-key"
        )
        for sub in dependant.dependencies:
            if getattr(sub.call, "__func__", None) is Auth.sender:
                takes.add(route)
            walk(route, sub)

    app = station_app(tmp_path)
    for r in api_routes(app):
        walk(f"{next(iter(r.methods)).lower()} {r.path}", r.dependant)
    documented = {
        f"{method} {path}"
        for path, item in app.openapi()["paths"].items()
        for method, op in item.items()
        if retries.PARAMETER in op.get("parameters", [])
    }
    assert on_their_own == []
    assert takes == documented
    assert len(takes) >= 13  # sends, batches, notices, acknowledgements and the talks' moves
