"""Message precedence, and the order in which the outbox hands envelopes to transport.

Rules:
- Four levels, highest first: FLASH > IMMEDIATE > PRIORITY > ROUTINE (the military message
  precedences; the envelope header field `prec` carries the same upper-case names).
- The outbox is drained by `outbox_key`: precedence first, then creation order. A FLASH envelope
  created after a hundred queued ROUTINE ones is still sent first.
- Precedence never reorders one sender's chain: a receiver applies a chain strictly by seq. A
  FLASH envelope sealed after queued ROUTINE ones on the same channel is still handed to transport
  first; the receiver holds it ahead of its chain and shows it early, marked as awaiting the
  backlog, then applies it in its place (docs/protocol.md §13). Other levels overtake across
  channels and peers.
"""

from __future__ import annotations

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


def outbox_key(precedence: Precedence, created: int) -> tuple[int, int]:
    """Sort key for the outbox: most urgent first, then oldest first.

    `created` is any increasing creation counter (outbox row id, or creation time in ms with a
    tiebreak); ascending sort on the key gives the sending order.
    """
    return (-precedence.rank, created)
