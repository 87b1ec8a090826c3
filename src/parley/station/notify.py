"""Notifications beyond the console: every alarm, routed by kind to webhooks and e-mail.

    install(station)        queue a notification for every alarm as it is raised (in the same
                            transaction), and raise `flash_received` for each FLASH from a peer
    desk(station)           the `NotifyDesk`: settings (admin), the delivery log, test, deliver
    run(station)            the duty that delivers what is due, on a worker thread (app/serve.py)

Rules:
- Targets are named: a webhook (`url`) or an e-mail address list (`to`, sent through the SMTP
  server of station.json's `notify.smtp`, transport/mail.py). Routes name, per alarm kind
  (station/alarm_kinds.py), the targets that hear of it; the route `*` covers every kind without
  its own. Targets and routes come from station.json's `notify` and from an admin through the
  API (`notify.manage`); an API route replaces the file's route for that kind, and the API can
  neither change nor remove a target station.json defines.
- One outbox (store/notify.py) for webhooks and e-mail, alarms and notice escalations alike:
  a row is queued in the transaction that raises the alarm, sent later outside any transaction,
  retried with exponential backoff up to ATTEMPTS times, and survives a restart. A target's
  first failure is one alarm (kind `notify`, ref `notify:<target>`), resolved by its next
  success; giving up is a critical one. A notification about a failed notification that fails
  in turn raises nothing (no cascade), and is never sent to the target it is about.
- Bursts: per target and kind, at most BURST notifications in WINDOW_MS; the alarms beyond are
  counted into one summary sent when the window ends ("N more link alarms"). A peer that makes
  a station raise alarms without end (rejected envelopes, equivocations) gets a target's mailbox
  a bounded number of mails per kind per window.
- Back channels: an alarm that concerns a back channel (station/alarms.channel_of) reaches only
  targets marked `backchannels: true` (station.json only: the machine's owner already holds the
  database) or naming that channel in `channels` (set through the API only by an admin who is
  one of the channel's named representatives). Their payload names the kind, severity and
  channel and carries no text: "an alarm on a back channel; read it in the console". Every other
  target hears nothing of it, and the delivery log hides the row from users not named on the
  channel. A notice escalation's webhook URL follows the same rule: it carries a back channel's
  overdue acknowledgement only when a named target with that URL may.
- Bounds (docs/limits.md): MAX_TARGETS targets in all, MAX_RECIPIENTS addresses per e-mail
  target, URLs of MAX_URL characters, alarm text cut to MAX_TEXT characters (a payload stays
  under MAX_PAYLOAD bytes), at most PER_PASS deliveries per pass and TIMEOUT_S per delivery;
  finished rows beyond KEEP are forgotten.
- Nothing here raises on the alarm path: a routing failure is logged, never a rollback of what
  raised the alarm.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from weakref import WeakKeyDictionary

import httpx

from parley.errors import Code, LocalError, NotFound, ParleyError
from parley.station import alarm_kinds, alarms
from parley.station.alarm_kinds import EVERY, KINDS
from parley.station.node import Accepted, Station
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.store import notify as db
from parley.transport import clients, mail, webhook

log = logging.getLogger("parley.notify")

ALARM = "notify"
FLASH = "flash_received"
ATTEMPTS = 6
RETRY_BASE_MS = 30_000
RETRY_MAX_MS = 15 * 60_000
TIMEOUT_S = 5.0
PER_PASS = 16
PASS_EVERY_S = 1.0
BURST = 5
WINDOW_MS = 10 * 60_000
MAX_TARGETS = 32
MAX_RECIPIENTS = 10
MAX_URL = 2048
MAX_ADDRESS = 254
MAX_CHANNELS = 64  # back channels one target is named for
MAX_TEXT = 1000
MAX_PAYLOAD = 8 * 1024
KEEP = 10_000
MAX_LOG = 500

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
ADDRESS = re.compile(r"[^@\s,;<>\"]+@[^@\s,;<>\"]+")
WEBHOOK, EMAIL = "webhook", "email"
FILE, API = "station.json", "api"
_TARGET_KEYS = {"type", "url", "to", "backchannels", "channels"}
_SMTP_KEYS = {
    "host", "port", "security", "username", "password_file", "from", "timeout_s",
}  # fmt: skip
BACKCHANNEL_TEXT = "an alarm on a back channel; read it in the console"

Mailer = Callable[[mail.SmtpSettings, list[str], str, str], "str | None"]


def _bad(message: str, field: str | None = None) -> LocalError:
    return LocalError(Code.INVALID_REQUEST, message, **({"field": field} if field else {}))


@dataclass(frozen=True)
class Target:
    name: str
    type: str
    url: str = ""
    to: tuple[str, ...] = ()
    backchannels: bool = False
    channels: tuple[str, ...] = ()
    source: str = API

    def may_hear(self, channel: str | None) -> bool:
        """Whether an alarm about `channel` (a back channel, or None) may reach this target."""
        return channel is None or self.backchannels or channel in self.channels

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type == WEBHOOK:
            out["url"] = self.url
        else:
            out["to"] = list(self.to)
        if self.backchannels:
            out["backchannels"] = True
        if self.channels:
            out["channels"] = list(self.channels)
        return out


def parse_target(name: str, spec: object, source: str) -> Target:
    """A target from its settings; LocalError(invalid_request) naming what is wrong."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise _bad(f"target name {str(name)[:70]!r}: lower-case letters, digits, . _ -", "name")
    if not isinstance(spec, dict) or not set(spec) <= _TARGET_KEYS:
        raise _bad(f"target {name}: keys are {sorted(_TARGET_KEYS)}", name)
    kind = spec.get("type")
    backchannels = spec.get("backchannels", False)
    channels = spec.get("channels", [])
    if not isinstance(backchannels, bool):
        raise _bad(f"target {name}: backchannels is true or false", name)
    if (
        not isinstance(channels, list)
        or len(channels) > MAX_CHANNELS
        or not all(isinstance(c, str) and 0 < len(c) <= 64 for c in channels)
    ):
        raise _bad(f"target {name}: channels is a list of at most {MAX_CHANNELS} ids", name)
    if kind == WEBHOOK:
        url = spec.get("url")
        if (
            not isinstance(url, str)
            or len(url) > MAX_URL
            or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url)
        ):
            raise _bad(f"target {name}: url is an http(s) URL of at most {MAX_URL} chars", name)
        if "to" in spec:
            raise _bad(f"target {name}: a webhook has a url, not to", name)
        return Target(name, WEBHOOK, url=url, backchannels=backchannels,
                      channels=tuple(channels), source=source)  # fmt: skip
    if kind == EMAIL:
        to = spec.get("to")
        if isinstance(to, str):
            to = [to]
        if (
            not isinstance(to, list)
            or not 0 < len(to) <= MAX_RECIPIENTS
            or not all(
                isinstance(a, str) and len(a) <= MAX_ADDRESS and ADDRESS.fullmatch(a) for a in to
            )
        ):
            raise _bad(
                f"target {name}: to is 1 to {MAX_RECIPIENTS} e-mail addresses (name@host)", name
            )
        if "url" in spec:
            raise _bad(f"target {name}: an e-mail target has to, not url", name)
        return Target(name, EMAIL, to=tuple(to), backchannels=backchannels,
                      channels=tuple(channels), source=source)  # fmt: skip
    raise _bad(f"target {name}: type is {WEBHOOK!r} or {EMAIL!r}", name)


