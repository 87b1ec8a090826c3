"""Notices, acknowledgements, acknowledgement deadlines and their escalation, at a station.

    install(station)   observers that index notices and acks as they are stored (sent or
                       received), and the scheduled escalation task; `desk(station)` is the
                       `NoticeDesk` the API, the console and (through the API) the CLI use.

Rules:
- Every operator method of `NoticeDesk` takes the acting user first and checks the role table
  (station/roles.py) before it reads or changes anything: sending needs `notice.send`,
  answering `notice.ack`, reading `channel.read` (forms: `station.read`); anything on a channel
  also passes `Station.guard`, so a back channel exists only for its named representatives.
- A notice is validated before it is sealed (domain/notices.notice_body); a bad one raises
  InvalidNotice with every field error and nothing reaches the store.
- A notice expects an answer from every other member of its channel by its `deadline_ms`. Each
  station keeps the (notice, answerer) pairs it is party to: as the sender it awaits answers, as
  an answerer it owes one. The first `ack` from the answerer on the notice's channel meets the
  deadline; later ones change the current answer (domain/deadlines).
- Escalation (`escalate`, run by Station.tick): each level of the configured policy fires once
  per overdue pair, in order, as domain/deadlines.DeadlineTracker decides; fired levels are
  stored, so a restart neither repeats nor skips one. A console level is an alarm (kind
  `ack_overdue`, subject: the notice's hash), cleared when every pair of the notice is
  answered. A webhook level queues an HTTP POST of JSON to its URL in the one notification
  outbox (station/notify.py: sent outside any transaction, retried with backoff, failures
  alarmed there).
- On a back channel, a console escalation says which channel and notice are overdue, but not
  the form (alarms are listed to people not named on it); a webhook level carries it only when
  station/notify.py's back-channel rule lets that URL hear of the channel, and then without text.
- Observers never raise on the receive path: the records checker has already refused a bad
  body, and a failure here would not roll back what the station just stored.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any
from weakref import WeakKeyDictionary

from parley.domain import channels, notices
from parley.domain.deadlines import (
    DeadlineTracker,
    EscalationAction,
    EscalationPolicy,
    NoticeStatus,
    parse_ref,
)
from parley.domain.forms import (
    Catalogue,
    FieldError,
    assess_lateness,
    inputs,
    messages,
    render,
    render_map_svg,
    validate,
)
from parley.domain.forms.inputs import zone_name
from parley.domain.forms.messages import lateness_note
from parley.domain.notices import InvalidNotice
from parley.errors import Code, Forbidden, LocalError, NotFound, ParleyError
from parley.protocol.encoding import b64d
from parley.station import notify
from parley.station.config import Config
from parley.station.node import Accepted, Station, queued
from parley.station.roles import Action, authorize
from parley.station.users import BOOTSTRAP, User
from parley.store import notices as db
from parley.store.base import EnvelopeRow

ALARM_OVERDUE = "ack_overdue"
ALARM_FORM = "form_mismatch"

DEFAULT_ESCALATION: list[dict[str, Any]] = [{"after_overdue_ms": 0, "action": "console_alarm"}]
_LEVEL_KEYS = {"after_overdue_ms", "action", "target"}


def forms_folders(cfg: Config) -> list[str]:
    env = os.environ.get("PARLEY_FORMS_DIR", "")
    return [*cfg.forms_dirs, *(d for d in env.split(os.pathsep) if d)]


def escalation_policy(cfg: Config) -> EscalationPolicy:
    """The station's escalation levels; LocalError(invalid_request) for a bad setting."""
    levels = []
    for item in cfg.escalation or DEFAULT_ESCALATION:
        if not isinstance(item, dict) or not set(item) <= _LEVEL_KEYS or "action" not in item:
            raise LocalError(
                Code.INVALID_REQUEST,
                "escalation: each level is {after_overdue_ms, action, target?}",
            )
        levels.append((item.get("after_overdue_ms", 0), item["action"], item.get("target")))
    return EscalationPolicy(levels)


