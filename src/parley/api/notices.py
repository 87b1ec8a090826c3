"""Operator API for the forms catalogue, notices, acknowledgements and deadlines (under /api/v1).

    GET  /forms?lang=&all_versions=                  every form (latest versions by default)
    GET  /forms/{form_id}?version=&lang=             one form: schema, fields with labels, example
    POST /channels/{ch}/notices                      send a notice {form, fields | inputs,
                                                     timezone?, version?, lang?,
                                                     deadline_ms? | deadline_hours?, precedence?};
                                                     a wrong field: 422 bad_body, details.fields
                                                     [{field, code, message}], nothing sent
    POST /channels/{ch}/notices/preview              the notice as each member would read it
                                                     {form, fields | inputs, timezone?, lang?}:
                                                     errors, lateness warning, text and map per
                                                     member in its language; nothing is sent
    GET  /channels/{ch}/notices                      the channel's notices with their answers
    GET  /channels/{ch}/notices/{hash}?lang=ko       the notice rendered in a language: text,
                                                     html, svg, lateness, deadline, answers, acks
    GET  /channels/{ch}/notices/{hash}/map.svg?lang= its map picture (image/svg+xml)
    POST /channels/{ch}/messages/{hash}/ack          answer a message or notice {answer, text?,
                                                     by?, precedence?}
    GET  /channels/{ch}/messages/{hash}/acks         every answer to a message or notice
    GET  /deadlines?all=                             acknowledgement deadlines, soonest first,
                                                     with time left (unanswered unless all=true)

POSTs take an Idempotency-Key header as message sends do. The routes only parse and render:
`NoticeDesk` (station/notices.py) checks the role table and, on every channel route, that the
caller may see the channel (a back channel only for its named representatives).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from parley.api.actions import acts
from parley.api.auth import Auth, Sender
from parley.domain import deadlines
from parley.domain.forms.inputs import MAX_INPUT_CHARS, MAX_INPUTS
from parley.station.node import Station
from parley.station.notices import desk
from parley.station.roles import Action
from parley.station.users import User

Precedence = Literal["ROUTINE", "PRIORITY", "IMMEDIATE", "FLASH"]
Lang = Query(default=None, max_length=16, pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


InputKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
InputText = Annotated[str, StringConstraints(max_length=MAX_INPUT_CHARS)]


class NoticePreview(Strict):
    form: str = Field(min_length=1, max_length=64)
    # Either the fields as the notice carries them (integers: Unix ms, micro-degrees) or
    # `inputs`: text as a person types it (domain/forms/inputs), read in `timezone`.
    fields: dict[str, Any] | None = None
    inputs: dict[InputKey, InputText] | None = Field(default=None, max_length=MAX_INPUTS)
    timezone: str | None = Field(default=None, max_length=64)
    version: int | None = Field(default=None, ge=1)
    lang: str | None = Field(default=None, max_length=16)


class NoticeSend(NoticePreview):
    deadline_ms: int | None = Field(default=None, ge=0)
    deadline_hours: int | None = Field(default=None, ge=1, le=8760)  # or: due in H hours
    precedence: Precedence | None = None


class AckSend(Strict):
    answer: Literal["acknowledged", "questions", "rejected"]
    text: str = Field(default="", max_length=deadlines.MAX_ACK_TEXT_CHARS)
    by: str | None = Field(default=None, max_length=deadlines.MAX_PERSON_CHARS)
    precedence: Precedence | None = None


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["notices"], dependencies=[Depends(auth.user)])
    notices = desk(station)

    @r.get("/forms", **acts(Action.STATION_READ))
    def list_forms(
        lang: str | None = Lang, all_versions: bool = False, who: User = Depends(auth.user)
    ) -> list[dict[str, Any]]:
        return notices.forms(who, lang, all_versions=all_versions)

    @r.get("/forms/{form_id}", **acts(Action.STATION_READ))
    def show_form(
        form_id: str,
        version: int | None = Query(None, ge=1),
        lang: str | None = Lang,
        who: User = Depends(auth.user),
    ) -> dict[str, Any]:
        return notices.form(who, form_id, version, lang)

    @r.post("/channels/{channel}/notices", **acts(Action.NOTICE_SEND, keyed=True))
    def send_notice(
        channel: str, req: NoticeSend, s: Sender = Depends(auth.sender)
    ) -> dict[str, Any]:
        return notices.send_notice(
            s.user, channel, req.form, req.fields, texts=req.inputs, zone=req.timezone,
            lang=req.lang, version=req.version,
            deadline_ms=req.deadline_ms, deadline_hours=req.deadline_hours,
            prec=req.precedence, idempotency_key=s.key,
        )  # fmt: skip

    @r.post("/channels/{channel}/notices/preview", **acts(Action.NOTICE_SEND))
    def preview_notice(
        channel: str, req: NoticePreview, who: User = Depends(auth.user)
    ) -> dict[str, Any]:
        return notices.preview(
            who, channel, req.form, req.fields, req.inputs, lang=req.lang,
            version=req.version, zone=req.timezone,
        )  # fmt: skip

    @r.get("/channels/{channel}/notices", **acts(Action.CHANNEL_READ))
    def list_notices(channel: str, who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        return notices.notice_list(who, channel)

    @r.get("/channels/{channel}/notices/{ref}", **acts(Action.CHANNEL_READ))
    def show_notice(
        channel: str, ref: str, lang: str | None = Lang, who: User = Depends(auth.user)
    ) -> dict[str, Any]:
        return notices.notice_view(who, channel, ref, lang)

    @r.get(
        "/channels/{channel}/notices/{ref}/map.svg",
        response_class=Response,
        **acts(Action.CHANNEL_READ),
    )
    def notice_map(
        channel: str, ref: str, lang: str | None = Lang, who: User = Depends(auth.user)
    ) -> Response:
        return Response(
            notices.notice_map(who, channel, ref, lang),
            media_type="image/svg+xml",
            # Untrusted content (escaped by svgmap), but never let a browser run anything in it.
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @r.post("/channels/{channel}/messages/{ref}/ack", **acts(Action.NOTICE_ACK, keyed=True))
    def ack(
        channel: str, ref: str, req: AckSend, s: Sender = Depends(auth.sender)
    ) -> dict[str, Any]:
        return notices.acknowledge(
            s.user, channel, ref, req.answer, req.text, req.by, prec=req.precedence,
            idempotency_key=s.key,
        )  # fmt: skip

    @r.get("/channels/{channel}/messages/{ref}/acks", **acts(Action.CHANNEL_READ))
    def acks(channel: str, ref: str, who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        return notices.acks(who, channel, ref)

    @r.get("/deadlines", **acts(Action.CHANNEL_READ))
    def open_deadlines(all: bool = False, who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        return notices.deadlines(who, include_answered=all)

    return r