def parse_route(kind: str, names: object, targets: Mapping[str, Target]) -> list[str]:
    if kind != EVERY and not alarm_kinds.known(kind):
        raise _bad(f"no alarm kind {kind[:64]!r}; the kinds are {', '.join(KINDS)} or *", "kind")
    if not isinstance(names, list) or len(names) > MAX_TARGETS:
        raise _bad(f"route {kind}: a list of at most {MAX_TARGETS} target names", "targets")
    for n in names:
        if not isinstance(n, str) or n not in targets:
            raise _bad(f"route {kind}: no target named {str(n)[:70]!r}", "targets")
    return list(dict.fromkeys(names))


def parse_smtp(raw: object) -> mail.SmtpSettings | None:
    if raw in (None, {}):
        return None
    if not isinstance(raw, dict) or not set(raw) <= _SMTP_KEYS or not raw.get("host"):
        raise _bad(f"notify.smtp: {{host, ...}} with keys among {sorted(_SMTP_KEYS)}", "smtp")
    s = mail.SmtpSettings(
        host=str(raw["host"]),
        port=int(raw.get("port", 465 if raw.get("security") == "ssl" else 587)),
        security=str(raw.get("security", "starttls")),
        username=str(raw.get("username", "")),
        password_file=str(raw.get("password_file", "")),
        sender=str(raw.get("from", "parley@localhost")),
        timeout_s=float(raw.get("timeout_s", 10.0)),
    )
    if s.security not in mail.SECURITY:
        raise _bad(f"notify.smtp.security is one of {', '.join(mail.SECURITY)}", "smtp")
    if not 0 < s.port < 65536 or not 0 < s.timeout_s <= 60:
        raise _bad("notify.smtp: port 1..65535, timeout_s above 0 and at most 60", "smtp")
    if s.username and not s.password_file:
        raise _bad("notify.smtp: a username needs a password_file", "smtp")
    return s


