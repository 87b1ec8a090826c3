"""Talks about talks on one channel: each negotiation's versions and history (what every counter
changed), the moves this station may make, and the road map as a board of steps by status.

Everything shown and every move goes through the station's `TalksDesk` (station/talks_desk.py),
which checks the user's role and channel; this page only reads forms and renders. Buttons are
shown for the moves the user's roles allow (`may`), but the desk decides. Every move is one
signed record, refused before sealing if the transcript's fold would not accept it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from parley.domain.roadmap import UPDATE_STATUSES
from parley.errors import Code, Forbidden, LocalError, NotFound, ParleyError
from parley.station.talks_desk import desk
from parley.web.console import Console
from parley.web.session import Viewer

BOARD = ("proposed", "agreed", "in_progress", "done", "verified", "disputed")
TERMS_FIELDS = ("dates", "venues", "table", "seating", "delegation", "agenda", "preconditions")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def terms_from_form(raw: dict[str, str]) -> dict[str, Any]:
    """Meeting terms (the API's `terms` object) as typed in the console: one date option per
    line ("start" or "start / end"), one venue or agenda item or precondition per line; no
    precondition lines means "without preconditions", said explicitly."""
    dates = []
    for line in _lines(raw.get("dates", "")):
        start, _, end = (p.strip() for p in line.partition("/"))
        dates.append({"start": start, "end": end} if end else {"start": start})
    size = raw.get("delegation", "").strip()
    items = _lines(raw.get("preconditions", ""))
    return {
        "date_options": dates,
        "venue_options": _lines(raw.get("venues", "")),
        "format": {
            "table": raw.get("table", "").strip(), "seating": raw.get("seating", "").strip(),
        },
        "delegation_size": {"max": int(size) if size.isdigit() else 0},
        "agenda": _lines(raw.get("agenda", "")),
        "preconditions": {"items": items} if items else {"none": True},
    }  # fmt: skip


def terms_to_form(j: dict[str, Any]) -> dict[str, str]:
    return {
        "dates": "\n".join(
            d["start"] + (f" / {d['end']}" if d.get("end") else "") for d in j["date_options"]
        ),
        "venues": "\n".join(j["venue_options"]),
        "table": j["format"]["table"],
        "seating": j["format"]["seating"],
        "delegation": str(j["delegation_size"]["max"]),
        "agenda": "\n".join(j["agenda"]),
        "preconditions": "\n".join(j["preconditions"].get("items", [])),
    }


def _names(people: list[dict[str, Any]]) -> list[str]:
    return [p["name"] for p in people]


def _view(board: dict[str, Any]) -> dict[str, Any]:
    """The desk's board, shaped for talks.html."""
    negs = []
    for n in board["negotiations"]:
        versions = [
            {
                "v": ver, "terms": ver["terms"], "author": ver["author"]["name"],
                "accepted_by": _names(ver["acceptances"]), "awaiting": _names(ver["awaiting"]),
                "can_accept": ver["can_accept"], "can_withdraw": ver["can_withdraw"],
                "form": terms_to_form(ver["terms"]),
            }
            for ver in n["versions"]
        ]  # fmt: skip
        log = [
            {"e": e, "author": e["author"]["name"],
             "changes": [(c["path"], c["before"], c["after"]) for c in e["changes"]]}
            for e in n["history"]
        ]  # fmt: skip
        negs.append({"n": n, "versions": versions, "log": log})
    rm = board["roadmap"]
    columns: dict[str, list[dict[str, Any]]] = {s: [] for s in BOARD}
    for step in rm["steps"]:
        columns[step["status"]].append({
            "s": step, "owner": step["owner"]["name"], "unlocked": step["unlocked"],
            "unmet": [f"{c['after_step']}: {c['state']}" for c in step["conditions"]
                      if not c["holds"]],
            "can_agree": step["can_agree"],
            "history": [(e["status"], e["by"]["name"], e["ts"], e["note"])
                        for e in step["history"]],
        })  # fmt: skip
    return {
        "negotiations": negs, "board": columns,
        "parties": [p["station"] for p in board["parties"]],
        "party_names": {p["station"]: p["name"] for p in board["parties"]},
        "ignored": [(i["type"], i["author"]["name"], i["reason"])
                    for i in (*board["ignored"], *rm["ignored"])],
        "may": board["may"],
    }  # fmt: skip


def routes(c: Console) -> APIRouter:
    r = APIRouter()
    talks = desk(c.station)

    def page(
        request: Request, v: Viewer, channel: str, status: int = 200,
        errors: dict[str, str] | None = None, draft: dict[str, str] | None = None,
    ) -> Response:  # fmt: skip
        board = talks.board(v.user, channel)
        ch = {"channel": channel, "title": board["title"]}
        return c.page(
            request, "talks.html", v, status=status, ch=ch, errors=errors or {},
            draft=draft or {}, **_view(board),
        )  # fmt: skip

    @r.get("/channels/{channel}/talks")
    def talks_page(channel: str, request: Request, v: Viewer = Depends(c.viewer)) -> Response:
        return page(request, v, channel)

    @r.post("/channels/{channel}/talks")
    def move(
        channel: str,
        request: Request,
        v: Viewer = Depends(c.poster),
        raw: dict[str, str] = Depends(c.form),
    ) -> Response:
        action = raw.get("action", "")
        nid = raw.get("negotiation_id", "")[:64]
        version = raw.get("version", "")[:64]
        who = v.user
        try:
            if action == "propose":
                talks.propose(who, channel, terms_from_form(raw), nid or None)
            elif action == "counter":
                talks.counter(who, channel, nid, version, terms_from_form(raw))
            elif action in ("accept", "withdraw"):
                talks.version_move(who, channel, nid, action, version)
            else:
                raise LocalError(Code.INVALID_REQUEST, f"unknown move {action!r}")
        except (Forbidden, NotFound):
            raise  # not a mistake in the form: the error page says why
        except ParleyError as exc:
            key = f"{action}:{version}" if action == "counter" else action
            return page(request, v, channel, 422, {key: exc.message}, raw)
        return c.back(
            f"/channels/{channel}/talks",
            "talks.propose_ok" if action == "propose" else "talks.done",
        )

    @r.post("/channels/{channel}/roadmap")
    def step(
        channel: str,
        request: Request,
        v: Viewer = Depends(c.poster),
        raw: dict[str, str] = Depends(c.form),
    ) -> Response:
        action, sid = raw.get("action", ""), raw.get("step_id", "").strip()[:64]
        who = v.user
        try:
            if action == "add":
                after = raw.get("after", "").strip()
                talks.add_step(
                    who, channel, raw.get("owner", ""), raw.get("description", "").strip(),
                    [{"after_step": after, "state": "done"}] if after else [], sid or None,
                )  # fmt: skip
            elif action == "agree":
                talks.agree_step(who, channel, sid)
            elif action in UPDATE_STATUSES:
                talks.update_step(who, channel, sid, action, raw.get("note", "").strip() or None)
            else:
                raise LocalError(Code.INVALID_REQUEST, f"unknown move {action!r}")
        except (Forbidden, NotFound):
            raise
        except ParleyError as exc:
            return page(request, v, channel, 422, {"step": exc.message}, raw)
        return c.back(f"/channels/{channel}/talks", "talks.done")

    return r
