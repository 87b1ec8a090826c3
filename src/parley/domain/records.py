"""Every body type a channel may carry, and the one check each must pass before it is sealed or
accepted. A body of a type not listed here is refused (bad_body): members must agree on what a
transcript means, so a type is added here, with its checker, before anyone may send it.

A checker raises RejectedInput(bad_body) naming the field; what it returns is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from parley.domain import channels, checkcalls, crisis, notices, roadmap, talks, translation
from parley.errors import Code, RejectedInput
from parley.protocol import checkpoint

Checker = Callable[[dict[str, Any]], object]


def untyped(parse: Checker) -> Checker:
    """A checker for a domain parser that takes the body's fields without its "type" key."""
    return lambda body: parse({k: v for k, v in body.items() if k != "type"})


CHECKERS: dict[str, Checker] = {
    "channel.propose": channels.check_body,
    "channel.consent": channels.check_body,
    "channel.suspend": channels.check_body,
    "channel.reopen": channels.check_body,
    "channel.close": channels.check_body,
    "text": channels.check_body,
    **{t: talks.parse_body for t in talks.BODY_TYPES},
    **{t: roadmap.parse_body for t in roadmap.BODY_TYPES},
    translation.TYPE: translation.parse_body,
    checkcalls.KIND_CALL: untyped(checkcalls.parse_call),
    checkcalls.KIND_ANSWER: untyped(lambda b: checkcalls.parse_answer(b, 0)),
    crisis.KIND_OPEN: untyped(crisis.parse_open),
    crisis.KIND_STATUS: untyped(crisis.parse_status),
    crisis.KIND_LINK: untyped(crisis.parse_link),
    notices.TYPE: notices.check_notice,
    notices.TYPE_ACK: notices.check_ack,
    checkpoint.CHECKPOINT: checkpoint.check_checkpoint_body,
    checkpoint.COSIGN: checkpoint.check_cosign_body,
}


def check(body: dict[str, Any]) -> None:
    """Validate a body of any known type; refuse one of an unknown type."""
    t = body.get("type") if isinstance(body, dict) else None
    checker = CHECKERS.get(t) if isinstance(t, str) else None
    if checker is None:
        raise RejectedInput(Code.BAD_BODY, f"unknown body type {t!r}")
    checker(body)
