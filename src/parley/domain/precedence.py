"""Message precedence, and the order in which the outbox hands envelopes to transport.

Rules:
- Four levels, highest first: FLASH > IMMEDIATE > PRIORITY > ROUTINE (the military message
  precedences; the envelope header field `prec` carries the same upper-case names).
- The outbox order (`outbox_order`, the one definition; the store's SQL in `SqlStore.pending` is
  tested against it on SQLite and PostgreSQL): every pending FLASH envelope first, each on its
  own, oldest first; then the rest chain by chain, a channel whose most urgent pending envelope
  ranks higher before one whose ranks lower, and within that in creation order (which is chain
  order). A FLASH envelope created after a hundred queued ROUTINE ones is still sent first.
- Precedence never reorders one sender's chain: a receiver applies a chain strictly by seq. A
  FLASH envelope sealed after queued ROUTINE ones on the same channel is still handed to transport
  first; the receiver holds it ahead of its chain and shows it early, marked as awaiting the
  backlog, then applies it in its place (docs/protocol.md §13). Other levels overtake across
  channels and peers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from parley.errors import Code, RejectedInput


class Precedence(StrEnum):
    ROUTINE = "ROUTINE"
    PRIORITY = "PRIORITY"
    IMMEDIATE = "IMMEDIATE"
    FLASH = "FLASH"

    @property
    def rank(self) -> int:
        """0 for ROUTINE … 3 for FLASH; higher is more urgent."""
        return _RANK[self]


# Declaration order above is lowest first, so the rank is the position.
_RANK = {p: i for i, p in enumerate(Precedence)}


def parse_precedence(value: object) -> Precedence:
    """The precedence named by `value` (exact upper-case name), or RejectedInput(bad_body)."""
    if isinstance(value, str):
        try:
            return Precedence(value)
        except ValueError:
            pass
    names = ", ".join(p.value for p in Precedence)
    raise RejectedInput(Code.BAD_BODY, f"precedence must be one of {names}")


@dataclass(frozen=True)
class Pending:
    """One undelivered outbox row for one peer: `created` is any increasing creation counter
    (the envelope's row id), so within a channel it is also chain order."""

    channel: str
    precedence: Precedence
    created: int


def outbox_order(rows: Iterable[Pending]) -> list[Pending]:
    """The order in which a peer's pending envelopes are handed to transport."""
    rows = list(rows)
    urgency: dict[str, int] = {}
    for r in rows:
        urgency[r.channel] = max(urgency.get(r.channel, 0), r.precedence.rank)

    def key(r: Pending) -> tuple[int, int, int]:
        flash = r.precedence is Precedence.FLASH
        return (0 if flash else 1, -urgency[r.channel], r.created)

    return sorted(rows, key=key)


def outbox_prio(precedence: Precedence) -> int:
    """The outbox column the store sorts on: 0 for FLASH … 3 for ROUTINE (lowest sorts first)."""
    return _RANK[Precedence.FLASH] - precedence.rank
