"""The operator's side of talks about talks, road maps and translations: one service, `TalksDesk`.

    desk(station) -> TalksDesk     what the API, the console and (through the API) the CLI call

Every method takes the acting `User` first and, before it reads or changes anything:
 1. checks the role table (`roles.authorize(who, Action.X)`): reads are CHANNEL_READ (the engine
    STATION_READ); moves are TALKS_*, ROADMAP_*; a person's translation is TRANSLATION_HUMAN, a
    machine's TRANSLATION_MACHINE;
 2. checks that `who` may see the channel (`Station.guard`: a back channel only for the users its
    proposal names), for everything channel-scoped.
Then it builds the domain body, sends it (the fold refuses a move that does not apply before
anything is sealed: station/talks.py rule 3) and answers with plain data: the envelope it queued
and the view after it. The views are folds of the transcript, identical at every member (names
included), so the same JSON comes out of every station for the same envelopes.

Translations are signed in their translator's own name: a human translation names the acting
user (`translator` may be given only if it is that same name; anything else is Forbidden), and a
machine translation names the engine's product label (station/translators.py), never the address
the station reaches it at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from parley.domain import roadmap, talks, translation
from parley.domain.channels import ChannelState
from parley.errors import Code, Forbidden, LocalError, NotFound
from parley.protocol import crypto
from parley.protocol.encoding import b64e
from parley.station import talks as feature
from parley.station.node import Station, queued
from parley.station.roles import Action, allowed, authorize
from parley.station.translators import NoEngine
from parley.station.users import User
from parley.store.base import EnvelopeRow

HUMAN_STATUSES = ("draft", "corrected", "certified")

# What the console shows buttons for: each move, and whether the user's roles allow it.
MOVES: Mapping[str, Action] = {
    "propose": Action.TALKS_PROPOSE,
    "counter": Action.TALKS_COUNTER,
    "withdraw": Action.TALKS_WITHDRAW,
    "accept": Action.TALKS_ACCEPT,
    "add_step": Action.ROADMAP_ADD,
    "agree_step": Action.ROADMAP_AGREE,
    "update_step": Action.ROADMAP_UPDATE,
    "translate": Action.TRANSLATION_HUMAN,
    "machine_translate": Action.TRANSLATION_MACHINE,
}


VERSION_MOVES: Mapping[str, tuple[Action, Callable[[str, str], dict[str, Any]]]] = {
    "accept": (Action.TALKS_ACCEPT, talks.accept_body),
    "withdraw": (Action.TALKS_WITHDRAW, talks.withdraw_body),
}


def new_id(size: int = 9) -> str:
    return b64e(crypto.random_bytes(size))


class TalksDesk:
    def __init__(self, station: Station) -> None:
        self.station = station

    # --- common -----------------------------------------------------------------------------

    def _enter(self, who: User, action: Action, channel: str) -> ChannelState:
        authorize(who, action)
        return self.station.guard(channel, who)

    def _send(
        self, who: User, channel: str, body: dict[str, Any], key: str
    ) -> tuple[EnvelopeRow, dict[str, Any]]:
        row, created = self.station.send(channel, body, "ROUTINE", key, who.name)
        return row, queued(row, created)

    def may(self, who: User) -> dict[str, bool]:
        """Which moves `who`'s roles allow (the console shows only those buttons)."""
        return {move: allowed(who, action) for move, action in MOVES.items()}

    # --- talks --------------------------------------------------------------------------------

    def propose(
        self,
        who: User,
        channel: str,
        terms: Mapping[str, Any],
        negotiation_id: str | None = None,
        *,
        idempotency_key: str = "",
    ) -> dict[str, Any]:
        self._enter(who, Action.TALKS_PROPOSE, channel)
        nid = negotiation_id or new_id()
        body = talks.propose_body(nid, talks.terms_from_json(terms))
        row, envelope = self._send(who, channel, body, idempotency_key)
        # A repeated key: the negotiation it first made, as stored (and checked).
        nid = str(self.station.integrity.require(row).body["negotiation_id"])
        return self._moved(channel, nid, row, envelope)

    def counter(
        self,
        who: User,
        channel: str,
        negotiation_id: str,
        parent: str,
        terms: Mapping[str, Any],
        *,
        idempotency_key: str = "",
    ) -> dict[str, Any]:
        build = partial(talks.counter_body, negotiation_id, parent)
        move = Action.TALKS_COUNTER
        return self._move(
            who, move, channel, negotiation_id, lambda: build(talks.terms_from_json(terms)),
            idempotency_key,
        )  # fmt: skip

    def version_move(
        self,
        who: User,
        channel: str,
        negotiation_id: str,
        move: str,
        version: str,
        *,
        idempotency_key: str = "",
    ) -> dict[str, Any]:
        """`accept` (a party accepts this exact version) or `withdraw` (its author takes it off
        the table)."""
        if move not in VERSION_MOVES:
            raise LocalError(Code.INVALID_REQUEST, f"move: one of {', '.join(VERSION_MOVES)}")
        action, builder = VERSION_MOVES[move]
        build = partial(builder, negotiation_id, version)
        return self._move(who, action, channel, negotiation_id, build, idempotency_key)

    def _move(
        self,
        who: User,
        action: Action,
        channel: str,
        nid: str,
        build: Callable[[], dict[str, Any]],
        key: str,
    ) -> dict[str, Any]:
        """Check, then build (a bad request from someone refused is still `forbidden`), send."""
        self._enter(who, action, channel)
        row, envelope = self._send(who, channel, build(), key)
        return self._moved(channel, nid, row, envelope)

    def _moved(
        self, channel: str, nid: str, row: EnvelopeRow, envelope: dict[str, Any]
    ) -> dict[str, Any]:
        f = feature.negotiations(self.station, channel)
        negotiation = f.state.negotiations.get(nid)
        version = None
        if negotiation is not None:
            h = b64e(row.hash)
            version = next(
                (v.hash for v in negotiation.versions.values() if v.envelope_hash == h), None
            )
        return {
            "envelope": envelope,
            "version": version,
            "negotiation": _negotiation(self.station, channel, f, nid),
        }

    def negotiations(self, who: User, channel: str) -> dict[str, Any]:
        """Every negotiation of the channel, each summed up by its latest version."""
        state = self._enter(who, Action.CHANNEL_READ, channel)
        st = self.station
        f = feature.negotiations(st, channel)
        return {
            "channel": channel,
            **_sides(st, state),
            "negotiations": [_summary(st, f, n) for n in f.state.negotiations.values()],
            "ignored": [_ignored(st, i) for i in f.ignored],
        }

    def negotiation(self, who: User, channel: str, negotiation_id: str) -> dict[str, Any]:
        """One negotiation: its versions, history with what each counter changed, agreement."""
        self._enter(who, Action.CHANNEL_READ, channel)
        f = feature.negotiations(self.station, channel)
        return _negotiation(self.station, channel, f, negotiation_id)

    # --- road map -----------------------------------------------------------------------------

    def add_step(
        self,
        who: User,
        channel: str,
        owner: str,
        description: str,
        conditions: Sequence[Mapping[str, str]] = (),
        step_id: str | None = None,
        *,
        idempotency_key: str = "",
    ) -> dict[str, Any]:
        """A step owned by one party (station id or name); `conditions`: {after_step, state}."""
        state = self._enter(who, Action.ROADMAP_ADD, channel)
        conds = tuple(_condition(c) for c in conditions)
        body = roadmap.add_step_body(
            step_id or new_id(6), _member(self.station, state, owner), description, conds
        )
        _, envelope = self._send(who, channel, body, idempotency_key)
        return {"envelope": envelope, "roadmap": _roadmap(self.station, channel)}

    def agree_step(
        self, who: User, channel: str, step_id: str, *, idempotency_key: str = ""
    ) -> dict[str, Any]:
        self._enter(who, Action.ROADMAP_AGREE, channel)
        _, envelope = self._send(who, channel, roadmap.agree_body(step_id), idempotency_key)
        return {"envelope": envelope, "roadmap": _roadmap(self.station, channel)}

    def update_step(
        self,
        who: User,
        channel: str,
        step_id: str,
        status: str,
        note: str | None = None,
        *,
        idempotency_key: str = "",
    ) -> dict[str, Any]:
        self._enter(who, Action.ROADMAP_UPDATE, channel)
        body = roadmap.update_body(step_id, status, note)
        _, envelope = self._send(who, channel, body, idempotency_key)
        return {"envelope": envelope, "roadmap": _roadmap(self.station, channel)}

    def roadmap(self, who: User, channel: str) -> dict[str, Any]:
        """Steps, their conditions and histories, who has yet to sign, what is unlocked."""
        self._enter(who, Action.CHANNEL_READ, channel)
        return _roadmap(self.station, channel)

    # --- translations -------------------------------------------------------------------------

    def translate(
        self,
        who: User,
        channel: str,
        ref: str,
        *,
        status: str = "draft",
        lang: str | None = None,
        text: str | None = None,
        translator: str | None = None,
        supersedes: str | None = None,
        idempotency_key: str = "",
    ) -> dict[str, Any]:
        """A person's translation of the text message `ref`, in their own name: a draft, a
        correction of `supersedes`, or a certification (of `supersedes`, or written and
        certified at once)."""
        self._enter(who, Action.TRANSLATION_HUMAN, channel)
        if translator is not None and translator != who.name:
            raise Forbidden(
                Code.FORBIDDEN,
                f"{who.name} translates and certifies only in their own name, "
                f"not as {translator!r}",
                action=Action.TRANSLATION_HUMAN.value,
            )
        if status not in HUMAN_STATUSES:
            raise LocalError(Code.INVALID_REQUEST, f"status: one of {', '.join(HUMAN_STATUSES)}")
        st = self.station
        old = None
        if supersedes is not None:
            f = feature.translations(st, channel, ref)
            old = f.state.records.get(supersedes)
            if old is None:
                raise NotFound(Code.NOT_FOUND, f"no translation {supersedes} of message {ref}")
        lang = lang or (old.lang if old else None)
        if lang is None:
            raise LocalError(Code.INVALID_REQUEST, "lang: the language of the translation")
        if status == "draft" or (status == "certified" and old is None):
            if old is not None:
                raise LocalError(
                    Code.INVALID_REQUEST, "a draft supersedes nothing; send a correction"
                )
            feature.original(st, channel, ref)
            body = translation.human_body(
                ref, lang, _need(text), who.name, certified=status == "certified"
            )
        elif status == "corrected":
            if old is None:
                raise LocalError(
                    Code.INVALID_REQUEST, "supersedes: a correction names what it corrects"
                )
            body = translation.correction_body(ref, lang, _need(text), who.name, old.envelope_hash)
        else:
            assert old is not None
            body = translation.certification_body(
                ref, lang, text or old.text, who.name, old.envelope_hash
            )
        row, envelope = self._send(who, channel, body, idempotency_key)
        return self._translated(channel, ref, row, envelope, lang)

    def machine_translate(
        self, who: User, channel: str, ref: str, lang: str, *, idempotency_key: str = ""
    ) -> dict[str, Any]:
        """The configured engine's translation of `ref` into `lang`, recorded as a machine draft
        naming the engine (its product label, never its address)."""
        self._enter(who, Action.TRANSLATION_MACHINE, channel)
        st = self.station
        _, text = feature.original(st, channel, ref)
        engine = feature.engine(st)
        out = engine.translate(str(text["text"]), str(text["lang"]), lang)
        body = translation.machine_body(ref, lang, out, engine.name)
        row, envelope = self._send(who, channel, body, idempotency_key)
        return self._translated(channel, ref, row, envelope, lang)

    def _translated(
        self, channel: str, ref: str, row: EnvelopeRow, envelope: dict[str, Any], reader: str
    ) -> dict[str, Any]:
        f = feature.translations(self.station, channel, ref)
        record = f.state.records.get(b64e(row.hash))
        return {
            "envelope": envelope,
            "translation": _translation(self.station, record, reader) if record else None,
            "view": _translations(self.station, channel, ref, f, reader),
        }

    def translations(
        self, who: User, channel: str, ref: str, reader: str | None = None
    ) -> dict[str, Any]:
        """The original, what a reader of `reader` (default: the station's language) sees, and
        every translation record, per language."""
        self._enter(who, Action.CHANNEL_READ, channel)
        f = feature.translations(self.station, channel, ref)
        return _translations(self.station, channel, ref, f, reader or self.station.cfg.lang)

    def engine(self, who: User) -> dict[str, Any]:
        authorize(who, Action.STATION_READ)
        engine = feature.engine(self.station)
        return {"engine": engine.name, "configured": not isinstance(engine, NoEngine)}

    # --- the console's page -------------------------------------------------------------------

    def board(self, who: User, channel: str) -> dict[str, Any]:
        """Everything the console's talks page shows: the negotiations (newest first) with the
        moves this station can make on each version, the road map, and what `who` may do."""
        state = self._enter(who, Action.CHANNEL_READ, channel)
        st = self.station
        f = feature.negotiations(st, channel)
        me, parties = st.id, f.state.parties
        negotiations = []
        for n in reversed(list(f.state.negotiations.values())):
            view = _negotiation(st, channel, f, n.negotiation_id)
            for v, item in zip(n.versions.values(), view["versions"], strict=True):
                item["can_accept"] = (
                    v.status == "open" and me in parties and me not in v.acceptances
                )
                item["can_withdraw"] = v.status == "open" and v.author == me
            negotiations.append(view)
        rm = _roadmap(st, channel)
        for step in rm["steps"]:
            signed = {s["station"] for s in step["signed"]}
            step["can_agree"] = step["status"] == "proposed" and me in parties and me not in signed
        return {
            "channel": channel,
            "title": state.title,
            **_sides(st, state),
            "negotiations": negotiations,
            "roadmap": rm,
            "ignored": [_ignored(st, i) for i in f.ignored],
            "may": self.may(who),
        }


