"""Every operator API route authenticates its caller (api/auth.py `Auth.user`, or `Auth.sender`
for the routes that take an Idempotency-Key), whether its router says so for all its routes or
the route itself (the busiest routers leave it to each route, so that FastAPI resolves the user
once and not also for the router: issue 14). Only the routes whose action is `public` (login)
go without."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from parley.api.actions import KEY, PUBLIC
from parley.api.auth import Auth
from tests.test_routes import api_routes, station_app


def _calls(dependant: Any) -> Iterator[Any]:
    for d in dependant.dependencies:
        yield d.call
        yield from _calls(d)


def test_every_operator_route_but_login_authenticates_its_caller(tmp_path: Path) -> None:
    app = station_app(tmp_path)
    checked, open_ = 0, []
    for route in api_routes(app):
        if not route.path.startswith("/api/"):
            continue
        if (route.openapi_extra or {}).get(KEY) == PUBLIC:
            continue
        calls = [*_calls(route.dependant), *(d.dependency for d in route.dependencies)]
        # `sender` is `user` and the Idempotency-Key, in one dependency (api/auth.py).
        if not any(getattr(c, "__func__", None) in (Auth.user, Auth.sender) for c in calls):
            open_.append(f"{sorted(route.methods)} {route.path}")
        checked += 1
    assert checked > 75 and open_ == []
