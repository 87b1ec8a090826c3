"""Channels: the list a user may see, one channel's messages (originals with their translations
side by side), the text composer, the lifecycle buttons and check calls (schedule, recent calls,
"call now").

Checkpoints and their cosignatures are the stations' bookkeeping, not messages for a person: they
are left out of the message list (as from the inbox) and summed up in one line that links to the
transcript page, which lists them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from parley.domain import channels, translation
from parley.errors import Code, Forbidden, LocalError, NotFound, ParleyError
from parley.protocol.checkpoint import CHECKPOINT, COSIGN
from parley.station import checkcalls, checkpoints, history, talks_desk
from parley.station import talks as talks_station
from parley.station.channels import ChannelDesk
from parley.station.node import Message, Station
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.web.console import Console
from parley.web.pages import notices as notice_pages
from parley.web.pages import schedules
from parley.web.session import Viewer

SHOWN = 100  # the messages one page of a channel shows (older and newer pages link on)
CALLS_SHOWN = 5  # the newest check calls of the channel
BOOKKEEPING = (CHECKPOINT, COSIGN)
PRECEDENCES = ("ROUTINE", "PRIORITY", "IMMEDIATE", "FLASH")


@dataclass(frozen=True)
class Paging:
    """Which page of a channel to show (station/history.py); all None: the newest."""

    before: int | None = None
    after: int | None = None
    date: str | None = None
    hash: str | None = None


def _page(st: Station, v: Viewer, channel: str, at: Paging) -> dict[str, Any]:
    """A page of the channel; a date or hash that does not parse or match shows the newest page
    with the error beside the jump form, as a form field's error would be."""
    try:
        when = history.parse_when(at.date) if at.date else None
        found = history.page(
            st, v.user, channel, before=at.before, after=at.after, at=when,
            message_hash=at.hash, limit=SHOWN,
        )  # fmt: skip
        return found | {"error": "", "date": at.date or "", "hash": at.hash or ""}
    except (LocalError, NotFound) as exc:
        if isinstance(exc, NotFound) and not at.hash:
            raise
        newest = history.page(st, v.user, channel, limit=SHOWN)
        return newest | {"error": exc.message, "date": at.date or "", "hash": at.hash or ""}


@dataclass
class Row:
    """One message as the page shows it."""

    msg: Message
    kind: str  # text | control | notice | ack | record | tampered
    text: str = ""
    lang: str = ""
    # (lang, text, label, engine): `engine` names the machine of a machine draft, "" for a person's
    translations: list[tuple[str, str, str, str]] = field(default_factory=list)
    record: str = ""  # other bodies: canonical JSON, shown as text until a page renders them
    verb: str = ""  # control events: the catalogue key of what happened
    notice: dict[str, Any] | None = None
    ack: dict[str, str] | None = None


def _translations(st: Station, msgs: list[Message]) -> dict[str, translation.Translations]:
    """The translation fold (station/talks.py: causal order, records that do not apply left
    out) of each text that has translation records among `msgs`."""
    refs = {str(m.body.get("ref")) for m in msgs if m.body.get("type") == translation.TYPE}
    out = {}
    for m in msgs:
        if m.hash in refs and m.body.get("type") == translation.ORIGINAL_TYPE:
            out[m.hash] = talks_station.translations(st, m.channel, m.hash).state
    return out


def rows(st: Station, msgs: list[Message], reader_lang: str, who: User) -> list[Row]:
    folded = _translations(st, msgs)
    out = []
    for m in msgs:
        t = m.body.get("type", "")
        if not m.verified:  # station/integrity.py: shown as failed, its stored text withheld
            out.append(Row(m, "tampered", m.problem))
        elif t == translation.ORIGINAL_TYPE:
            row = Row(m, "text", str(m.body.get("text", "")), str(m.body.get("lang", "")))
            by_lang = folded[m.hash].of(m.hash) if m.hash in folded else {}
            # The reader's own language first, then the others.
            for lang in sorted(by_lang, key=lambda lg: (lg.split("-")[0] != reader_lang, lg)):
                best = by_lang[lang].best
                if best is not None:
                    engine = (best.engine or "?") if best.kind == "machine" else ""
                    row.translations.append((best.lang, best.text, best.label(reader_lang), engine))
            out.append(row)
        elif t == translation.TYPE:
            continue  # shown beside its original
        elif t in BOOKKEEPING:
            continue  # summed up by `ledger`
        elif t == notice_pages.TYPE:
            out.append(Row(m, "notice", notice=notice_pages.notice_row(st, who, m, reader_lang)))
        elif t == notice_pages.TYPE_ACK:
            out.append(Row(m, "ack", ack=notice_pages.ack_line(m)))
        elif channels.is_control(m.body):
            out.append(Row(m, "control", str(m.body.get("reason", "")), verb=text_key(t)))
        else:
            pretty = json.dumps(m.body, ensure_ascii=False, indent=1, sort_keys=True)
            out.append(Row(m, "record", record=pretty))
    return out