def desk(station: Station) -> TalksDesk:
    return TalksDesk(station)


# --- views: plain data, the same at every member -------------------------------------------------


def _need(text: str | None) -> str:
    if text is None:
        raise LocalError(Code.INVALID_REQUEST, "text: the translated text")
    return text


def _condition(c: Mapping[str, str]) -> roadmap.Condition:
    try:
        return roadmap.Condition.model_validate(
            {"after_step": c.get("after_step"), "state": c.get("state", "verified")}
        )
    except ValueError:  # pydantic's ValidationError
        raise LocalError(
            Code.INVALID_REQUEST,
            "conditions: each is {after_step: a step id, state: done | verified}",
        ) from None


def _who(station: Station, sid: str | None) -> dict[str, str] | None:
    return {"station": sid, "name": station.peer_name(sid)} if sid else None


def _sides(station: Station, state: ChannelState) -> dict[str, Any]:
    parties, facilitator = feature.sides(state)
    return {
        "parties": [_who(station, p) for p in sorted(parties)],
        "facilitator": _who(station, facilitator),
    }


def _member(station: Station, state: ChannelState, ref: str) -> str:
    """A channel member by station id or by name."""
    if ref in state.members:
        return ref
    named = [m for m in state.members if station.peer_name(m) == ref]
    if len(named) != 1:
        raise LocalError(
            Code.INVALID_REQUEST,
            f"{ref!r} names no member of this channel" if not named else f"{ref!r} is ambiguous",
        )
    return named[0]