def _top(path: str) -> str:
    """The top-level field a field path is in: "launch_area.points[2]" -> "launch_area"."""
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _status(deadline_ms: int, answered_ts: int | None, now_ms: int) -> NoticeStatus:
    # The same rules as domain/deadlines.DeadlineTracker.status, for one stored pair.
    if answered_ts is not None:
        return NoticeStatus.ANSWERED_LATE if answered_ts > deadline_ms else NoticeStatus.ANSWERED
    return NoticeStatus.OVERDUE if now_ms > deadline_ms else NoticeStatus.OPEN


class NoticeDesk:
    def __init__(self, station: Station, catalogue: Catalogue) -> None:
        self.station = station
        self.catalogue = catalogue
        self._policy_key = ""
        self._policy = escalation_policy(station.cfg)  # fail at start, not at the first tick

    def policy(self) -> EscalationPolicy:
        key = json.dumps(self.station.cfg.escalation, sort_keys=True)
        if key != self._policy_key:
            self._policy = escalation_policy(self.station.cfg)
            self._policy_key = key
        return self._policy

    # --- the forms catalogue ------------------------------------------------------------------
    def forms(
        self, who: User, lang: str | None = None, *, all_versions: bool = False
    ) -> list[dict[str, Any]]:
        authorize(who, Action.STATION_READ)
        shown = lang or self.station.cfg.lang
        return [
            f.summary() | {"name": f.title(shown)}
            for f in self.catalogue.list(all_versions=all_versions)
        ]

    def form(
        self, who: User, form_id: str, version: int | None = None, lang: str | None = None
    ) -> dict[str, Any]:
        authorize(who, Action.STATION_READ)
        shown = lang or self.station.cfg.lang
        form = self.catalogue.get(form_id, version)
        return form.summary() | {
            "name": form.title(shown),
            "description": form.descriptions.get(shown) or form.descriptions.get("en", ""),
            "lead_time": {"field": form.lead_time.field, "min_hours": form.lead_time.min_hours}
            if form.lead_time
            else None,
            "fields": notices.form_fields(form, shown),
            # What a person types per field, and the example as that text (station's zone).
            "inputs": self.form_inputs(who, form.id, shown, form.version)["fields"],
            "timezone": self.station.cfg.timezone,
            "schema": form.schema,
            "example": form.example,
        }

    # --- operator actions ---------------------------------------------------------------------
    def may_send(self, who: User, channel: str) -> channels.ChannelState:
        """The channel's state if `who` may send notices on it (a composer shows it)."""
        authorize(who, Action.NOTICE_SEND)
        return self.station.guard(channel, who)

    def zone(self, name: str | None = None) -> tzinfo:
        """The zone `name` (default: the station's `timezone`); LocalError if there is none."""
        name = name or self.station.cfg.timezone
        try:
            return inputs.zone(name)
        except inputs.InputError:
            raise LocalError(
                Code.INVALID_REQUEST, f"{name[:40]!r} is not a time zone (e.g. Asia/Seoul, UTC)"
            ) from None

    def form_inputs(
        self, who: User, form_id: str, lang: str | None = None, version: int | None = None
    ) -> dict[str, Any]:
        """What a person fills in for `form_id`: each field's input kind, label, whether
        required, and the form's example as the text an input would hold (station's zone)."""
        authorize(who, Action.STATION_READ)
        shown = lang or self.station.cfg.lang
        form = self.catalogue.get(form_id, version)
        tz = self.zone()
        example = dict(form.example or {})
        fields = []
        for f in notices.form_fields(form, shown):
            spec = form.schema["properties"][f["name"]]
            kind = inputs.kind_of(spec)
            fields.append(
                f
                | {
                    "input": kind,
                    "example": inputs.as_text(kind, example[f["name"]], tz)
                    if f["name"] in example
                    else "",
                    "parts": sorted(spec.get("properties", {})) if kind == "object" else [],
                }
            )
        return {"form": form.id, "version": form.version, "timezone": zone_name(tz),
                "fields": fields}  # fmt: skip

    def read_inputs(
        self, form_id: str, texts: Mapping[str, str], lang: str, *, version: int | None = None,
        zone: str | None = None,
    ) -> inputs.Parsed:  # fmt: skip
        """Notice fields from what a person typed (domain/forms/inputs), in `zone` (default:
        the station's `timezone`)."""
        form = self.catalogue.get(form_id, version)
        tz = self.zone(zone)
        try:
            return inputs.parse_inputs(form, texts, tz, lang)
        except inputs.InputError as exc:
            msg = messages.field_message(form, (), exc.code, lang, **exc.params)
            raise LocalError(Code.INVALID_REQUEST, msg) from None

    def _fields(
        self, form_id: str, fields: object, texts: Mapping[str, str] | None, lang: str,
        version: int | None, zone: str | None,
    ) -> object:  # fmt: skip
        if texts is None:
            return fields
        if fields is not None:
            raise LocalError(Code.INVALID_REQUEST, "give fields or inputs, not both")
        parsed = self.read_inputs(form_id, texts, lang, version=version, zone=zone)
        if parsed.errors:
            raise InvalidNotice(
                Code.BAD_BODY,
                f"notice inputs invalid: {parsed.errors[0].message}"
                + (f" (+{len(parsed.errors) - 1} more)" if len(parsed.errors) > 1 else ""),
                fields=[e.to_json() for e in parsed.errors],
            )
        return parsed.fields

    def preview(
        self,
        who: User,
        channel: str,
        form_id: str,
        fields: object = None,
        texts: Mapping[str, str] | None = None,
        *,
        lang: str | None = None,
        version: int | None = None,
        zone: str | None = None,
    ) -> dict[str, Any]:
        """The notice as each member of `channel` would read it, before anything is sent: the
        same check as sending (`notice.send`, the channel guard), field errors instead of an
        exception, the lead-time warning at this moment, and per member its language's text
        and map. Nothing is stored."""
        st = self.station
        state = self.may_send(who, channel)
        lang = lang or st.cfg.lang
        form = self.catalogue.get(form_id, version)
        form.require_lang(lang)
        tz = self.zone(zone)
        errors: list[FieldError] = []
        echo: dict[str, str] = {}
        if texts is not None:
            if fields is not None:
                raise LocalError(Code.INVALID_REQUEST, "give fields or inputs, not both")
            parsed = self.read_inputs(form_id, texts, lang, version=version, zone=zone)
            fields, echo = parsed.fields, parsed.echo
            errors += parsed.errors
        now = st.clock()
        checked = validate(form, fields, lang, now)
        failed = {e.field for e in errors}
        errors += [e for e in checked.errors if _top(e.field) not in failed]
        lateness = checked.lateness
        readers: list[dict[str, Any]] = []
        if not errors and isinstance(fields, dict):
            for member in state.members:
                peer = st.store.get_peer(member) if member != st.id else None
                want = peer.lang if peer else st.cfg.lang
                shown = want if want in form.languages else lang
                readers.append(
                    {
                        "station": member,
                        "name": st.peer_name(member),
                        "lang": shown,
                        "wanted_lang": want,
                        "text": render(form, fields, shown, lateness=lateness),
                        "html": render(form, fields, shown, lateness=lateness, html=True),
                        "svg": render_map_svg(form, fields, shown),
                    }
                )
        return {
            "channel": channel,
            "form": form.id,
            "version": form.version,
            "title": form.title(lang),
            "ok": not errors,
            "errors": [e.to_json() for e in errors],
            "fields": fields,
            "timezone": zone_name(tz),
            "times": echo,
            "late": lateness.late,
            "lateness": notices.lateness_json(lateness),
            "warning": lateness_note(lateness, lang),
            "precedence": str(form.precedence),
            "readers": readers,
        }

    def send_notice(
        self,
        who: User,
        channel: str,
        form_id: str,
        fields: object,
        *,
        texts: Mapping[str, str] | None = None,
        zone: str | None = None,
        lang: str | None = None,
        version: int | None = None,
        deadline_ms: int | None = None,
        deadline_hours: int | None = None,
        prec: str | None = None,
        idempotency_key: str = "",
    ) -> dict[str, Any]:
        """Send a notice as `who`; the deadline is `deadline_ms` or `deadline_hours` from now."""
        st = self.station
        self.may_send(who, channel)
        fields = self._fields(form_id, fields, texts, lang or st.cfg.lang, version, zone)
        if deadline_hours is not None:
            if deadline_ms is not None:
                raise LocalError(
                    Code.INVALID_REQUEST, "give deadline_ms or deadline_hours, not both"
                )
            deadline_ms = st.clock() + deadline_hours * 3_600_000
        body, _ = notices.notice_body(
            self.catalogue, form_id, fields, lang or st.cfg.lang, st.clock(),
            version=version, deadline_ms=deadline_ms,
        )  # fmt: skip
        form = self.catalogue.get(body["form"], body["version"])
        row, created = st.send(
            channel, body, prec or str(form.precedence), idempotency_key, who.name
        )
        stored = st.integrity.require(row).body  # a repeated key: the notice it first made
        # Lateness as everyone will derive it: from the envelope's signed timestamp.
        lateness = assess_lateness(form, stored["fields"], row.ts)
        return queued(row, created) | {
            "form": form.id,
            "version": form.version,
            "precedence": row.prec,
            "deadline_ms": stored["deadline_ms"],
            "late": lateness.late,
            "lateness": notices.lateness_json(lateness),
        }

    def _envelope(self, channel: str, ref: str) -> EnvelopeRow:
        try:
            raw = b64d(parse_ref(ref), field="hash", size=32)
        except ParleyError as exc:
            raise LocalError(Code.INVALID_REQUEST, exc.message) from None
        env = self.station.store.envelope_by_hash(raw)
        if env is None or env.channel != channel:
            raise NotFound(Code.NOT_FOUND, f"no message {ref} on channel {channel}")
        return env

    def acknowledge(
        self,
        who: User,
        channel: str,
        ref: str,
        answer: str,
        text: str = "",
        by: str | None = None,
        *,
        prec: str | None = None,
        idempotency_key: str = "",
    ) -> dict[str, Any]:
        """`who`'s answer to a message or notice of another station, as a signed `ack`.

        An acknowledgement is a named person's act: a user answers as themselves (`by` is their
        name or omitted); only the shared bootstrap token names who answers."""
        st = self.station
        authorize(who, Action.NOTICE_ACK)
        st.guard(channel, who)
        if by and who != BOOTSTRAP and by != who.name:
            raise Forbidden(Code.FORBIDDEN, f"you answer as {who.name}, not as {by}")
        by = by or who.name
        env = self._envelope(channel, ref)
        if env.sender == st.id:
            raise LocalError(
                Code.INVALID_REQUEST, "only messages from other stations are acknowledged"
            )
        kind = str(st.integrity.require(env).body.get("type", ""))
        if kind.startswith("channel.") or kind == notices.TYPE_ACK:
            raise LocalError(
                Code.INVALID_REQUEST,
                f"a {kind} envelope is not acknowledged; answer messages and notices",
            )
        body = notices.ack_body(ref, answer, text, by)
        row, created = st.send(channel, body, prec or env.prec, idempotency_key, who.name)
        return queued(row, created) | {
            "ref": ref,
            "answer": answer,
        }

    # --- reading ------------------------------------------------------------------------------
    def _reader(self, who: User, channel: str) -> None:
        authorize(who, Action.CHANNEL_READ)
        self.station.guard(channel, who)

    def notice_view(
        self, who: User, channel: str, ref: str, lang: str | None = None
    ) -> dict[str, Any]:
        """A notice rendered in `lang` (default: this station's), with its map, deadline,
        lateness and answers. Rendering uses only the stored body and envelope timestamp."""
        st = self.station
        self._reader(who, channel)
        env = self._envelope(channel, ref)
        row = db.notice(st.store, ref)
        if row is None:
            raise NotFound(Code.NOT_FOUND, f"message {ref} is not a notice")
        held = st.integrity.require(env).body
        reading = notices.read_notice(held, env.ts, lang or st.cfg.lang, self.catalogue)
        now = st.clock()
        return {
            "channel": channel,
            "hash": ref,
            "seq": env.seq,
            "sender": env.sender,
            "sender_name": st.peer_name(env.sender),
            "ts": env.ts,
            "precedence": env.prec,
            "form": reading.form.id,
            "version": reading.form.version,
            "title": reading.form.title(reading.lang),
            "original_lang": reading.notice.lang,
            "lang": reading.lang,
            "languages": list(reading.form.languages),
            "form_digest_matches": reading.notice.digest_matches,
            "fields": reading.notice.fields,
            "text": reading.text,
            "html": reading.html,
            "svg": reading.svg,
            "late": reading.lateness.late,
            "lateness": notices.lateness_json(reading.lateness),
            "deadline_ms": reading.notice.deadline_ms,
            "answers": [self._deadline_json(d, now) for d in db.deadlines_for(st.store, ref)],
            "acks": self._acks(channel, ref),
        }

    def notice_map(self, who: User, channel: str, ref: str, lang: str | None = None) -> str:
        st = self.station
        self._reader(who, channel)
        env = self._envelope(channel, ref)
        held = st.integrity.require(env).body
        if held.get("type") != notices.TYPE:
            raise NotFound(Code.NOT_FOUND, f"message {ref} is not a notice")
        return notices.read_notice(held, env.ts, lang or st.cfg.lang, self.catalogue).svg

    def notice_list(self, who: User, channel: str) -> list[dict[str, Any]]:
        st = self.station
        self._reader(who, channel)
        now = st.clock()
        out = []
        for n in db.notices(st.store, channel):
            form = self._form(n.form, n.version)
            answers = [self._deadline_json(d, now) for d in db.deadlines_for(st.store, n.hash)]
            out.append(
                {
                    "channel": n.channel,
                    "hash": n.hash,
                    "seq": n.seq,
                    "sender": n.sender,
                    "sender_name": st.peer_name(n.sender),
                    "ts": n.ts,
                    "form": n.form,
                    "version": n.version,
                    "title": form.title(st.cfg.lang) if form else n.form,
                    "original_lang": n.lang,
                    "late": n.late,
                    "deadline_ms": n.deadline_ms,
                    "answers": answers,
                }
            )
        return out

    def acks(self, who: User, channel: str, ref: str) -> list[dict[str, Any]]:
        """Every answer to a message or notice on `channel`."""
        self._reader(who, channel)
        return self._acks(channel, ref)

    def _acks(self, channel: str, ref: str) -> list[dict[str, Any]]:
        st = self.station
        return [
            {
                "hash": a.hash,
                "station": a.station,
                "station_name": st.peer_name(a.station),
                "seq": a.seq,
                "ts": a.ts,
                "answer": a.answer,
                "text": a.text,
                "by": a.by,
            }
            for a in db.acks(st.store, ref)
            if a.channel == channel
        ]

    def deadlines(self, who: User, *, include_answered: bool = False) -> list[dict[str, Any]]:
        """Acknowledgement deadlines this station is party to, soonest first, on the channels
        `who` may see; by default only the unanswered ones (open or overdue)."""
        st = self.station
        authorize(who, Action.CHANNEL_READ)
        visible = {s.channel for s in st.channel_states(who)}
        now = st.clock()
        rows = db.deadlines(st.store, only_unanswered=not include_answered)
        return [self._deadline_json(d, now) for d in rows if d.channel in visible]

    def _form(self, form_id: str, version: int) -> Any:
        try:
            return self.catalogue.get(form_id, version)
        except ParleyError:
            return None

    def _deadline_json(self, d: db.DeadlineRow, now: int) -> dict[str, Any]:
        st = self.station
        n = db.notice(st.store, d.ref)
        form = self._form(n.form, n.version) if n else None
        answers = [a for a in db.acks(st.store, d.ref) if a.station == d.answerer]
        status = _status(d.deadline_ms, d.answered_ts, now)
        return {
            "channel": d.channel,
            "ref": d.ref,
            "form": n.form if n else None,
            "title": form.title(st.cfg.lang) if form else None,
            "notice_ts": n.ts if n else None,
            "sender": d.sender,
            "sender_name": st.peer_name(d.sender),
            "answerer": d.answerer,
            "answerer_name": st.peer_name(d.answerer),
            "direction": "owed" if d.answerer == st.id else "awaited",
            "deadline_ms": d.deadline_ms,
            "time_left_ms": d.deadline_ms - now,
            "status": str(status),
            "answered_ts": d.answered_ts,
            "answer": answers[-1].answer if answers else None,
            "escalation_level": d.level,
        }

    # --- observer: index what the transcript holds ------------------------------------------------
    def observe(self, st: Station, acc: Accepted) -> None:
        kind = acc.body.get("type")
        if kind == notices.TYPE:
            self._on_notice(st, acc)
        elif kind == notices.TYPE_ACK:
            self._on_ack(st, acc)

    def _on_notice(self, st: Station, acc: Accepted) -> None:
        try:
            n = notices.parse_notice(acc.body, self.catalogue)
        except ParleyError as exc:
            if acc.local:
                raise
            # Accepted by the records checker's catalogue but not by ours (two stations in one
            # process with different forms): keep the envelope, say why it is not tracked.
            st.alarm(ALARM_FORM, "warning", acc.hash, f"notice not tracked: {exc.message}")
            return
        lateness = assess_lateness(n.form, n.fields, acc.ts)
        db.add_notice(
            st.store,
            db.NoticeRow(
                acc.hash, acc.channel, acc.sender, acc.seq, acc.ts, n.form.id, n.form.version,
                n.lang, n.deadline_ms, lateness.late,
            ),
        )  # fmt: skip
        if not n.digest_matches and not acc.local:
            st.alarm(
                ALARM_FORM, "warning", acc.hash,
                f"{st.peer_name(acc.sender)} sent {n.form.id} v{n.form.version} with form files "
                "that differ from ours; the two sides may read different texts",
            )  # fmt: skip
        for member in st.channel_state(acc.channel).members:
            if member == acc.sender or st.id not in (acc.sender, member):
                continue
            answered = db.first_ack_ts(st.store, acc.channel, acc.hash, member)
            db.add_deadline(
                st.store, acc.hash, member, acc.channel, acc.sender, n.deadline_ms, answered
            )

    def _on_ack(self, st: Station, acc: Accepted) -> None:
        a = notices.parse_ack(acc.body, acc.ts)
        db.add_ack(
            st.store,
            db.AckRow(
                acc.hash, acc.channel, a.ref, acc.sender, acc.seq, acc.ts, str(a.answer),
                a.text, a.by,
            ),
        )  # fmt: skip
        db.mark_answered(st.store, acc.channel, a.ref, acc.sender, acc.ts)
        if db.deadlines_for(st.store, a.ref) and not db.unanswered(st.store, a.ref):
            db.clear_alarms(st.store, ALARM_OVERDUE, a.ref, st.clock())

    # --- scheduled: escalate overdue acknowledgements ------------------------------------------
    def escalate(self, st: Station, now: int) -> None:
        policy = self.policy()
        with st.store.tx():
            rows = [r for r in db.overdue(st.store, now) if r.level < len(policy.levels)]
            tracker = DeadlineTracker(
                (self._key(r.ref, r.answerer), level)
                for r in rows
                for level in db.fired(st.store, r.ref, r.answerer)
            )
            by_key = {}
            for r in rows:
                tracker.add_notice(self._key(r.ref, r.answerer), r.deadline_ms)
                by_key[self._key(r.ref, r.answerer)] = r
            for esc in tracker.escalation(now, policy):
                r = by_key[esc.ref]
                db.add_escalation(st.store, r.ref, r.answerer, esc.level, str(esc.action), now)
                if esc.action is EscalationAction.CONSOLE_ALARM:
                    severity = "warning" if esc.level == 0 else "critical"
                    st.alarm(ALARM_OVERDUE, severity, r.ref, self._overdue_text(r, esc.level, now))
                else:
                    assert esc.target is not None  # a webhook level always has its URL
                    payload = self._payload(r, esc.level, esc.overdue_ms, now)
                    notify.queue_escalation(
                        st, esc.target, r.channel, self._discreet(r.channel), payload
                    )

    @staticmethod
    def _key(ref: str, answerer: str) -> str:
        return f"{ref} {answerer}"

    def _discreet(self, channel: str) -> bool:
        try:
            return self.station.channel_state(channel).kind == "backchannel"
        except ParleyError:
            return True

    def _overdue_text(self, r: db.DeadlineRow, level: int, now: int) -> str:
        st = self.station
        what = "a notice on a back channel"
        if not self._discreet(r.channel):
            n = db.notice(st.store, r.ref)
            form = self._form(n.form, n.version) if n else None
            what = f"the {form.title('en') if form else 'notice'} {r.ref[:12]}…"
        late = (now - r.deadline_ms) // 60_000
        head = f"escalation level {level + 1}: "
        if r.answerer == st.id:
            return (
                f"{head}our acknowledgement of {what} from {st.peer_name(r.sender)} "
                f"is overdue by {late} min (channel {r.channel})"
            )
        return (
            f"{head}{st.peer_name(r.answerer)} has not acknowledged {what} "
            f"(overdue by {late} min, channel {r.channel})"
        )

    def _payload(self, r: db.DeadlineRow, level: int, overdue_ms: int, now: int) -> dict[str, Any]:
        st = self.station
        n = db.notice(st.store, r.ref)
        discreet = self._discreet(r.channel)
        body = {
            "event": "parley.ack_overdue",
            "delivery": f"{r.ref}:{r.answerer}:{level + 1}",
            "station": st.id,
            "station_name": st.cfg.name,
            "level": level + 1,
            "channel": r.channel,
            "ref": r.ref,
            "form": None if discreet or n is None else n.form,
            "direction": "owed" if r.answerer == st.id else "awaited",
            "sender": r.sender,
            "sender_name": st.peer_name(r.sender),
            "answerer": r.answerer,
            "answerer_name": st.peer_name(r.answerer),
            "deadline_ms": r.deadline_ms,
            "overdue_ms": overdue_ms,
            "fired_ms": now,
            "message": self._overdue_text(r, level, now),
        }
        return body


_DESKS: WeakKeyDictionary[Station, NoticeDesk] = WeakKeyDictionary()


def install(station: Station) -> None:
    catalogue = Catalogue.load(extra=forms_folders(station.cfg))
    notices.use_catalogue(catalogue)  # what the records checker validates received notices with
    desk = NoticeDesk(station, catalogue)
    _DESKS[station] = desk
    station.observers.append(desk.observe)
    station.scheduled.append(desk.escalate)


def desk(station: Station) -> NoticeDesk:
    found = _DESKS.get(station)
    if found is None:
        raise LocalError(Code.INVALID_REQUEST, "notices are not installed on this station")
    return found
