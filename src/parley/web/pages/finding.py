"""Search (over what the viewer may read; results link to their place in the channel's history)
and alarms (open ones to acknowledge with a note, one, several or all; and the record of those
resolved or acknowledged: who, when, why). The rules are the station's (station/search.py,
station/alarms.py); this page renders them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from parley.errors import Code, Forbidden, LocalError, NotFound, ParleyError
from parley.station import search
from parley.station.alarms import MAX_NOTE, AlarmDesk
from parley.station.channels import ChannelDesk
from parley.web.console import Console
from parley.web.session import Viewer

HISTORY_SHOWN = 200  # alarms resolved or acknowledged, newest first


def routes(c: Console) -> APIRouter:
    r = APIRouter()
    st = c.station

    @r.get("/search")
    def find(
        request: Request,
        v: Viewer = Depends(c.viewer),
        q: str = Query("", max_length=400),
        channel: str = Query("", max_length=64),
        before: int | None = Query(None, ge=1),
    ) -> Response:
        titles = {s.channel: s.title for s in ChannelDesk(st).states(v.user)}
        found: dict[str, Any] = {"results": [], "before": None}
        error = ""
        if q.strip():
            try:
                found = search.search(st, v.user, q, channel or None, before, 50)
            except Forbidden:  # a back channel the viewer is not named on: as if it did not exist
                raise NotFound(Code.NOT_FOUND, f"no channel {channel}") from None
            except LocalError as exc:
                error = exc.message
        return c.page(
            request, "search.html", v, q=q, channel=channel, titles=titles, error=error,
            results=found["results"], more=found["before"],
        )  # fmt: skip

    @r.get("/alarms")
    def alarms_page(request: Request, v: Viewer = Depends(c.viewer)) -> Response:
        return c.page(request, "alarms.html", v, error="", note="", **_alarms(c, v))

    @r.post("/alarms/ack")
    def ack(
        request: Request,
        v: Viewer = Depends(c.poster),
        ids: list[int] = Form(default=[]),
        note: str = Form(""),
        every: str = Form(""),
    ) -> Response:
        error = ""
        if len(note) > MAX_NOTE:
            error = v.words("alarm.note_long", n=MAX_NOTE)
        elif not ids and every != "yes":
            error = v.words("alarm.none_chosen")
        else:
            try:
                AlarmDesk(st).ack(v.user, ids, note, every_open=every == "yes")
                return c.back("/alarms", "alarm.acked")
            except (Forbidden, NotFound):
                raise
            except ParleyError as exc:
                error = exc.message
        return c.page(
            request, "alarms.html", v, status=422, error=error, note=note[:MAX_NOTE],
            **_alarms(c, v),
        )  # fmt: skip

    return r


def _alarms(c: Console, v: Viewer) -> dict[str, Any]:
    desk = AlarmDesk(c.station)
    every = desk.alarms(v.user, include_cleared=True)
    return {
        "open": [a for a in every if a.cleared is None],
        "closed": [a for a in every if a.cleared is not None][:HISTORY_SHOWN],
    }
