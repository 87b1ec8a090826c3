"""Acknowledgements, acknowledgement deadlines, and escalation of overdue notices.

Acknowledgement rules (`ack` body {ref, answer, text, by}):
- `ref` is the hash of the envelope answered (a notice or a message), unpadded base64url.
- `answer` is "acknowledged", "questions" or "rejected"; `by` names the person answering (an
  acknowledgement is a person's act, unlike a receipt); `text` may be empty except for
  "questions", which without text asks nothing.
- One envelope may be answered several times ("questions" first, "acknowledged" after the
  clarification). The first answer of any kind meets the deadline; the latest is the current one.

Deadline rules (`DeadlineTracker`, folded from the transcript in causal order):
- A notice is OPEN until its deadline, then OVERDUE until answered. Answered at or before the
  deadline is ANSWERED, after it ANSWERED_LATE. Times are envelope timestamps.
- Escalation: each level of an `EscalationPolicy` fires once per overdue notice, when the notice
  has been overdue for at least `after_overdue_ms` (level 0 with 0 ms fires as soon as it is
  overdue). Levels due together (e.g. after a restart) fire together, lowest first. Fired
  (ref, level) pairs are remembered so a repeated `escalation()` call returns nothing new; pass
  them back in after a restart. An answer stops further levels. Levels are identified by index,
  so reordering a policy's levels while notices are overdue re-fires or skips levels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from typing import Any

from parley.errors import Code, Conflict, LocalError, ParleyError, RejectedInput
from parley.protocol.encoding import b64d

KIND_ACK = "ack"

MAX_ACK_TEXT_CHARS = 4000
MAX_PERSON_CHARS = 200
MAX_LEVELS = 16
MAX_URL_CHARS = 2000
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*")


class Answer(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    QUESTIONS = "questions"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Ack:
    ref: str
    answer: Answer
    text: str
    by: str
    ts_ms: int  # the ack envelope's signed timestamp


def parse_ref(value: object, field: str = "ref") -> str:
    """An envelope hash as it appears in bodies: unpadded base64url of 32 bytes."""
    if not isinstance(value, str):
        raise RejectedInput(Code.BAD_BODY, f"{field}: expected an envelope hash (base64url)")
    try:
        b64d(value, field=field, size=32)
    except ParleyError as exc:  # b64d says malformed; in a body it is a bad body
        raise RejectedInput(Code.BAD_BODY, exc.message) from None
    return value


def parse_ack(body: object, ts_ms: int) -> Ack:
    """Validate a received `ack` body; RejectedInput(bad_body) names the field."""
    if not isinstance(body, dict) or set(body) != {"ref", "answer", "text", "by"}:
        raise RejectedInput(Code.BAD_BODY, "ack: expected exactly the fields answer, by, ref, text")
    ref = parse_ref(body["ref"])
    try:
        answer = Answer(body["answer"])
    except ValueError:
        raise RejectedInput(
            Code.BAD_BODY, "answer: must be acknowledged, questions or rejected"
        ) from None
    text, by = body["text"], body["by"]
    if not isinstance(text, str) or len(text) > MAX_ACK_TEXT_CHARS:
        raise RejectedInput(Code.BAD_BODY, f"text: at most {MAX_ACK_TEXT_CHARS} chars")
    if answer is Answer.QUESTIONS and not text.strip():
        raise RejectedInput(Code.BAD_BODY, "text: the questions must be written out")
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_PERSON_CHARS:
        raise RejectedInput(Code.BAD_BODY, f"by: the answering person, 1..{MAX_PERSON_CHARS} chars")
    return Ack(ref, answer, text, by, ts_ms)


def ack_body(ref: str, answer: Answer | str, text: str, by: str) -> dict[str, Any]:
    """The body of an `ack` envelope; LocalError(invalid_request) if it would be refused."""
    body: dict[str, Any] = {"ref": ref, "answer": str(answer), "text": text, "by": by}
    try:
        parse_ack(body, 0)
    except RejectedInput as exc:
        raise LocalError(Code.INVALID_REQUEST, exc.message) from None
    return body


class EscalationAction(StrEnum):
    CONSOLE_ALARM = "console_alarm"
    WEBHOOK = "webhook"


@dataclass(frozen=True)
class EscalationLevel:
    after_overdue_ms: int
    action: EscalationAction
    target: str | None = None  # the webhook URL; None for a console alarm


@dataclass(frozen=True)
class EscalationPolicy:
    levels: tuple[EscalationLevel, ...]

    def __init__(
        self,
        levels: Sequence[EscalationLevel | tuple[int, str] | tuple[int, str, str | None]],
    ) -> None:
        """Levels from configuration: EscalationLevel or (after_overdue_ms, action[, target])."""
        out = tuple(_level(item) for item in levels)
        if not 1 <= len(out) <= MAX_LEVELS:
            raise LocalError(Code.INVALID_REQUEST, f"escalation: need 1..{MAX_LEVELS} levels")
        if any(a.after_overdue_ms > b.after_overdue_ms for a, b in pairwise(out)):
            # Ascending levels make "level n fired" imply "levels before n were due".
            raise LocalError(Code.INVALID_REQUEST, "escalation: levels must be in ascending order")
        object.__setattr__(self, "levels", out)


def _level(item: EscalationLevel | tuple[Any, ...]) -> EscalationLevel:
    try:
        if isinstance(item, tuple):
            after, action, target = (*item, None) if len(item) == 2 else item
        else:
            after, action, target = item.after_overdue_ms, item.action, item.target
        level = EscalationLevel(after, EscalationAction(action), target)
    except (ValueError, TypeError):
        raise LocalError(Code.INVALID_REQUEST, f"escalation level {item!r}: bad action") from None
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise LocalError(Code.INVALID_REQUEST, "escalation: after_overdue_ms must be >= 0")
    if level.action is EscalationAction.WEBHOOK:
        if not isinstance(target, str) or len(target) > MAX_URL_CHARS or not _URL.fullmatch(target):
            raise LocalError(Code.INVALID_REQUEST, "escalation: a webhook needs an http(s) URL")
    elif target is not None:
        raise LocalError(Code.INVALID_REQUEST, "escalation: a console alarm takes no target")
    return level


@dataclass(frozen=True)
class Escalation:
    """One escalation step to carry out now."""

    ref: str
    level: int
    action: EscalationAction
    target: str | None
    deadline_ms: int
    overdue_ms: int


class NoticeStatus(StrEnum):
    OPEN = "open"
    OVERDUE = "overdue"
    ANSWERED = "answered"
    ANSWERED_LATE = "answered_late"


@dataclass(frozen=True)
class Notice:
    ref: str
    deadline_ms: int


class DeadlineTracker:
    """Notices with acknowledgement deadlines, the answers to them, and escalations fired."""

    def __init__(self, fired: Iterable[tuple[str, int]] = ()) -> None:
        self.notices: dict[str, Notice] = {}
        self.acks: dict[str, list[Ack]] = {}
        self.fired: set[tuple[str, int]] = set(fired)

    def add_notice(self, ref: str, deadline_ms: int) -> None:
        known = self.notices.get(ref)
        if known is not None and known.deadline_ms != deadline_ms:
            raise Conflict(Code.CONFLICT, f"notice {ref} already has another deadline")
        self.notices[ref] = Notice(ref, deadline_ms)

    def add_ack(self, ack: Ack) -> None:
        """Record an answer; any envelope may be answered, with a deadline or without."""
        answers = self.acks.setdefault(ack.ref, [])
        if ack not in answers:  # the same ack delivered twice is one ack
            answers.append(ack)
            answers.sort(key=lambda a: a.ts_ms)

    def answers(self, ref: str) -> list[Ack]:
        """All answers to `ref`, oldest first; the last one is the current answer."""
        return list(self.acks.get(ref, []))

    def status(self, ref: str, now_ms: int) -> NoticeStatus:
        notice = self.notices.get(ref)
        if notice is None:
            raise LocalError(Code.INVALID_REQUEST, f"no notice {ref}")
        answers = self.acks.get(ref)
        if answers:
            late = answers[0].ts_ms > notice.deadline_ms
            return NoticeStatus.ANSWERED_LATE if late else NoticeStatus.ANSWERED
        return NoticeStatus.OVERDUE if now_ms > notice.deadline_ms else NoticeStatus.OPEN

    def overdue(self, now_ms: int) -> list[Notice]:
        """Unanswered notices past their deadline, most overdue first."""
        out = [
            n for n in self.notices.values() if self.status(n.ref, now_ms) is NoticeStatus.OVERDUE
        ]
        return sorted(out, key=lambda n: (n.deadline_ms, n.ref))

    def escalation(self, now_ms: int, policy: EscalationPolicy) -> list[Escalation]:
        """Escalation steps due now and not fired before; marks them fired."""
        due: list[Escalation] = []
        for notice in self.overdue(now_ms):
            overdue_ms = now_ms - notice.deadline_ms
            for i, level in enumerate(policy.levels):
                if overdue_ms < level.after_overdue_ms or (notice.ref, i) in self.fired:
                    continue
                self.fired.add((notice.ref, i))
                due.append(
                    Escalation(
                        notice.ref, i, level.action, level.target, notice.deadline_ms, overdue_ms
                    )
                )
        return due
