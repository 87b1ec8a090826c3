"""Talks, road maps and translations on a running station: folds of a channel's transcript.

This module holds the folds, the check of each move as it is stored, and the engine; what an
operator does (and who may do it) is station/talks_desk.py's `TalksDesk`.

The rules of each record are the domain's (domain/talks.py, roadmap.py, translation.py). Here:
 1. Nothing is stored beside the transcript. A channel's negotiations (and their agreements), its
    road map, and the translations of one message are the fold of the channel's records of that
    kind in `channels.causal_order` (a record after everything its sender had seen, ties by ts,
    sender, seq), so every member that holds the same envelopes derives the same state, in
    whatever order they arrived.
 2. The parties are the channel's members except the facilitator its proposal names; the domain's
    `check_parties` wants at least two parties and never the facilitator among them. A facilitator
    station sees only the channels it is a member of, as every station does.
 3. Sending: a move the fold would not accept is refused inside the transaction that would store
    it (the observer raises the domain's error, e.g. Conflict), so nothing is sealed or queued.
 4. Receiving: a move that does not apply is stored all the same and ignored by every member's
    fold alike. It is signed and chained, so refusing it would stall the sender's chain; and a
    move that was legal when sent can lose a race to a concurrent one (an accept crossing a
    counter). Views list such records under `ignored` with the reason, and the station raises an
    alarm for every record a receipt made ignored: the received one, or an earlier one it
    overtook (ours included).
 5. An agreement is derived, not sent: when every party has accepted one open version, the fold's
    `Agreement` names, per party, the envelope carrying its signature (its accept, or the version
    it authored). Its canonical JSON and hash are the same at every member.
 6. Machine translation uses the engine the station's configuration names (`translation` in
    station.json, station/translators.py); none by default, and everything else works without.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from parley.domain import channels, roadmap, talks, translation
from parley.domain.roadmap import RoadMap
from parley.domain.talks import Talks
from parley.domain.translation import Translations
from parley.errors import Code, Conflict, NotFound, ParleyError, RejectedInput
from parley.protocol.crypto import HASH_BYTES
from parley.protocol.encoding import b64d
from parley.station.node import Accepted, Station
from parley.station.translators import NoEngine, TranslationEngine, engine_from_config
from parley.store import talks as store_talks
from parley.store.base import EnvelopeRow


@dataclass(frozen=True)
class Record:
    """A stored record as the domain folds read it (`domain.talks.Event`)."""

    author: str
    envelope_hash: str
    ts_ms: int
    body: Mapping[str, Any]
    seq: int

    @property
    def type(self) -> str:
        return str(self.body.get("type", ""))


@dataclass(frozen=True)
class Ignored:
    """A stored record that does not apply where it falls in the transcript order."""

    record: Record
    error: ParleyError


S = TypeVar("S", Talks, RoadMap, Translations)


@dataclass(frozen=True)
class Fold(Generic[S]):
    state: S
    records: tuple[Record, ...]  # in fold order
    ignored: tuple[Ignored, ...]

    def seq_of(self, envelope_hash: str) -> int:
        return next((r.seq for r in self.records if r.envelope_hash == envelope_hash), 0)

    def ignored_hashes(self) -> set[str]:
        return {i.record.envelope_hash for i in self.ignored}


def fold(start: S, records: Sequence[Record]) -> Fold[S]:
    state = start
    ignored: list[Ignored] = []
    for record in records:
        try:
            state = state.apply(record)
        except (Conflict, RejectedInput) as exc:
            ignored.append(Ignored(record, exc))
    return Fold(state, tuple(records), tuple(ignored))


def sides(state: channels.ChannelState) -> tuple[frozenset[str], str | None]:
    """(parties, facilitator) of a channel."""
    if not state.facilitator:
        return frozenset(state.members), None
    return frozenset(state.members) - {state.facilitator}, state.facilitator


def _ordered(
    station: Station, rows: Sequence[tuple[EnvelopeRow, Mapping[str, Any]]]
) -> list[Record]:
    return [Record(ev.sender, ev.hash, ev.ts, ev.body, ev.seq) for ev in station.causal(rows)]


def _records(station: Station, channel: str, types: Sequence[str]) -> list[Record]:
    """The channel's records of `types` that pass the integrity check (station/integrity.py: a
    changed record is left out of every fold, and alarmed), in fold order."""
    rows = store_talks.records(station.store, channel, types)
    return _ordered(station, station.integrity.verified_bodies(rows))


# --- the three folds -------------------------------------------------------------------------


def _talks_input(station: Station, channel: str) -> tuple[Talks, list[Record]]:
    start = Talks.start(*sides(station.channel_state(channel)))
    return start, _records(station, channel, talks.BODY_TYPES)


def _roadmap_input(station: Station, channel: str) -> tuple[RoadMap, list[Record]]:
    start = RoadMap.start(*sides(station.channel_state(channel)))
    return start, _records(station, channel, roadmap.BODY_TYPES)


def original(station: Station, channel: str, ref: str) -> tuple[EnvelopeRow, dict[str, Any]]:
    """The text message `ref` of `channel`: what translations are attached to."""
    try:
        raw_hash = b64d(ref, field="message", size=HASH_BYTES)
    except RejectedInput as exc:
        raise NotFound(Code.NOT_FOUND, f"no message {ref!r}: {exc.message}") from exc
    row = station.store.envelope_by_hash(raw_hash)
    if row is None or row.channel != channel:
        raise NotFound(Code.NOT_FOUND, f"no message {ref} on channel {channel}")
    body = station.integrity.require(row).body
    if body.get("type") != translation.ORIGINAL_TYPE:
        raise NotFound(
            Code.NOT_FOUND, f"message {ref} is a {body.get('type')} record, not free text"
        )
    return row, body


def _translation_input(
    station: Station, channel: str, ref: str
) -> tuple[Translations, list[Record]]:
    station.channel_state(channel)
    row, body = original(station, channel, ref)
    stored = store_talks.records(station.store, channel, (translation.TYPE,))
    rows = [(e, b) for e, b in station.integrity.verified_bodies(stored) if b.get("ref") == ref]
    return Translations(), _ordered(station, [(row, body), *rows])


def negotiations(station: Station, channel: str) -> Fold[Talks]:
    return fold(*_talks_input(station, channel))


def road_map(station: Station, channel: str) -> Fold[RoadMap]:
    return fold(*_roadmap_input(station, channel))


def translations(station: Station, channel: str, ref: str) -> Fold[Translations]:
    return fold(*_translation_input(station, channel, ref))


# --- checking moves as they are stored -------------------------------------------------------


def check_moves(station: Station, acc: Accepted) -> None:
    """Observer: refuse our own move that does not apply; alarm on received ones (rules 3, 4)."""
    kind = acc.body.get("type")
    try:
        if kind in talks.BODY_TYPES:
            _check(station, acc, "talks", *_talks_input(station, acc.channel))
        elif kind in roadmap.BODY_TYPES:
            _check(station, acc, "roadmap", *_roadmap_input(station, acc.channel))
        elif kind == translation.TYPE:
            ref = str(acc.body.get("ref", ""))
            _check(station, acc, "translation", *_translation_input(station, acc.channel, ref))
    except ParleyError as exc:
        # No talks on this channel (fewer than two parties), or a translation of something that
        # is not a text message here: refused when we send it, never shown when a peer does.
        if acc.local:
            raise
        station.alarm(
            str(kind).split(".")[0],
            "warning",
            acc.channel,
            f"{station.peer_name(acc.sender)} sent a {kind} record that cannot apply "
            f"and is ignored: {exc.message}",
        )


def _check(station: Station, acc: Accepted, area: str, start: S, records: list[Record]) -> None:
    after = fold(start, records)
    if acc.local:
        for item in after.ignored:
            if item.record.envelope_hash == acc.hash:
                raise item.error
        return
    before = fold(start, [r for r in records if r.envelope_hash != acc.hash]).ignored_hashes()
    for item in after.ignored:
        h = item.record.envelope_hash
        if h in before:
            continue
        who = station.peer_name(item.record.author)
        if h == acc.hash:
            what = f"{who} sent a {item.record.type} that does not apply; every member ignores it"
        else:
            what = (
                f"the {item.record.type} {h[:12]}… by {who} no longer applies: "
                f"a concurrent move by {station.peer_name(acc.sender)} comes first"
            )
        station.alarm(area, "warning", acc.channel, f"{what}: {item.error.message}")


# --- machine translation ---------------------------------------------------------------------

_engines: weakref.WeakKeyDictionary[Station, TranslationEngine] = weakref.WeakKeyDictionary()


def engine(station: Station) -> TranslationEngine:
    """The station's machine translation engine (`NoEngine` unless its configuration names one)."""
    return _engines.get(station) or NoEngine()


def install(station: Station) -> None:
    # A configuration naming an unknown engine or a missing model stops the station at start,
    # with the reason, rather than at the first translation.
    _engines[station] = engine_from_config(station.cfg.translation)
    station.observers.append(check_moves)
