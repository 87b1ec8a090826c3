"""Notifications in the operator API: targets, routes per alarm kind, a test, the delivery log.
Rules live in station/notify.py (every route there needs `notify.manage`)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from parley.api.actions import acts
from parley.api.auth import Auth
from parley.api.operator import Strict
from parley.station import notify
from parley.station.node import Station
from parley.station.roles import Action
from parley.station.users import User

Name = Field(min_length=1, max_length=64)


class TargetSpec(Strict):
    type: Literal["webhook", "email"]
    url: str | None = Field(default=None, max_length=notify.MAX_URL)
    to: list[str] | None = Field(default=None, max_length=notify.MAX_RECIPIENTS)
    channels: list[str] = Field(default_factory=list, max_length=notify.MAX_CHANNELS)
    backchannels: bool = False  # refused unless false: station.json's alone


class Route(Strict):
    # None: drop the API's route for the kind (station.json's, or `*`, applies again)
    targets: list[str] | None = Field(default=None, max_length=notify.MAX_TARGETS)


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(prefix="/api/v1/notify", tags=["notify"], dependencies=[Depends(auth.user)])

    @r.get("", **acts(Action.NOTIFY_MANAGE))
    def overview(who: User = Depends(auth.user)) -> dict[str, Any]:
        """Targets, routes, and per alarm kind the targets that hear of it."""
        return notify.desk(station).overview(who)

    @r.put("/targets/{name}", **acts(Action.NOTIFY_MANAGE))
    def put_target(name: str, req: TargetSpec, who: User = Depends(auth.user)) -> dict[str, Any]:
        """Add or replace a target (a webhook URL, or e-mail addresses)."""
        spec = req.model_dump(exclude_none=True)
        if not spec.get("channels"):
            spec.pop("channels", None)
        if not spec.get("backchannels"):
            spec.pop("backchannels", None)
        return notify.desk(station).set_target(who, name, spec)

    @r.delete("/targets/{name}", **acts(Action.NOTIFY_MANAGE))
    def delete_target(name: str, who: User = Depends(auth.user)) -> dict[str, Any]:
        notify.desk(station).remove_target(who, name)
        return {"removed": name}

    @r.put("/routes/{kind}", **acts(Action.NOTIFY_MANAGE))
    def put_route(kind: str, req: Route, who: User = Depends(auth.user)) -> dict[str, Any]:
        """Route an alarm kind (or `*`, every kind without its own route) to named targets."""
        return {"kind": kind, "targets": notify.desk(station).set_route(who, kind, req.targets)}

    @r.post("/targets/{name}/test", **acts(Action.NOTIFY_MANAGE))
    def test(name: str, who: User = Depends(auth.user)) -> dict[str, Any]:
        """Send a test notification now and say how it went."""
        return notify.desk(station).test(who, name)

    @r.get("/deliveries", **acts(Action.NOTIFY_MANAGE))
    def deliveries(
        limit: int = Query(100, ge=1, le=notify.MAX_LOG), who: User = Depends(auth.user)
    ) -> list[dict[str, Any]]:
        """The newest notifications and their delivery state, newest first."""
        return notify.desk(station).deliveries(who, limit)

    return r