@dataclass(frozen=True)
class Settings:
    targets: dict[str, Target] = field(default_factory=dict)
    routes: dict[str, list[str]] = field(default_factory=dict)
    file_routes: dict[str, list[str]] = field(default_factory=dict)
    smtp: mail.SmtpSettings | None = None

    def route(self, kind: str) -> list[str]:
        return self.routes[kind] if kind in self.routes else self.routes.get(EVERY, [])


def file_settings(raw: object) -> Settings:
    """station.json's `notify`, checked (the station refuses to start on a bad one)."""
    if raw in (None, {}):
        return Settings()
    if not isinstance(raw, dict) or not set(raw) <= {"targets", "routes", "smtp"}:
        raise _bad("notify: {targets, routes, smtp}", "notify")
    spec = raw.get("targets", {})
    if not isinstance(spec, dict) or len(spec) > MAX_TARGETS:
        raise _bad(f"notify.targets: at most {MAX_TARGETS} named targets", "notify")
    targets = {n: parse_target(n, s, FILE) for n, s in spec.items()}
    routes_raw = raw.get("routes", {})
    if not isinstance(routes_raw, dict):
        raise _bad("notify.routes: {kind: [target, ...]}", "notify")
    routes = {k: parse_route(k, v, targets) for k, v in routes_raw.items()}
    return Settings(targets, routes, dict(routes), parse_smtp(raw.get("smtp")))


def settings(station: Station) -> Settings:
    """station.json's settings with what an admin set through the API on top."""
    base = file_settings(station.cfg.notify)
    targets = dict(base.targets)
    for name, spec in (db.setting(station.store, "targets") or {}).items():
        if name not in targets:
            targets[name] = parse_target(name, spec, API)
    routes = dict(base.routes)
    for kind, names in (db.setting(station.store, "routes") or {}).items():
        routes[kind] = [n for n in names if n in targets]
    return Settings(targets, routes, base.file_routes, base.smtp)


# --- queueing ------------------------------------------------------------------------------------
def _backchannels(station: Station) -> set[str]:
    return {s.channel for s in station.channel_states() if s.kind == "backchannel"}


def _payload(station: Station, row: dict[str, Any]) -> str:
    body = {"station": station.id, "station_name": station.cfg.name,
            "console": station.cfg.url.rstrip("/") + "/console/alarms"} | row  # fmt: skip
    text = json.dumps(body, ensure_ascii=False, sort_keys=True)
    assert len(text.encode()) <= MAX_PAYLOAD, "alarm text is cut to MAX_TEXT"
    return text


def alarm_payload(
    station: Station, alarm_id: int | None, kind: str, severity: str, subject: str, message: str,
    channel: str | None, now: int,
) -> str:  # fmt: skip
    info = KINDS.get(kind)
    row: dict[str, Any] = {
        "event": "parley.alarm", "alarm": alarm_id, "kind": kind, "severity": severity,
        "urgent": bool(info and info.urgent), "ts": now, "channel": channel,
    }  # fmt: skip
    if channel is None:
        row |= {"subject": subject[:200], "message": message[:MAX_TEXT]}
    else:
        row |= {"subject": None, "message": BACKCHANNEL_TEXT}
    return _payload(station, row)


