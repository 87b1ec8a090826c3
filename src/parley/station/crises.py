"""Crises at a station: incident threads folded from the transcript, and their timelines.

Rules (the pure ones are in domain/crisis.py):
- An incident lives on one channel; its id is unique on that channel. The thread is folded from
  the channel's `crisis.*` envelopes in stored order (a causal order) each time it is read, so
  there is no second copy of it to drift from the transcript. A peer's envelope the book refuses
  (an illegal move, an unknown incident) stays in the transcript and changes nothing.
- A local open, move or link is checked against the folded book before it is sealed: an illegal
  move is a Conflict and nothing is sent. A link must name an envelope of the same channel that
  this station holds.
- The timeline holds the incident's own entries, the envelopes linked to it and the
  acknowledgements of those, and the link-state changes (store/vigil.py) of the links to the
  channel's other members between the opening and the last closing.
- A peer's opening or status move is an alarm here (an observer), so the duty operator sees it.
- Every function an operator reaches takes the acting user and checks the role table first:
  opening needs `crisis.open`, a status move or a link `crisis.update`, reading
  `channel.read`; a back channel's incidents exist only for its named representatives.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from parley.domain import checkcalls as cc
from parley.domain import crisis
from parley.domain.deadlines import KIND_ACK
from parley.domain.liveness import LinkChange, LinkState
from parley.errors import Code, Conflict, LocalError, NotFound, ParleyError
from parley.protocol import crypto
from parley.protocol.encoding import b64d, b64e
from parley.station.node import Accepted, Station
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.store import vigil as db
from parley.store.base import EnvelopeRow

KINDS = [crisis.KIND_OPEN, crisis.KIND_STATUS, crisis.KIND_LINK]
# How urgent the envelope is, and the alarm a peer's opening raises here.
PRECEDENCE = {"low": "PRIORITY", "medium": "PRIORITY", "high": "IMMEDIATE", "critical": "FLASH"}
ALARM = {"low": "info", "medium": "warning", "high": "high", "critical": "critical"}
SUMMARY_CHARS = 200


@dataclass
class Thread:
    """The incidents of one channel and who sent each envelope that shaped them."""

    channel: str
    book: crisis.IncidentBook = field(default_factory=crisis.IncidentBook)
    senders: dict[str, str] = field(default_factory=dict)  # envelope hash → sender


def fold(station: Station, channel: str | None = None) -> dict[str, Thread]:
    """Every channel's thread (or one channel's), from the transcript."""
    by_channel: dict[str, list[tuple[EnvelopeRow, dict[str, Any]]]] = {}
    stored = db.typed_events(station.store, KINDS, channel)
    for env, body in station.integrity.verified_bodies(stored):
        by_channel.setdefault(env.channel, []).append((env, body))
    threads: dict[str, Thread] = {}
    for ch, rows in by_channel.items():
        th = threads[ch] = Thread(ch)
        # Causal order, not stored order: members store crossing moves in different orders,
        # and every member must end with the same status.
        for ev in station.causal(rows):
            th.senders[ev.hash] = ev.sender
            fields = {k: v for k, v in ev.body.items() if k != "type"}
            # One the book refuses (module rules) stays in the transcript as evidence.
            with contextlib.suppress(ParleyError):
                th.book.apply(str(ev.body["type"]), fields, ev.ts, ev.hash)
    return threads


def _ref(env: EnvelopeRow) -> str:
    return b64e(env.hash)


def incident_json(station: Station, th: Thread, inc: crisis.Incident) -> dict[str, Any]:
    opener = th.senders.get(inc.opened_ref, "")
    return {
        "incident_id": inc.incident_id,
        "channel": th.channel,
        "title": inc.title,
        "severity": str(inc.severity),
        "description": inc.description,
        "status": str(inc.status),
        "opened_ms": inc.opened_ms,
        "opened_by": opener,
        "opened_by_name": station.peer_name(opener) if opener else "",
        "opened_ref": inc.opened_ref,
        "updated_ms": inc.history[-1].ts_ms if inc.history else inc.opened_ms,
        "history": [
            {
                "ts": e.ts_ms,
                "status": str(e.status),
                "note": e.note,
                "ref": e.ref,
                "by": th.senders.get(e.ref, ""),
                "by_name": station.peer_name(th.senders.get(e.ref, "")),
            }
            for e in inc.history
        ],
        "links": [{"ref": r, "ts": ts} for r, ts in sorted(inc.links.items(), key=lambda x: x[1])],
    }


def list_incidents(
    station: Station, user: User, channel: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    authorize(user, Action.CHANNEL_READ)
    if channel is not None:
        station.guard(channel, user)
    visible = {s.channel for s in station.channel_states(user)}
    out = []
    for th in fold(station, channel).values():
        if th.channel not in visible:
            continue
        for inc in th.book.incidents.values():
            if status is None or inc.status == status:
                out.append(incident_json(station, th, inc))
    return sorted(out, key=lambda i: (i["opened_ms"], i["channel"], i["incident_id"]))


def find(
    station: Station, user: User, incident_id: str, channel: str | None = None
) -> tuple[Thread, crisis.Incident]:
    """The incident of that id the user may see; `channel` picks one when several channels have
    an incident of that id."""
    authorize(user, Action.CHANNEL_READ)
    if channel is not None:
        station.guard(channel, user)
    visible = {s.channel for s in station.channel_states(user)}
    hits = [
        (th, th.book.incidents[incident_id])
        for th in fold(station, channel).values()
        if th.channel in visible and incident_id in th.book.incidents
    ]
    if not hits:
        raise NotFound(Code.NOT_FOUND, f"no incident {incident_id}")
    if len(hits) > 1:
        raise LocalError(
            Code.INVALID_REQUEST,
            f"incident {incident_id} exists on several channels; name one",
            channels=[th.channel for th, _ in hits],
        )
    return hits[0]


def incident(
    station: Station, user: User, incident_id: str, channel: str | None = None
) -> dict[str, Any]:
    """One incident as `incident_json` shows it, if `user` may see its channel."""
    th, inc = find(station, user, incident_id, channel)
    return incident_json(station, th, inc)


def open_incident(
    station: Station,
    user: User,
    channel: str,
    title: str,
    severity: str,
    description: str = "",
    incident_id: str | None = None,
) -> dict[str, Any]:
    authorize(user, Action.CRISIS_OPEN)
    station.guard(channel, user)
    iid = incident_id or _new_id(station.clock())
    fields = crisis.open_body(iid, title, severity, description)
    th = fold(station, channel).get(channel, Thread(channel))
    if iid in th.book.incidents:
        raise Conflict(Code.CONFLICT, f"incident {iid} is already open on this channel")
    station.send(channel, {"type": crisis.KIND_OPEN, **fields}, PRECEDENCE[severity], "", user.name)
    th, inc = find(station, user, iid, channel)
    return incident_json(station, th, inc)


def _new_id(now_ms: int) -> str:
    day = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y%m%d")
    return f"inc-{day}-{crypto.token_hex(3)}"


def move(
    station: Station,
    user: User,
    incident_id: str,
    status: str,
    note: str = "",
    channel: str | None = None,
) -> dict[str, Any]:
    authorize(user, Action.CRISIS_UPDATE)
    th, inc = find(station, user, incident_id, channel)
    fields = crisis.status_body(incident_id, status, note)
    # The book says whether the move is legal (Conflict if not); it is a throwaway fold.
    th.book.apply(crisis.KIND_STATUS, fields, station.clock(), "")
    station.send(th.channel, {"type": crisis.KIND_STATUS, **fields}, "IMMEDIATE", "", user.name)
    th, inc = find(station, user, incident_id, th.channel)
    return incident_json(station, th, inc)


def link(
    station: Station, user: User, incident_id: str, ref: str, channel: str | None = None
) -> dict[str, Any]:
    authorize(user, Action.CRISIS_UPDATE)
    th, inc = find(station, user, incident_id, channel)
    fields = crisis.link_body(incident_id, ref)
    held = db.event(station.store, b64d(ref, field="ref", size=32))
    if held is None or held[0].channel != th.channel:
        raise NotFound(Code.NOT_FOUND, f"no envelope {ref} on channel {th.channel} here")
    station.integrity.require(held[0])  # a message whose stored text was changed is not linked
    if ref in inc.links:
        return incident_json(station, th, inc)
    station.send(th.channel, {"type": crisis.KIND_LINK, **fields}, "PRIORITY", "", user.name)
    th, inc = find(station, user, incident_id, th.channel)
    return incident_json(station, th, inc)


# --- timeline ------------------------------------------------------------------------------


def timeline(
    station: Station, user: User, incident_id: str, channel: str | None = None
) -> dict[str, Any]:
    th, inc = find(station, user, incident_id, channel)
    events: list[crisis.TranscriptEvent] = []
    linked = [db.event(station.store, b64d(ref, field="ref", size=32)) for ref in inc.links]
    stored = [held for held in linked if held is not None and held[0].channel == th.channel]
    stored += db.typed_events(station.store, [KIND_ACK], th.channel)
    # Checked as every read is; one that fails is left out (and alarmed).
    for env, body in station.integrity.verified_bodies(stored):
        events.append(_event(station, env, body))
    members = [m for m in station.channel_state(th.channel).members if m != station.id]
    changes = [
        LinkChange(LinkState(e.old), LinkState(e.new), e.at_ms, e.reason, station.peer_name(e.peer))
        for e in db.link_events(station.store, members, inc.opened_ms, limit=10_000)
    ]
    items = crisis.timeline(inc, events, changes)
    return {
        "incident": incident_json(station, th, inc),
        "items": [
            {"ts": i.ts_ms, "kind": i.kind, "summary": i.summary, "ref": i.ref} for i in items
        ],
    }


def _event(station: Station, env: EnvelopeRow, body: dict[str, Any]) -> crisis.TranscriptEvent:
    """One envelope as a timeline entry: what kind of thing it is and one line about it."""
    who = station.peer_name(env.sender)
    t = str(body.get("type", ""))
    about: str | None = None
    if t == "text":
        kind, summary = "message", f"{who}: {body.get('text', '')}"
    elif t == KIND_ACK:
        text = f": {body['text']}" if body.get("text") else ""
        kind, summary = "ack", f"{who} {body.get('answer')} ({body.get('by')}){text}"
        about = body.get("ref") if isinstance(body.get("ref"), str) else None
    elif t == cc.KIND_CALL:
        kind, summary = "checkcall", f"{who} check call {body.get('call_id')}"
    elif t == cc.KIND_ANSWER:
        kind, summary = "checkcall", f"{body.get('by')} ({who}) answered {body.get('call_id')}"
    elif "notice" in t:
        name = body.get("form") or body.get("title") or t
        kind, summary = "notice", f"{who}: {name}"
    else:
        kind, summary = t, f"{who}: {t}"
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1] + "…"
    return crisis.TranscriptEvent(env.ts, kind, _ref(env), summary, about)


# --- observer ------------------------------------------------------------------------------


def observe(station: Station, acc: Accepted) -> None:
    """A peer's opening or status move is an alarm here; our own are in the audit log. Alarms
    reach people not named on a back channel, so there they say only that something happened."""
    kind = acc.body.get("type")
    if acc.local or kind not in (crisis.KIND_OPEN, crisis.KIND_STATUS):
        return
    who = station.peer_name(acc.sender)
    discreet = station.channel_state(acc.channel).kind == "backchannel"
    fields = {k: v for k, v in acc.body.items() if k != "type"}
    if kind == crisis.KIND_OPEN:
        opened = crisis.parse_open(fields)
        what = (
            "an incident on a back channel"
            if discreet
            else f"incident {opened.incident_id} [{opened.severity}]: {opened.title}"
        )
        station.alarm("crisis", ALARM[opened.severity], acc.channel, f"{who} opened {what}")
    else:
        moved = crisis.parse_status(fields)
        note = f": {moved.note}" if moved.note and not discreet else ""
        what = "an incident on a back channel" if discreet else f"incident {moved.incident_id}"
        station.alarm("crisis", "info", acc.channel, f"{who} marked {what} {moved.status}{note}")
