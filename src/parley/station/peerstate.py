"""The state of a peer an admin removed or whose key it revoked (station/keys.py has the rules),
as every path that meets a peer asks it: the wire paths (why a station is not a peer we talk
to), sending (whether a channel is read-only here), and listings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from parley.errors import Code, Conflict, RejectedInput
from parley.protocol.identity import fingerprint
from parley.store.base import PeerRow, SqlStore

if TYPE_CHECKING:
    from parley.domain.channels import ChannelState


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def admitted(store: SqlStore, station: str) -> PeerRow:
    """The peer `station` this station talks to, or the error a wire path answers (`stranger`)."""
    p = store.get_peer(station)
    if p is None:
        raise stranger(store, station)
    return p


def stranger(store: SqlStore, station: str) -> RejectedInput:
    """Why `station` is not a peer we talk to, as the error a wire path answers."""
    p = store.peer_record(station)
    if p is not None and p.revoked is not None:
        return RejectedInput(
            Code.KEY_REVOKED,
            f"the identity key of {p.name} ({station}) was revoked here at {utc(p.revoked)}; "
            "nothing it signs is accepted",
        )
    if p is not None and p.removed is not None:
        return RejectedInput(
            Code.UNKNOWN_SENDER, f"{p.name} ({station}) was removed from this station's peers"
        )
    return RejectedInput(Code.UNKNOWN_SENDER, f"{station} is not a known peer")


def state_of(p: PeerRow) -> str:
    return "revoked" if p.revoked is not None else "removed" if p.removed is not None else "active"


def peer_json(p: PeerRow) -> dict[str, Any]:
    return {
        "station": p.station,
        "name": p.name,
        "lang": p.lang,
        "addresses": p.addresses,
        "fingerprint": fingerprint(p.identity),
        "state": state_of(p),
        "removed": p.removed,
        "revoked": p.revoked,
    }


def inactive_members(store: SqlStore, me: str, state: ChannelState) -> list[PeerRow]:
    """The members of a channel station `me` no longer talks to (removed or revoked)."""
    out = []
    for m in state.members:
        if m != me and store.get_peer(m) is None:
            p = store.peer_record(m)
            if p is not None:
                out.append(p)
    return out


def check_writable(store: SqlStore, me: str, state: ChannelState) -> None:
    """`peer_removed` when the channel is read-only here (a member was removed or revoked)."""
    gone = inactive_members(store, me, state)
    if gone:
        who = ", ".join(f"{p.name} ({state_of(p)})" for p in gone)
        raise Conflict(
            Code.PEER_REMOVED,
            f"the channel is read-only here: this station no longer talks to {who}",
        )
