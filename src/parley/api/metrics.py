"""GET /metrics: the station's Prometheus metrics, for the roles the table lets read them
(`metrics.read`: auditor, admin; station/metrics.py checks).

The scrape needs a Bearer token like the operator API (Prometheus: `authorization:
credentials_file`), a token of a user with such a role. Not open on loopback: a reverse proxy
on the same host would make every outside request look local, and the labels name the
station's peers.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from parley.api.actions import acts
from parley.api.auth import Auth
from parley.station import metrics
from parley.station.node import Station
from parley.station.roles import Action
from parley.station.users import User


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(tags=["metrics"])
    reg = metrics.registry(station)

    @r.get("/metrics", response_class=Response, **acts(Action.METRICS_READ))
    def scrape(request: Request, who: User = Depends(auth.user)) -> Response:
        body, content_type = metrics.scrape(reg, who, request.headers.get("accept", ""))
        return Response(body, media_type=content_type)

    return r
