"""Crises: incident threads across the channels a user may see, each with its status history,
the envelopes linked to it, and a timeline picture (incident, messages, answers, link state).
Who may open, move or read an incident is station/crises.py's to decide (the role table)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from parley.domain import crisis
from parley.errors import Forbidden, ParleyError
from parley.station import crises
from parley.web import charts
from parley.web.console import Console
from parley.web.session import Viewer

SEVERITIES = tuple(s.value for s in crisis.Severity)
STATUSES = tuple(s.value for s in crisis.IncidentStatus)


def routes(c: Console) -> APIRouter:
    r = APIRouter()
    st = c.station

    def listing(request: Request, v: Viewer, status: int = 200, **extra: Any) -> Response:
        chans = [(s.channel, s.title) for s in st.channel_states(v.user) if s.is_open]
        return c.page(
            request, "crises.html", v, status=status, incidents=crises.list_incidents(st, v.user),
            channels=chans, severities=SEVERITIES, **({"errors": {}, "form": {}} | extra),
        )  # fmt: skip

    @r.get("/crises")
    def crises_page(request: Request, v: Viewer = Depends(c.viewer)) -> Response:
        return listing(request, v)

    @r.post("/crises")
    def open_crisis(
        request: Request,
        v: Viewer = Depends(c.poster),
        channel: str = Form(""),
        title: str = Form(""),
        severity: str = Form("medium"),
        description: str = Form(""),
    ) -> Response:
        try:
            inc = crises.open_incident(st, v.user, channel, title.strip(), severity, description)
        except Forbidden:
            raise  # a role or a back channel: the error page, not a form error
        except ParleyError as exc:
            form = {"title": title, "description": description, "severity": severity}
            return listing(request, v, 422, errors={"title": exc.message}, form=form)
        return c.back(f"/crises/{inc['incident_id']}?channel={channel}", "crisis.opened")

    @r.get("/crises/{incident_id}")
    def incident(
        incident_id: str, request: Request, channel: str | None = None,
        v: Viewer = Depends(c.viewer),
    ) -> Response:  # fmt: skip
        tl = crises.timeline(st, v.user, incident_id, channel)
        inc = tl["incident"]
        items = [(i["ts"], i["kind"], i["summary"]) for i in tl["items"]]
        statuses = [(h["ts"], h["status"]) for h in inc["history"]]
        statuses.insert(0, (inc["opened_ms"], "open"))
        chart = charts.timeline_chart(items, statuses, st.clock(), _hhmm)
        return c.page(
            request, "crisis.html", v, inc=inc, items=tl["items"], chart=chart,
            statuses=STATUSES, lanes=charts.LANES,
        )  # fmt: skip

    @r.post("/crises/{incident_id}/status")
    def move(
        incident_id: str,
        v: Viewer = Depends(c.poster),
        channel: str = Form(...),
        status: str = Form(...),
        note: str = Form(""),
    ) -> Response:
        crises.move(st, v.user, incident_id, status, note, channel)
        return c.back(f"/crises/{incident_id}?channel={channel}", "crisis.moved")

    return r


def _hhmm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M UTC")
