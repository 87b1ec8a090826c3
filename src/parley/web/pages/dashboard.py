"""The dashboard: links with their health over time, open alarms, deadlines counting down and
check calls waiting for an answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from parley.station import checkcalls, vigil
from parley.station.overview import StationDesk
from parley.web import charts
from parley.web.console import PREFIX, Console
from parley.web.pages import notices
from parley.web.session import Viewer


def _links(c: Console, v: Viewer) -> list[dict[str, Any]]:
    st = c.station
    now = st.clock()
    queues = {p["station"]: p for p in StationDesk(st).status(v.user)["peers"]}
    start = now - charts.WINDOW_MS
    out = []
    for link in vigil.links(st, v.user):
        peer = link["station"]
        # Recorded state changes in the window; before the first, the state it changed from.
        events = vigil.link_events(st, v.user, peer, start, 10_000)
        initial = events[0]["old"] if events else link["state"]
        changes = [(0, initial)] + [(e["at_ms"], e["new"]) for e in events]
        chart = charts.link_chart(c.links.series(peer), now, changes)
        q = queues.get(peer, {})
        out.append(
            link | {"chart": chart, "pending": q.get("pending", 0),
                    "delivered": q.get("delivered", 0)}
        )  # fmt: skip
    return out


def _live(c: Console, v: Viewer) -> dict[str, Any]:
    st = c.station
    deadlines = [
        d | {"href": f"{PREFIX}/channels/{d['channel']}"} for d in notices.deadlines_for(st, v)
    ]
    calls = checkcalls.list_calls(st, v.user, status="pending", direction="incoming")
    titles = {s.channel: s.title for s in st.channel_states(v.user)}
    return {
        "links": _links(c, v), "alarms": StationDesk(st).alarms(v.user), "deadlines": deadlines,
        "calls": [cl | {"title": titles.get(cl["channel"], "")} for cl in calls],
    }  # fmt: skip


def routes(c: Console) -> APIRouter:
    r = APIRouter()
    st = c.station

    @r.get("/")
    def dashboard(request: Request, v: Viewer = Depends(c.viewer)) -> Response:
        return c.page(request, "dashboard.html", v, **_live(c, v))

    @r.get("/live/dashboard")
    def live(v: Viewer = Depends(c.viewer)) -> Response:
        return c.fragment("_dashboard_live.html", v, **_live(c, v))

    @r.post("/alarms/{alarm_id}/clear")
    def clear(alarm_id: int, v: Viewer = Depends(c.poster)) -> Response:
        StationDesk(st).clear_alarm(v.user, alarm_id)
        return c.back("/")

    @r.post("/checkcalls/{channel}/{call_id}/answer")
    def answer(
        channel: str, call_id: str, v: Viewer = Depends(c.poster), back: str = Form("")
    ) -> Response:
        """Answered from the dashboard, or from the channel page (back=channel)."""
        checkcalls.answer(st, channel, call_id, v.user)
        return c.back(f"/channels/{channel}" if back == "channel" else "/", "checkcall.answered")

    return r
