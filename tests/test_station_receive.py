"""Every kind of bad input is rejected with its stable code and changes nothing (issue 2 item 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from parley.app.build import build_app
from parley.domain import channels
from parley.errors import Code, RejectedInput
from parley.protocol import crypto
from parley.protocol.encoding import b64d, b64e, canonical, parse
from parley.protocol.envelope import MAX_ENVELOPE_BYTES, Ref, parse_envelope, seal
from parley.protocol.identity import parse_invitation
from parley.station import node
from parley.station.node import Accepted, Station
from tests.pair import Clock, Net, introduce, make_station, open_channel


@pytest.fixture
def world(tmp_path: Path) -> tuple[Net, Clock, Station, Station, str]:
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    introduce(a, b)
    net = Net()
    ch = open_channel(net, a, b)
    return net, clock, a, b, ch


def snapshot(st: Station) -> tuple[object, ...]:
    """Everything a rejection must leave untouched."""
    q = st.store.q
    return (
        q("SELECT COUNT(*) FROM envelopes")[0][0],
        q("SELECT COUNT(*) FROM bodies")[0][0],
        q("SELECT COUNT(*) FROM channels")[0][0],
        q("SELECT COUNT(*) FROM evidence")[0][0],
    )


def forge(a: Station, b: Station, ch: str, seq: int, prev: bytes, text: str, ts: int) -> bytes:
    """An envelope really signed by `a`, with every field chosen by the test."""
    env, _ = seal(
        channels.text_body(text, "en"),
        identity=a.identity,
        sender=a.id,
        channel=ch,
        seq=seq,
        prev=prev,
        seen={},
        recipients=[a.recipient_key(b.id, a.clock())],
        now_ms=ts,
    )
    return env.raw


def next_raw(a: Station, b: Station, ch: str, text: str = "hello") -> bytes:
    row, _ = a.send(ch, channels.text_body(text, "en"))
    return row.raw


def test_a_message_arrives_decrypted_verified_and_receipted(world) -> None:
    net, _, a, b, ch = world
    a.send(ch, channels.text_body("Do you read this line?", "en"))
    results = net.deliver(a, b)
    assert [r.status for r in results] == ["accepted"]
    msgs = [m for m in b.inbox() if m.body.get("type") == "text"]
    assert msgs[0].body["text"] == "Do you read this line?"
    assert msgs[0].sender == a.id and msgs[0].seq == 2
    assert a.status()["peers"][0]["pending"] == 0
    assert a.status()["peers"][0]["last_receipt"]["seq"] == 2


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"{not json", "malformed"),
        (b"[]", "malformed"),
        (b'{"v": 1}', "malformed"),
        (b"\xff\xfe", "malformed"),
        (b'{"v":1.5}', "malformed"),
    ],
)
def test_malformed_is_rejected(world, raw: bytes, code: str) -> None:
    _, _, _, b, _ = world
    before = snapshot(b)
    res = b.receive(raw)
    assert (res.status, res.code) == ("rejected", code)
    assert snapshot(b) == before


def test_non_canonical_encoding_is_rejected(world) -> None:
    _, _, a, b, ch = world
    raw = next_raw(a, b, ch)
    pretty = json.dumps(json.loads(raw), indent=1).encode()
    before = snapshot(b)
    assert b.receive(pretty).code == "malformed"
    assert snapshot(b) == before


def test_oversized_is_rejected(world) -> None:
    _, _, _, b, _ = world
    before = snapshot(b)
    res = b.receive(b"{" + b" " * MAX_ENVELOPE_BYTES + b"}")
    assert (res.status, res.code) == ("rejected", "oversized")
    assert snapshot(b) == before


def test_bad_signature_is_rejected(world) -> None:
    _, _, a, b, ch = world
    doc = parse(next_raw(a, b, ch))
    sig = bytearray(b64d(doc["sig"]))
    sig[0] ^= 1
    doc["sig"] = b64e(bytes(sig))
    before = snapshot(b)
    assert b.receive(canonical(doc)).code == "bad_signature"
    # a body swapped under a valid signature fails the same way
    doc2 = parse(next_raw(a, b, ch))
    doc2["ts"] += 1
    assert b.receive(canonical(doc2)).code == "bad_signature"
    assert snapshot(b) == before


def test_unknown_sender_is_rejected(world, tmp_path: Path) -> None:
    _, clock, _, b, ch = world
    mallory = make_station(tmp_path / "m", "Mallory", "en", clock)
    mallory.add_peer(parse_invitation(b.invitation().encode()))
    raw = forge(mallory, b, ch, 1, bytes(32), "let me in", clock())
    before = snapshot(b)
    assert b.receive(raw).code == "unknown_sender"
    assert snapshot(b) == before


def test_non_member_is_rejected(world, tmp_path: Path) -> None:
    _, clock, _, b, ch = world
    carol = make_station(tmp_path / "c", "Carol", "en", clock)
    introduce(carol, b)
    raw = forge(carol, b, ch, 1, bytes(32), "I am not on this channel", clock())
    before = snapshot(b)
    assert b.receive(raw).code == "not_a_member"
    assert snapshot(b) == before


def test_timestamp_from_the_future_is_rejected(world) -> None:
    _, clock, a, b, ch = world
    head = b.store.head(ch, a.id)
    assert head is not None
    raw = forge(a, b, ch, head.seq + 1, head.hash, "from the future", clock() + 3_600_000)
    before = snapshot(b)
    assert b.receive(raw).code == "clock_skew"
    assert snapshot(b) == before


def test_timestamp_going_backwards_is_rejected(world) -> None:
    _, _, a, b, ch = world
    head = b.store.head(ch, a.id)
    assert head is not None
    raw = forge(a, b, ch, head.seq + 1, head.hash, "from the past", head.ts - 1)
    assert b.receive(raw).code == "timestamp_order"


def test_a_late_envelope_is_still_accepted(world) -> None:
    """A message queued while the link was down for a day is late, not stale."""
    net, clock, a, b, ch = world
    a.send(ch, channels.text_body("sent before the outage", "en"))
    clock.advance(24 * 3600 * 1000)
    assert [r.status for r in net.deliver(a, b)] == ["accepted"]


def test_replay_is_idempotent(world) -> None:
    _, _, a, b, ch = world
    raw = next_raw(a, b, ch)
    assert b.receive(raw).status == "accepted"
    before = snapshot(b)
    for _ in range(3):
        res, receipts = b.receive_batch([raw])
        assert res[0].status == "duplicate"
        assert receipts and receipts[0].seq == 2  # the receipt is sent again
    assert snapshot(b) == before


def test_gap_is_held_back_and_filled_in_order(world) -> None:
    net, _, a, b, ch = world
    raws = [next_raw(a, b, ch, f"m{i}") for i in range(3)]
    before = snapshot(b)
    res = b.receive(raws[2])
    assert (res.status, res.expected_seq) == ("gap", 2)
    assert snapshot(b) == before
    # the sender re-queues from the seq the receiver asked for
    assert [r.status for r in net.deliver(a, b)] == ["accepted"] * 3
    texts = [m.body["text"] for m in b.messages(ch) if m.body["type"] == "text"]
    assert texts == ["m0", "m1", "m2"]


def test_gap_answer_requeues_the_chain(world) -> None:
    net, _, a, b, ch = world
    net.deliver(a, b)
    a.send(ch, channels.text_body("x", "en"))
    # pretend a receipt was lost and the peer restored an old backup: it asks from seq 2 again
    a.store.mark_delivered(ch, b.id, 10, 0)
    from parley.station.dispatcher import Dispatcher
    from parley.transport.memory import MemoryNet

    gap = {"status": "gap", "channel": ch, "expected_seq": 2, "hash": "h"}
    Dispatcher(a, MemoryNet().transport(a.id)).answered(b.id, [gap], [])
    assert [r.seq for r in a.store.pending(b.id, 10)] == [2]


def test_equivocation_raises_an_alarm_and_keeps_both(world) -> None:
    net, clock, a, b, ch = world
    raw = next_raw(a, b, ch, "the real seq 2")
    net.deliver(a, b)
    head1 = b.store.head(ch, a.id)
    assert head1 is not None and head1.seq == 2
    first = b.store.envelopes(ch, a.id, 0, 10)[0]
    evil = forge(a, b, ch, 2, first.hash, "a different seq 2", clock())
    res = b.receive(evil)
    assert (res.status, res.code) == ("equivocation", "equivocation")
    assert b.store.hash_at(ch, a.id, 2) == b.store.head(ch, a.id).hash  # original kept
    assert b.store.envelope_by_hash(b.store.hash_at(ch, a.id, 2)).raw == raw  # type: ignore[union-attr]
    kept = b.store.evidence()
    assert len(kept) == 1 and kept[0][4] == evil
    assert [x.kind for x in b.store.alarms()] == ["equivocation"]
    # the same evidence again raises no second alarm
    b.receive(evil)
    assert len(b.store.alarms()) == 1


def test_a_peer_equivocating_without_end_fills_a_bounded_evidence_list(world) -> None:
    """A hostile peer signs as many conflicting envelopes as it likes: EVIDENCE_LIMIT are kept,
    each with its critical alarm; after that none is stored and one evidence_limit alarm says
    so, however many more come."""
    from parley.store.base import EVIDENCE_LIMIT

    net, clock, a, b, ch = world
    next_raw(a, b, ch, "the real seq 2")
    net.deliver(a, b)
    first = b.store.envelopes(ch, a.id, 0, 10)[0]
    for i in range(EVIDENCE_LIMIT + 20):
        res = b.receive(forge(a, b, ch, 2, first.hash, f"another seq 2, number {i}", clock()))
        assert (res.status, res.code) == ("equivocation", "equivocation")
    assert len(b.store.evidence()) == EVIDENCE_LIMIT
    kinds = [x.kind for x in b.store.alarms()]
    assert kinds.count("equivocation") == EVIDENCE_LIMIT
    assert kinds.count("evidence_limit") == 1


def test_content_on_a_channel_not_yet_open_is_rejected(world) -> None:
    _, _, a, b, _ = world
    ch2 = a.propose_channel("hotline", "second line", [b.id])
    with pytest.raises(Exception, match="not open"):
        a.send(ch2, channels.text_body("too early", "en"))


def test_seen_references_carry_causal_order(world) -> None:
    net, _, a, b, ch = world
    b.send(ch, channels.text_body("north speaks", "ko"))
    net.deliver(b, a)
    row, _ = a.send(ch, channels.text_body("south answers", "en"))
    env = parse_envelope(row.raw)
    bh = a.store.head(ch, b.id)
    assert bh is not None
    assert env.seen == {b.id: Ref(bh.seq, bh.hash)}


def test_idempotency_key_makes_one_envelope(world) -> None:
    _, _, a, _, ch = world
    r1, c1 = a.send(ch, channels.text_body("once", "en"), idempotency_key="k1")
    r2, c2 = a.send(ch, channels.text_body("once", "en"), idempotency_key="k1")
    assert (c1, c2) == (True, False) and r1.hash == r2.hash


def test_a_batch_is_one_idempotency_key_and_a_retry_answers_all_of_it(world) -> None:
    """One row names the batch's run of seqs (migration 23); rows written before it, one per
    message, still answer a retry."""
    _, _, a, _, ch = world
    items = [(channels.text_body(f"m{i}", "en"), "ROUTINE") for i in range(5)]
    before = a.store.q("SELECT COUNT(*) FROM idempotency")[0][0]
    rows, made = a.send_many(ch, items, "batch-1", actor="kim")
    assert made and a.store.q("SELECT COUNT(*) FROM idempotency")[0][0] == before + 1
    again, made2 = a.send_many(ch, items, "batch-1", actor="kim")
    assert not made2 and [r.hash for r in again] == [r.hash for r in rows]
    # As a station before migration 23 wrote it: a key per message, each naming one seq.
    old, _ = a.send_many(ch, items[:3], "", actor="kim")
    scoped = node._scoped("kim", ch, "batch-old")
    for i, r in enumerate(old):
        a.store.remember(f"{scoped}#{i}", ch, r.seq, a.clock())
    answered, made3 = a.send_many(ch, items[:3], "batch-old", actor="kim")
    assert not made3 and [r.hash for r in answered] == [r.hash for r in old]


def test_an_idempotency_key_is_forgotten_after_a_week(world) -> None:
    """station/idempotency.py: kept for 7 days of the station's clock, pruned by its tasks."""
    _, clock, a, _, ch = world
    r1, _ = a.send(ch, channels.text_body("once", "en"), idempotency_key="k1")
    clock.advance(6 * 24 * 3600 * 1000)
    a.tick()
    assert a.send(ch, channels.text_body("once", "en"), idempotency_key="k1")[1] is False
    clock.advance(24 * 3600 * 1000 + 1)
    a.tick()
    r3, made = a.send(ch, channels.text_body("once", "en"), idempotency_key="k1")
    assert made and r3.hash != r1.hash