def ledger(st: Station, who: User, channel: str, envelopes: int) -> dict[str, Any]:
    """The transcript in one line: how many envelopes, and per member's chain its latest
    checkpoint and who countersigned it."""
    return {"envelopes": envelopes, "chains": checkpoints.chain_heads(st, who, channel)}


def schedule_of(st: Station, channel: str, v: Viewer) -> dict[str, Any] | None:
    found = checkcalls.schedule_of(st, v.user, channel)
    if found is None:
        return None
    days = " ".join(v.words(f"day.{d}") for d in found["weekdays"])
    return found | {"days": days}


def text_key(body_type: str) -> str:
    """channel.consent -> ch.event.consent (the catalogue has one per lifecycle move)."""
    return "ch.event." + body_type.removeprefix("channel.")


def _actions(state: channels.ChannelState, me: str, may: dict[str, bool]) -> list[str]:
    """Lifecycle moves this station may make now (channels.py's table) that the viewer's roles
    allow (`may`, the desk's answer): a button the server would refuse is not shown."""
    return [a for a in _moves(state, me) if may.get(a, False)]


def _moves(state: channels.ChannelState, me: str) -> list[str]:
    if state.state == "closed":
        return []
    acts = []
    if state.pending and me not in state.consents:
        acts.append("consent")
    if state.state == "open":
        acts.append("suspend")
    if state.state == "suspended":
        acts.append("reopen")
    acts.append("close")
    return acts


