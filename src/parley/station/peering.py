"""The station's answers to its peers (transport/base.py `PeerService`), whichever transport
brought the call: the peer API (api/peer.py) after checking the signed request, the in-memory
transport (transport/memory.py) in tests. Both hand over the same parsed input, so every path
runs the same checks and limits here.

- push: at most MAX_FRAME_ENVELOPES envelopes, applied with `receive_batch`; the answer is one
  result per envelope and our receipts of the chains it touched.
- pull: the puller's answer to the previous pull (parsed and bounded by station/paths.py), then
  what we hold for it (§18.1).
- relay: opaque envelopes queued for another station (§18.2).
- ping: who we are and our clock; prekeys: ours, or those we hold for another station.
"""

from __future__ import annotations

from typing import Any

from parley.errors import Code, RejectedInput
from parley.station import paths
from parley.station.node import Station
from parley.transport.base import MAX_FRAME_ENVELOPES

MAX_BODY_BYTES = 16 * 1024 * 1024  # one request body, read only after its header names a peer


class PeerDesk:
    def __init__(self, station: Station) -> None:
        self.station = station
        self.alarmed: set[str] = set()  # rejections a puller reported, alarmed once each

    def push(self, caller: str, raws: list[bytes]) -> dict[str, Any]:
        if len(raws) > MAX_FRAME_ENVELOPES:
            raise RejectedInput(Code.OVERSIZED, f"at most {MAX_FRAME_ENVELOPES} envelopes a batch")
        results, receipts = self.station.receive_batch(raws)
        return {
            "results": [x.to_json() for x in results],
            "receipts": [x.to_json() for x in receipts],
        }

    def pull(self, caller: str, body: bytes) -> bytes:
        req = paths.parse_pull_request(body, MAX_BODY_BYTES)
        return paths.serve_pull(self.station, caller, req, self.alarmed)

    def relay(self, caller: str, to: str, raws: list[bytes]) -> dict[str, Any]:
        if len(raws) > MAX_FRAME_ENVELOPES:
            raise RejectedInput(Code.OVERSIZED, f"at most {MAX_FRAME_ENVELOPES} envelopes a batch")
        return paths.accept_relay(self.station, caller, to, raws)

    def ping(self, caller: str) -> dict[str, Any]:
        return {"station": self.station.id, "ts": self.station.clock()}

    def prekeys(self, caller: str | None, station: str | None) -> dict[str, Any]:
        """Ours (anyone may ask), or the signed records we hold for another station, for a peer
        that reaches it only through us (`caller` must then be a known peer). The records
        verify against that station's identity, not ours."""
        st = self.station
        if station is None:
            return {"station": st.id, "prekeys": st.prekeys()}
        if caller is None or st.store.get_peer(caller) is None:
            raise RejectedInput(Code.UNKNOWN_SENDER, "only a known peer may ask for another's keys")
        p = st.store.get_peer(station)
        if p is None:
            raise RejectedInput(Code.NO_ROUTE, f"this station does not know {station}")
        return {"station": station, "prekeys": p.prekeys}
