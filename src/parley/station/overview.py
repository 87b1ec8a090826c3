"""The station as its people see it: identity, peers, delivery status, alarms and evidence.

    StationDesk(station)
      info / invitation / peers / add_peer      the station and the stations it knows
      status                                    per peer: link, delivered, pending, last receipt
      alarms / clear_alarm / evidence           what needs a person's attention (station/alarms.py),
                                                and proof kept

Rules:
- Every method takes the acting user and checks the role table first (station/roles.py).
- Nothing here names or acts on a back channel for a user not named on it: its alarms are left
  out of the lists and counts that user sees (station/alarms.py). A peer's last receipt is shown
  from the channels the user may see only.
"""

from __future__ import annotations

from typing import Any

from parley.protocol.encoding import b64e
from parley.protocol.identity import parse_invitation
from parley.station.alarms import AlarmDesk
from parley.station.node import Station
from parley.station.peerstate import peer_json
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.store.base import AlarmRow


class StationDesk:
    def __init__(self, station: Station) -> None:
        self.station = station

    # --- the station and its peers ---------------------------------------------------------------
    def info(self, who: User) -> dict[str, Any]:
        authorize(who, Action.STATION_READ)
        st = self.station
        return {
            "station": st.id,
            "name": st.cfg.name,
            "lang": st.cfg.lang,
            "fingerprint": st.fingerprint,
            "url": st.cfg.url,
        }

    def invitation(self, who: User) -> str:
        authorize(who, Action.STATION_READ)
        return self.station.invitation().encode()

    def peers(self, who: User) -> list[dict[str, Any]]:
        """Every peer ever added, each with its state: active, removed or revoked (and when)."""
        authorize(who, Action.STATION_READ)
        return [peer_json(p) for p in self.station.store.peer_records()]

    def add_peer(self, who: User, invitation: str) -> dict[str, Any]:
        authorize(who, Action.PEER_ADD)
        inv = parse_invitation(invitation)
        self.station.add_peer(inv, who.name)
        return {"station": inv.station, "name": inv.name, "fingerprint": inv.fingerprint}

    def status(self, who: User) -> dict[str, Any]:
        authorize(who, Action.STATION_READ)
        st = self.station
        hidden = self.hidden(who)
        out = st.status(alarms=len(self._alarms(hidden)))
        for p in out["peers"]:
            last = p["last_receipt"]
            if last is not None and last["channel"] in hidden:
                seen = st.store.last_receipt(p["station"], exclude=sorted(hidden))
                p["last_receipt"] = (
                    {"channel": seen[0], "seq": seen[1], "ts": seen[2]} if seen else None
                )
        return out

    def status_json(self, who: User) -> bytes:
        """`status` as JSON, kept while nothing changes (station/answers.py)."""
        authorize(who, Action.STATION_READ)
        key = ("status", self.station.hidden(who))
        return self.station.answers.kept(key, lambda: self.status(who))

    # --- alarms and evidence ---------------------------------------------------------------------
    def hidden(self, who: User) -> set[str]:
        """The back channels `who` is not named on."""
        return AlarmDesk(self.station).hidden(who)

    def _alarms(self, hidden: set[str], include_cleared: bool = False) -> list[AlarmRow]:
        return AlarmDesk(self.station).visible(hidden, include_cleared)

    def alarms(self, who: User, include_cleared: bool = False) -> list[AlarmRow]:
        return AlarmDesk(self.station).alarms(who, include_cleared)

    def clear_alarm(self, who: User, alarm_id: int, note: str = "") -> bool:
        """True if it was open and is now acknowledged; not_found for one `who` may not see."""
        return bool(AlarmDesk(self.station).ack(who, [alarm_id], note))

    def evidence(self, who: User) -> list[dict[str, Any]]:
        authorize(who, Action.EVIDENCE_READ)
        hidden = self.hidden(who)
        return [
            {
                "channel": c, "sender": s, "seq": q, "kind": k, "envelope": raw.decode(),
                "held_hash": b64e(h) if h else None, "detected": t,
            }
            for c, s, q, k, raw, h, t in self.station.store.evidence() if c not in hidden
        ]  # fmt: skip
