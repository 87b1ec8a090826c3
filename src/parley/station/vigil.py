"""The station's vigil: the health of every link, and telling "the link is down" from "the link is
up and nobody answers". `install` also wires check calls (station/checkcalls.py) and crises
(station/crises.py).

Rules:
- Link state (up / degraded / down) is domain/liveness.py's judgement of the dispatcher's link
  row: the last successful contact (a heartbeat or a push; every one is a round trip) is the last
  heartbeat, its round-trip time the RTT, the consecutive failures the failed sends. Thresholds
  are `timings.heartbeat_ms`, `degraded_after_missed`, `down_after_missed`, `degraded_rtt_ms`
  (0: off). A peer never reached is down ("no heartbeat received yet").
- After a start (`begin`, when the duties start) a link is judged only from attempts made since:
  earlier failures no longer count, heartbeats are missed from the start at the earliest (the
  peer's grace runs from then), and until the peer answers the start lends no evidence, so the
  state recorded before cannot improve. Judged from the row written before a long stop, every
  peer was "down, N heartbeats missed" at start-up before it had been tried.
- `watch_links` (scheduled, and at once after a failed contact or a change of the dispatcher's
  link row) compares each link's state with the last one recorded; every change
  is recorded (link_events, for crisis timelines) and is an alarm of kind `link` (down: high,
  degraded: warning, up: info). The first state recorded for a link is not a change. Back up,
  the link's open alarms resolve and the "up" alarm is recorded settled (station/alarms.py).
- Situation (domain/liveness.assess): the link state, our check calls the peer missed since it
  last answered one, and our notices whose acknowledgement by the peer is overdue
  (store/notices.py). `why` is `down` (a technical fault), `degraded` (too early to tell),
  `silent` (heartbeats arrive but nobody answers) or `ok`.
- `watch_missed_calls` (scheduled) raises one alarm of kind `checkcall_missed` per call and
  member that did not answer in time, on the calling side only: critical, "nobody answers while
  the link is up", when the link is up; high, naming the fault, when it is not.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from parley.domain.liveness import LinkMonitor, LinkPolicy, LinkState, Situation, assess
from parley.errors import ParleyError
from parley.station import alarms, checkcalls, crises
from parley.station.node import Accepted, Station
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.store import notices as notices_db
from parley.store import vigil as db
from parley.store.base import PeerRow

_WATCHING = threading.Lock()  # the ticker's thread and the dispatcher's both run the watch
WHY = {
    Situation.NORMAL: "ok",
    Situation.DEGRADED: "degraded",
    Situation.UNANSWERED: "silent",
    Situation.LINK_DOWN: "down",
}
ALARM = {LinkState.UP: "info", LinkState.DEGRADED: "warning", LinkState.DOWN: "high"}
EPOCH = "links_epoch"  # meta: when the duties last started (ms); links are judged from then


def policy(station: Station) -> LinkPolicy:
    """The thresholds of `timings`; LocalError(invalid_request) if they are impossible."""
    t = station.cfg.timings
    return LinkPolicy(
        t.heartbeat_ms, t.degraded_after_missed, t.down_after_missed, t.degraded_rtt_ms or None
    )


def begin(station: Station) -> None:
    """The duties start: attempts made before now no longer judge a link (module rules)."""
    with station.store.tx():
        station.store.set_meta(EPOCH, str(station.clock()))
        for p in station.store.list_peers():
            row = station.store.link(p.station)
            if row is not None and row.failures:
                station.store.set_link(replace(row, failures=0))


def judge(station: Station, peer: str, now_ms: int) -> tuple[LinkState, str]:
    """The link's state and why, from the dispatcher's row as of `now_ms`."""
    row = station.store.link(peer)
    last = row.last_ok if row else None
    stored = station.store.get_meta(EPOCH)
    epoch = int(stored) if stored is not None else None
    untried = last is not None and epoch is not None and last < epoch
    if untried:
        last = epoch
    monitor = LinkMonitor(policy(station), now_ms, link=peer, last_heartbeat_ms=last)
    if row is not None:
        monitor.send_failures = row.failures
        monitor.last_rtt_ms = row.rtt_ms
        monitor.tick(now_ms)
    if untried:
        old = db.health(station.store, peer)
        if old is not None and LinkState(old.state).severity > monitor.state.severity:
            return LinkState(old.state), old.reason
    return monitor.state, monitor.reason


def watch_links(station: Station, now_ms: int, only: str | None = None) -> None:
    """Scheduled task over every peer, and run at once for one peer after each failed contact
    with it or change of its state (`Station.on_link`): record and alarm every change of a
    link's state. One at a time, so a change is alarmed once. After a contact only that peer's
    row moved: judging every peer then cost a station with N peers N judgements per event, and
    a loaded network makes N events per heartbeat (quadratic)."""
    with _WATCHING:
        _watch_links(station, now_ms, only)


def _watch_links(station: Station, now_ms: int, only: str | None) -> None:
    if only is None:
        peers = station.store.list_peers()
    else:
        one = station.store.get_peer(only)
        peers = [one] if one is not None else []
    for p in peers:
        state, reason = judge(station, p.station, now_ms)
        old = db.health(station.store, p.station)
        if old is not None and old.state == state:
            continue
        with station.store.tx():
            db.set_health(station.store, db.HealthRow(p.station, state, now_ms, reason))
            if old is None:
                continue
            db.add_link_event(station.store, p.station, now_ms, old.state, state, reason)
            message = f"link to {p.name}: {old.state} → {state} ({reason})"
            ref = alarms.link_ref(p.station)
            if state is LinkState.UP:
                # Back up: what the link's earlier alarms were about is over.
                alarms.resolve(station, ["link"], ref, f"the link to {p.name} is up again")
                alarms.settled(station, "link", ALARM[state], p.station, message, ref, "link up")
            else:
                station.alarm("link", ALARM[state], p.station, message, ref)


def overdue_acks(station: Station, peer: str, now_ms: int) -> int:
    """Our notices whose acknowledgement by `peer` is past its deadline."""
    return sum(
        1
        for d in notices_db.overdue(station.store, now_ms)
        if d.sender == station.id and d.answerer == peer
    )


def link_json(station: Station, p: PeerRow, now_ms: int) -> dict[str, Any]:
    state, reason = judge(station, p.station, now_ms)
    row = station.store.link(p.station)
    recorded = db.health(station.store, p.station)
    calls = checkcalls.overdue(station, p.station, now_ms)
    acks = overdue_acks(station, p.station, now_ms)
    a = assess(state, calls, acks)
    return {
        "station": p.station,
        "name": p.name,
        "state": str(state),
        "reason": reason,
        "since": recorded.since if recorded and recorded.state == state else None,
        "last_ok": row.last_ok if row else None,
        "last_error": row.last_error if row else None,
        "failures": row.failures if row else 0,
        "rtt_ms": row.rtt_ms if row else None,
        "situation": str(a.situation),
        "why": WHY[a.situation],
        "overdue_checkcalls": calls,
        "overdue_acks": acks,
        "explain": {"en": a.explain("en"), "ko": a.explain("ko")},
    }


def links(station: Station, who: User) -> list[dict[str, Any]]:
    """Per peer: state, RTT, last contact, and why (ok, degraded, silent, down)."""
    authorize(who, Action.STATION_READ)
    now = station.clock()
    return [link_json(station, p, now) for p in station.store.list_peers()]


def link_events(
    station: Station, who: User, peer: str | None = None, since: int = 0, limit: int = 200
) -> list[dict[str, Any]]:
    """Recorded link-state changes, oldest first (one peer's, or every peer's)."""
    authorize(who, Action.STATION_READ)
    peers = [station.peer_id(peer)] if peer else None
    rows = db.link_events(station.store, peers, since, limit)
    return [e.__dict__ | {"name": station.peer_name(e.peer)} for e in rows]


def watch_missed_calls(station: Station, now_ms: int) -> None:
    """Scheduled task: one alarm per missed (call, member), on the calling side only."""
    for call, ans in checkcalls.missed_unalarmed(station, now_ms):
        state, reason = judge(station, ans.answerer, now_ms)
        name = station.peer_name(ans.answerer)
        if state is LinkState.UP:
            severity = "critical"
            message = (
                f"no answer from {name} to check call {call.call_id} while the link is up: "
                "heartbeats arrive, nobody answers"
            )
        else:
            severity = "high"
            message = (
                f"no answer from {name} to check call {call.call_id}, but the link is {state} "
                f"({reason}): a technical fault, not silence"
            )
        ref = alarms.call_ref(call.channel, call.caller, call.call_id, ans.answerer)
        with station.store.tx():
            db.mark_missed_alarmed(station.store, call, ans.answerer, now_ms)
            station.alarm("checkcall_missed", severity, ans.answerer, message, ref)


def _observe(station: Station, acc: Accepted) -> None:
    # On the receive path the envelope is stored already: an exception here would report it
    # rejected while keeping it, so a failure is an alarm instead.
    for observer in (checkcalls.observe, crises.observe):
        try:
            observer(station, acc)
        except ParleyError as exc:
            if acc.local:
                raise
            station.alarm("vigil", "warning", acc.sender, exc.message)


def install(station: Station) -> None:
    policy(station)  # refuse impossible thresholds when the station opens, not every second
    station.on_link = lambda peer: watch_links(station, station.clock(), only=peer)
    station.observers.append(_observe)
    station.scheduled.extend([watch_links, checkcalls.issue_due, watch_missed_calls])