def _ignored(station: Station, item: feature.Ignored) -> dict[str, Any]:
    r = item.record
    return {
        "envelope_hash": r.envelope_hash,
        "seq": r.seq,
        "author": _who(station, r.author),
        "ts": r.ts_ms,
        "type": r.type,
        "code": str(item.error.code),
        "reason": item.error.message,
    }


def _version(station: Station, parties: frozenset[str], v: talks.Version) -> dict[str, Any]:
    return {
        "hash": v.hash,
        "parent": v.parent,
        "author": _who(station, v.author),
        "ts": v.ts_ms,
        "envelope_hash": v.envelope_hash,
        "status": v.status,
        "terms": v.terms.to_json(),
        "acceptances": [
            {**(_who(station, p) or {}), "envelope_hash": h}
            for p, h in sorted(v.acceptances.items())
        ],
        "awaiting": [_who(station, p) for p in sorted(parties - v.acceptances.keys())]
        if v.status == "open"
        else [],
    }


def _agreement(
    station: Station, f: feature.Fold[talks.Talks], a: talks.Agreement | None
) -> dict[str, Any] | None:
    if a is None:
        return None
    return {
        "record": a.to_json(),
        "hash": a.hash,
        "signatures": [
            {**(_who(station, p) or {}), "envelope_hash": h, "seq": f.seq_of(h)}
            for p, h in a.acceptances.items()
        ],
    }


