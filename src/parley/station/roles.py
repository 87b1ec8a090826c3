"""Who may do what at a station: the one role table, and the one check every use case calls.

Rules:
- Every operator action has a name (`Action`) and one row in `TABLE`: the roles that may do it.
  A user may do an action when they hold at least one of its roles. Nothing else grants an
  action: not the adapter a request came through (API, console, CLI), not being the bootstrap
  token (which is the user `admin` with the roles admin and operator).
- The check lives in the station's use-case services (`station/*`), which take the acting user
  as an argument and call `authorize(user, action)` before they read or change anything. The
  adapters (api/, web/, cli/) only parse input, call a service and render its answer; each
  operator API route names its action in OpenAPI (`x-parley-action`), so a test can enumerate
  every route against this table.
- A back channel is a second, independent gate (`Station.guard`): whatever their roles, only the
  users its proposal names for this station see or act on it.
- `ME` is the one action open to a signed-in user with no role: reading who they are.

The table reads like Kubernetes RBAC or Matrix power levels: actions down the side, roles across.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Protocol

from parley.errors import Code, Forbidden

OPERATOR, REPRESENTATIVE, TRANSLATOR = "operator", "representative", "translator"
FACILITATOR, AUDITOR, ADMIN = "facilitator", "auditor", "admin"
ROLES = (OPERATOR, REPRESENTATIVE, TRANSLATOR, FACILITATOR, AUDITOR, ADMIN)


class Actor(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def roles(self) -> frozenset[str]: ...


class Action(StrEnum):
    # who am I; open to every signed-in user, roles or none
    ME = "me.read"
    # reading: the station, its peers and links, its channels and what they carry
    STATION_READ = "station.read"
    CHANNEL_READ = "channel.read"
    ALARM_READ = "alarm.read"
    EVIDENCE_READ = "evidence.read"
    AUDIT_READ = "audit.read"
    METRICS_READ = "metrics.read"
    TRANSCRIPT_EXPORT = "transcript.export"
    # set-up
    PEER_ADD = "peer.add"
    PEER_ROUTE = "peer.route"
    PEER_REMOVE = "peer.remove"
    PEER_REVOKE = "peer.revoke"
    IDENTITY_ROTATE = "identity.rotate"
    USER_MANAGE = "user.manage"
    TOKEN_OWN = "token.own"
    CHECKCALL_SCHEDULE = "checkcall.schedule"
    NOTIFY_MANAGE = "notify.manage"
    # channel steps
    CHANNEL_PROPOSE = "channel.propose"
    CHANNEL_CONSENT = "channel.consent"
    CHANNEL_SUSPEND = "channel.suspend"
    CHANNEL_REOPEN = "channel.reopen"
    CHANNEL_CLOSE = "channel.close"
    # duty work
    MESSAGE_SEND = "message.send"
    NOTICE_SEND = "notice.send"
    NOTICE_ACK = "notice.ack"
    CHECKCALL_CALL = "checkcall.call"
    CHECKCALL_ANSWER = "checkcall.answer"
    CRISIS_OPEN = "crisis.open"
    CRISIS_UPDATE = "crisis.update"
    ALARM_CLEAR = "alarm.clear"
    CHECKPOINT_MAKE = "checkpoint.make"
    BUNDLE_EXPORT = "bundle.export"
    BUNDLE_IMPORT = "bundle.import"
    # talks about talks and road maps
    TALKS_PROPOSE = "talks.propose"
    TALKS_COUNTER = "talks.counter"
    TALKS_WITHDRAW = "talks.withdraw"
    TALKS_ACCEPT = "talks.accept"
    ROADMAP_ADD = "roadmap.add"
    ROADMAP_AGREE = "roadmap.agree"
    ROADMAP_UPDATE = "roadmap.update"
    # translations
    TRANSLATION_HUMAN = "translation.human"
    TRANSLATION_MACHINE = "translation.machine"


_ANY_ROLE = frozenset(ROLES)
_DUTY = frozenset({OPERATOR, REPRESENTATIVE, FACILITATOR})  # people who speak on channels
_STEPS = frozenset({ADMIN, OPERATOR, REPRESENTATIVE, FACILITATOR})  # channel lifecycle

TABLE: Mapping[Action, frozenset[str]] = {
    Action.ME: frozenset(),  # no role needed: see `authorize`
    Action.STATION_READ: _ANY_ROLE,
    Action.CHANNEL_READ: _ANY_ROLE,
    Action.ALARM_READ: _ANY_ROLE,
    Action.EVIDENCE_READ: frozenset({OPERATOR, AUDITOR, ADMIN}),
    Action.AUDIT_READ: frozenset({AUDITOR, ADMIN}),
    Action.METRICS_READ: frozenset({AUDITOR, ADMIN}),
    Action.TRANSCRIPT_EXPORT: frozenset({OPERATOR, REPRESENTATIVE, FACILITATOR, AUDITOR, ADMIN}),
    Action.PEER_ADD: frozenset({ADMIN}),
    Action.PEER_ROUTE: frozenset({ADMIN}),
    Action.PEER_REMOVE: frozenset({ADMIN}),
    Action.PEER_REVOKE: frozenset({ADMIN}),
    Action.IDENTITY_ROTATE: frozenset({ADMIN}),
    Action.USER_MANAGE: frozenset({ADMIN}),
    Action.TOKEN_OWN: _ANY_ROLE,
    Action.CHECKCALL_SCHEDULE: frozenset({ADMIN}),
    Action.NOTIFY_MANAGE: frozenset({ADMIN}),
    Action.CHANNEL_PROPOSE: _STEPS,
    Action.CHANNEL_CONSENT: _STEPS,
    Action.CHANNEL_SUSPEND: _STEPS,
    Action.CHANNEL_REOPEN: _STEPS,
    Action.CHANNEL_CLOSE: _STEPS,
    Action.MESSAGE_SEND: _DUTY,
    Action.NOTICE_SEND: _DUTY,
    Action.NOTICE_ACK: _DUTY,
    Action.CHECKCALL_CALL: frozenset({OPERATOR}),
    Action.CHECKCALL_ANSWER: frozenset({OPERATOR}),
    Action.CRISIS_OPEN: _DUTY,
    Action.CRISIS_UPDATE: _DUTY,
    Action.ALARM_CLEAR: frozenset({OPERATOR, ADMIN}),
    Action.CHECKPOINT_MAKE: frozenset({OPERATOR, ADMIN}),
    Action.BUNDLE_EXPORT: frozenset({OPERATOR, ADMIN}),
    Action.BUNDLE_IMPORT: frozenset({OPERATOR, ADMIN}),
    Action.TALKS_PROPOSE: _DUTY,
    Action.TALKS_COUNTER: _DUTY,
    Action.TALKS_WITHDRAW: _DUTY,
    Action.TALKS_ACCEPT: _DUTY,
    Action.ROADMAP_ADD: _DUTY,
    Action.ROADMAP_AGREE: _DUTY,
    Action.ROADMAP_UPDATE: _DUTY,
    Action.TRANSLATION_HUMAN: frozenset({TRANSLATOR}),
    Action.TRANSLATION_MACHINE: frozenset({TRANSLATOR, OPERATOR}),
}


def allowed(user: Actor, action: Action) -> bool:
    if action is Action.ME:
        return True
    return bool(TABLE[action] & user.roles)


def authorize(user: Actor, action: Action) -> None:
    """Forbidden(forbidden) unless `user` may do `action`; the one check every service makes."""
    if not allowed(user, action):
        need = " or ".join(r for r in ROLES if r in TABLE[action])
        raise Forbidden(
            Code.FORBIDDEN,
            f"{user.name} may not do {action.value}: it needs the {need} role",
            action=action.value,
        )


def table_markdown() -> str:
    """The table as Markdown (README and docs/roles.md quote it; a test keeps them equal)."""
    head = "| action | " + " | ".join(ROLES) + " |"
    rows = [head, "|---|" + "---|" * len(ROLES)]
    for action in Action:
        if action is Action.ME:
            marks = ["any (no role needed)", *[""] * (len(ROLES) - 1)]
        else:
            marks = ["✓" if r in TABLE[action] else "" for r in ROLES]
        rows.append(f"| `{action.value}` | " + " | ".join(marks) + " |")
    return "\n".join(rows)