def _summary_payload(station: Station, kind: str, n: int, since: int, channel: str | None) -> str:
    what = "back-channel alarm" if channel is not None else f"{kind} alarm"
    return _payload(
        station,
        {
            "event": "parley.alarm_summary", "kind": kind, "count": n, "since": since,
            "channel": channel, "severity": "info", "urgent": False,
            "message": f"{n} more {what}(s) since the last notification were held back "
            f"(at most {BURST} per {WINDOW_MS // 60_000} min); read them in the console",
        },
    )  # fmt: skip


def queue(
    station: Station, target: Target, kind: str, channel: str | None, payload: str,
    alarm_id: int | None, now: int,
) -> None:  # fmt: skip
    """Queue one notification for `target`, or count it into the burst's summary."""
    if not target.may_hear(channel):
        return
    store = station.store
    if db.sent_since(store, target.name, kind, now - WINDOW_MS) < BURST:
        db.add(store, alarm_id, kind, target.name, channel, payload, now)
        return
    held = db.open_summary(store, target.name, kind)
    if held is not None and held.channel == channel:
        n = held.coalesced + 1
        db.bump_summary(store, held.id, n, _summary_payload(station, kind, n, held.created,
                                                            channel), now)  # fmt: skip
    else:
        db.add(store, None, kind, target.name, channel,
               _summary_payload(station, kind, 1, now, channel), now,
               coalesced=1, next_ms=now + WINDOW_MS)  # fmt: skip


def route_alarm(
    station: Station, alarm_id: int, kind: str, severity: str, subject: str, message: str,
    ref: str,
) -> None:  # fmt: skip
    """Queue the notifications of an alarm just raised (Station.alarm's hook)."""
    try:
        conf = settings(station)
        names = conf.route(kind)
        if not names:
            return
        row = station.store.alarm(alarm_id)
        hidden = _backchannels(station)
        channel = alarms.channel_of(station, row, hidden) if row and hidden else None
        now = station.clock()
        payload = alarm_payload(station, alarm_id, kind, severity, subject, message, channel, now)
        with station.store.tx():
            for name in names:
                if kind == ALARM and ref == f"notify:{name}":
                    continue  # a target's own failure is news for the others
                queue(station, conf.targets[name], kind, channel, payload, alarm_id, now)
    except ParleyError as exc:
        log.warning("notification of alarm %s not queued: %s", alarm_id, exc.message)


def escalation_target(station: Station, url: str) -> Target:
    """The target an escalation level's webhook URL stands for: the named target with that URL
    (its back-channel marks apply), else an unnamed one that hears of no back channel."""
    for t in settings(station).targets.values():
        if t.type == WEBHOOK and t.url == url:
            return replace(t, name=url)
    return Target(url, WEBHOOK, url=url, source="escalation")


def queue_escalation(
    station: Station, url: str, channel: str, backchannel: bool, payload: dict[str, Any]
) -> None:
    """Queue a notice escalation's webhook call (station/notices.py), by the same rules."""
    target = escalation_target(station, url)
    concerns = channel if backchannel else None
    if concerns is not None:
        keep = ("event", "delivery", "level", "channel", "ref", "deadline_ms", "overdue_ms",
                "fired_ms")  # fmt: skip
        payload = {k: payload[k] for k in keep if k in payload}
        payload["message"] = "an acknowledgement on a back channel is overdue; see the console"
    text = _payload(station, payload)
    queue(station, target, "ack_overdue", concerns, text, None, station.clock())


# --- the desk ------------------------------------------------------------------------------------
def _outcome(row: db.OutboxRow) -> dict[str, Any]:
    return {
        "id": row.id, "alarm": row.alarm_id, "kind": row.kind, "target": row.target,
        "state": row.state, "attempts": row.attempts, "coalesced": row.coalesced,
        "created": row.created, "updated": row.updated, "next_ms": row.next_ms,
        "last_error": row.last_error, "backchannel": row.channel is not None,
    }  # fmt: skip


