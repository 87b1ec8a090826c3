"""Operator API for the forms catalogue, notices, acknowledgements and deadlines (under /api/v1).

    GET  /forms?lang=&all_versions=                  every form (latest versions by default)
    GET  /forms/{form_id}?version=&lang=             one form: schema, fields with labels, example
    POST /channels/{ch}/notices                      send a notice {form, fields, version?, lang?,
                                                     deadline_ms? | deadline_hours?, precedence?};
                                                     a wrong field: 422 bad_body, details.fields
                                                     [{field, code, message}], nothing sent
    GET  /channels/{ch}/notices                      the channel's notices with their answers
    GET  /channels/{ch}/notices/{hash}?lang=ko       the notice rendered in a language: text,
                                                     html, svg, lateness, deadline, answers, acks
    GET  /channels/{ch}/notices/{hash}/map.svg?lang= its map picture (image/svg+xml)
    POST /channels/{ch}/messages/{hash}/ack          answer a message or notice {answer, text?,
                                                     by?, precedence?}
    GET  /channels/{ch}/messages/{hash}/acks         every answer to a message or notice
    GET  /deadlines?all=                             acknowledgement deadlines, soonest first,
                                                     with time left (unanswered unless all=true)

POSTs take an Idempotency-Key header as message sends do. Every channel route checks that the
caller may see the channel (a back channel only for its named representatives).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from parley.api.auth import Auth
from parley.domain import deadlines
from parley.domain.notices import form_fields
from parley.errors import Code, Forbidden, LocalError
from parley.station.node import Station
from parley.station.notices import desk
from parley.station.users import BOOTSTRAP, User

Precedence = Literal["ROUTINE", "PRIORITY", "IMMEDIATE", "FLASH"]
Lang = Query(default=None, max_length=16, pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoticeSend(Strict):
    form: str = Field(min_length=1, max_length=64)
    fields: dict[str, Any]
    version: int | None = Field(default=None, ge=1)
    lang: str | None = Field(default=None, max_length=16)
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
    # Sending and answering are duty work (a representative does it on a back channel).
    duty = auth.role("operator", "representative")

    @r.get("/forms")
    def list_forms(lang: str | None = Lang, all_versions: bool = False) -> list[dict[str, Any]]:
        shown = lang or station.cfg.lang
        return [
            f.summary() | {"name": f.title(shown)}
            for f in notices.catalogue.list(all_versions=all_versions)
        ]

    @r.get("/forms/{form_id}")
    def show_form(
        form_id: str, version: int | None = Query(None, ge=1), lang: str | None = Lang
    ) -> dict[str, Any]:
        shown = lang or station.cfg.lang
        form = notices.catalogue.get(form_id, version)
        return form.summary() | {
            "name": form.title(shown),
            "description": form.descriptions.get(shown) or form.descriptions.get("en", ""),
            "lead_time": {"field": form.lead_time.field, "min_hours": form.lead_time.min_hours}
            if form.lead_time
            else None,
            "fields": form_fields(form, shown),
            "schema": form.schema,
            "example": form.example,
        }

    @r.post("/channels/{channel}/notices")
    def send_notice(
        channel: str,
        req: NoticeSend,
        who: User = Depends(duty),
        idempotency_key: str = Header(default="", max_length=128),
    ) -> dict[str, Any]:
        station.guard(channel, who)
        deadline = req.deadline_ms
        if req.deadline_hours is not None:
            if deadline is not None:
                raise LocalError(
                    Code.INVALID_REQUEST, "give deadline_ms or deadline_hours, not both"
                )
            deadline = station.clock() + req.deadline_hours * 3_600_000
        return notices.send_notice(
            channel, req.form, req.fields, lang=req.lang, version=req.version,
            deadline_ms=deadline, prec=req.precedence,
            idempotency_key=idempotency_key, actor=who.name,
        )  # fmt: skip

    @r.get("/channels/{channel}/notices")
    def list_notices(channel: str, who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        station.guard(channel, who)
        return notices.notice_list(channel)

    @r.get("/channels/{channel}/notices/{ref}")
    def show_notice(
        channel: str, ref: str, lang: str | None = Lang, who: User = Depends(auth.user)
    ) -> dict[str, Any]:
        station.guard(channel, who)
        return notices.notice_view(channel, ref, lang)

    @r.get("/channels/{channel}/notices/{ref}/map.svg", response_class=Response)
    def notice_map(
        channel: str, ref: str, lang: str | None = Lang, who: User = Depends(auth.user)
    ) -> Response:
        station.guard(channel, who)
        return Response(
            notices.notice_map(channel, ref, lang),
            media_type="image/svg+xml",
            # Untrusted content (escaped by svgmap), but never let a browser run anything in it.
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @r.post("/channels/{channel}/messages/{ref}/ack")
    def ack(
        channel: str,
        ref: str,
        req: AckSend,
        who: User = Depends(duty),
        idempotency_key: str = Header(default="", max_length=128),
    ) -> dict[str, Any]:
        station.guard(channel, who)
        # An acknowledgement is a named person's act: the shared bootstrap token must say who
        # answers; a named user answers as themselves.
        if req.by and who != BOOTSTRAP and req.by != who.name:
            raise Forbidden(Code.FORBIDDEN, f"you answer as {who.name}, not as {req.by}")
        return notices.acknowledge(
            channel, ref, req.answer, req.text, req.by or who.name, prec=req.precedence,
            idempotency_key=idempotency_key, actor=who.name,
        )  # fmt: skip

    @r.get("/channels/{channel}/messages/{ref}/acks")
    def acks(channel: str, ref: str, who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        station.guard(channel, who)
        return notices.acks(channel, ref)

    @r.get("/deadlines")
    def open_deadlines(all: bool = False, who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        return notices.deadlines(who, include_answered=all)

    return r