def test_an_idempotency_key_is_one_users_on_one_channel(world) -> None:
    """Another user's key, or the same key on another channel, never answers with an envelope
    made for someone else (which might be on a back channel the caller cannot read)."""
    net, _, a, b, ch = world
    other = open_channel(net, a, b)
    r1, _ = a.send(ch, channels.text_body("kim's", "en"), idempotency_key="k", actor="kim")
    r2, c2 = a.send(ch, channels.text_body("lee's", "en"), idempotency_key="k", actor="lee")
    r3, c3 = a.send(other, channels.text_body("kim's too", "en"), idempotency_key="k", actor="kim")
    assert c2 and c3 and len({r1.hash, r2.hash, r3.hash}) == 3
    rows, made = a.send_many(ch, [(channels.text_body("b", "en"), "ROUTINE")], "k", actor="lee")
    assert made and rows[0].hash != r2.hash


def test_one_request_seals_with_one_ephemeral_key_and_the_receiver_opens_it_all(world) -> None:
    """§4.5: a batch request's envelopes share their ephemeral key; single sends do not."""
    net, _, a, b, ch = world
    rows, _ = a.send_many(ch, [(channels.text_body(f"m{i}", "en"), "ROUTINE") for i in range(6)])
    singles = [a.send(ch, channels.text_body(f"s{i}", "en"))[0] for i in range(2)]
    assert len({parse_envelope(r.raw).eph for r in rows}) == 1
    assert len({parse_envelope(r.raw).eph for r in rows + singles}) == 3
    assert [r.status for r in net.deliver(a, b)] == ["accepted"] * 8
    texts = [m.body["text"] for m in b.inbox() if m.body.get("type") == "text"]
    assert sorted(texts) == sorted([f"m{i}" for i in range(6)] + ["s0", "s1"])