def _summary(
    station: Station, f: feature.Fold[talks.Talks], n: talks.Negotiation
) -> dict[str, Any]:
    latest = list(n.versions.values())[-1]
    return {
        "negotiation_id": n.negotiation_id,
        "status": n.status,
        "versions": len(n.versions),
        "open_versions": [v.hash for v in n.open_versions],
        "latest": _version(station, f.state.parties, latest),
        "started": n.log[0].ts_ms,
        "updated": n.log[-1].ts_ms,
        "agreement": _agreement(station, f, n.agreement),
    }


def _negotiation(
    station: Station, channel: str, f: feature.Fold[talks.Talks], nid: str
) -> dict[str, Any]:
    n = f.state.negotiations.get(nid)
    if n is None:
        raise NotFound(Code.NOT_FOUND, f"no negotiation {nid} on channel {channel}")
    parties = f.state.parties
    return {
        "channel": channel,
        "negotiation_id": nid,
        "status": n.status,
        "parties": [_who(station, p) for p in sorted(parties)],
        "facilitator": _who(station, f.state.facilitator),
        "versions": [_version(station, parties, v) for v in n.versions.values()],
        "open_versions": [v.hash for v in n.open_versions],
        "history": [
            {
                "action": e.action,
                "author": _who(station, e.author),
                "ts": e.ts_ms,
                "envelope_hash": e.envelope_hash,
                "version": e.version,
                "parent": e.parent,
                "changes": [
                    {"path": c.path, "before": c.before, "after": c.after} for c in e.changes
                ],
            }
            for e in n.log
        ],
        "agreement": _agreement(station, f, n.agreement),
        "ignored": [
            _ignored(station, i) for i in f.ignored if i.record.body.get("negotiation_id") == nid
        ],
    }


