"""Rotating a station's identity key with a signed hand-over (issue 15, docs/protocol.md §3.6).

Stations joined in memory (tests/pair.py) with real stores and crypto; the hand-over travels in
the Parley-Handover header of the peer API, driven here through the real app (TestClient).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from parley.app import serve
from parley.app.build import build_app
from parley.errors import Code, Forbidden, RejectedInput
from parley.protocol import crypto, handover, identity
from parley.protocol.encoding import b64e, canonical
from parley.protocol.envelope import Ref, seal
from parley.protocol.export import read_lines
from parley.protocol.identity import parse_invitation, station_id
from parley.protocol.report import Report
from parley.protocol.request import HEADER, sign_request
from parley.protocol.trust import TrustPolicy
from parley.protocol.verifier import verify_buffer, verify_transcript
from parley.station import checkpoints, handovers
from parley.station.keys import KeyDesk
from parley.station.node import Station
from parley.station.users import BOOTSTRAP, User
from tests.holding import held_elsewhere
from tests.pair import hotline, make_station, open_channel

DAY = 24 * 3600 * 1000
TOKEN = "t" * 32


def text(st: Station, ch: str) -> list[str]:
    return [str(m.body.get("text")) for m in st.messages(ch) if m.body.get("type") == "text"]


def _verified(lines: list[bytes], trust: TrustPolicy) -> Report:
    """The report on `lines`, which checking the file a span at a time gives too (each key
    checking what was signed in its time, across span boundaries)."""
    report = verify_transcript(lines, trust=trust)
    for span_bytes in (1, 3000, None):
        spread = verify_buffer(b"".join(lines), trust=trust, span_bytes=span_bytes)
        assert spread.to_json() == report.to_json()
    return report


def test_after_rotation_messages_flow_both_ways_and_history_verifies(tmp_path: Path) -> None:
    net, _clock, a, b, ch = hotline(tmp_path)
    first = a.id
    a.send(ch, {"type": "text", "text": "before", "lang": "en"})
    net.deliver(a, b)
    old_fp = a.fingerprint
    r = KeyDesk(a).rotate(BOOTSTRAP, 2 * DAY)
    assert r["station"] == first == a.id and r["fingerprint"] != old_fp == r["old_fingerprint"]
    assert station_id(a.identity.public) != a.id  # the id stays the first key's
    # b learns it from the header a's requests carry while the grace lasts
    value = handovers.header(a)
    assert value is not None
    assert handovers.accept(b, value, a.id) == 1
    assert handovers.accept(b, value, a.id) == 0  # held already: idempotent
    assert b.store.get_peer(a.id).identity == a.identity.public  # type: ignore[union-attr]
    a.send(ch, {"type": "text", "text": "after, new key", "lang": "en"})
    res = net.deliver(a, b)
    assert [x.status for x in res] == ["accepted"], [x.to_json() for x in res]
    b.send(ch, {"type": "text", "text": "answer", "lang": "ko"})
    assert [x.status for x in net.deliver(b, a)] == ["accepted"]
    assert text(b, ch) == ["before", "after, new key", "answer"] == text(a, ch)
    # history on both sides keeps verifying across the rotation
    da, db = a.transcript_digest(ch), b.transcript_digest(ch)
    assert da["integrity"]["ok"] and db["integrity"]["ok"] and da["digest"] == db["digest"]
    assert [x[2] for x in a.store.audit_log()].count("identity.rotate") == 1
    assert [x[2] for x in b.store.audit_log()].count("peer.handover") == 1


def _old_key_envelope(a: Station, b: Station, ch: str, old: object, ts: int) -> bytes:
    head, mine = b.store.head(ch, a.id), b.store.head(ch, b.id)
    assert head is not None and mine is not None
    env, _ = seal(
        {"type": "text", "text": "old key", "lang": "en"}, identity=old,  # type: ignore[arg-type]
        sender=a.id, channel=ch, seq=head.seq + 1, prev=head.hash,
        seen={b.id: Ref(mine.seq, mine.hash)},
        recipients=[a.recipient_key(b.id, ts)], now_ms=ts, prec="ROUTINE",
    )  # fmt: skip
    return env.raw


def test_an_old_key_envelope_after_the_grace_is_refused(tmp_path: Path) -> None:
    _net, clock, a, b, ch = hotline(tmp_path)
    old = a.identity
    KeyDesk(a).rotate(BOOTSTRAP, DAY)
    value = handovers.header(a)
    assert value is not None
    handovers.accept(b, value, a.id)
    # within the grace, a late envelope sealed by the old key still counts
    late = _old_key_envelope(a, b, ch, old, clock() + 1000)
    clock.advance(2000)
    got = b.receive(late)
    assert got.status == "accepted", got.to_json()
    # after it, what the old key signs is refused (a stolen old key speaks for nobody)
    clock.advance(2 * DAY)
    replay = _old_key_envelope(a, b, ch, old, clock())
    res = b.receive(replay)
    assert res.status == "rejected" and res.code == Code.BAD_SIGNATURE
    assert handovers.header(a) is None  # the grace is over: requests no longer carry it


def test_a_hostile_peer_cannot_forge_a_handover_for_another_station(tmp_path: Path) -> None:
    _net, clock, a, b, _ch = hotline(tmp_path)
    c = make_station(tmp_path / "c", "Mallory", "en", clock)
    b.add_peer(parse_invitation(c.invitation().encode()))
    new = crypto.SigningKey.generate()
    forged = handover.make_handover(c.identity, new, a.id, 1, clock(), clock() + DAY)
    doc = {"handovers": [forged.to_json()], "prekeys": []}
    value = b64e(canonical(doc))
    for caller in (a.id, c.id):
        with pytest.raises(RejectedInput) as exc:
            handovers.accept(b, value, caller)
        assert exc.value.code == Code.BAD_HANDOVER
    assert b.store.get_peer(a.id).identity != new.public  # type: ignore[union-attr]
    assert b.store.handovers(a.id) == []


def test_a_peer_that_missed_the_rotation_learns_it_at_its_next_request(tmp_path: Path) -> None:
    """b was away: a's first request after the rotation, signed by the new key, carries the
    hand-over; b's peer API follows it, then the request verifies."""
    _net, clock, a, b, _ch = hotline(tmp_path)
    KeyDesk(a).rotate(BOOTSTRAP, DAY)
    client = TestClient(build_app(b, TOKEN))
    body = b""
    auth = sign_request(a.identity, a.id, "GET", "/peer/v1/ping", body, clock())
    r = client.get("/peer/v1/ping", headers={HEADER: auth})
    assert r.status_code == 422 and r.json()["code"] == "bad_signature"  # without it
    value = handovers.header(a)
    assert value is not None
    r = client.get("/peer/v1/ping", headers={HEADER: auth, handovers.HEADER: value})
    assert r.status_code == 200, r.text
    # a forged header from an unauthenticated client changes nothing
    bad = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    r = client.get("/peer/v1/ping", headers={HEADER: auth, handovers.HEADER: bad})
    assert r.status_code == 422
    assert len(b.store.handovers(a.id)) == 1