def test_transcripts_are_identical(world) -> None:
    net, _, a, b, ch = world
    for i in range(5):
        a.send(ch, channels.text_body(f"a{i}", "en"))
        b.send(ch, channels.text_body(f"b{i}", "ko"))
    net.deliver(a, b)
    net.deliver(b, a)
    assert a.transcript_digest(ch) == b.transcript_digest(ch)


def test_the_transcript_digest_reads_chains_page_by_page(world, monkeypatch) -> None:
    """Pages of 2 give the digest of every chain in (sender, seq) order, each envelope once, and
    a changed body at rest is found on any page."""
    net, _, a, b, ch = world
    for i in range(5):
        a.send(ch, channels.text_body(f"a{i}", "en"))
        b.send(ch, channels.text_body(f"b{i}", "ko"))
    net.deliver(a, b)
    net.deliver(b, a)
    whole = a.transcript_digest(ch)
    rows = sorted(a.store.channel_events(ch), key=lambda r: (r[0].sender, r[0].seq))
    digest = crypto.sha256(b"")
    for e, _ in rows:
        digest = crypto.sha256(digest + e.hash)
    assert whole["digest"] == b64e(digest)
    assert whole["chains"] == {a.id: a.store.head_seq(ch, a.id), b.id: b.store.head_seq(ch, b.id)}
    monkeypatch.setattr(node, "DIGEST_PAGE", 2)
    assert a.transcript_digest(ch) == whole == b.transcript_digest(ch)
    last = a.store.head(ch, b.id)
    assert last is not None
    a.store.q("UPDATE bodies SET body = replace(body, 'b4', 'b5') WHERE hash = ?", last.hash)
    changed = a.transcript_digest(ch)
    assert changed["digest"] is None and changed["integrity"]["failed"] == 1


