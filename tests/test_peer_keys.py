"""Removing a peer and revoking a peer's key (issue 15, People and keys).

Stations joined in memory (tests/pair.py): real SQLite stores and crypto, a clock the test moves.
What each of the four actors can do is checked here and in tests/security/test_roles.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from parley.app.build import build_app
from parley.errors import Code, Conflict, Forbidden, LocalError, ParleyError
from parley.protocol.envelope import ZERO_HASH, Ref, seal
from parley.protocol.identity import parse_invitation
from parley.protocol.receipt import sign_receipt
from parley.station import checkpoints, paths
from parley.station.keys import KeyDesk
from parley.station.node import Station
from parley.station.users import BOOTSTRAP, User
from tests.pair import hotline, make_station

TOKEN = "t" * 32


def audit_actions(st: Station) -> list[str]:
    return [a[2] for a in st.store.audit_log()]


def test_remove_is_refused_while_the_peer_is_on_an_open_channel(tmp_path: Path) -> None:
    _net, _clock, a, b, ch = hotline(tmp_path)
    with pytest.raises(Conflict) as exc:
        KeyDesk(a).remove(BOOTSTRAP, "North")
    assert exc.value.code == Code.CONFLICT and exc.value.details["channels"] == [ch]
    assert a.store.get_peer(b.id) is not None  # nothing changed
    assert "peer.remove" not in audit_actions(a)


def test_a_low_role_user_cannot_remove_or_revoke(tmp_path: Path) -> None:
    _net, _clock, a, b, _ch = hotline(tmp_path)
    for role in ("operator", "auditor", "representative"):
        who = User("x", frozenset({role}))
        with pytest.raises(Forbidden):
            KeyDesk(a).remove(who, b.id, force=True)
        with pytest.raises(Forbidden):
            KeyDesk(a).revoke(who, b.id)
    assert a.store.get_peer(b.id) is not None


def test_forced_remove_keeps_history_verifying_and_the_channel_read_only(tmp_path: Path) -> None:
    net, clock, a, b, ch = hotline(tmp_path)
    a.send(ch, {"type": "text", "text": "hello", "lang": "en"})
    net.deliver(a, b)
    b.send(ch, {"type": "text", "text": "안녕", "lang": "ko"})
    net.deliver(b, a)
    a.send(ch, {"type": "text", "text": "queued, never delivered", "lang": "en"})
    assert a.store.outbox_counts(b.id)[1] == 1
    before = a.transcript_digest(ch)
    r = KeyDesk(a).remove(BOOTSTRAP, "North", force=True)
    assert r["state"] == "removed" and r["dropped"] == 1 and r["read_only"] == [ch]
    assert a.store.outbox_counts(b.id)[1] == 0
    # history stays, still verified with the removed peer's key, under its name
    after = a.transcript_digest(ch)
    assert after["integrity"]["ok"] and after["digest"] == before["digest"]
    msgs = a.messages(ch)
    assert [m.sender_name for m in msgs if m.sender == b.id] and all(m.verified for m in msgs)
    # nothing more is sent there, with a clear code
    with pytest.raises(Conflict) as exc:
        a.send(ch, {"type": "text", "text": "more", "lang": "en"})
    assert exc.value.code == Code.PEER_REMOVED and "read-only" in exc.value.message
    with pytest.raises(Conflict):
        a.control(ch, "close")
    # the scheduled checkpoint skips it instead of alarming every tick
    clock.advance(7 * 24 * 3600 * 1000)
    a.tick()
    assert not [x for x in a.store.alarms() if x.kind == "task"]
    # the removed peer's new envelopes are refused as from a stranger
    b.send(ch, {"type": "text", "text": "still there?", "lang": "ko"})
    res = net.deliver(b, a)
    assert res and all(x.code == Code.UNKNOWN_SENDER for x in res)
    assert "removed" in res[0].message
    # an export still names and verifies it (its key is the member key of the file)
    assert checkpoints.member(a, b.id).identity == b.identity.public
    assert "peer.remove" in audit_actions(a)
    # a removed (not revoked) peer may be added again
    a.add_peer(parse_invitation(b.invitation().encode()))
    assert a.store.get_peer(b.id) is not None


def test_a_peer_added_again_gets_what_its_removal_dropped_in_order(tmp_path: Path) -> None:
    """What was queued for a removed peer and dropped is queued again when it is added again:
    exactly what it never receipted, in chain order; then the channel is writable again."""
    net, _clock, a, b, ch = hotline(tmp_path)
    a.send(ch, {"type": "text", "text": "delivered", "lang": "en"})
    net.deliver(a, b)
    for t in ("dropped 1", "dropped 2", "dropped 3"):
        a.send(ch, {"type": "text", "text": t, "lang": "en"})
    r = KeyDesk(a).remove(BOOTSTRAP, "North", force=True)
    assert r["dropped"] == 3 and a.store.outbox_counts(b.id)[1] == 0
    a.add_peer(parse_invitation(b.invitation().encode()))
    assert a.store.outbox_counts(b.id)[1] == 3
    pending = a.store.pending(b.id, 10)
    assert [p.seq for p in pending] == sorted(p.seq for p in pending)
    assert any(x[2] == "peer.add" and '"requeued": 3' in x[3] for x in a.store.audit_log())
    res = net.deliver(a, b)
    assert [x.status for x in res] == ["accepted"] * 3
    got = [m.body.get("text") for m in b.messages(ch) if m.body.get("type") == "text"]
    assert got == ["delivered", "dropped 1", "dropped 2", "dropped 3"]
    assert a.store.outbox_counts(b.id)[1] == 0  # receipted
    a.send(ch, {"type": "text", "text": "back in touch", "lang": "en"})
    assert [x.status for x in net.deliver(a, b)] == ["accepted"]
    # adding it again once more queues nothing twice
    a.add_peer(parse_invitation(b.invitation().encode()))
    assert a.store.outbox_counts(b.id)[1] == 0


def test_revoked_key_is_refused_for_envelopes_receipts_and_prekeys(tmp_path: Path) -> None:
    net, clock, a, b, ch = hotline(tmp_path)
    a.send(ch, {"type": "text", "text": "before", "lang": "en"})
    net.deliver(a, b)
    b.send(ch, {"type": "text", "text": "signed before", "lang": "ko"})
    net.deliver(b, a)
    r = KeyDesk(a).revoke(BOOTSTRAP, b.id, "key lost in a burglary")
    assert r["state"] == "revoked" and r["revoked"] == clock() and r["read_only"] == [ch]
    # envelopes: refused with key_revoked and a message naming when
    b.send(ch, {"type": "text", "text": "signed after", "lang": "ko"})
    res = net.deliver(b, a)
    assert res and res[0].code == Code.KEY_REVOKED and "revoked" in res[0].message
    assert [m.body.get("text") for m in a.messages(ch) if m.sender == b.id][-1] == "signed before"
    # receipts signed by the revoked key mark nothing delivered
    head = a.store.head(ch, a.id)
    assert head is not None
    a.store.requeue_from(ch, b.id, 1)  # as if undelivered (revocation dropped the queue)
    receipt = sign_receipt(b.identity, b.id, ch, a.id, Ref(head.seq, head.hash), None, clock())
    assert paths.apply_answer(a, b.id, [], [receipt.to_json()], set()) == 0
    # prekeys: ignored
    assert paths.merge_prekeys(a, b.id, b.prekeys()) == 0
    # the history it signed before still verifies
    assert a.transcript_digest(ch)["integrity"]["ok"]
    # shown as revoked, and cannot be added back
    peers = {p["station"]: p for p in a_peers(a)}
    assert peers[b.id]["state"] == "revoked" and peers[b.id]["revoked"] == r["revoked"]
    with pytest.raises(LocalError) as exc2:
        a.add_peer(parse_invitation(b.invitation().encode()))
    assert exc2.value.code == Code.KEY_REVOKED
    with pytest.raises(Conflict):
        KeyDesk(a).revoke(BOOTSTRAP, b.id)
    detail = [x for x in a.store.audit_log() if x[2] == "peer.revoke"]
    assert detail and "burglary" in detail[0][3]


def a_peers(a: Station) -> list[dict[str, object]]:
    from parley.station.overview import StationDesk

    return StationDesk(a).peers(BOOTSTRAP)


def test_the_peer_api_refuses_a_revoked_key_and_the_api_routes_work(tmp_path: Path) -> None:
    _net, clock, a, b, _ch = hotline(tmp_path)
    client = TestClient(build_app(a, TOKEN))
    h = {"Authorization": f"Bearer {TOKEN}"}
    r = client.post(f"/api/v1/peers/{b.id}/remove", json={}, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "conflict"
    r = client.post("/api/v1/peers/North/revoke", json={"reason": "compromised"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "revoked"
    listed = client.get("/api/v1/peers", headers=h).json()
    assert listed[0]["state"] == "revoked"
    # a request signed by the revoked key: key_revoked, before its body is read
    from parley.protocol.request import HEADER, sign_request

    body = b""
    auth = sign_request(b.identity, b.id, "POST", "/peer/v1/envelopes", body, clock())
    r = client.post("/peer/v1/envelopes", content=body, headers={HEADER: auth})
    assert r.status_code == 422 and r.json()["code"] == "key_revoked"
    # unauthenticated: no token, nothing changes
    r = client.post(f"/api/v1/peers/{b.id}/remove", json={"force": True})
    assert r.status_code == 401


def test_a_hostile_peer_cannot_remove_or_revoke_another(tmp_path: Path) -> None:
    """Nothing on the wire removes or revokes a peer: only an admin's action does. An admitted
    peer that signs an envelope in another's name gets bad_signature, and the other stays."""
    _net, clock, a, b, ch = hotline(tmp_path)
    c = make_station(tmp_path / "c", "Mallory", "en", clock)
    a.add_peer(parse_invitation(c.invitation().encode()))
    c.add_peer(parse_invitation(a.invitation().encode()))
    head = a.store.head(ch, b.id)
    env, _ = seal(
        {"type": "text", "text": "revoke me", "lang": "en"}, identity=c.identity, sender=b.id,
        channel=ch, seq=(head.seq + 1) if head else 1, prev=head.hash if head else ZERO_HASH,
        seen={}, recipients=[c.recipient_key(a.id, clock())], now_ms=clock(), prec="ROUTINE",
    )  # fmt: skip
    res = a.receive(env.raw)
    assert res.code == Code.BAD_SIGNATURE
    assert a.store.get_peer(b.id) is not None and a.store.get_peer(c.id) is not None
    assert not [x for x in audit_actions(a) if x in ("peer.remove", "peer.revoke")]


def test_remove_unknown_peer_is_not_found(tmp_path: Path) -> None:
    _net, _clock, a, _b, _ch = hotline(tmp_path)
    with pytest.raises(ParleyError) as exc:
        KeyDesk(a).remove(BOOTSTRAP, "Nobody")
    assert exc.value.code == Code.NOT_FOUND
