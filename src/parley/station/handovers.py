"""Rotating this station's identity key, and following a peer's rotation (docs/protocol.md §3.6).

- rotate: a new Ed25519 key; a hand-over signed by the old and the new key; our current prekey
  records signed again by the new key; the new key staged on disk before the hand-over is
  committed and installed after (`Station.stage_identity`, config.recover_identity at start),
  then used for everything signed from now on. The station
  id does not change.
- How peers learn it: every request this station makes to a peer carries its hand-over chain
  in the `Parley-Handover` header while the old key's grace lasts (`header`), and the peer API
  (api/peer.py) applies it (`accept`) before it checks the request's signature. So a peer
  learns it with the first contact after the rotation, including a peer that was offline then
  and reconnects within the grace; one that stays away longer must be told out of band (it
  refuses the new key's requests with `bad_signature`). The new prekeys travel with it.
- accept: only from the key we hold for that station (verify_next): a peer cannot hand another
  station over. A record already held is skipped.
"""

from __future__ import annotations

import json
from typing import Any

from parley.errors import Code, LocalError, RejectedInput
from parley.protocol import crypto, handover
from parley.protocol.encoding import b64d, b64e, canonical, parse
from parley.protocol.identity import parse_prekey, sign_prekey
from parley.station.node import Station

HEADER = "Parley-Handover"
MAX_IN_HEADER = 4  # hand-overs one request carries (the newest); a header stays under 12 KiB
MAX_HEADER_CHARS = 16_384
DEFAULT_GRACE_MS = 7 * 24 * 3600 * 1000


def chain(st: Station, station: str) -> list[handover.Handover]:
    return [handover.parse_handover(r.encode()) for r in st.store.handovers(station)]


def rotate(st: Station, actor: str, grace_ms: int = DEFAULT_GRACE_MS) -> handover.Handover:
    if not 0 <= grace_ms <= 90 * 24 * 3600 * 1000:
        raise LocalError(Code.INVALID_REQUEST, "the grace is 0..90 days")
    held = chain(st, st.id)
    if len(held) >= handover.MAX_HANDOVERS:
        raise LocalError(Code.INVALID_REQUEST, "this station rotated its key too often")
    now = st.clock()
    new = crypto.SigningKey.generate()
    prev = held[-1].hash if held else handover.ZERO
    h = handover.make_handover(st.identity, new, st.id, len(held) + 1, now, now + grace_ms, prev)
    st.stage_identity(new)  # a failure here leaves the old key in charge
    with st.store.tx():
        st.store.set_meta("station_id", st.id)
        st.store.add_handover(st.id, h.seq, h.raw.decode(), now)
        for rec in st.store.prekey_records(now):  # our live prekeys, now vouched for by `new`
            pk = parse_prekey(rec, st.identity.public, st.id)
            again = sign_prekey(new, pk.public, pk.not_before, pk.not_after, st.id)
            st.store.set_prekey_record(pk.kid, json.dumps(again.to_json()))
        detail = {"seq": h.seq, "old": b64e(h.old), "new": b64e(h.new), "old_until": h.old_until}
        st.store.audit(actor, "identity.rotate", detail, now)
    st.stage_identity(None)
    st.identity = new
    return h


def header(st: Station) -> str | None:
    """The Parley-Handover header value while our latest hand-over's grace lasts, else None:
    base64url of the canonical JSON array of our newest hand-overs and current prekeys."""
    held = chain(st, st.id)
    if not held or held[-1].old_until < st.clock():
        return None
    doc = {"handovers": [h.to_json() for h in held[-MAX_IN_HEADER:]], "prekeys": st.prekeys()[:4]}
    return b64e(canonical(doc))


def accept(st: Station, value: str, caller: str) -> int:
    """Apply a Parley-Handover header from peer `caller`: its hand-overs we lack, in order, each
    verified against the key we hold for it. Returns how many were new."""
    if len(value) > MAX_HEADER_CHARS:
        raise RejectedInput(Code.OVERSIZED, f"{HEADER} is at most {MAX_HEADER_CHARS} characters")
    doc = parse(b64d(value, field=HEADER), limit=MAX_HEADER_CHARS)
    if not isinstance(doc, dict) or set(doc) != {"handovers", "prekeys"}:
        raise RejectedInput(Code.BAD_HANDOVER, f"{HEADER}: expected handovers and prekeys")
    records, prekeys = doc["handovers"], doc["prekeys"]
    if not isinstance(records, list) or not 1 <= len(records) <= MAX_IN_HEADER:
        raise RejectedInput(Code.BAD_HANDOVER, f"{HEADER}: 1..{MAX_IN_HEADER} hand-overs")
    if not isinstance(prekeys, list) or len(prekeys) > 8:
        raise RejectedInput(Code.BAD_HANDOVER, f"{HEADER}: at most 8 prekey records")
    added = 0
    for value_ in records:
        h = handover.parse_handover(value_)
        if h.station != caller:
            raise RejectedInput(Code.BAD_HANDOVER, "a request carries only its caller's hand-overs")
        peer = st.store.get_peer(h.station)
        if peer is None:
            raise RejectedInput(Code.UNKNOWN_SENDER, f"{h.station} is not a known peer")
        epochs = st.epochs(h.station)
        if h.seq < len(epochs):  # held already: it must be the very same record
            if epochs[h.seq].handover != h:
                raise RejectedInput(Code.BAD_HANDOVER, "a different hand-over for a seq held")
            continue
        handover.verify_next(epochs, h.station, h.to_json())
        fresh = _prekeys(prekeys, h.new, h.station)
        now = st.clock()
        with st.store.tx():
            st.store.add_handover(h.station, h.seq, h.raw.decode(), now)
            st.store.set_peer_identity(h.station, h.new, fresh or peer.prekeys)
            detail = {"peer": h.station, "seq": h.seq, "new": b64e(h.new)}
            st.store.audit("station", "peer.handover", detail, now)
        added += 1
    return added


def _prekeys(records: list[Any], key: bytes, station: str) -> list[dict[str, Any]]:
    out = []
    for rec in records:
        try:
            out.append(parse_prekey(rec, key, station).to_json())
        except RejectedInput:
            continue
    return out
