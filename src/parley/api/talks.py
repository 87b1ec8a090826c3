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

Each route parses its input and calls the station's `TalksDesk` (station/talks_desk.py), which
checks the caller's role and channel and answers; the route's action is in OpenAPI
(`x-parley-action`). A POST answers with the envelope it queued and the view after it; it takes
an Idempotency-Key header as message sends do. A move the transcript does not allow is refused
(409 conflict) and nothing is sent. A human translation is signed in the caller's own name:
`translator`, if given, must be it (403 forbidden otherwise). Views are folds of the transcript
(station/talks.py), identical at every member.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from parley.api.actions import acts
from parley.api.auth import Auth, Sender
from parley.station.node import Station
from parley.station.roles import Action
from parley.station.talks_desk import desk
from parley.station.users import User

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
    translator: str | None = Field(
        default=None, max_length=200, description="the caller's own user name (the default)"
    )
    supersedes: str | None = Field(default=None, max_length=MAX_HASH)


class MachineTranslation(Strict):
    lang: str = Field(max_length=16)


def router(station: Station, auth: Auth) -> APIRouter:
    # Each route takes its caller itself (tests/security/test_auth_everywhere.py): a router's
    # own would be solved beside a route's `sender`, a second dependency per request (issue 14).
    r = APIRouter(prefix="/api/v1", tags=["talks"])
    d = desk(station)
    caller = Depends(auth.user)
    sender = Depends(auth.sender)  # the caller and the Idempotency-Key, with its request

    # --- talks -----------------------------------------------------------------------------------

    @r.post("/channels/{channel}/talks", **acts(Action.TALKS_PROPOSE, keyed=True))
    def propose(channel: str, req: Propose, s: Sender = sender) -> dict[str, Any]:
        return d.propose(s.user, channel, req.terms, req.negotiation_id, idempotency_key=s.key)

    @r.post("/channels/{channel}/talks/{nid}/counter", **acts(Action.TALKS_COUNTER, keyed=True))
    def counter(channel: str, nid: str, req: CounterReq, s: Sender = sender) -> dict[str, Any]:
        return d.counter(s.user, channel, nid, req.parent, req.terms, idempotency_key=s.key)

    def version_route(move: str, action: Action) -> None:
        @r.post(
            f"/channels/{{channel}}/talks/{{nid}}/{move}", name=move, **acts(action, keyed=True)
        )
        def version_move(
            channel: str, nid: str, req: VersionReq, s: Sender = sender
        ) -> dict[str, Any]:
            return d.version_move(s.user, channel, nid, move, req.version, idempotency_key=s.key)

    version_route("withdraw", Action.TALKS_WITHDRAW)
    version_route("accept", Action.TALKS_ACCEPT)

    @r.get("/channels/{channel}/talks", **acts(Action.CHANNEL_READ))
    def list_talks(channel: str, who: User = caller) -> dict[str, Any]:
        return d.negotiations(who, channel)

    @r.get("/channels/{channel}/talks/{nid}", **acts(Action.CHANNEL_READ))
    def show_talks(channel: str, nid: str, who: User = caller) -> dict[str, Any]:
        return d.negotiation(who, channel, nid)

    # --- road map --------------------------------------------------------------------------------

    @r.post("/channels/{channel}/roadmap/steps", **acts(Action.ROADMAP_ADD, keyed=True))
    def add_step(channel: str, req: StepAdd, s: Sender = sender) -> dict[str, Any]:
        return d.add_step(
            s.user, channel, req.owner, req.description,
            [c.model_dump() for c in req.conditions], req.step_id,
            idempotency_key=s.key,
        )  # fmt: skip

    @r.post(
        "/channels/{channel}/roadmap/steps/{step_id}/agree",
        **acts(Action.ROADMAP_AGREE, keyed=True),
    )
    def agree_step(channel: str, step_id: str, s: Sender = sender) -> dict[str, Any]:
        return d.agree_step(s.user, channel, step_id, idempotency_key=s.key)

    @r.post(
        "/channels/{channel}/roadmap/steps/{step_id}/update",
        **acts(Action.ROADMAP_UPDATE, keyed=True),
    )
    def update_step(
        channel: str, step_id: str, req: StepUpdate, s: Sender = sender
    ) -> dict[str, Any]:
        return d.update_step(s.user, channel, step_id, req.status, req.note, idempotency_key=s.key)

    @r.get("/channels/{channel}/roadmap", **acts(Action.CHANNEL_READ))
    def show_roadmap(channel: str, who: User = caller) -> dict[str, Any]:
        return d.roadmap(who, channel)

    # --- translation -----------------------------------------------------------------------------

    @r.post(
        "/channels/{channel}/messages/{ref}/translations",
        **acts(Action.TRANSLATION_HUMAN, keyed=True),
    )
    def add_translation(
        channel: str, ref: str, req: HumanTranslation, s: Sender = sender
    ) -> dict[str, Any]:
        return d.translate(
            s.user, channel, ref, status=req.status, lang=req.lang, text=req.text,
            translator=req.translator, supersedes=req.supersedes,
            idempotency_key=s.key,
        )  # fmt: skip

    @r.post(
        "/channels/{channel}/messages/{ref}/translate",
        **acts(Action.TRANSLATION_MACHINE, keyed=True),
    )
    def machine_translate(
        channel: str, ref: str, req: MachineTranslation, s: Sender = sender
    ) -> dict[str, Any]:
        return d.machine_translate(s.user, channel, ref, req.lang, idempotency_key=s.key)

    @r.get("/channels/{channel}/messages/{ref}/translations", **acts(Action.CHANNEL_READ))
    def show_translations(
        channel: str,
        ref: str,
        lang: str | None = Query(None, max_length=16, description="the reader's language"),
        who: User = caller,
    ) -> dict[str, Any]:
        return d.translations(who, channel, ref, lang)

    @r.get("/translation/engine", **acts(Action.STATION_READ))
    def translation_engine(who: User = caller) -> dict[str, Any]:
        return d.engine(who)

    return r
