"""Alarms as people handle them: lists, acknowledgement with a note, and resolution by the events
that settle them.

    AlarmDesk(station)
      alarms / alarm_json                  the alarms a user may see (open, or all)
      ack                                  acknowledge one, several or every open one, with a note
    resolve(station, kinds, ref, note)     a later event settles open alarms (the station does it)
    settled(station, kind, …)              an alarm born settled: history, nothing to act on

Rules:
- An alarm is never deleted. Closing one records when (`cleared`), who (`cleared_by`: a user's
  name, or `station` for an event), how (`resolution`: `resolved` by a later event, or
  `acknowledged` by a person) and why (`note`).
- Events that settle alarms name them by `ref`: `link:<peer>` (the link to that peer is up
  again: its down and degraded alarms resolve) and `checkcall:<channel>:<caller>:<call id>:
  <answerer>` (the call was answered, late: its missed-call alarm resolves). An overdue
  acknowledgement resolves when every member has acknowledged (station/notices.py). A change
  that needs nobody's attention (a link coming back up, a late answer) is recorded settled.
- Everything else waits for a person: acknowledging needs `alarm.clear` (station/roles.py), takes
  a note of at most MAX_NOTE characters, at most MAX_ACK alarms at once, and writes one audit
  entry per alarm.
- Back channels: an alarm belongs to a back channel when its subject is that channel, an envelope
  of it, or its text names the channel's id; a user not named on it neither sees it (lists and
  counts) nor acknowledges it: that answers `not_found`, exactly as for an alarm that does not
  exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from parley.errors import Code, LocalError, NotFound, ParleyError
from parley.protocol.encoding import b64d
from parley.station.node import Station
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.store.base import AlarmRow

MAX_NOTE = 2000
MAX_ACK = 1000  # alarms one request acknowledges
MAX_LIST = 1000  # alarms one list shows


def link_ref(peer: str) -> str:
    return f"link:{peer}"


def call_ref(channel: str, caller: str, call_id: str, answerer: str) -> str:
    return f"checkcall:{channel}:{caller}:{call_id}:{answerer}"


def resolve(station: Station, kinds: Sequence[str], ref: str, note: str) -> list[int]:
    """Resolve the open alarms of `kinds` that `ref` names (in the caller's transaction)."""
    now = station.clock()
    ids = station.store.open_alarms(kinds, ref)
    for i in ids:
        station.store.clear_alarm(i, now, "station", "resolved", note)
    return ids


def settled(
    station: Station, kind: str, severity: str, subject: str, message: str, ref: str, note: str
) -> None:
    """Record an alarm that is settled as it is raised: it is history, not a task."""
    with station.store.tx():
        alarm_id = station.alarm(kind, severity, subject, message, ref)
        station.store.clear_alarm(alarm_id, station.clock(), "station", "resolved", note)


def channel_of(station: Station, alarm: AlarmRow, hidden: set[str]) -> str | None:
    """The channel of `hidden` (back channels) that `alarm` concerns, if any."""
    if alarm.subject in hidden:
        return alarm.subject
    if len(alarm.subject) == 43:  # an envelope's hash, base64url
        try:
            row = station.store.envelope_by_hash(b64d(alarm.subject))
        except (ParleyError, ValueError):
            row = None
        if row is not None and row.channel in hidden:
            return row.channel
    text = alarm.message + " " + (alarm.ref or "")
    return next((ch for ch in hidden if ch in text), None)


class AlarmDesk:
    def __init__(self, station: Station) -> None:
        self.station = station

    def hidden(self, who: User) -> set[str]:
        """The back channels `who` is not named on."""
        return set(self.station.hidden(who))

    def _channel_of(self, alarm: AlarmRow, hidden: set[str]) -> str | None:
        return channel_of(self.station, alarm, hidden)

    def visible(
        self, hidden: set[str], include_cleared: bool = False, limit: int = MAX_LIST
    ) -> list[AlarmRow]:
        rows = self.station.store.alarms(include_cleared=include_cleared)
        shown = [a for a in rows if not hidden or self._channel_of(a, hidden) is None]
        return shown[:limit]

    def alarms(
        self, who: User, include_cleared: bool = False, limit: int = MAX_LIST
    ) -> list[AlarmRow]:
        """Open alarms (or all, with their resolution), newest first."""
        authorize(who, Action.ALARM_READ)
        return self.visible(self.hidden(who), include_cleared, min(limit, MAX_LIST))

    def alarms_json(self, who: User, include_cleared: bool = False, limit: int = MAX_LIST) -> bytes:
        """`alarms` as JSON, kept while nothing changes (station/answers.py)."""
        authorize(who, Action.ALARM_READ)
        key = ("alarms", self.station.hidden(who), include_cleared, limit)
        return self.station.answers.kept(
            key, lambda: [alarm_json(a) for a in self.alarms(who, include_cleared, limit)]
        )

    def ack(
        self,
        who: User,
        ids: Sequence[int] = (),
        note: str = "",
        *,
        every_open: bool = False,
        kind: str | None = None,
    ) -> list[int]:
        """Acknowledge alarms `ids` (or, with `every_open`, every open one `who` sees, of `kind`
        if given) with `note`; returns the ids closed now. An id `who` may not see is not_found,
        and then nothing is acknowledged; one already closed is left as it was."""
        authorize(who, Action.ALARM_CLEAR)
        if len(note) > MAX_NOTE:
            raise LocalError(
                Code.INVALID_REQUEST, f"a note is at most {MAX_NOTE} characters", field="note"
            )
        if len(ids) > MAX_ACK:
            raise LocalError(Code.INVALID_REQUEST, f"at most {MAX_ACK} alarms at once")
        if not ids and not every_open:
            raise LocalError(Code.INVALID_REQUEST, "name the alarms to acknowledge, or all open")
        st = self.station
        hidden = self.hidden(who)
        if every_open:
            targets = [a.id for a in self.visible(hidden) if kind is None or a.kind == kind]
            targets = targets[:MAX_ACK]
        else:
            targets = list(dict.fromkeys(ids))
            for i in targets:
                a = st.store.alarm(i)
                if a is None or (hidden and self._channel_of(a, hidden) is not None):
                    raise NotFound(Code.NOT_FOUND, f"no alarm {i}")
        done = []
        with st.store.tx():
            now = st.clock()
            for i in targets:
                if st.store.clear_alarm(i, now, who.name, "acknowledged", note):
                    st.store.audit(who.name, "alarm.ack", {"id": i, "note": note}, now)
                    done.append(i)
        return done


def alarm_json(a: AlarmRow) -> dict[str, Any]:
    out = dict(a.__dict__)
    out["state"] = "open" if a.cleared is None else (a.resolution or "acknowledged")
    return out
