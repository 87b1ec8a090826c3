"""The order routers are included in (app/build.py) is chosen for speed, the busiest first; this
holds it free to choose: no route takes a request meant for a route matched after it."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Route

from parley.api import retries
from parley.app.build import build_app
from tests.pair import Clock, make_station


def routes_in_match_order(tmp_path: Path) -> list[Route]:
    app = build_app(make_station(tmp_path / "a", "South", "en", Clock()), "t" * 32)
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


def test_no_route_shadows_a_later_one(tmp_path: Path) -> None:
    routes = routes_in_match_order(tmp_path)
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
    dependency that keeps the request with it (api/retries.py)."""
    with_key, on_their_own = [], []

    def walk(route: str, dependant: Dependant) -> None:
        for p in dependant.header_params:
            if p.alias.lower() == "idempotency-key":
                (with_key if dependant.call is retries.idempotency_key else on_their_own).append(
                    route
                )
        for sub in dependant.dependencies:
            walk(route, sub)

    for r in routes_in_match_order(tmp_path):
        if isinstance(r, APIRoute):
            walk(f"{sorted(r.methods)} {r.path}", r.dependant)
    assert on_their_own == []
    assert len(with_key) >= 10  # sends, batches, notices, acknowledgements and the talks' moves
