"""Notices from the forms catalogue: the composer (an input per kind of field, errors beside
each field, a preview as each member will read it), notices shown in a channel with their map
and deadline, and acknowledgements.

Each top-level field of a form gets an input for its kind (station/notices.form_inputs, which
reads the schema; domain/forms/inputs parses what is typed): a window as a start and an end
(end: a time, or "+4h"), an area as corners or "circle CENTRE RADIUS" with a name and a map to
click corners on (static/mappick.js, the station's own script), a point likewise, a time, a
choice (or several, as boxes), yes/no, a number with its unit, text, one item per line for
lists, and a group as one input per part. Times are typed in the zone chosen on the form (the
station's `timezone` by default, or UTC) and echoed in both. Every structured field still takes
JSON. An error anywhere inside a field is shown beside that field.

Who may send, preview, answer or read is `NoticeDesk`'s to decide (station/notices.py): every
route passes the signed-in user to it and renders what it answers.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from parley.domain import deadlines
from parley.domain.forms import svgmap
from parley.domain.notices import TYPE, TYPE_ACK, InvalidNotice
from parley.errors import Code, LocalError, ParleyError
from parley.station.node import Message, Station
from parley.station.notices import desk
from parley.station.users import User
from parley.web.console import Console
from parley.web.session import Viewer

ANSWERS = tuple(a.value for a in deadlines.Answer)
_HEAD = re.compile(r"[^.\[]+")
MULTI = "@"  # a box of a multiple choice is named FIELD@VALUE


def _top(path: str) -> str:
    """The top-level field an error path is inside: "launch_area.points[2].lat_e6" -> …area."""
    m = _HEAD.match(path)
    return m.group(0) if m else ""


def widget(kind: object) -> str:
    """Which input the page shows for a field's input kind (domain/forms/inputs.kind_of)."""
    if isinstance(kind, dict):
        return "choices" if "list" in kind else "choice"
    simple = {
        "window": "window", "area": "area", "point": "point", "time_ms": "time",
        "boolean": "boolean", "integer": "number", "number": "number", "count": "number",
        "free_text": "text", "short_text": "line", "ref": "line", "string": "line",
        "object": "group",
    }  # fmt: skip
    if isinstance(kind, str) and kind.startswith("list of "):
        return "lines"
    return simple.get(str(kind), "text")


def _unit(name: str) -> str:
    for suffix in ("_hours", "_minutes", "_m", "_km"):
        if name.endswith(suffix):
            return suffix[1:]
    return ""


def composer(st: Station, who: User, form_id: str, lang: str, values: dict[str, str] | None) -> Any:
    d = desk(st)
    cat = d.catalogue
    forms = [(f.id, f.title(lang)) for f in cat.list()]
    form = cat.get(form_id) if form_id else None
    fields = []
    zone = st.cfg.timezone
    if form is not None:
        spec = d.form_inputs(who, form.id, lang)
        for f in spec["fields"]:
            w = widget(f["input"])
            name = f["name"]
            if values is not None:
                value = values.get(name, "")
                parts = {
                    k.partition(".")[2]: v for k, v in values.items() if k.startswith(name + ".")
                }
                chosen = {k.partition(MULTI)[2] for k in values if k.startswith(name + MULTI)}
            else:
                value, parts, chosen = f["example"], {}, set()
                if w == "window" and " / " in value:
                    parts = dict(zip(("start", "end"), value.split(" / ", 1), strict=True))
                    value = ""
                if w == "area" and f["example"]:
                    named, sep, rest = value.partition(": ")
                    if sep:
                        parts, value = {"name": named}, rest
                if w == "choices":
                    chosen = {c.strip() for c in value.split(",") if c.strip()}
                if w == "group" and value.startswith("{"):
                    ex = (form.example or {}).get(name, {})
                    parts = {k: str(v) for k, v in ex.items()} if isinstance(ex, dict) else {}
                    value = ""
            kind = f["input"]
            choices = (
                kind["enum"] if isinstance(kind, dict) and "enum" in kind
                else kind["list"]["enum"] if isinstance(kind, dict) else []
            )  # fmt: skip
            fields.append(
                f | {"widget": w, "value": value, "parts_values": parts, "chosen": chosen,
                     "choices": choices, "unit": _unit(name)}
            )  # fmt: skip
    if values is not None:
        zone = values.get("_zone") or zone
    return {"forms": forms, "form": form, "fields": fields, "zone": zone,
            "zones": sorted({st.cfg.timezone, "UTC"})}  # fmt: skip


