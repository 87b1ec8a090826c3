"""Every kind of alarm a station raises, and what each is about: the list that notification
routes (station/notify.py) are chosen from.

Rules:
- A kind raised anywhere (`Station.alarm`, `alarms.settled`) is a key of KINDS;
  tests/test_notify.py reads every call site in the source and fails on a kind missing here, so
  a new kind cannot be raised without a line here, and so without a routing rule: an admin
  routes it by name, and the `*` route covers every kind without its own.
- `urgent` kinds are the ones a person should hear about at night; the console marks them and
  `parley notify targets` lists them first. It changes no routing by itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    about: str
    urgent: bool = False


_KINDS = [
    # messages and notices
    Kind("flash_received", "a FLASH message arrived from a peer", urgent=True),
    Kind("flash", "a FLASH message arrived ahead of earlier ones (shown early)", urgent=True),
    Kind("ack_overdue", "an acknowledgement of a notice is overdue (escalation)", urgent=True),
    Kind("form_mismatch", "a peer's notice form differs from ours"),
    # liveness
    Kind("link", "a link to a peer went degraded, down, or came back up", urgent=True),
    Kind("checkcall_missed", "a check call was not answered in time", urgent=True),
    Kind("checkcall_late", "a check call was answered late"),
    Kind("checkcall", "a check call could not be sent or was malformed"),
    Kind("vigil", "a peer's check-call or crisis record could not be read"),
    Kind("crisis", "a crisis was opened or changed status", urgent=True),
    # integrity and evidence
    Kind("equivocation", "a peer sent two different envelopes for one place", urgent=True),
    Kind("divergence", "a chain held here diverges from a checkpoint or receipt", urgent=True),
    Kind("integrity", "a stored envelope or checkpoint failed its check at rest", urgent=True),
    Kind("rejected", "a peer or relay refused an envelope we sent"),
    Kind("held_limit", "a peer sent more out-of-order envelopes than this station holds"),
    Kind("evidence_limit", "more evidence about one sender than this station keeps"),
    Kind("checkpoint", "a checkpoint could not be made or checked"),
    Kind("witness", "a witness does not answer, refuses, or answers without a cosignature"),
    Kind("witness_conflict", "a witness holds another history of a chain", urgent=True),
    # talks, road maps, translations
    Kind("talks", "a peer's talks record cannot apply"),
    Kind("roadmap", "a peer's road-map record cannot apply"),
    Kind("translation", "a peer's translation record cannot apply"),
    # the station itself
    Kind("task", "a scheduled task failed"),
    Kind("notify", "a notification could not be delivered"),
]

KINDS: dict[str, Kind] = {k.name: k for k in _KINDS}
EVERY = "*"  # the route of every kind that has none of its own


def known(kind: str) -> bool:
    return kind in KINDS
