"""Admin: check-call schedules of the channels an admin may see (list, set or change, remove).

The station-side functions are the API's (station/checkcalls.py), and they decide who may
read or change a schedule (`checkcall.schedule` in the role table); the form only splits its
fields and checks each one with the domain's own schedule rules, so that an error stands
beside the field it is about, in the reader's language.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from parley.domain import checkcalls as cc
from parley.errors import Code, Forbidden, LocalError, NotFound, ParleyError
from parley.station import checkcalls
from parley.web.console import Console
from parley.web.session import Viewer

MAX_FIELD = 2000  # characters of one text field; a schedule needs far fewer
MAX_WITHIN_MIN = cc.MAX_ANSWER_WITHIN_MS // 60_000
DEFAULT_FORM = {
    "times": "09:00 16:00",
    "tz": "UTC",
    "weekdays": [str(d) for d in checkcalls.WORKING_DAYS],
    "within": "10",
    "holidays": "",
}


@cache
def zones() -> list[str]:
    """IANA names offered while typing a time zone (any name ZoneInfo knows is accepted)."""
    return sorted(available_timezones())


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", text.strip()[:MAX_FIELD]) if w]


def local_time(ms: int, tz: str) -> str:
    """The instant as wall-clock time in the schedule's own zone: what people agreed on."""
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def answer_minutes(text: str) -> int | None:
    """An answer window in whole minutes (1 to 24 h), or None."""
    t = text.strip()
    n = int(t) if t.isdigit() and len(t) < 6 else 0
    return n if 1 <= n <= MAX_WITHIN_MIN else None


def check_fields(
    v: Viewer, times: str, tz: str, weekdays: list[str], within: str, holidays: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """Per-field errors, and the parsed values when there are none.

    Each field goes through the domain's CheckCallSchedule on its own (the others fixed to
    values known to be good), so the rules live in one place and the error names its field."""
    errors: dict[str, str] = {}
    times_list, zone = _words(times), tz.strip()
    try:
        cc.CheckCallSchedule(times_list, "UTC", {0}, 1)
    except LocalError:
        errors["times"] = v.words("sched.bad_times")
    try:
        cc.CheckCallSchedule(["00:00"], zone, {0}, 1)
    except LocalError:
        errors["tz"] = v.words("sched.bad_tz", tz=zone[:64] or "—")
    days = sorted({int(d) for d in weekdays if d.isdigit() and int(d) <= 6})
    if not days:
        errors["weekdays"] = v.words("sched.bad_weekdays")
    minutes = answer_minutes(within)
    if minutes is None:
        errors["within"] = v.words("sched.bad_within", max=MAX_WITHIN_MIN)
    days_off = _words(holidays)
    try:
        for d in days_off:
            date.fromisoformat(d)
    except ValueError:
        errors["holidays"] = v.words("sched.bad_holidays")
    parsed = {
        "times": times_list, "tz": zone, "weekdays": days,
        "answer_within_ms": (minutes or 0) * 60_000, "holidays": days_off,
    }  # fmt: skip
    return errors, parsed


def routes(c: Console) -> APIRouter:
    r = APIRouter()
    st = c.station

    def listing(v: Viewer) -> dict[str, Any]:
        # As the API: a back channel's schedule only for its representatives.
        states = {s.channel: s for s in st.channel_states(v.user)}
        rows = []
        for s in checkcalls.schedules(st, v.user):
            if s["channel"] in states:
                nxt = s["next_due_ms"]
                rows.append(
                    s | {"title": states[s["channel"]].title,
                         "local_next": local_time(nxt, s["tz"]) if nxt else ""}
                )  # fmt: skip
        have = {x["channel"] for x in rows}
        settable = [(s.channel, s.title) for s in checkcalls.settable(st, v.user)]
        without = [title for ch, title in settable if ch not in have]
        return {"schedules": rows, "channels": settable, "without": without, "zones": zones()}

    def page(
        request: Request, v: Viewer, status: int = 200, errors: dict[str, str] | None = None,
        form: dict[str, Any] | None = None,
    ) -> Response:  # fmt: skip
        return c.page(
            request, "schedules.html", v, status=status, errors=errors or {},
            form=form or DEFAULT_FORM, max_within=MAX_WITHIN_MIN, **listing(v),
        )  # fmt: skip

    @r.get("/admin/schedules")
    def schedules_page(
        request: Request, channel: str = "", v: Viewer = Depends(c.viewer)
    ) -> Response:
        """With ?channel=, the form starts from that channel's schedule (to change it)."""
        # The page is the schedule editor: it opens for those the table lets set schedules.
        checkcalls.settable(st, v.user)
        form: dict[str, Any] = DEFAULT_FORM | {"channel": channel}
        try:
            row = checkcalls.schedule_of(st, v.user, channel) if channel else None
        except (Forbidden, NotFound):
            row = None  # a back channel the admin is not named on: as if it did not exist
        if row is not None:
            form = {
                "channel": channel, "times": " ".join(row["times"]), "tz": row["tz"],
                "weekdays": [str(d) for d in row["weekdays"]],
                "within": str(row["answer_within_ms"] // 60_000),
                "holidays": " ".join(row["holidays"]),
            }  # fmt: skip
        return page(request, v, form=form)

    @r.post("/admin/schedules")
    def set_schedule(
        request: Request,
        v: Viewer = Depends(c.poster),
        channel: str = Form(""),
        times: str = Form(""),
        tz: str = Form(""),
        weekdays: list[str] = Form([]),
        within: str = Form(""),
        holidays: str = Form(""),
    ) -> Response:
        visible = {s.channel for s in checkcalls.settable(st, v.user)}  # the role, first
        errors, parsed = check_fields(v, times, tz, weekdays, within, holidays)
        if channel not in visible:
            # A back channel the admin is not named on answers like one that does not exist.
            errors["channel"] = v.words("sched.bad_channel")
        if not errors:
            try:
                checkcalls.set_schedule(st, channel, **parsed, who=v.user)
                return c.back("/admin/schedules", "sched.saved")
            except ParleyError as exc:
                errors["channel"] = exc.message
        form = {
            "channel": channel, "times": times[:MAX_FIELD], "tz": tz[:MAX_FIELD],
            "weekdays": weekdays, "within": within[:16], "holidays": holidays[:MAX_FIELD],
        }  # fmt: skip
        return page(request, v, 422, errors, form)

    @r.post("/admin/schedules/{channel}/remove")
    def remove(channel: str, v: Viewer = Depends(c.poster)) -> Response:
        checkcalls.settable(st, v.user)  # the role, first
        if channel not in {s.channel for s in st.channel_states(v.user)}:
            # A back channel the admin is not named on answers like one that does not exist.
            raise NotFound(Code.NOT_FOUND, f"no channel {channel}")
        checkcalls.remove_schedule(st, channel, v.user)
        return c.back("/admin/schedules", "sched.removed")

    return r
