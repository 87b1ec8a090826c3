"""Operator API for link health, check calls and crises (station/vigil.py, checkcalls.py,
crises.py). The routes parse and render; those services check the role table and, for
anything a channel holds, that the caller may see that channel."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from parley.api.actions import acts
from parley.api.auth import Auth
from parley.domain import checkcalls as cc
from parley.domain import crisis
from parley.station import checkcalls, crises, vigil
from parley.station.node import Station
from parley.station.roles import Action
from parley.station.users import User

Severity = Literal["low", "medium", "high", "critical"]
IncidentStatus = Literal["open", "contained", "closed"]
CallStatus = Literal["pending", "answered", "answered_late", "missed"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(Strict):
    times: list[str] = Field(min_length=1, max_length=cc.MAX_TIMES_PER_DAY)
    tz: str = Field(min_length=1, max_length=64)
    weekdays: list[int] = Field(default=list(checkcalls.WORKING_DAYS), min_length=1, max_length=7)
    answer_within_ms: int = Field(gt=0, le=cc.MAX_ANSWER_WITHIN_MS)
    holidays: list[str] = Field(default=[], max_length=400)


class CallNow(Strict):
    answer_within_ms: int = Field(default=10 * 60_000, gt=0, le=cc.MAX_ANSWER_WITHIN_MS)


class IncidentOpen(Strict):
    channel: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=crisis.MAX_TITLE_CHARS)
    severity: Severity
    description: str = Field(default="", max_length=crisis.MAX_TEXT_CHARS)
    incident_id: str | None = Field(default=None, min_length=1, max_length=64)


class IncidentMove(Strict):
    status: IncidentStatus
    note: str = Field(default="", max_length=crisis.MAX_TEXT_CHARS)
    channel: str | None = Field(default=None, max_length=64)


class IncidentLink(Strict):
    ref: str = Field(min_length=43, max_length=43)
    channel: str | None = Field(default=None, max_length=64)


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["vigil"], dependencies=[Depends(auth.user)])

    # --- links ---------------------------------------------------------------------------------
    @r.get("/links", **acts(Action.STATION_READ))
    def links(who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        """Per peer: state, RTT, last contact, and why (ok, degraded, silent, down)."""
        return vigil.links(station, who)

    @r.get("/links/events", **acts(Action.STATION_READ))
    def link_events(
        peer: str | None = Query(None, max_length=64),
        since: int = Query(0, ge=0),
        limit: int = Query(200, ge=1, le=10_000),
        who: User = Depends(auth.user),
    ) -> list[dict[str, Any]]:
        return vigil.link_events(station, who, peer, since, limit)

    # --- check calls ---------------------------------------------------------------------------
    @r.get("/checkcalls/schedules", **acts(Action.CHANNEL_READ))
    def schedules(who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        return checkcalls.schedules(station, who)

    @r.put("/checkcalls/schedules/{channel}", **acts(Action.CHECKCALL_SCHEDULE))
    def put_schedule(channel: str, req: Schedule, who: User = Depends(auth.user)) -> dict[str, Any]:
        return checkcalls.set_schedule(
            station, channel, req.times, req.tz, req.weekdays, req.answer_within_ms,
            req.holidays, who,
        )  # fmt: skip

    @r.delete("/checkcalls/schedules/{channel}", **acts(Action.CHECKCALL_SCHEDULE))
    def delete_schedule(channel: str, who: User = Depends(auth.user)) -> dict[str, Any]:
        return {"channel": channel, "deleted": checkcalls.remove_schedule(station, channel, who)}

    @r.get("/checkcalls", **acts(Action.CHANNEL_READ))
    def list_calls(
        channel: str | None = Query(None, max_length=64),
        status: CallStatus | None = None,
        direction: Literal["incoming", "outgoing"] | None = None,
        limit: int = Query(200, ge=1, le=10_000),
        who: User = Depends(auth.user),
    ) -> list[dict[str, Any]]:
        return checkcalls.list_calls(station, who, channel, status, direction, limit)

    @r.post("/checkcalls/{channel}/call", **acts(Action.CHECKCALL_CALL))
    def call_now(
        channel: str, req: CallNow | None = None, who: User = Depends(auth.user)
    ) -> dict[str, Any]:
        within = (req or CallNow()).answer_within_ms
        return checkcalls.call_now(station, channel, within, who)

    @r.post("/checkcalls/{channel}/{call_id}/answer", **acts(Action.CHECKCALL_ANSWER))
    def answer(channel: str, call_id: str, who: User = Depends(auth.user)) -> dict[str, Any]:
        return checkcalls.answer(station, channel, call_id, who)

    # --- crises --------------------------------------------------------------------------------
    @r.get("/crises", **acts(Action.CHANNEL_READ))
    def list_crises(
        channel: str | None = Query(None, max_length=64),
        status: IncidentStatus | None = None,
        who: User = Depends(auth.user),
    ) -> list[dict[str, Any]]:
        return crises.list_incidents(station, who, channel, status)

    @r.post("/crises", **acts(Action.CRISIS_OPEN))
    def open_crisis(req: IncidentOpen, who: User = Depends(auth.user)) -> dict[str, Any]:
        return crises.open_incident(
            station, who, req.channel, req.title, req.severity, req.description, req.incident_id
        )

    @r.get("/crises/{incident_id}", **acts(Action.CHANNEL_READ))
    def get_crisis(
        incident_id: str,
        channel: str | None = Query(None, max_length=64),
        who: User = Depends(auth.user),
    ) -> dict[str, Any]:
        return crises.incident(station, who, incident_id, channel)

    @r.get("/crises/{incident_id}/timeline", **acts(Action.CHANNEL_READ))
    def crisis_timeline(
        incident_id: str,
        channel: str | None = Query(None, max_length=64),
        who: User = Depends(auth.user),
    ) -> dict[str, Any]:
        return crises.timeline(station, who, incident_id, channel)

    @r.post("/crises/{incident_id}/status", **acts(Action.CRISIS_UPDATE))
    def crisis_status(
        incident_id: str, req: IncidentMove, who: User = Depends(auth.user)
    ) -> dict[str, Any]:
        return crises.move(station, who, incident_id, req.status, req.note, req.channel)

    @r.post("/crises/{incident_id}/link", **acts(Action.CRISIS_UPDATE))
    def crisis_link(
        incident_id: str, req: IncidentLink, who: User = Depends(auth.user)
    ) -> dict[str, Any]:
        return crises.link(station, who, incident_id, req.ref, req.channel)

    return r
