"""Operator API for link health, check calls and crises (station/vigil.py, checkcalls.py,
crises.py). Everything a channel holds is shown only to users who may see that channel."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from parley.api.auth import Auth
from parley.domain import checkcalls as cc
from parley.domain import crisis
from parley.station import checkcalls, crises, vigil
from parley.station.node import Station
from parley.station.users import User
from parley.store import vigil as db

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
    operator = auth.role("operator")
    admin = auth.role("admin")

    # --- links ---------------------------------------------------------------------------------
    @r.get("/links")
    def links() -> list[dict[str, Any]]:
        """Per peer: state, RTT, last contact, and why (ok, degraded, silent, down)."""
        return vigil.links(station)

    @r.get("/links/events")
    def link_events(
        peer: str | None = Query(None, max_length=64),
        since: int = Query(0, ge=0),
        limit: int = Query(200, ge=1, le=10_000),
    ) -> list[dict[str, Any]]:
        rows = db.link_events(station.store, [peer] if peer else None, since, limit)
        return [e.__dict__ | {"name": station.peer_name(e.peer)} for e in rows]

    # --- check calls ---------------------------------------------------------------------------
    @r.get("/checkcalls/schedules")
    def schedules(who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        visible = {s.channel for s in station.channel_states(who)}
        now = station.clock()
        return [
            checkcalls.schedule_json(s, now)
            for s in db.schedules(station.store)
            if s.channel in visible
        ]

    @r.put("/checkcalls/schedules/{channel}")
    def put_schedule(channel: str, req: Schedule, who: User = Depends(admin)) -> dict[str, Any]:
        station.guard(channel, who)
        row = checkcalls.set_schedule(
            station, channel, req.times, req.tz, req.weekdays, req.answer_within_ms,
            req.holidays, who.name,
        )  # fmt: skip
        return checkcalls.schedule_json(row, station.clock())

    @r.delete("/checkcalls/schedules/{channel}")
    def delete_schedule(channel: str, who: User = Depends(admin)) -> dict[str, Any]:
        station.guard(channel, who)
        return {
            "channel": channel,
            "deleted": checkcalls.remove_schedule(station, channel, who.name),
        }

    @r.get("/checkcalls")
    def list_calls(
        channel: str | None = Query(None, max_length=64),
        status: CallStatus | None = None,
        direction: Literal["incoming", "outgoing"] | None = None,
        limit: int = Query(200, ge=1, le=10_000),
        who: User = Depends(auth.user),
    ) -> list[dict[str, Any]]:
        return checkcalls.list_calls(station, who, channel, status, direction, limit)

    @r.post("/checkcalls/{channel}/call")
    def call_now(
        channel: str, req: CallNow | None = None, who: User = Depends(operator)
    ) -> dict[str, Any]:
        station.guard(channel, who)
        within = (req or CallNow()).answer_within_ms
        row = checkcalls.call_now(station, channel, within, who.name)
        return _call(station, row)

    @r.post("/checkcalls/{channel}/{call_id}/answer")
    def answer(channel: str, call_id: str, who: User = Depends(operator)) -> dict[str, Any]:
        row = checkcalls.answer(station, channel, call_id, who)
        return _call(station, row)

    # --- crises --------------------------------------------------------------------------------
    @r.get("/crises")
    def list_crises(
        channel: str | None = Query(None, max_length=64),
        status: IncidentStatus | None = None,
        who: User = Depends(auth.user),
    ) -> list[dict[str, Any]]:
        return crises.list_incidents(station, who, channel, status)

    @r.post("/crises")
    def open_crisis(req: IncidentOpen, who: User = Depends(operator)) -> dict[str, Any]:
        return crises.open_incident(
            station, who, req.channel, req.title, req.severity, req.description, req.incident_id
        )

    @r.get("/crises/{incident_id}")
    def get_crisis(
        incident_id: str,
        channel: str | None = Query(None, max_length=64),
        who: User = Depends(auth.user),
    ) -> dict[str, Any]:
        th, inc = crises.find(station, who, incident_id, channel)
        return crises.incident_json(station, th, inc)

    @r.get("/crises/{incident_id}/timeline")
    def crisis_timeline(
        incident_id: str,
        channel: str | None = Query(None, max_length=64),
        who: User = Depends(auth.user),
    ) -> dict[str, Any]:
        return crises.timeline(station, who, incident_id, channel)

    @r.post("/crises/{incident_id}/status")
    def crisis_status(
        incident_id: str, req: IncidentMove, who: User = Depends(operator)
    ) -> dict[str, Any]:
        return crises.move(station, who, incident_id, req.status, req.note, req.channel)

    @r.post("/crises/{incident_id}/link")
    def crisis_link(
        incident_id: str, req: IncidentLink, who: User = Depends(operator)
    ) -> dict[str, Any]:
        return crises.link(station, who, incident_id, req.ref, req.channel)

    return r


def _call(station: Station, row: db.CallRow) -> dict[str, Any]:
    return checkcalls.call_json(station, row, db.answers_of(station.store, row), station.clock())
