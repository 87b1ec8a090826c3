"""Notices from the forms catalogue: the composer (errors beside each field), notices shown in
a channel with their map and deadline, and acknowledgements.

Field inputs follow the form's top-level fields (domain/notices.form_fields): a choice for an
enumeration, a number box for an integer, a text area for free text, and for a structured
value (a time window, an area) a text area holding its JSON, prefilled from the form's example.
An error anywhere inside a field is shown beside that field.

Who may send, answer or read is `NoticeDesk`'s to decide (station/notices.py): every route
passes the signed-in user to it and renders what it answers.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from parley.domain import deadlines
from parley.domain.notices import TYPE, TYPE_ACK, InvalidNotice, form_fields
from parley.errors import Code, LocalError, ParleyError
from parley.station.node import Message, Station
from parley.station.notices import desk
from parley.station.users import User
from parley.web.console import Console
from parley.web.session import Viewer

ANSWERS = tuple(a.value for a in deadlines.Answer)
_HEAD = re.compile(r"[^.\[]+")


def _top(path: str) -> str:
    """The top-level field an error path is inside: "launch_area.points[2].lat_e6" -> …area."""
    m = _HEAD.match(path)
    return m.group(0) if m else ""


def input_kind(kind: object) -> str:
    if isinstance(kind, dict):
        return "choice"
    if kind in ("integer", "number"):
        return "number"
    if kind in ("free_text", "string"):
        return "text"
    return "json"


def composer(st: Station, form_id: str, lang: str, values: dict[str, str] | None) -> Any:
    cat = desk(st).catalogue
    forms = [(f.id, f.title(lang)) for f in cat.list()]
    form = cat.get(form_id) if form_id else None
    fields = []
    if form is not None:
        example = dict(form.example or {})
        for f in form_fields(form, lang):
            kind = input_kind(f["kind"])
            if values is not None:
                value = values.get(f["name"], "")
            elif f["name"] in example:
                v = example[f["name"]]
                value = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, indent=1)
            else:
                value = ""
            choices = f["kind"]["enum"] if kind == "choice" else []
            fields.append(f | {"input": kind, "value": value, "choices": choices})
    return {"forms": forms, "form": form, "fields": fields}


def _parse(
    fields: list[dict[str, Any]], raw: dict[str, str], words: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """Form inputs to notice fields, and errors for inputs that are not even well-formed."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        text = raw.get(f["name"], "").strip()
        if not text:
            if f["required"]:
                errors[f["name"]] = words("form.required")
            continue
        if f["input"] == "number":
            if re.fullmatch(r"-?\d{1,15}", text):
                out[f["name"]] = int(text)
            else:
                errors[f["name"]] = words("notice.integer")
        elif f["input"] == "json":
            try:
                out[f["name"]] = json.loads(text)
            except ValueError as exc:
                errors[f["name"]] = words("notice.json", where=f"{exc.args[0][:80]}")
        else:
            out[f["name"]] = text
    return out, errors


def notice_row(st: Station, who: User, m: Message, lang: str) -> dict[str, Any]:
    """A notice as the channel page shows it to `who`: the rendering in the reader's language
    (plain text), its map as an image (an <img> never runs script), deadline and answers."""
    shown = lang if lang in _langs(st, m) else None
    view = desk(st).notice_view(who, m.channel, m.hash, shown)
    svg = view.get("svg") or ""
    view["map_src"] = (
        "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode() if svg else ""
    )
    view["owed"] = m.sender != st.id and not any(a["station"] == st.id for a in view["acks"])
    return view


def _langs(st: Station, m: Message) -> tuple[str, ...]:
    form = desk(st).catalogue.get(str(m.body.get("form")), int(m.body.get("version", 0)) or None)
    return form.languages


def ack_line(m: Message) -> dict[str, str]:
    return {k: str(m.body.get(k, "")) for k in ("ref", "answer", "text", "by")}


def deadlines_for(st: Station, v: Viewer) -> list[dict[str, Any]]:
    return desk(st).deadlines(v.user)


def routes(c: Console) -> APIRouter:
    r = APIRouter()
    st = c.station

    @r.get("/channels/{channel}/notice")
    def compose(
        channel: str, request: Request, form: str = "", v: Viewer = Depends(c.viewer)
    ) -> Response:
        state = desk(st).may_send(v.user, channel)
        ctx = composer(st, form, v.lang, None)
        return c.page(request, "notice.html", v, ch=state, errors={}, **ctx)

    @r.post("/channels/{channel}/notice")
    def send(
        channel: str,
        request: Request,
        v: Viewer = Depends(c.poster),
        raw: dict[str, str] = Depends(c.form),
    ) -> Response:
        state = desk(st).may_send(v.user, channel)
        form_id = raw.get("form", "")[:64]
        ctx = composer(st, form_id, v.lang, raw)
        if ctx["form"] is None:
            raise LocalError(Code.INVALID_REQUEST, "choose a form")
        fields, errors = _parse(ctx["fields"], raw, v.words)
        if not errors:
            try:
                sent = desk(st).send_notice(
                    v.user, channel, form_id, fields,
                    lang=v.lang if v.lang in ctx["form"].languages else None,
                )  # fmt: skip
                return c.back(f"/channels/{channel}", "notice.sent", sent["seq"])
            except InvalidNotice as exc:
                found = exc.details.get("fields", [])
                for e in found if isinstance(found, list) else []:
                    key = _top(e["field"]) or "_form"
                    errors[key] = (errors.get(key, "") + " " + e["message"]).strip()
            except ParleyError as exc:
                errors["_form"] = exc.message
        return c.page(request, "notice.html", v, status=422, ch=state, errors=errors, **ctx)

    @r.post("/channels/{channel}/ack")
    def ack(
        channel: str,
        v: Viewer = Depends(c.poster),
        ref: str = Form(...),
        answer: str = Form("acknowledged"),
        text: str = Form(""),
    ) -> Response:
        # The desk checks the role first, then the answer (domain/deadlines), then sends.
        desk(st).acknowledge(v.user, channel, ref, answer, text[: deadlines.MAX_ACK_TEXT_CHARS])
        return c.back(f"/channels/{channel}", "notice.acked")

    return r


__all__ = ["TYPE", "TYPE_ACK", "ack_line", "deadlines_for", "notice_row", "routes"]