def test_an_observer_refusing_a_received_body_leaves_nothing_stored(tmp_path: Path) -> None:
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    introduce(a, b)
    net = Net()
    ch = open_channel(net, a, b)
    first, _ = a.send(ch, channels.text_body("kept", "en"))
    second, _ = a.send(ch, channels.text_body("refused", "en"))

    def refuse(st: Station, acc: Accepted) -> None:
        if acc.body.get("text") == "refused":
            raise RejectedInput(Code.BAD_BODY, "refused by an observer")

    b.observers.append(refuse)
    results, receipts = b.receive_batch([first.raw, second.raw])
    assert [r.status for r in results] == ["accepted", "rejected"]
    assert [m.body.get("text") for m in b.messages(ch)][-1] == "kept"
    assert b.store.head_seq(ch, a.id) == first.seq
    assert b.store.body(second.hash) is None
    assert [r.seq for r in receipts] == [first.seq]


def test_a_batch_is_queued_in_order_in_one_transaction_and_a_repeat_makes_nothing_new(
    tmp_path: Path,
) -> None:
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    introduce(a, b)
    net = Net()
    ch = open_channel(net, a, b)
    client = TestClient(build_app(a, "t" * 32))
    auth = {"Authorization": "Bearer " + "t" * 32, "Idempotency-Key": "batch-1"}
    batch = {"messages": [{"text": f"line {i}"} for i in range(5)]}
    first = client.post(f"/api/v1/channels/{ch}/messages/batch", json=batch, headers=auth)
    again = client.post(f"/api/v1/channels/{ch}/messages/batch", json=batch, headers=auth)
    assert first.status_code == again.status_code == 200
    assert first.json()["created"] and not again.json()["created"]
    assert again.json()["envelopes"] == first.json()["envelopes"]
    net.deliver(a, b)
    texts = [m.body["text"] for m in b.messages(ch) if m.body["type"] == "text"]
    assert texts == [f"line {i}" for i in range(5)]

    # One bad message refuses the whole batch: nothing is queued.
    bad = {"messages": [{"text": "fine"}, {"text": ""}]}
    r = client.post(f"/api/v1/channels/{ch}/messages/batch", json=bad, headers={
        "Authorization": "Bearer " + "t" * 32})  # fmt: skip
    assert r.status_code == 422
    assert [m.body.get("text") for m in a.messages(ch)][-1] == "line 4"