def test_only_an_admin_rotates_and_the_api_route_works(tmp_path: Path) -> None:
    _net, _clock, a, _b, _ch = hotline(tmp_path)
    with pytest.raises(Forbidden):
        KeyDesk(a).rotate(User("op", frozenset({"operator"})))
    client = TestClient(build_app(a, TOKEN))
    assert client.post("/api/v1/identity/rotate", json={}).status_code == 401
    r = client.post(
        "/api/v1/identity/rotate",
        json={"grace_days": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["seq"] == 1 and r.json()["station"] == a.id
    assert handover.parse_handover(canonical(r.json()["handover"])).station == a.id


def test_a_transcript_spanning_a_rotation_verifies_and_a_forged_handover_fails(
    tmp_path: Path,
) -> None:
    net, clock, a, b, ch = hotline(tmp_path)
    a.send(ch, {"type": "text", "text": "before", "lang": "en"})
    net.deliver(a, b)
    checkpoints.issue(a, ch)
    net.deliver(a, b)
    net.deliver(b, a)
    KeyDesk(a).rotate(BOOTSTRAP, DAY)
    value = handovers.header(a)
    assert value is not None
    handovers.accept(b, value, a.id)
    clock.advance(1000)
    a.send(ch, {"type": "text", "text": "after", "lang": "en"})
    net.deliver(a, b)
    checkpoints.issue(a, ch)
    net.deliver(a, b)
    net.deliver(b, a)
    for exporter, auditor in ((a, b), (b, a), (b, b)):
        lines = list(read_lines(b"".join(checkpoints.export(exporter, ch))))
        report = _verified(lines, checkpoints.anchors(auditor))
        assert report.ok, report.to_json()
    # the header names a's first key and its hand-over; swap in a forged one: fails closed
    lines = list(read_lines(b"".join(checkpoints.export(b, ch))))
    header = json.loads(lines[1].split(b"\t", 1)[1])
    forger = crypto.SigningKey.generate()
    fake = handover.make_handover(forger, crypto.SigningKey.generate(), a.id, 1, 0, clock())
    for m in header["members"]:
        if m["station"] == a.id:
            assert len(m["handovers"]) == 1
            m["handovers"] = [fake.to_json()]
    lines[1] = b"header\t" + canonical(header) + b"\n"
    report = _verified(lines, checkpoints.anchors(b))
    assert not report.ok and "file_format" in report.failed
    # without the hand-over, what a's new key signed does not verify
    for m in header["members"]:
        m.pop("handovers", None)
    lines[1] = b"header\t" + canonical(header) + b"\n"
    report = _verified(lines, checkpoints.anchors(b))
    assert not report.ok and "signature" in report.failed, report.failed


def test_a_new_peer_is_admitted_after_a_rotation_from_an_invitation_carrying_the_chain(
    tmp_path: Path,
) -> None:
    """§3.4/§3.6: the rotated station's invitation is signed by its current key and carries its
    hand-overs from the key its id derives from; a station that never knew it admits it, and
    one that holds only the old key follows it from the invitation (the out-of-band path)."""
    net, clock, a, b, ch = hotline(tmp_path)
    first = a.identity.public
    KeyDesk(a).rotate(BOOTSTRAP, DAY)
    KeyDesk(a).rotate(BOOTSTRAP, DAY)
    text_ = a.invitation().encode()
    inv = parse_invitation(text_)
    assert inv.station == a.id and inv.genesis == first and inv.identity == a.identity.public
    assert [h.seq for h in inv.handovers] == [1, 2]
    c = make_station(tmp_path / "c", "Facilitator", "en", clock)
    c.add_peer(inv)
    a.add_peer(parse_invitation(c.invitation().encode()))
    assert c.epochs(a.id)[0].public == first
    ch2 = open_channel(net, a, c)
    a.send(ch2, {"type": "text", "text": "signed by the third key", "lang": "en"})
    assert [x.status for x in net.deliver(a, c)] == ["accepted"]
    assert text(c, ch2) == ["signed by the third key"]
    # b holds a's first key and missed both hand-overs (no request reached it): the invitation
    # carries them, so adding it again brings b to a's current key, and the hotline flows again
    client = TestClient(build_app(b, TOKEN))
    r = client.post(
        "/api/v1/peers", json={"invitation": text_}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status_code == 200, r.text
    assert b.store.get_peer(a.id).identity == a.identity.public  # type: ignore[union-attr]
    assert len(b.store.handovers(a.id)) == 2
    a.send(ch, {"type": "text", "text": "after two rotations", "lang": "en"})
    assert [x.status for x in net.deliver(a, b)] == ["accepted"]
    assert b.transcript_digest(ch)["integrity"]["ok"]


def test_invitations_that_would_hand_a_station_over_wrongly_are_refused(tmp_path: Path) -> None:
    """A hostile admitted peer (or anyone) cannot use an invitation to move a station to a key
    it holds, and an old invitation cannot put back a key a station handed over."""
    _net, clock, a, b, _ch = hotline(tmp_path)
    old_invitation = a.invitation().encode()
    KeyDesk(a).rotate(BOOTSTRAP, DAY)
    c = make_station(tmp_path / "c", "Mallory", "en", clock)
    mine = crypto.SigningKey.generate()
    # a hand-over "from" a's first key that Mallory signed with her own key: not a's chain
    forged = handover.make_handover(c.identity, mine, a.id, 1, clock(), clock() + DAY)
    with pytest.raises(RejectedInput) as exc:
        identity.make_invitation(mine, "South", "en", [], [], clock(), (forged,))
    assert exc.value.code == Code.BAD_HANDOVER
    real = parse_invitation(a.invitation().encode())
    # a's real chain, but signed by another key: the chain does not end at the signer
    pk = identity.sign_prekey(mine, crypto.KemKey.generate().public, clock(), clock() + DAY, a.id)
    unsigned = identity.Invitation(
        "South", "en", mine.public, (pk,), (), clock(), b"", real.handovers
    )
    doc = {**unsigned.body(), "sig": b64e(mine.sign(identity.INVITE_LABEL,
                                                    canonical(unsigned.body())))}  # fmt: skip
    with pytest.raises(RejectedInput) as exc:
        parse_invitation(identity.INVITE_PREFIX + b64e(canonical(doc)))
    assert exc.value.code == Code.BAD_INVITATION and "do not end" in exc.value.message
    # an empty or null `handovers` is not a second way to say "none"
    plain = parse_invitation(old_invitation)
    for bad in ([], None):
        doc = {**plain.body(), "handovers": bad, "sig": b64e(plain.sig)}
        with pytest.raises(RejectedInput) as exc:
            parse_invitation(identity.INVITE_PREFIX + b64e(canonical(doc)))
        assert exc.value.code == Code.BAD_INVITATION
    # b followed the rotation; the invitation from before it would put the old key back
    value = handovers.header(a)
    assert value is not None
    handovers.accept(b, value, a.id)
    with pytest.raises(RejectedInput) as exc:
        b.add_peer(parse_invitation(old_invitation))
    assert exc.value.code == Code.BAD_INVITATION and "hand-over" in exc.value.message
    assert b.store.get_peer(a.id).identity == a.identity.public  # type: ignore[union-attr]


def test_the_handover_header_is_kept_a_while_rather_than_wait_for_a_held_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asked on the event loop for every request to a peer: past its refresh, while another
    thread holds the store, the header read for the same key is sent again at once; after a
    change of key it waits for the store and reads the new one."""
    _net, _clock, a, _b, _ch = hotline(tmp_path)
    KeyDesk(a).rotate(BOOTSTRAP, DAY)
    monkeypatch.setattr(serve, "HANDOVER_REFRESH_S", 0.0)  # every call is past its refresh
    extra = serve._handover_header(a)
    first = extra()
    assert first == {handovers.HEADER: handovers.header(a)}

    def while_held() -> tuple[bool, object]:
        got: list[object] = []
        asker = threading.Thread(target=lambda: got.append(extra()))
        with held_elsewhere(a.store.tx):
            asker.start()
            asker.join(0.5)
            at_once = bool(got)
        asker.join(10)
        return at_once, got[0]

    assert while_held() == (True, first)
    KeyDesk(a).rotate(BOOTSTRAP, DAY)  # a new key: its header is read, waiting if need be
    at_once, second = while_held()
    assert not at_once and second == {handovers.HEADER: handovers.header(a)} != first
    monkeypatch.setattr(serve, "HANDOVER_STALE_S", 0.0)  # kept too long: it waits
    assert while_held() == (False, second)