class NotifyDesk:
    def __init__(
        self, station: Station, http: httpx.Client | None = None, mailer: Mailer | None = None
    ) -> None:
        """`http`: the client webhooks are posted with (default: one from transport/clients.py,
        built on first use); `mailer`: sends one mail (default: transport/mail.send)."""
        self.station = station
        self._http = http
        self.mailer: Mailer = mailer or mail.send

    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = clients.sync_client(TIMEOUT_S)
        return self._http

    # --- settings (admin) ------------------------------------------------------------------------
    def _shown(self, t: Target, visible: set[str]) -> dict[str, Any]:
        spec = t.spec()
        if "channels" in spec:
            spec["channels"] = [c for c in t.channels if c in visible]
            if not spec["channels"]:
                del spec["channels"]
        return {"name": t.name, "source": t.source} | spec

    def overview(self, who: User) -> dict[str, Any]:
        """Targets, and per alarm kind the targets that hear of it (and through which route)."""
        authorize(who, Action.NOTIFY_MANAGE)
        st = self.station
        conf = settings(st)
        visible = {s.channel for s in st.channel_states(who)}
        kinds = []
        for k in sorted(KINDS.values(), key=lambda k: (not k.urgent, k.name)):
            via = k.name if k.name in conf.routes else (EVERY if EVERY in conf.routes else None)
            kinds.append({"kind": k.name, "about": k.about, "urgent": k.urgent,
                          "targets": conf.route(k.name), "route": via})  # fmt: skip
        smtp = conf.smtp
        return {
            "targets": [self._shown(t, visible) for t in conf.targets.values()],
            "routes": conf.routes,
            "kinds": kinds,
            "smtp": None
            if smtp is None
            else {
                "host": smtp.host,
                "port": smtp.port,
                "security": smtp.security,
                "from": smtp.sender,
                "auth": bool(smtp.username),
            },
            "pending": db.pending(st.store),
            "limits": {
                "targets": MAX_TARGETS,
                "burst": BURST,
                "window_ms": WINDOW_MS,
                "attempts": ATTEMPTS,
            },
        }

    def set_target(self, who: User, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Add or replace a target defined through the API. `backchannels` is station.json's
        alone; `channels` names back channels `who` is a named representative of (those the
        target already names and `who` cannot see are kept)."""
        authorize(who, Action.NOTIFY_MANAGE)
        st = self.station
        conf = settings(st)
        spec = dict(spec)
        if spec.get("backchannels"):
            raise _bad("only station.json marks a target for every back channel", "backchannels")
        spec.pop("backchannels", None)
        old = conf.targets.get(name)
        if old is not None and old.source == FILE:
            raise _bad(f"target {name} is defined in station.json; change it there", "name")
        for ch in spec.get("channels", []) if isinstance(spec.get("channels"), list) else []:
            if not isinstance(ch, str) or st.channel_state(ch).kind != "backchannel":
                raise _bad(f"channels: {str(ch)[:64]!r} is not a back channel", "channels")
            st.guard(ch, who)
        target = parse_target(name, spec, API)
        visible = {s.channel for s in st.channel_states(who)}
        kept = tuple(c for c in (old.channels if old else ()) if c not in visible)
        target = replace(target, channels=tuple(dict.fromkeys(target.channels + kept)))
        if old is None and len(conf.targets) >= MAX_TARGETS:
            raise _bad(f"at most {MAX_TARGETS} targets", "name")
        mine = {n: t.spec() for n, t in conf.targets.items() if t.source == API}
        mine[name] = target.spec()
        now = st.clock()
        with st.store.tx():
            db.put_setting(st.store, "targets", mine, who.name, now)
            st.store.audit(who.name, "notify.target", {"name": name, "type": target.type}, now)
        return self._shown(target, visible)

    def remove_target(self, who: User, name: str) -> None:
        authorize(who, Action.NOTIFY_MANAGE)
        st = self.station
        conf = settings(st)
        t = conf.targets.get(name)
        if t is None:
            raise NotFound(Code.NOT_FOUND, f"no target {name[:70]!r}")
        if t.source == FILE:
            raise _bad(f"target {name} is defined in station.json; change it there", "name")
        mine = {n: x.spec() for n, x in conf.targets.items() if x.source == API and n != name}
        routes = {k: [n for n in v if n != name]
                  for k, v in (db.setting(st.store, "routes") or {}).items()}  # fmt: skip
        now = st.clock()
        with st.store.tx():
            db.put_setting(st.store, "targets", mine, who.name, now)
            db.put_setting(st.store, "routes", routes, who.name, now)
            st.store.audit(who.name, "notify.target.remove", {"name": name}, now)

    def set_route(self, who: User, kind: str, names: list[str] | None) -> list[str]:
        """Route `kind` (or `*`) to `names`; None drops the API's route (station.json's, if
        any, applies again). An empty list routes the kind nowhere."""
        authorize(who, Action.NOTIFY_MANAGE)
        st = self.station
        conf = settings(st)
        routes = dict(db.setting(st.store, "routes") or {})
        if names is None:
            parse_route(kind, [], conf.targets)
            routes.pop(kind, None)
        else:
            routes[kind] = parse_route(kind, names, conf.targets)
        now = st.clock()
        with st.store.tx():
            db.put_setting(st.store, "routes", routes, who.name, now)
            st.store.audit(who.name, "notify.route", {"kind": kind, "targets": names}, now)
        return settings(st).route(kind)

    def test(self, who: User, name: str) -> dict[str, Any]:
        """Send a test notification to `name` now; its outcome as the delivery log shows it."""
        authorize(who, Action.NOTIFY_MANAGE)
        st = self.station
        target = settings(st).targets.get(name)
        if target is None:
            raise NotFound(Code.NOT_FOUND, f"no target {name[:70]!r}")
        now = st.clock()
        payload = _payload(st, {
            "event": "parley.test", "kind": "test", "severity": "info", "urgent": False,
            "ts": now, "channel": None, "message": f"a test notification sent by {who.name}",
        })  # fmt: skip
        with st.store.tx():
            row_id = db.add(st.store, None, "test", name, None, payload, now)
            st.store.audit(who.name, "notify.test", {"name": name}, now)
        row = db.get(st.store, row_id)
        assert row is not None  # just queued, in this process
        self._deliver(row, settings(st), now)
        done = db.get(st.store, row_id)
        assert done is not None
        return _outcome(done)

    def deliveries(self, who: User, limit: int = 100) -> list[dict[str, Any]]:
        """The newest notifications and their state; rows about a back channel `who` is not
        named on are left out."""
        authorize(who, Action.NOTIFY_MANAGE)
        st = self.station
        hidden = {s.channel for s in st.channel_states() if not st.visible(s, who)}
        rows = db.recent(st.store, min(max(limit, 1), MAX_LOG) * 2)
        shown = [_outcome(r) for r in rows if r.channel is None or r.channel not in hidden]
        return shown[:limit]

    # --- delivery ----------------------------------------------------------------------------
    def deliver(self, now: int | None = None) -> int:
        """Send what is due (at most PER_PASS), each outside any transaction; how many."""
        st = self.station
        now = st.clock() if now is None else now
        rows = db.due(st.store, now, PER_PASS)
        if not rows:
            return 0
        conf = settings(st)
        for row in rows:
            self._deliver(row, conf, now)
        with st.store.tx():
            db.prune(st.store, KEEP)
        return len(rows)

    def _target(self, conf: Settings, name: str) -> Target | None:
        if name in conf.targets:
            return conf.targets[name]
        if name.startswith(("http://", "https://")):  # an escalation level's own URL
            return escalation_target(self.station, name)
        return None

    def _send(self, target: Target, row: db.OutboxRow, conf: Settings) -> str | None:
        if target.type == WEBHOOK:
            return webhook.post(
                self.http(), target.url, row.payload.encode(), str(row.id), TIMEOUT_S
            )
        if conf.smtp is None:
            return "no SMTP server: set notify.smtp in station.json"
        body = json.loads(row.payload)
        return self.mailer(conf.smtp, list(target.to), _subject(body), _text(body))

    def _deliver(self, row: db.OutboxRow, conf: Settings, now: int) -> None:
        st = self.station
        target = self._target(conf, row.target)
        error = "the target was removed" if target is None else None
        if target is not None and not target.may_hear(row.channel):
            error = "the target no longer hears of this back channel"
        if error is None and target is not None:
            error = self._send(target, row, conf)
        attempts = row.attempts + 1
        with st.store.tx():
            if error is None:
                db.result(st.store, row.id, db.DELIVERED, attempts, now, None, now)
                alarms.resolve(st, [ALARM], f"notify:{row.target}", "a later delivery succeeded")
                return
            final = target is None or attempts >= ATTEMPTS or row.kind == "test"
            delay = min(RETRY_BASE_MS << (attempts - 1), RETRY_MAX_MS)
            db.result(st.store, row.id, db.FAILED if final else db.PENDING, attempts,
                      now if final else now + delay, error, now)  # fmt: skip
            if row.kind in (ALARM, "test"):
                return  # no cascade: a failed notification of a failure raises nothing
            ref = f"notify:{row.target}"
            label = "a webhook" if target is None or target.type == WEBHOOK else "an e-mail"
            if final:
                st.alarm(ALARM, "critical", row.target,
                         f"{label} notification to {row.target} ({row.kind}) failed {attempts} "
                         f"time(s), last: {error}; giving up", ref)  # fmt: skip
            elif not st.store.open_alarms([ALARM], ref):
                st.alarm(ALARM, "warning", row.target,
                         f"{label} notification to {row.target} ({row.kind}) failed ({error}); "
                         f"retrying up to {ATTEMPTS} times with backoff", ref)  # fmt: skip


def _subject(body: Mapping[str, Any]) -> str:
    station = body.get("station_name", "")
    kind = body.get("kind", "")
    if body.get("channel") is not None:
        return f"[Parley {station}] {body.get('severity')}: an alarm on a back channel"
    if body.get("event") == "parley.alarm_summary":
        return f"[Parley {station}] {body.get('count')} more {kind} alarm(s)"
    text = str(body.get("message", ""))
    return f"[Parley {station}] {body.get('severity')}: {kind}: {text[:80]}"


def _text(body: Mapping[str, Any]) -> str:
    lines = [str(body.get("message", "")), ""]
    for key in ("kind", "severity", "subject", "channel", "alarm", "count", "ref", "level"):
        if body.get(key) is not None:
            lines.append(f"{key}: {body[key]}")
    lines += [f"station: {body.get('station_name')} ({body.get('station')})",
              f"console: {body.get('console')}"]  # fmt: skip
    return "\n".join(lines) + "\n"


# --- wiring --------------------------------------------------------------------------------------
def on_flash(st: Station, acc: Accepted) -> None:
    """Observer: a FLASH from a peer is news even when it needs nothing done (history only)."""
    if acc.local or acc.prec != "FLASH":
        return
    message = f"FLASH from {st.peer_name(acc.sender)} on channel {acc.channel} (seq {acc.seq})"
    alarms.settled(st, FLASH, "high", acc.channel, message, f"flash:{acc.hash}", "received")


_DESKS: WeakKeyDictionary[Station, NotifyDesk] = WeakKeyDictionary()


def install(station: Station, desk_: NotifyDesk | None = None) -> None:
    file_settings(station.cfg.notify)  # fail at start, not at the first alarm
    _DESKS[station] = desk_ or NotifyDesk(station)
    if route_alarm not in station.alarm_hooks:  # again: only the desk changes (a test's client)
        station.alarm_hooks.append(route_alarm)
        station.observers.append(on_flash)


def desk(station: Station) -> NotifyDesk:
    found = _DESKS.get(station)
    if found is None:
        raise LocalError(Code.INVALID_REQUEST, "notifications are not installed on this station")
    return found


async def run(station: Station) -> None:
    """The duty: deliver what is due about once a second, on a worker thread."""
    d = desk(station)
    while True:
        await asyncio.sleep(PASS_EVERY_S)
        try:
            while await asyncio.to_thread(d.deliver) == PER_PASS:
                pass
        except ParleyError as exc:
            log.warning("notification delivery: %s", exc.message)
