"""Operator API for talks about talks, road maps and translations (under /api/v1).

    POST /channels/{ch}/talks                          propose    {negotiation_id?, terms}
    POST /channels/{ch}/talks/{nid}/counter            counter    {parent, terms}
    POST /channels/{ch}/talks/{nid}/withdraw           withdraw   {version}
    POST /channels/{ch}/talks/{nid}/accept             accept     {version}
    GET  /channels/{ch}/talks                          every negotiation of the channel
    GET  /channels/{ch}/talks/{nid}                    versions, history with changes, agreement
    POST /channels/{ch}/roadmap/steps                  add a step {step_id?, owner, description,
                                                                   conditions?}
    POST /channels/{ch}/roadmap/steps/{sid}/agree
    POST /channels/{ch}/roadmap/steps/{sid}/update     {status, note?}
    GET  /channels/{ch}/roadmap                        steps, histories, what is unlocked
    POST /channels/{ch}/messages/{hash}/translations   a human translation {lang?, text?, status,
                                                                   translator?, supersedes?}
    POST /channels/{ch}/messages/{hash}/translate      a machine translation {lang}
    GET  /channels/{ch}/messages/{hash}/translations   original, what a reader sees, every record
    GET  /translation/engine                           the configured engine

A POST answers with the envelope it queued and the view after it; it takes an Idempotency-Key
header as message sends do. A move the transcript does not allow is refused (409 conflict) and
nothing is sent. Views are folds of the transcript (station/talks.py), identical at every member.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field

from parley.api.auth import Auth
from parley.domain import roadmap, talks, translation
from parley.domain.channels import ChannelState
from parley.errors import Code, LocalError, NotFound
from parley.protocol import crypto
from parley.protocol.encoding import b64e
from parley.station import talks as feature
from parley.station.node import Station
from parley.station.translators import NoEngine
from parley.station.users import User
from parley.store.base import EnvelopeRow

MAX_ID = 64
MAX_HASH = 64


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Propose(Strict):
    negotiation_id: str | None = Field(default=None, max_length=MAX_ID)
    terms: dict[str, Any]


class CounterReq(Strict):
    parent: str = Field(max_length=MAX_HASH)
    terms: dict[str, Any]


class VersionReq(Strict):
    version: str = Field(max_length=MAX_HASH)


class ConditionReq(Strict):
    after_step: str = Field(max_length=MAX_ID)
    state: Literal["done", "verified"] = "verified"


class StepAdd(Strict):
    step_id: str | None = Field(default=None, max_length=MAX_ID)
    owner: str = Field(max_length=200, description="a party: station id or name")
    description: str = Field(max_length=2000)
    conditions: list[ConditionReq] = Field(default_factory=list, max_length=20)


class StepUpdate(Strict):
    status: Literal["in_progress", "done", "verified", "disputed"]
    note: str | None = Field(default=None, max_length=2000)


class HumanTranslation(Strict):
    lang: str | None = Field(default=None, max_length=16, description="default: superseded's")
    text: str | None = Field(default=None, max_length=64 * 1024)
    status: Literal["draft", "corrected", "certified"] = "draft"
    translator: str | None = Field(default=None, max_length=200, description="default: caller")
    supersedes: str | None = Field(default=None, max_length=MAX_HASH)


class MachineTranslation(Strict):
    lang: str = Field(max_length=16)


@dataclass(frozen=True)
class Sender:
    """Who sends, and the request's Idempotency-Key header: what every POST here takes."""

    who: User
    key: str