def _awaiting(rm: roadmap.RoadMap, step: roadmap.Step) -> list[tuple[str, list[str]]]:
    """For each move out of the step's status that needs several signatures: who has not signed."""
    out: list[tuple[str, list[str]]] = []
    for target, who in roadmap.TRANSITIONS[step.status].items():
        if who == "every_party":
            needed = rm.parties
        elif who == "every_other_party":
            needed = rm.parties - {step.owner}
        else:
            continue
        out.append((target, sorted(needed - step.signed)))
    return out


def _roadmap(station: Station, channel: str) -> dict[str, Any]:
    f = feature.road_map(station, channel)
    rm = f.state
    unlocked = roadmap.unlocked(rm)
    steps = []
    for sid, step in rm.steps.items():
        steps.append(
            {
                "step_id": sid,
                "owner": _who(station, step.owner),
                "description": step.description,
                "conditions": [
                    {
                        "after_step": c.after_step,
                        "state": c.state,
                        "holds": roadmap.holds(rm, c),
                    }
                    for c in step.conditions
                ],
                "status": step.status,
                "unlocked": sid in unlocked,
                "signed": [_who(station, s) for s in sorted(step.signed)],
                "awaiting": [
                    {"move": target, "stations": [_who(station, s) for s in stations]}
                    for target, stations in _awaiting(rm, step)
                ],
                "history": [
                    {
                        "move": e.move,
                        "status": e.status,
                        "by": _who(station, e.by),
                        "ts": e.ts_ms,
                        "envelope_hash": e.envelope_hash,
                        "note": e.note,
                    }
                    for e in step.history
                ],
            }
        )
    return {
        "channel": channel,
        "parties": [_who(station, p) for p in sorted(rm.parties)],
        "facilitator": _who(station, rm.facilitator),
        "steps": steps,
        "unlocked": list(unlocked),
        "ignored": [_ignored(station, i) for i in f.ignored],
    }


def _translation(station: Station, t: translation.Translation, reader: str) -> dict[str, Any]:
    return {
        "envelope_hash": t.envelope_hash,
        "author": _who(station, t.author),
        "ts": t.ts_ms,
        "lang": t.lang,
        "text": t.text,
        "kind": t.kind,
        "status": t.status,
        "engine": t.engine,
        "translator": t.translator,
        "supersedes": t.supersedes,
        "superseded_by": t.superseded_by,
        "current": t.current,
        "label": t.label(reader),
    }


def _translations(
    station: Station,
    channel: str,
    ref: str,
    f: feature.Fold[translation.Translations],
    reader: str,
) -> dict[str, Any]:
    state = f.state
    original = state.originals[ref]
    shown = state.shown(ref, reader)
    languages = {}
    for lang, lt in state.of(ref).items():
        languages[lang] = {
            "best": _translation(station, lt.best, reader) if lt.best else None,
            "current": [_translation(station, t, reader) for t in lt.current],
            "history": [_translation(station, t, reader) for t in lt.history],
        }
    return {
        "channel": channel,
        "original": {
            "hash": ref,
            "author": _who(station, original.author),
            "ts": original.ts_ms,
            "lang": original.lang,
            "text": original.text,
        },
        "reader_lang": reader,
        "shown": {
            "original": shown.original,
            "original_lang": shown.original_lang,
            "text": shown.text,
            "label": shown.label,
            "translation": shown.translation.envelope_hash if shown.translation else None,
        },
        "languages": languages,
        "ignored": [_ignored(station, i) for i in f.ignored],
    }