def test_an_idempotency_key_again_with_another_request_is_refused_and_queues_nothing(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    """A retry repeats its request, byte for byte: the same key with another text, precedence
    or batch is `conflict` (409), not the first request's envelope (which would say a message
    was queued that was not)."""
    _, _, a, _, ch = world
    client = TestClient(build_app(a, "t" * 32))
    boot = {"Authorization": "Bearer " + "t" * 32}
    url = f"/api/v1/channels/{ch}/messages"

    def post(path: str, content: str, key: str) -> Response:
        h = boot | {"Idempotency-Key": key, "Content-Type": "application/json"}
        return client.post(path, content=content, headers=h)

    first = post(url, '{"text": "we hold our positions", "precedence": "PRIORITY"}', "k")
    again = post(url, '{"text": "we hold our positions", "precedence": "PRIORITY"}', "k")
    assert first.status_code == again.status_code == 200
    assert (first.json()["created"], again.json()["created"]) == (True, False)
    assert again.json()["hash"] == first.json()["hash"]
    head = a.store.head_seq(ch, a.id)
    for other in (
        '{"text": "we withdraw", "precedence": "PRIORITY"}',
        '{"text": "we hold our positions", "precedence": "FLASH"}',
    ):
        r = post(url, other, "k")
        assert r.status_code == 409 and r.json()["code"] == "conflict", r.text
        assert "Idempotency-Key" in r.json()["message"]
    batch = '{"messages": [{"text": "one"}, {"text": "two"}]}'
    assert post(url + "/batch", batch, "b").status_code == 200
    r = post(url + "/batch", '{"messages": [{"text": "one"}, {"text": "three"}]}', "b")
    assert r.status_code == 409 and r.json()["code"] == "conflict", r.text
    assert a.store.head_seq(ch, a.id) == head + 2  # the batch's two; no refused one
    # A key kept before schema version 24 names no request: a retry is answered as before.
    assert post(url, '{"text": "old"}', "legacy").status_code == 200
    a.store.q("UPDATE idempotency SET request = '' WHERE key LIKE '%legacy'")
    r = post(url, '{"text": "old, resent differently"}', "legacy")
    assert r.status_code == 200 and r.json()["created"] is False


def test_an_idempotency_key_too_long_is_refused_after_the_caller_is_known(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    """The key is read with the caller (api/auth.py `Auth.sender`): a caller without a valid
    credential is told that, whatever key it sent; a known caller's key over 128 characters is
    `invalid_request` naming the header, and nothing is queued."""
    _, _, a, _, ch = world
    client = TestClient(build_app(a, "t" * 32))
    url, head = f"/api/v1/channels/{ch}/messages", a.store.head_seq(ch, a.id)
    long = {"Idempotency-Key": "k" * 129}
    r = client.post(url, json={"text": "x"}, headers=long | {"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["code"] == "unauthorized", r.text
    boot = {"Authorization": "Bearer " + "t" * 32}
    for path, body in ((url, {"text": "x"}), (url + "/batch", {"messages": [{"text": "x"}]})):
        r = client.post(path, json=body, headers=boot | long)
        assert r.status_code == 422 and r.json()["code"] == "invalid_request", r.text
        assert r.json()["details"]["fields"][0]["field"] == "idempotency-key"
    assert a.store.head_seq(ch, a.id) == head
    r = client.post(url, json={"text": "x"}, headers=boot | {"Idempotency-Key": "k" * 128})
    assert r.status_code == 200 and a.store.head_seq(ch, a.id) == head + 1


def test_a_batch_whose_seqs_another_envelope_split_keeps_a_key_per_message(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    """A batch's envelopes are one run of seqs, named by one key; should anything insert an
    envelope of ours between two of them (an observer acting on a stored body, inside the same
    transaction), each message keeps a key of its own instead. A retry then answers exactly the
    batch's envelopes, in order, and queues nothing."""
    net, _, a, b, ch = world
    interleaved: list[int] = []

    def observe(st: Station, acc: Accepted) -> None:
        if acc.local and acc.body.get("text") == "two" and not interleaved:
            interleaved.append(st.send(ch, channels.text_body("between", "en"))[0].seq)

    a.observers.append(observe)
    items = [(channels.text_body(t, "en"), "ROUTINE") for t in ("one", "two", "three")]
    made, created = a.send_many(ch, items, "batch-key")
    assert created and [r.seq for r in made] == [made[0].seq, made[0].seq + 1, made[0].seq + 3]
    assert interleaved == [made[0].seq + 2]
    head = a.store.head_seq(ch, a.id)
    again, created = a.send_many(ch, items, "batch-key")
    assert not created and [r.seq for r in again] == [r.seq for r in made]
    assert a.store.head_seq(ch, a.id) == head
    net.deliver(a, b)
    texts = [m.body["text"] for m in b.messages(ch) if m.body.get("type") == "text"]
    assert texts[-4:] == ["one", "two", "between", "three"]
