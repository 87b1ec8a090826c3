"""Reading and finding in the operator API: a channel's history page by page, search over what
the caller may read, and alarms (list, acknowledge with a note). Rules live in
station/history.py, station/search.py and station/alarms.py."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import Field

from parley.api import offload
from parley.api.actions import acts
from parley.api.auth import Auth
from parley.api.operator import JSON, Object, Objects, Strict
from parley.domain.search import MAX_QUERY
from parley.station import history, search
from parley.station.alarms import MAX_ACK, MAX_LIST, MAX_NOTE, AlarmDesk
from parley.station.node import Station
from parley.station.roles import Action
from parley.station.users import User


class AlarmAck(Strict):
    ids: list[int] = Field(default_factory=list, max_length=MAX_ACK)
    note: str = Field(default="", max_length=MAX_NOTE)
    all_open: bool = False  # every open alarm the caller sees (of `kind`, if given)
    kind: str | None = Field(default=None, max_length=64)


class AlarmNote(Strict):
    note: str = Field(default="", max_length=MAX_NOTE)


def router(station: Station, auth: Auth) -> APIRouter:
    # The reads operators poll first: a request is tried against each route in turn (app/build.py).
    # Each route takes its user itself (see api/operator.py).
    r = APIRouter(prefix="/api/v1", tags=["reading"])
    alarms = AlarmDesk(station)

    @r.get("/channels/{channel}/history", response_model=Object, **acts(Action.CHANNEL_READ))
    async def channel_history(
        channel: str,
        before: int | None = Query(None, ge=1),
        after: int | None = Query(None, ge=0),
        date: str | None = Query(None, max_length=40),
        hash: str | None = Query(None, max_length=64),
        limit: int = Query(history.DEFAULT_PAGE, ge=1, le=history.MAX_PAGE),
        who: User = Depends(auth.user),
    ) -> Response:
        """A page of the channel's messages, oldest first, with the cursors of the pages before
        (`older`: pass as `before`) and after (`newer`: pass as `after`)."""
        at = history.parse_when(date) if date is not None else None
        page = await offload.run(
            functools.partial(
                history.page_answer, station, who, channel, before=before, after=after, at=at,
                message_hash=hash, limit=limit,
            )
        )  # fmt: skip
        return Response(page, media_type=JSON)  # see api/operator.py

    @r.get("/alarms", response_model=Objects, **acts(Action.ALARM_READ))
    async def list_alarms(
        all: bool = False,
        limit: int = Query(MAX_LIST, ge=1, le=MAX_LIST),
        who: User = Depends(auth.user),
    ) -> Response:
        """Open alarms (with `all`, also those resolved or acknowledged), newest first."""
        return Response(await offload.run(alarms.alarms_json, who, all, limit), media_type=JSON)

    @r.get("/search", **acts(Action.CHANNEL_READ))
    def find(
        q: str = Query(..., min_length=1, max_length=MAX_QUERY),
        channel: str | None = Query(None, max_length=64),
        before: int | None = Query(None, ge=1),
        limit: int = Query(50, ge=1, le=search.MAX_RESULTS),
        who: User = Depends(auth.user),
    ) -> dict[str, Any]:
        """Messages and notices the caller may read holding every word of `q`, newest first;
        `before` pages on."""
        return search.search(station, who, q, channel, before, limit)

    @r.post("/alarms/ack", **acts(Action.ALARM_CLEAR))
    def ack(req: AlarmAck, who: User = Depends(auth.user)) -> dict[str, Any]:
        """Acknowledge alarms by id, or every open one (of one kind), with a note."""
        done = alarms.ack(who, req.ids, req.note, every_open=req.all_open, kind=req.kind)
        return {"acknowledged": done}

    @r.post("/alarms/{alarm_id}/clear", **acts(Action.ALARM_CLEAR))
    def clear(
        alarm_id: int, req: AlarmNote | None = None, who: User = Depends(auth.user)
    ) -> dict[str, Any]:
        """Acknowledge one alarm (with an optional note)."""
        done = alarms.ack(who, [alarm_id], req.note if req else "")
        return {"id": alarm_id, "cleared": bool(done)}

    return r
