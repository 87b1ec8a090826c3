"""Talks about talks on one channel: each negotiation's versions and history (what every counter
changed), the moves this station may make, and the road map as a board of steps by status.

Everything shown is the transcript's fold (station/talks.py); every move is one signed record,
refused before sealing if the fold would not accept it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from parley.domain import roadmap, talks
from parley.errors import Code, LocalError, ParleyError
from parley.protocol import crypto
from parley.protocol.encoding import b64e
from parley.station import talks as feature
from parley.station.node import Station
from parley.web.console import Console
from parley.web.session import Viewer

BOARD = ("proposed", "agreed", "in_progress", "done", "verified", "disputed")
TERMS_FIELDS = ("dates", "venues", "table", "seating", "delegation", "agenda", "preconditions")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def terms_from_form(raw: dict[str, str]) -> talks.MeetingTerms:
    """Meeting terms as typed in the console: one date option per line ("start" or
    "start / end"), one venue or agenda item or precondition per line; no precondition
    lines means "without preconditions", said explicitly."""
    dates = []
    for line in _lines(raw.get("dates", "")):
        start, _, end = (p.strip() for p in line.partition("/"))
        dates.append({"start": start, "end": end} if end else {"start": start})
    size = raw.get("delegation", "").strip()
    items = _lines(raw.get("preconditions", ""))
    return talks.terms_from_json({
        "date_options": dates,
        "venue_options": _lines(raw.get("venues", "")),
        "format": {
            "table": raw.get("table", "").strip(), "seating": raw.get("seating", "").strip(),
        },
        "delegation_size": {"max": int(size) if size.isdigit() else 0},
        "agenda": _lines(raw.get("agenda", "")),
        "preconditions": {"items": items} if items else {"none": True},
    })  # fmt: skip


def terms_to_form(t: talks.MeetingTerms) -> dict[str, str]:
    j = t.to_json()
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


def _view(st: Station, channel: str) -> dict[str, Any]:
    f = feature.negotiations(st, channel)
    m = feature.road_map(st, channel)
    me = st.id
    negs = []
    for n in reversed(list(f.state.negotiations.values())):
        versions = []
        for v in n.versions.values():
            versions.append({
                "v": v, "terms": v.terms.to_json(), "author": st.peer_name(v.author),
                "accepted_by": [st.peer_name(p) for p in sorted(v.acceptances)],
                "awaiting": [st.peer_name(p) for p in sorted(f.state.parties - set(v.acceptances))],
                "can_accept": v.status == "open" and me in f.state.parties
                and me not in v.acceptances,
                "can_withdraw": v.status == "open" and v.author == me,
                "form": terms_to_form(v.terms),
            })  # fmt: skip
        log = [
            {"e": e, "author": st.peer_name(e.author),
             "changes": [(c.path, c.before, c.after) for c in e.changes]}
            for e in n.log
        ]  # fmt: skip
        negs.append({"n": n, "versions": versions, "log": log})
    board: dict[str, list[dict[str, Any]]] = {s: [] for s in BOARD}
    unlocked = set(roadmap.unlocked(m.state))
    for step in m.state.steps.values():
        board[step.status].append({
            "s": step, "owner": st.peer_name(step.owner), "unlocked": step.step_id in unlocked,
            "unmet": [f"{c.after_step}: {c.state}" for c in roadmap.unmet(m.state, step.step_id)],
            "can_agree": step.status == "proposed" and st.id in m.state.parties
            and st.id not in step.signed,
            "history": [(e.status, st.peer_name(e.by), e.ts_ms, e.note) for e in step.history],
        })  # fmt: skip
    return {
        "negotiations": negs, "board": board, "parties": sorted(f.state.parties),
        "party_names": {p: st.peer_name(p) for p in f.state.parties},
        "ignored": [(i.record.type, st.peer_name(i.record.author), i.error.message)
                    for i in (*f.ignored, *m.ignored)],
    }  # fmt: skip


def routes(c: Console) -> APIRouter:
    r = APIRouter()
    st = c.station
    duty = c.role("operator", "representative", "facilitator")

    def page(
        request: Request, v: Viewer, channel: str, status: int = 200,
        errors: dict[str, str] | None = None, draft: dict[str, str] | None = None,
    ) -> Response:  # fmt: skip
        state = st.guard(channel, v.user)
        return c.page(
            request, "talks.html", v, status=status, ch=state, errors=errors or {},
            draft=draft or {}, **_view(st, channel),
        )  # fmt: skip

    def send(channel: str, body: dict[str, Any], v: Viewer) -> None:
        st.guard(channel, v.user)
        st.send(channel, body, "ROUTINE", "", v.user.name)

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
        duty(v)
        action = raw.get("action", "")
        nid = raw.get("negotiation_id", "")[:64]
        version = raw.get("version", "")[:64]
        try:
            if action in ("propose", "counter"):
                terms = terms_from_form(raw)
                if action == "propose":
                    body = talks.propose_body(nid or b64e(crypto.random_bytes(9)), terms)
                else:
                    body = talks.counter_body(nid, version, terms)
            elif action == "accept":
                body = talks.accept_body(nid, version)
            elif action == "withdraw":
                body = talks.withdraw_body(nid, version)
            else:
                raise LocalError(Code.INVALID_REQUEST, f"unknown move {action!r}")
            send(channel, body, v)
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
        duty(v)
        action, sid = raw.get("action", ""), raw.get("step_id", "").strip()[:64]
        try:
            if action == "add":
                after = raw.get("after", "").strip()
                conds = (roadmap.Condition(after_step=after, state="done"),) if after else ()
                body = roadmap.add_step_body(
                    sid or b64e(crypto.random_bytes(6)), raw.get("owner", ""),
                    raw.get("description", "").strip(), conds,
                )  # fmt: skip
            elif action == "agree":
                body = roadmap.agree_body(sid)
            elif action in roadmap.UPDATE_STATUSES:
                body = roadmap.update_body(sid, action, raw.get("note", "").strip() or None)
            else:
                raise LocalError(Code.INVALID_REQUEST, f"unknown move {action!r}")
            send(channel, body, v)
        except ParleyError as exc:
            return page(request, v, channel, 422, {"step": exc.message}, raw)
        return c.back(f"/channels/{channel}/talks", "talks.done")

    return r
