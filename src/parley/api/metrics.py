"""GET /metrics: the station's Prometheus metrics, for any authenticated user of the station.

The scrape needs a Bearer token like the operator API (Prometheus: `authorization:
credentials_file`). Not open on loopback: a reverse proxy on the same host would make every
outside request look local, and the labels name the station's peers.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client.exposition import choose_encoder

from parley.api.auth import Auth
from parley.station import metrics
from parley.station.node import Station
from parley.station.users import User


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(tags=["metrics"])
    reg = metrics.registry(station)

    @r.get("/metrics", response_class=Response)
    def scrape(request: Request, _: User = Depends(auth.user)) -> Response:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(reg), media_type=content_type)

    return r