def routes(c: Console) -> APIRouter:
    r = APIRouter()
    st = c.station

    desk = ChannelDesk(st)

    talks = talks_desk.desk(st)

    def machine_offer(v: Viewer) -> dict[str, Any]:
        """Whether to offer machine drafts (the desk's answer for this user's roles) and the
        engine's name; with no engine configured the page says so rather than offer a button
        that can only fail."""
        return talks.engine(v.user) | {"may": talks.may(v.user)["machine_translate"]}

    def guard(channel: str, v: Viewer) -> channels.ChannelState:
        """The channel if `v` may see it. A back channel the viewer is not named on answers
        exactly like a channel that does not exist, so the console does not even confirm it."""
        authorize(v.user, Action.CHANNEL_READ)
        try:
            return desk.state(v.user, channel)
        except Forbidden:
            raise NotFound(Code.NOT_FOUND, f"no channel {channel}") from None

    def names(ids: Any) -> list[str]:
        return [st.peer_name(m) for m in ids]

    def view(channel: str, v: Viewer, at: Paging | None = None) -> dict[str, Any]:
        state = guard(channel, v)
        page = _page(st, v, channel, at or Paging())
        msgs = page["messages"]
        return {
            "ch": state,
            "members": names(state.members),
            "awaiting": names(sorted(set(state.members) - state.consents))
            if state.pending else [],
            "actions": _actions(state, st.id, desk.may_step(v.user)),
            "rows": rows(st, msgs, v.lang, v.user),
            # Every envelope counts: a cosignature changes the ledger line.
            "version": page["newest"],
            "ledger": ledger(st, v.user, channel, page["total"]),
            "calls": checkcalls.list_calls(st, v.user, channel, limit=CALLS_SHOWN),
            "schedule": schedule_of(st, channel, v),
            "reps": {st.peer_name(k): list(x) for k, x in state.representatives.items()},
            "machine": machine_offer(v),
            "page": page,
            # Live updates only while the newest page is shown: an older page stays put.
            "live": page["newer"] is None,
        }  # fmt: skip

    @r.get("/channels")
    def list_channels(request: Request, v: Viewer = Depends(c.viewer)) -> Response:
        items = [(s, names(s.members)) for s in desk.states(v.user)]
        return c.page(request, "channels.html", v, channels=items)

    @r.get("/channels/{channel}")
    def channel_page(
        channel: str,
        request: Request,
        v: Viewer = Depends(c.viewer),
        before: int | None = Query(None, ge=1),
        after: int | None = Query(None, ge=0),
        date: str = Query("", max_length=40),
        hash: str = Query("", max_length=64),
    ) -> Response:
        """The newest messages, or the page `before`/`after` an id, from a date, around a hash."""
        at = Paging(before, after, date.strip() or None, hash.strip() or None)
        return c.page(
            request, "channel.html", v, precedences=PRECEDENCES, error=None, draft="",
            **view(channel, v, at),
        )  # fmt: skip

    @r.get("/channels/{channel}/live")
    def live(channel: str, v: Viewer = Depends(c.viewer), have: int = -1) -> Response:
        """The messages and the lifecycle panel; 204 when nothing was stored after `have`."""
        guard(channel, v)
        if have >= 0 and history.newest(st, v.user, channel) <= have:
            return Response(status_code=204)
        ctx = view(channel, v)
        resp = c.fragment("_channel_live.html", v, **ctx)
        resp.headers["X-Live-Version"] = str(ctx["version"])
        return resp

    @r.post("/channels/{channel}/send")
    def send(
        channel: str,
        request: Request,
        v: Viewer = Depends(c.poster),
        text: str = Form(""),
        lang: str = Form(""),
        precedence: Literal["ROUTINE", "PRIORITY", "IMMEDIATE", "FLASH"] = Form("ROUTINE"),
    ) -> Response:
        guard(channel, v)
        error = None
        if not text.strip():
            error = v.words("form.required")
        elif len(text) > channels.MAX_TEXT:
            error = f"≤ {channels.MAX_TEXT}"
        if error is None:
            try:
                lang_ = lang if lang in ("en", "ko") else None
                sent = desk.send(v.user, channel, text, lang_, precedence)
                return c.back(f"/channels/{channel}", "compose.sent", sent["seq"])
            except ParleyError as exc:
                error = exc.message
        return c.page(
            request, "channel.html", v, status=422, precedences=PRECEDENCES, error=error,
            draft=text, **view(channel, v),
        )  # fmt: skip

    @r.post("/channels/{channel}/checkcall")
    def call_now(
        channel: str,
        request: Request,
        v: Viewer = Depends(c.poster),
        within: str = Form(""),
    ) -> Response:
        """A check call now, outside the schedule (the service checks the role, as for the API)."""
        guard(channel, v)
        minutes = schedules.answer_minutes(within)
        if minutes is None:
            error = v.words("sched.bad_within", max=schedules.MAX_WITHIN_MIN)
        else:
            try:
                checkcalls.call_now(st, channel, minutes * 60_000, v.user)
                return c.back(f"/channels/{channel}", "checkcall.called")
            except (Forbidden, NotFound):
                raise
            except ParleyError as exc:
                error = exc.message
        return c.page(
            request, "channel.html", v, status=422, precedences=PRECEDENCES, error=None,
            draft="", call_error=error, call_within=within[:16], **view(channel, v),
        )  # fmt: skip

    @r.post("/channels/{channel}/translate")
    def translate(
        channel: str,
        v: Viewer = Depends(c.poster),
        ref: str = Form(...),
        lang: str = Form(...),
        text: str = Form(""),
        certified: str = Form(""),
    ) -> Response:
        """A person's translation of a text, in their own name: a draft or certified at once
        (the talks desk checks the translator role and the channel)."""
        if not text.strip():
            raise LocalError(Code.INVALID_REQUEST, "text: the translated text")
        status = "certified" if certified == "yes" else "draft"
        talks.translate(v.user, channel, ref, status=status, lang=lang, text=text)
        return c.back(f"/channels/{channel}", "msg.translated")

    @r.post("/channels/{channel}/machine-draft")
    def machine_draft(
        channel: str,
        request: Request,
        v: Viewer = Depends(c.poster),
        ref: str = Form(..., max_length=64),
        lang: str = Form(..., max_length=16),
    ) -> Response:
        """The station's engine's translation of a text, recorded as a machine draft naming the
        engine (the talks desk checks TRANSLATION_MACHINE and the channel before the engine is
        asked). The page comes back around the message, where the draft or the error shows."""
        at = f"/channels/{channel}?{urlencode({'hash': ref})}"
        try:
            talks.machine_translate(v.user, channel, ref, lang)
            return c.back(at, "msg.machine_drafted")
        except (Forbidden, NotFound):
            raise
        except ParleyError as exc:  # the engine down or refusing the pair: nothing was sent
            failed = {"ref": ref, "message": exc.message}
        return c.page(
            request, "channel.html", v, status=422, precedences=PRECEDENCES, error=None,
            draft="", machine_error=failed,
            **view(channel, v, Paging(hash=ref)),
        )  # fmt: skip

    @r.post("/channels/{channel}/control")
    def control(
        channel: str,
        v: Viewer = Depends(c.poster),
        action: str = Form(...),
        reason: str = Form(""),
    ) -> Response:
        guard(channel, v)
        desk.step(v.user, channel, action, reason[:2000])
        return c.back(f"/channels/{channel}")

    return r