def texts_of(fields: list[dict[str, Any]], raw: dict[str, str]) -> dict[str, str]:
    """What was typed, as domain/forms/inputs reads it: FIELD and FIELD.PART inputs; the boxes
    of a multiple choice joined with commas."""
    out: dict[str, str] = {}
    for f in fields:
        name = f["name"]
        for key, value in raw.items():
            if key == name or key.startswith(name + "."):
                out[key] = value
        if f["widget"] == "choices":
            out[name] = ", ".join(k.partition(MULTI)[2] for k in raw if k.startswith(name + MULTI))
    return out


def pick_map(st: Station, form: Any, fields: Any, lang: str) -> str:
    """The map the composer's clicks land on: the notice so far (or the form's example) over
    the base map, with its projection in data- attributes for static/mappick.js."""
    return svgmap.render_map_svg(form, fields or form.example or {}, lang, pickable=True)


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

    def page(
        request: Request, v: Viewer, channel: str, ctx: dict[str, Any], /, status: int = 200,
        errors: dict[str, str] | None = None, preview: dict[str, Any] | None = None,
        fields: Any = None,
    ) -> Response:  # fmt: skip
        state = desk(st).may_send(v.user, channel)
        svg = pick_map(st, ctx["form"], fields, v.lang) if ctx["form"] is not None else ""
        for r in (preview or {}).get("readers", []):
            r["map_src"] = (
                "data:image/svg+xml;base64," + base64.b64encode(r["svg"].encode()).decode()
            )
        return c.page(
            request, "notice.html", v, status=status, ch=state, errors=errors or {},
            preview=preview, pick_svg=svg, **ctx,
        )  # fmt: skip

    @r.get("/channels/{channel}/notice")
    def compose(
        channel: str, request: Request, form: str = "", v: Viewer = Depends(c.viewer)
    ) -> Response:
        desk(st).may_send(v.user, channel)
        return page(request, v, channel, composer(st, v.user, form, v.lang, None))

    @r.post("/channels/{channel}/notice")
    def send(
        channel: str,
        request: Request,
        v: Viewer = Depends(c.poster),
        raw: dict[str, str] = Depends(c.form),
    ) -> Response:
        desk(st).may_send(v.user, channel)
        form_id = raw.get("form", "")[:64]
        ctx = composer(st, v.user, form_id, v.lang, raw)
        if ctx["form"] is None:
            raise LocalError(Code.INVALID_REQUEST, "choose a form")
        texts = texts_of(ctx["fields"], raw)
        zone = raw.get("_zone") or None
        lang = v.lang if v.lang in ctx["form"].languages else None
        errors: dict[str, str] = {}
        if raw.get("action") == "preview":
            p = desk(st).preview(v.user, channel, form_id, texts=texts, lang=lang, zone=zone)
            for e in p["errors"]:
                key = _top(e["field"]) or "_form"
                errors[key] = (errors.get(key, "") + " " + e["message"]).strip()
            fields = p["fields"] if p["ok"] else None
            return page(request, v, channel, ctx, status=200 if p["ok"] else 422,
                        errors=errors, preview=p, fields=fields)  # fmt: skip
        try:
            sent = desk(st).send_notice(
                v.user, channel, form_id, None, texts=texts, zone=zone, lang=lang
            )
            return c.back(f"/channels/{channel}", "notice.sent", sent["seq"])
        except InvalidNotice as exc:
            found = exc.details.get("fields", [])
            for e in found if isinstance(found, list) else []:
                key = _top(e["field"]) or "_form"
                errors[key] = (errors.get(key, "") + " " + e["message"]).strip()
        except ParleyError as exc:
            errors["_form"] = exc.message
        return page(request, v, channel, ctx, status=422, errors=errors)

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