def _new_id() -> str:
    return b64e(crypto.random_bytes(9))


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["talks"], dependencies=[Depends(auth.user)])

    def sender(
        who: User = Depends(auth.user), idempotency_key: str = Header(default="", max_length=128)
    ) -> Sender:
        return Sender(who, idempotency_key)

    def send(channel: str, body: dict[str, Any], by: Sender) -> tuple[EnvelopeRow, dict[str, Any]]:
        row, created = station.send(channel, body, "ROUTINE", by.key, by.who.name)
        envelope = {
            "channel": channel,
            "seq": row.seq,
            "hash": b64e(row.hash),
            "status": "queued",
            "created": created,
        }
        return row, envelope

    # --- talks -----------------------------------------------------------------------------------

    def moved(channel: str, nid: str, row: EnvelopeRow, envelope: dict[str, Any]) -> dict[str, Any]:
        f = feature.negotiations(station, channel)
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
            "negotiation": _negotiation(station, channel, f, nid),
        }

    @r.post("/channels/{channel}/talks")
    def propose(channel: str, req: Propose, by: Sender = Depends(sender)) -> dict[str, Any]:
        station.guard(channel, by.who)
        nid = req.negotiation_id or _new_id()
        body = talks.propose_body(nid, talks.terms_from_json(req.terms))
        row, envelope = send(channel, body, by)
        sent = station.store.body(row.hash)
        nid = str(sent.body["negotiation_id"]) if sent else nid  # a repeated key: the first one
        return moved(channel, nid, row, envelope)

    @r.post("/channels/{channel}/talks/{nid}/counter")
    def counter(
        channel: str, nid: str, req: CounterReq, by: Sender = Depends(sender)
    ) -> dict[str, Any]:
        station.guard(channel, by.who)
        body = talks.counter_body(nid, req.parent, talks.terms_from_json(req.terms))
        row, envelope = send(channel, body, by)
        return moved(channel, nid, row, envelope)

    @r.post("/channels/{channel}/talks/{nid}/{action}")
    def version_move(
        channel: str,
        nid: str,
        action: Literal["withdraw", "accept"],
        req: VersionReq,
        by: Sender = Depends(sender),
    ) -> dict[str, Any]:
        station.guard(channel, by.who)
        build = talks.accept_body if action == "accept" else talks.withdraw_body
        row, envelope = send(channel, build(nid, req.version), by)
        return moved(channel, nid, row, envelope)

    @r.get("/channels/{channel}/talks")
    def list_talks(channel: str, who: User = Depends(auth.user)) -> dict[str, Any]:
        state = station.guard(channel, who)
        f = feature.negotiations(station, channel)
        return {
            "channel": channel,
            **_sides(station, state),
            "negotiations": [_summary(station, f, n) for n in f.state.negotiations.values()],
            "ignored": [_ignored(station, i) for i in f.ignored],
        }

    @r.get("/channels/{channel}/talks/{nid}")
    def show_talks(channel: str, nid: str, who: User = Depends(auth.user)) -> dict[str, Any]:
        station.guard(channel, who)
        return _negotiation(station, channel, feature.negotiations(station, channel), nid)

    # --- road map --------------------------------------------------------------------------------

    def mapped(channel: str, envelope: dict[str, Any]) -> dict[str, Any]:
        return {"envelope": envelope, "roadmap": _roadmap(station, channel)}

    @r.post("/channels/{channel}/roadmap/steps")
    def add_step(channel: str, req: StepAdd, by: Sender = Depends(sender)) -> dict[str, Any]:
        state = station.guard(channel, by.who)
        conditions = tuple(
            roadmap.Condition(after_step=c.after_step, state=c.state) for c in req.conditions
        )
        body = roadmap.add_step_body(
            req.step_id or _new_id(), _member(station, state, req.owner), req.description,
            conditions,
        )  # fmt: skip
        _, envelope = send(channel, body, by)
        return mapped(channel, envelope)

    @r.post("/channels/{channel}/roadmap/steps/{step_id}/agree")
    def agree_step(channel: str, step_id: str, by: Sender = Depends(sender)) -> dict[str, Any]:
        station.guard(channel, by.who)
        _, envelope = send(channel, roadmap.agree_body(step_id), by)
        return mapped(channel, envelope)

    @r.post("/channels/{channel}/roadmap/steps/{step_id}/update")
    def update_step(
        channel: str, step_id: str, req: StepUpdate, by: Sender = Depends(sender)
    ) -> dict[str, Any]:
        station.guard(channel, by.who)
        body = roadmap.update_body(step_id, req.status, req.note)
        _, envelope = send(channel, body, by)
        return mapped(channel, envelope)

    @r.get("/channels/{channel}/roadmap")
    def show_roadmap(channel: str, who: User = Depends(auth.user)) -> dict[str, Any]:
        station.guard(channel, who)
        return _roadmap(station, channel)

    # --- translation -----------------------------------------------------------------------------

    def translated(
        channel: str, ref: str, row: EnvelopeRow, envelope: dict[str, Any], reader: str
    ) -> dict[str, Any]:
        f = feature.translations(station, channel, ref)
        record = f.state.records.get(b64e(row.hash))
        return {
            "envelope": envelope,
            "translation": _translation(station, record, reader) if record else None,
            "view": _translations(station, channel, ref, f, reader),
        }

    @r.post("/channels/{channel}/messages/{ref}/translations")
    def add_translation(
        channel: str, ref: str, req: HumanTranslation, by: Sender = Depends(sender)
    ) -> dict[str, Any]:
        station.guard(channel, by.who)
        translator = req.translator or by.who.name
        old = None
        if req.supersedes is not None:
            f = feature.translations(station, channel, ref)
            old = f.state.records.get(req.supersedes)
            if old is None:
                raise NotFound(Code.NOT_FOUND, f"no translation {req.supersedes} of message {ref}")
        lang = req.lang or (old.lang if old else None)
        if lang is None:
            raise LocalError(Code.INVALID_REQUEST, "lang: the language of the translation")
        if req.status == "draft" or (req.status == "certified" and old is None):
            if old is not None:
                raise LocalError(
                    Code.INVALID_REQUEST, "a draft supersedes nothing; send a correction"
                )
            body = translation.human_body(
                ref, lang, _need(req.text), translator, certified=req.status == "certified"
            )
        elif req.status == "corrected":
            if old is None:
                raise LocalError(
                    Code.INVALID_REQUEST, "supersedes: a correction names what it corrects"
                )
            body = translation.correction_body(
                ref, lang, _need(req.text), translator, old.envelope_hash
            )
        else:
            assert old is not None
            body = translation.certification_body(
                ref, lang, req.text or old.text, translator, old.envelope_hash
            )
        row, envelope = send(channel, body, by)
        return translated(channel, ref, row, envelope, lang)

    @r.post("/channels/{channel}/messages/{ref}/translate")
    def machine_translate(
        channel: str, ref: str, req: MachineTranslation, by: Sender = Depends(sender)
    ) -> dict[str, Any]:
        station.guard(channel, by.who)
        _, text = feature.original(station, channel, ref)
        engine = feature.engine(station)
        out = engine.translate(str(text["text"]), str(text["lang"]), req.lang)
        body = translation.machine_body(ref, req.lang, out, engine.name)
        row, envelope = send(channel, body, by)
        return translated(channel, ref, row, envelope, req.lang)

    @r.get("/channels/{channel}/messages/{ref}/translations")
    def show_translations(
        channel: str,
        ref: str,
        lang: str | None = Query(None, max_length=16, description="the reader's language"),
        who: User = Depends(auth.user),
    ) -> dict[str, Any]:
        station.guard(channel, who)
        f = feature.translations(station, channel, ref)
        return _translations(station, channel, ref, f, lang or station.cfg.lang)

    @r.get("/translation/engine")
    def translation_engine() -> dict[str, Any]:
        engine = feature.engine(station)
        return {"engine": engine.name, "configured": not isinstance(engine, NoEngine)}

    return r


# --- views ---------------------------------------------------------------------------------------


def _need(text: str | None) -> str:
    if text is None:
        raise LocalError(Code.INVALID_REQUEST, "text: the translated text")
    return text


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
