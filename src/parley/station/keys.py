"""People and keys: an admin removes a peer or revokes its identity key (issue 15).

    KeyDesk(station)
      remove(who, ref, force)     the station stops talking to a peer
      revoke(who, ref, reason)    nothing signed by that peer's identity key is accepted any more
      rotate(who, grace_ms)       this station's own identity key, with a signed hand-over

Rules (docs/protocol.md §3.5):
- Neither forgets anything. The peer's row stays, marked with when it was removed or revoked, so
  its key still verifies what it signed before (station/integrity.py, exports, proofs): a
  transcript never loses records. `store.get_peer` and `list_peers` leave such a peer out, so
  every wire path (push, pull, relay, bundles, receipts, prekeys) treats it as a stranger;
  `peerstate.stranger` says why, with `key_revoked` for a revoked key.
- Remove is refused while the peer is a member of a channel that is not closed, unless forced.
  Forced, those channels are kept **read-only here**: no close is sent (it would be a unilateral,
  signed statement to members who did not ask for it, and could not reach the removed peer), the
  history stays readable and exportable, other members' envelopes are still received, and this
  station sends nothing more there (`peer_removed`); their check-call schedules are dropped.
- What is still queued for the peer is dropped (counted in the audit log): it is not delivered
  to a station we no longer talk to. The envelopes stay in our chains. If the peer is added
  again, what was dropped is queued again, in chain order (`Station.add_peer`, counted as
  `requeued` in the audit log): its copy of our chains continues where its receipts stopped.
- Revocation is final for that key: an invitation with a revoked key (so the same station id) is
  refused. It needs no force: a compromised key is an emergency.
"""

from __future__ import annotations

from typing import Any

from parley.domain.channels import ChannelState
from parley.errors import Code, Conflict, LocalError, NotFound
from parley.protocol.identity import fingerprint
from parley.station import handovers
from parley.station.node import Station
from parley.station.peerstate import peer_json, utc
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.store import vigil as vigil_db
from parley.store.base import PeerRow

MAX_REASON = 2000


class KeyDesk:
    def __init__(self, station: Station) -> None:
        self.station = station

    def _record(self, ref: str) -> PeerRow:
        """A peer in any state by id, or by its name when exactly one has it."""
        store = self.station.store
        p = store.peer_record(ref)
        if p is not None:
            return p
        found = [x for x in store.peer_records() if x.name.casefold() == ref.strip().casefold()]
        if len(found) == 1:
            return found[0]
        if found:
            ids = ", ".join(x.station for x in found)
            raise LocalError(
                Code.INVALID_REQUEST, f"{len(found)} peers are named {ref!r} ({ids}): use the id"
            )
        raise NotFound(Code.NOT_FOUND, f"{ref!r} is not a known peer")

    def _channels_with(self, sid: str) -> list[ChannelState]:
        return [
            s for s in self.station.channel_states() if sid in s.members and s.state != "closed"
        ]

    def remove(self, who: User, ref: str, force: bool = False) -> dict[str, Any]:
        authorize(who, Action.PEER_REMOVE)
        st = self.station
        p = self._record(ref)
        if p.removed is not None:
            raise Conflict(Code.CONFLICT, f"{p.name} was removed at {utc(p.removed)} already")
        busy = self._channels_with(p.station)
        if busy and not force:
            names = ", ".join(f"{s.title!r} ({s.state})" for s in busy[:10])
            raise Conflict(
                Code.CONFLICT,
                f"{p.name} is a member of {len(busy)} channel(s) not closed: {names}; close them "
                "first, or remove with force (they are then kept read-only here)",
                channels=[s.channel for s in busy],
            )
        now = st.clock()
        with st.store.tx():
            st.store.set_peer_state(p.station, removed=now, revoked=p.revoked)
            dropped = st.store.drop_outbox(p.station)
            unscheduled = [s.channel for s in busy if vigil_db.delete_schedule(st.store, s.channel)]
            detail = {
                "peer": p.station, "name": p.name, "force": force, "dropped": dropped,
                "read_only": [s.channel for s in busy], "unscheduled": unscheduled,
            }  # fmt: skip
            st.store.audit(who.name, "peer.remove", detail, now)
        return {**peer_json(st.store.peer_record(p.station) or p), **detail}

    def revoke(self, who: User, ref: str, reason: str = "") -> dict[str, Any]:
        authorize(who, Action.PEER_REVOKE)
        if len(reason) > MAX_REASON:
            raise LocalError(Code.INVALID_REQUEST, f"a reason is at most {MAX_REASON} characters")
        st = self.station
        p = self._record(ref)
        if p.revoked is not None:
            raise Conflict(Code.CONFLICT, f"{p.name}'s key was revoked at {utc(p.revoked)}")
        busy = self._channels_with(p.station)
        now = st.clock()
        with st.store.tx():
            st.store.set_peer_state(p.station, removed=p.removed, revoked=now)
            dropped = st.store.drop_outbox(p.station)
            unscheduled = [s.channel for s in busy if vigil_db.delete_schedule(st.store, s.channel)]
            detail = {
                "peer": p.station, "name": p.name, "fingerprint": fingerprint(p.identity),
                "reason": reason, "dropped": dropped, "read_only": [s.channel for s in busy],
                "unscheduled": unscheduled,
            }  # fmt: skip
            st.store.audit(who.name, "peer.revoke", detail, now)
        return {**peer_json(st.store.peer_record(p.station) or p), **detail}

    def rotate(self, who: User, grace_ms: int = handovers.DEFAULT_GRACE_MS) -> dict[str, Any]:
        """Rotate this station's identity key with a signed hand-over (station/handovers.py)."""
        authorize(who, Action.IDENTITY_ROTATE)
        h = handovers.rotate(self.station, who.name, grace_ms)
        return {
            "station": h.station,
            "seq": h.seq,
            "old_fingerprint": fingerprint(h.old),
            "fingerprint": fingerprint(h.new),
            "created": h.created,
            "old_until": h.old_until,
            "handover": h.to_json(),
        }
