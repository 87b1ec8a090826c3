"""Crises: an incident thread with severity and status that gathers everything about one event.

Bodies:
- `crisis.open`   {incident_id, title, severity: low|medium|high|critical, description}
- `crisis.status` {incident_id, status: open|contained|closed, note}
- `crisis.link`   {incident_id, ref}  — puts an envelope (notice, message, ack …) in the thread

Status transitions (the whole table is `TRANSITIONS`):

    open      → contained, closed
    contained → open (it flared up again), closed
    closed    → open (reopen)

Closed is not final: incidents flare up again, and reopening keeps the thread, its evidence and
its history in one place instead of scattering them over a second incident (the humanitarian
lesson of DESIGN.md §6: keep the thread open until closed, and follow up). A move to the current
status, or closed → contained without reopening first, is a Conflict. Either member may move
the status; every move is a signed envelope with a note saying why.

Book rules (`IncidentBook`, folded from the transcript in causal order): the same envelope twice is
a no-op; a second, different `crisis.open` of one incident_id, a status or link for an unknown
incident, or an illegal move is a Conflict and leaves the book unchanged. Links to a closed
incident are allowed: late evidence still belongs in the thread.

Timeline: the incident's own open and status entries, the envelopes linked to it and answers to
those (acks naming a linked envelope), and link-state changes from the opening to the last
closing (or to now, if not closed), ordered by time, then kind, then ref.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from parley.domain.bodies import checked_locally, exact_fields
from parley.domain.deadlines import parse_ref
from parley.domain.liveness import LinkChange
from parley.errors import Code, Conflict, LocalError, RejectedInput

KIND_OPEN = "crisis.open"
KIND_STATUS = "crisis.status"
KIND_LINK = "crisis.link"

MAX_TITLE_CHARS = 200
MAX_TEXT_CHARS = 8000
_E = TypeVar("_E", bound=StrEnum)
_INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class IncidentStatus(StrEnum):
    OPEN = "open"
    CONTAINED = "contained"
    CLOSED = "closed"


TRANSITIONS: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.OPEN: frozenset({IncidentStatus.CONTAINED, IncidentStatus.CLOSED}),
    IncidentStatus.CONTAINED: frozenset({IncidentStatus.OPEN, IncidentStatus.CLOSED}),
    IncidentStatus.CLOSED: frozenset({IncidentStatus.OPEN}),
}


# --- bodies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    incident_id: str
    title: str
    severity: Severity
    description: str


@dataclass(frozen=True)
class StatusChanged:
    incident_id: str
    status: IncidentStatus
    note: str


@dataclass(frozen=True)
class Linked:
    incident_id: str
    ref: str


def parse_open(body: object) -> Opened:
    obj = exact_fields(body, KIND_OPEN, {"incident_id", "title", "severity", "description"})
    return Opened(
        _incident_id(obj),
        _text(obj, "title", MAX_TITLE_CHARS, required=True),
        _choice(Severity, obj, "severity"),
        _text(obj, "description", MAX_TEXT_CHARS),
    )


def parse_status(body: object) -> StatusChanged:
    obj = exact_fields(body, KIND_STATUS, {"incident_id", "status", "note"})
    return StatusChanged(
        _incident_id(obj),
        _choice(IncidentStatus, obj, "status"),
        _text(obj, "note", MAX_TEXT_CHARS),
    )


def parse_link(body: object) -> Linked:
    obj = exact_fields(body, KIND_LINK, {"incident_id", "ref"})
    return Linked(_incident_id(obj), parse_ref(obj["ref"]))


def open_body(
    incident_id: str, title: str, severity: Severity | str, description: str
) -> dict[str, Any]:
    body = {
        "incident_id": incident_id,
        "title": title,
        "severity": str(severity),
        "description": description,
    }
    return checked_locally(parse_open, body)


def status_body(incident_id: str, status: IncidentStatus | str, note: str) -> dict[str, Any]:
    return checked_locally(
        parse_status, {"incident_id": incident_id, "status": str(status), "note": note}
    )


def link_body(incident_id: str, ref: str) -> dict[str, Any]:
    return checked_locally(parse_link, {"incident_id": incident_id, "ref": ref})


def _incident_id(obj: dict[str, Any]) -> str:
    v = obj["incident_id"]
    if not isinstance(v, str) or not _INCIDENT_ID.fullmatch(v):
        raise RejectedInput(
            Code.BAD_BODY, "incident_id: 1..64 of A-Z a-z 0-9 . _ : - (not . first)"
        )
    return v


def _text(obj: dict[str, Any], key: str, max_chars: int, *, required: bool = False) -> str:
    v = obj[key]
    if not isinstance(v, str) or len(v) > max_chars or (required and not v.strip()):
        least = 1 if required else 0
        raise RejectedInput(Code.BAD_BODY, f"{key}: expected text of {least}..{max_chars} chars")
    return v


def _choice(enum: type[_E], obj: dict[str, Any], key: str) -> _E:
    try:
        return enum(obj[key])
    except ValueError:
        names = ", ".join(e.value for e in enum)
        raise RejectedInput(Code.BAD_BODY, f"{key}: must be one of {names}") from None


# --- the book -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusEntry:
    ts_ms: int
    status: IncidentStatus
    note: str
    ref: str  # the envelope that made the move


@dataclass
class Incident:
    incident_id: str
    title: str
    severity: Severity
    description: str
    opened_ms: int
    opened_ref: str
    status: IncidentStatus = IncidentStatus.OPEN
    history: list[StatusEntry] = field(default_factory=list)
    links: dict[str, int] = field(default_factory=dict)  # linked ref → ts of the link envelope

    def window(self) -> tuple[int, int | None]:
        """From the opening to the last closing; None while the incident is not closed."""
        if self.status is not IncidentStatus.CLOSED:
            return self.opened_ms, None
        return self.opened_ms, self.history[-1].ts_ms


class IncidentBook:
    """All incidents of one channel, folded from crisis.* envelopes."""

    def __init__(self) -> None:
        self.incidents: dict[str, Incident] = {}

    def apply(self, kind: str, body: object, ts_ms: int, ref: str) -> Incident:
        """Fold one crisis.* envelope (its kind, body, timestamp and hash); returns the incident."""
        if kind == KIND_OPEN:
            return self._open(parse_open(body), ts_ms, ref)
        if kind == KIND_STATUS:
            return self._status(parse_status(body), ts_ms, ref)
        if kind == KIND_LINK:
            linked = parse_link(body)
            incident = self._get(linked.incident_id)
            incident.links.setdefault(linked.ref, ts_ms)
            return incident
        raise LocalError(Code.INVALID_REQUEST, f"not a crisis body: {kind}")

    def _open(self, opened: Opened, ts_ms: int, ref: str) -> Incident:
        known = self.incidents.get(opened.incident_id)
        if known is not None:
            if known.opened_ref == ref:
                return known
            raise Conflict(Code.CONFLICT, f"incident {opened.incident_id} is already open")
        incident = Incident(
            opened.incident_id, opened.title, opened.severity, opened.description, ts_ms, ref
        )
        self.incidents[opened.incident_id] = incident
        return incident

    def _status(self, change: StatusChanged, ts_ms: int, ref: str) -> Incident:
        incident = self._get(change.incident_id)
        if any(entry.ref == ref for entry in incident.history):
            return incident
        if change.status not in TRANSITIONS[incident.status]:
            raise Conflict(
                Code.CONFLICT,
                f"incident {incident.incident_id}: cannot go from {incident.status} "
                f"to {change.status}",
            )
        incident.status = change.status
        incident.history.append(StatusEntry(ts_ms, change.status, change.note, ref))
        return incident

    def _get(self, incident_id: str) -> Incident:
        incident = self.incidents.get(incident_id)
        if incident is None:
            raise Conflict(Code.CONFLICT, f"no incident {incident_id}")
        return incident


# --- timeline -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TranscriptEvent:
    """One interpreted envelope, as the station hands it to `timeline`."""

    ts_ms: int
    kind: str  # e.g. "notice", "ack", "message"
    ref: str  # its envelope hash
    summary: str
    about: str | None = None  # the envelope it answers (for an ack), if any


@dataclass(frozen=True)
class TimelineItem:
    ts_ms: int
    kind: str
    summary: str
    ref: str | None  # None for link-state changes, which are local observations, not envelopes


def timeline(
    incident: Incident, events: Iterable[TranscriptEvent], link_events: Iterable[LinkChange]
) -> list[TimelineItem]:
    """Everything about `incident` in one ordered list (see module rules for what is included)."""
    items = [
        TimelineItem(
            incident.opened_ms,
            KIND_OPEN,
            f"opened [{incident.severity}] {incident.title}",
            incident.opened_ref,
        )
    ]
    for entry in incident.history:
        note = f": {entry.note}" if entry.note else ""
        items.append(TimelineItem(entry.ts_ms, KIND_STATUS, f"{entry.status}{note}", entry.ref))
    for event in events:
        if event.ref in incident.links or (
            event.about is not None and event.about in incident.links
        ):
            items.append(TimelineItem(event.ts_ms, event.kind, event.summary, event.ref))
    start, end = incident.window()
    for change in link_events:
        if start <= change.at_ms and (end is None or change.at_ms <= end):
            where = f" {change.link}" if change.link else ""
            summary = f"link{where}: {change.old} → {change.new} ({change.reason})"
            items.append(TimelineItem(change.at_ms, "link", summary, None))
    return sorted(items, key=lambda i: (i.ts_ms, i.kind, i.ref or "", i.summary))
