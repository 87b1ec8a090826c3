"""Checkpoints (issue 5 items 1 and 4): issued every N envelopes or T ms and on demand, witnessed
and countersigned by the other members, and divergence detected within one checkpoint interval,
alarmed and kept as evidence without refusing anything. Plus the protocol pieces they rest on.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.domain import channels, records
from parley.errors import Code, Conflict, RejectedInput
from parley.protocol import checkpoint, crypto, grammar, merkle, note, scan
from parley.protocol.encoding import b64e
from parley.protocol.envelope import (
    MIN_CT_BYTES,
    Envelope,
    RecipientKey,
    Ref,
    parse_envelope,
    parse_envelope_reference,
    seal,
    signing_input,
)
from parley.protocol.identity import station_id
from parley.station import checkpoints as cps
from parley.station.node import Station
from parley.store import checkpoints as db
from tests.pair import Clock, Net, hotline, introduce, make_station

CH = b64e(bytes(range(16)))


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Net, Clock, Station, Station, str]:
    return hotline(tmp_path)


def say(st: Station, ch: str, n: int, prefix: str = "message") -> None:
    for i in range(n):
        st.send(ch, channels.text_body(f"{prefix} {i}", st.cfg.lang))


def exchange(net: Net, *stations: Station) -> None:
    """Deliver everything pending between every pair, until nothing moves (bounded)."""
    for _ in range(6):
        for x in stations:
            for y in stations:
                if x is not y:
                    net.deliver(x, y)


def kinds(st: Station) -> list[str]:
    return [a.kind for a in st.store.alarms()]


# --- issuing and countersigning -------------------------------------------------------------------


def test_checkpoints_stay_out_of_the_inbox_but_in_the_transcript(
    pair: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, _, a, b, ch = pair
    cps.policy(a).every_envelopes = 3
    say(a, ch, 5)
    exchange(net, a, b)
    in_transcript = {m.body["type"] for m in b.messages(ch)}
    assert {"text", checkpoint.CHECKPOINT} <= in_transcript
    assert checkpoint.COSIGN in {m.body["type"] for m in a.messages(ch)}
    assert {m.body["type"] for m in b.inbox()} == {"text", "channel.propose"}
    assert {m.body["type"] for m in a.inbox()} == {"channel.consent"}


def test_a_batch_in_one_transaction_is_followed_by_one_checkpoint_covering_it(
    pair: tuple[Net, Clock, Station, Station, str],
) -> None:
    """Whether a checkpoint is due is asked once per transaction (issue 14): a batch of 12
    with a policy of 5 gets one checkpoint after its last envelope, not two inside it."""
    net, _, a, b, ch = pair
    cps.policy(a).every_envelopes = 5
    before = a.store.head_seq(ch, a.id)
    a.send_many(ch, [(channels.text_body(f"m {i}", "en"), "ROUTINE") for i in range(12)])
    cp = db.latest_checkpoint(a.store, ch, a.id)
    assert cp is not None and cp.size == before + 12 and cp.seq == a.store.head_seq(ch, a.id)
    exchange(net, a, b)
    assert kinds(a) == kinds(b) == []


def test_every_n_envelopes_a_checkpoint_is_issued_and_countersigned(
    pair: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, _, a, b, ch = pair
    cps.policy(a).every_envelopes = 5
    say(a, ch, 4 - a.store.head_seq(ch, a.id))  # the proposal counts: 4 envelopes
    assert db.latest_checkpoint(a.store, ch, a.id) is None
    say(a, ch, 1)
    cp = db.latest_checkpoint(a.store, ch, a.id)
    assert cp is not None and cp.size == 5 and cp.seq == 6 == a.store.head_seq(ch, a.id)
    exchange(net, a, b)
    # Bravo witnessed it against its own copy of Alpha's chain and countersigned it.
    held = db.checkpoint_at(b.store, ch, a.id, cp.size)
    assert held is not None and held.root == cp.root
    cosigs = db.cosignatures(a.store, ch, a.id, cp.size)
    assert [c.cosigner for c in cosigs] == [b.id]
    assert kinds(a) == kinds(b) == []
    # The cosignature verifies as C2SP tlog-cosignature/v1 by Bravo's identity key.
    signed = note.parse_note(cps.signed_note(cp, cosigs))
    opened = note.open_note(
        cps.signed_note(cp, cosigs),
        [checkpoint.Member(a.id, "a", a.identity.public).signer,
         checkpoint.Member(b.id, "b", b.identity.public).cosigner],
    )  # fmt: skip
    assert len(opened.verified) == 2 and len(signed.signatures) == 2
    # The second checkpoint carries a consistency proof from the first, which Bravo checked.
    say(a, ch, 5, "more")
    second = db.latest_checkpoint(a.store, ch, a.id)
    assert second is not None and second.size > cp.size
    exchange(net, a, b)
    assert [c.cosigner for c in db.cosignatures(a.store, ch, a.id, second.size)] == [b.id]
    body = b.store.body(a.store.hash_at(ch, a.id, second.seq) or b"")
    assert body is not None and body.body["prev"] == cp.size and body.body["proof"]


def test_a_checkpoint_is_due_after_the_interval_and_only_for_new_envelopes(
    pair: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = pair
    p = cps.policy(a)
    p.every_envelopes, p.every_ms = 1000, 300_000
    say(a, ch, 1)
    clock.advance(p.every_ms - 1)
    a.tick()
    assert db.latest_checkpoint(a.store, ch, a.id) is None
    clock.advance(1)
    a.tick()
    first = db.latest_checkpoint(a.store, ch, a.id)
    assert first is not None and first.size == a.store.head_seq(ch, a.id) - 1
    exchange(net, a, b)
    # Checkpoints and cosignatures do not make another checkpoint due: an idle channel stays
    # quiet however long it is idle.
    for _ in range(3):
        clock.advance(p.every_ms)
        a.tick()
        b.tick()
        exchange(net, a, b)
    assert db.latest_checkpoint(a.store, ch, a.id) == first
    # Bravo checkpointed its consent once, and Alpha countersigned that.
    (theirs,) = [c for c in db.checkpoints(b.store, ch) if c.sender == b.id]
    assert [c.cosigner for c in db.cosignatures(b.store, ch, b.id, theirs.size)] == [a.id]


def test_after_a_checkpoint_the_interval_counts_from_the_first_envelope_after_it(
    pair: tuple[Net, Clock, Station, Station, str],
) -> None:
    # Each send asks whether a checkpoint is due from what the station keeps in memory (the
    # time of the first uncovered envelope): a checkpoint must end what was kept.
    _, clock, a, _, ch = pair
    p = cps.policy(a)
    p.every_envelopes, p.every_ms = 1000, 300_000
    say(a, ch, 1)
    clock.advance(1000)
    first = cps.issue(a, ch, "admin")
    clock.advance(1000)
    say(a, ch, 1, "after")
    clock.advance(p.every_ms - 500)  # due for the envelope before the checkpoint, not after
    say(a, ch, 1, "later")
    assert db.latest_checkpoint(a.store, ch, a.id) == first
    clock.advance(1000)  # due for the first envelope after it
    say(a, ch, 1, "last")
    second = db.latest_checkpoint(a.store, ch, a.id)
    assert second is not None and second.size == a.store.head_seq(ch, a.id) - 1 > first.size


def test_on_demand_checkpoint_needs_an_open_channel(
    pair: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, _, a, b, ch = pair
    row = cps.issue(a, ch, "admin")
    assert row.size == row.seq - 1 and row.size == len(db.chain_hashes(a.store, ch, a.id)) - 1
    a.control(ch, "suspend", "maintenance")
    exchange(net, a, b)
    with pytest.raises(Conflict):
        cps.issue(a, ch)


# --- divergence -----------------------------------------------------------------------------------


def test_a_corrupted_copy_is_found_at_the_next_checkpoint(
    pair: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = pair
    p = cps.policy(a)
    p.every_envelopes = 1000
    say(a, ch, 3)
    exchange(net, a, b)
    # Someone rewrites Alpha's seq 2 in Bravo's database: Bravo now holds another history.
    b.store.q(
        "UPDATE envelopes SET hash = ? WHERE channel = ? AND sender = ? AND seq = 2",
        crypto.sha256(b"rewritten"), ch, a.id,
    )  # fmt: skip
    clock.advance(p.every_ms)
    a.tick()  # one interval later Alpha checkpoints
    cp = db.latest_checkpoint(a.store, ch, a.id)
    assert cp is not None
    results = net.deliver(a, b)
    # The checkpoint envelope itself is accepted: refusing it would stall Alpha's chain here.
    assert [r.status for r in results] == ["accepted"]
    alarms = [x for x in b.store.alarms() if x.kind == "divergence"]
    assert len(alarms) == 1 and alarms[0].severity == "critical" and alarms[0].subject == a.id
    ours = merkle.root(checkpoint.leaves(db.chain_hashes(b.store, ch, a.id, cp.size)))
    ev = [e for e in b.store.evidence() if e[3] == "divergence"]
    assert len(ev) == 1
    channel, chain, size, _, raw, held, _ = ev[0]
    assert (channel, chain, size, held) == (ch, a.id, cp.size, ours)
    assert raw.decode() == cp.note and ours != cp.root
    # Bravo does not countersign what it cannot vouch for.
    exchange(net, a, b)
    assert db.cosignatures(a.store, ch, a.id, cp.size) == []
    assert db.checkpoint_at(b.store, ch, a.id, cp.size) is None


def _three(tmp_path: Path) -> tuple[Net, Clock, Station, Station, Station, str]:
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    c = make_station(tmp_path / "c", "UN", "en", clock)
    for x, y in ((a, b), (a, c), (b, c)):
        introduce(x, y)
    net = Net()
    ch = a.propose_channel("hotline", "Three-way line", [b.id, c.id])
    exchange(net, a, b, c)
    b.control(ch, "consent")
    c.control(ch, "consent")
    exchange(net, a, b, c)
    assert all(s.channel_state(ch).is_open for s in (a, b, c))
    for s in (a, b, c):
        cps.policy(s).every_envelopes = 1000
    return net, clock, a, b, c, ch


def _forge(a: Station, ch: str, body: dict[str, Any], seq: int, prev: bytes) -> Envelope:
    """An envelope really signed by Alpha, for both other members, outside Alpha's own chain."""
    now = a.clock()
    others = [m for m in a.channel_state(ch).members if m != a.id]
    env, _ = seal(
        body,
        identity=a.identity,
        sender=a.id,
        channel=ch,
        seq=seq,
        prev=prev,
        seen={m: Ref(h.seq, h.hash) for m in others if (h := a.store.head(ch, m))},
        recipients=[a.recipient_key(m, now) for m in others],
        now_ms=now,
    )
    return env


def test_a_chain_forked_between_two_members_is_found_by_both(tmp_path: Path) -> None:
    net, clock, a, b, c, ch = _three(tmp_path)
    say(a, ch, 2)
    exchange(net, a, b, c)
    # Alpha forks: Bravo gets X as seq n, the UN gets Y, both really signed by Alpha.
    a.send(ch, channels.text_body("X: the exercise is postponed", "en"))
    n = a.store.head_seq(ch, a.id)
    net.deliver(a, b)
    a.store.mark_delivered(ch, c.id, n, clock())
    common = db.chain_hashes(a.store, ch, a.id, n - 1)
    y = _forge(a, ch, channels.text_body("Y: the exercise goes ahead", "en"), n, common[-1])
    assert c.receive(y.raw).status == "accepted"
    # Each side then gets a checkpoint of "its" history, which matches what it holds.
    x_cp = cps.issue(a, ch)
    net.deliver(a, b)
    a.store.mark_delivered(ch, c.id, n + 1, clock())
    y_body = checkpoint.checkpoint_body(a.identity, ch, [*common, y.hash])
    y_cp = _forge(a, ch, y_body, n + 1, y.hash)
    assert c.receive(y_cp.raw).status == "accepted"
    assert kinds(b) == kinds(c) == []
    # Both countersigned; their cosignatures cross and each finds the other history.
    net.deliver(b, c)
    net.deliver(c, b)
    for witness in (b, c):
        alarms = [x for x in witness.store.alarms() if x.kind == "divergence"]
        assert len(alarms) == 1 and alarms[0].severity == "critical"
        assert alarms[0].subject == a.id
        ev = [e for e in witness.store.evidence() if e[3] == "divergence"]
        # Both sides are kept: two notes signed by Alpha for the same chain and size, with
        # different roots. Together they prove to anyone that Alpha forked its chain.
        assert len(ev) == 2 and {e[2] for e in ev} == {n}
        roots = set()
        for e in ev:
            opened = note.open_note(e[4], [checkpoint.Member(a.id, "", a.identity.public).signer])
            cp = note.parse_checkpoint(opened.text)
            assert cp.origin == checkpoint.origin(ch, a.id) and cp.size == n
            roots.add(cp.root_hash)
        assert roots == {x_cp.root, merkle.root(checkpoint.leaves([*common, y.hash]))}
    # Neither witness keeps the other's cosignature as valid.
    assert [x.cosigner for x in db.cosignatures(b.store, ch, a.id, n)] == [b.id]
    assert [x.cosigner for x in db.cosignatures(c.store, ch, a.id, n)] == [c.id]
    del y_cp


def test_a_checkpoint_whose_consistency_proof_fails_is_a_divergence(
    pair: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, _, a, b, ch = pair
    cps.policy(a).every_envelopes = 1000
    say(a, ch, 3)
    first = cps.issue(a, ch)
    say(a, ch, 3)
    exchange(net, a, b)
    hashes = db.chain_hashes(a.store, ch, a.id)
    body = checkpoint.checkpoint_body(a.identity, ch, hashes, first.size)
    body["proof"] = [b64e(crypto.sha256(b"not a proof")), *body["proof"][1:]]
    a.send(ch, body)  # well-formed, signed, with a wrong proof
    results = net.deliver(a, b)
    assert [r.status for r in results] == ["accepted"]
    assert [x.kind for x in b.store.alarms()] == ["divergence"]
    assert "consistency proof" in b.store.alarms()[0].message


def test_a_checkpoint_not_signed_by_its_sender_is_a_warning_not_countersigned(
    pair: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, _, a, b, ch = pair
    say(a, ch, 2)
    hashes = db.chain_hashes(a.store, ch, a.id)
    body = checkpoint.checkpoint_body(a.identity, ch, hashes)
    text = note.parse_note(body["note"]).text
    mallory = crypto.SigningKey(bytes(32))
    forged = note.Signature(a.id, note.key_id(a.id, note.ED25519, a.identity.public),
                            mallory.sign(b"", text.encode()))  # fmt: skip
    body["note"] = note.Note(text, (forged,)).format()
    a.send(ch, body)
    assert {r.status for r in net.deliver(a, b)} == {"accepted"}
    assert kinds(b) == ["checkpoint"]
    exchange(net, a, b)
    assert db.cosignatures(a.store, ch, a.id, len(hashes)) == []


# --- the protocol pieces --------------------------------------------------------------------------


KEY = crypto.SigningKey(bytes(range(32)))


def _hashes(n: int) -> list[bytes]:
    return [crypto.sha256(bytes([i])) for i in range(n)]


def test_checkpoint_bodies_round_trip_and_pass_the_records_check() -> None:
    body = checkpoint.checkpoint_body(KEY, CH, _hashes(7), prev=3)
    records.check(body)
    cb = checkpoint.check_checkpoint_body(body)
    assert (cb.size, cb.prev, cb.root) == (7, 3, merkle.root(checkpoint.leaves(_hashes(7))))
    merkle.verify_consistency(3, 7, cb.proof, merkle.root(checkpoint.leaves(_hashes(3))), cb.root)
    cosig, line = checkpoint.cosign_body(cb, crypto.SigningKey(bytes(range(1, 33))), 1_790_000)
    records.check(cosig)
    cs = checkpoint.check_cosign_body(cosig)
    assert cs.cosignature == line and cs.root == cb.root and cs.of == cb.sender


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda b: b.update(size=b["size"] + 1), "size"),
        (lambda b: b.update(root=b64e(bytes(32))), "root"),
        (lambda b: b.update(prev=7), "prev"),
        (lambda b: b.update(proof=b["proof"][:-1]), "proof"),
        (lambda b: b.update(extra=1), "unknown field"),
        (lambda b: b.update(note=b["note"].replace("parley/chain/v1/", "example.com/")), "origin"),
        (lambda b: b.update(note=b["note"] + b["note"].split("\n\n")[1]), "exactly one"),
    ],
    ids=["size", "root", "prev", "proof", "extra", "origin", "two-signatures"],
)
def test_malformed_checkpoint_bodies_are_bad_bodies(change: Any, needle: str) -> None:
    body = checkpoint.checkpoint_body(KEY, CH, _hashes(7), prev=3)
    change(body)
    with pytest.raises(RejectedInput) as exc:
        records.check(body)
    assert exc.value.code is Code.BAD_BODY and needle in exc.value.message


def test_a_cosign_body_needs_the_senders_and_the_cosigners_lines() -> None:
    cb = checkpoint.check_checkpoint_body(checkpoint.checkpoint_body(KEY, CH, _hashes(2)))
    cosig, _ = checkpoint.cosign_body(cb, crypto.SigningKey(bytes(range(1, 33))), 5)
    only_sender = {**cosig, "note": note.Note(cb.text, cb.signatures).format()}
    with pytest.raises(RejectedInput, match="two signatures"):
        records.check(only_sender)
    with pytest.raises(RejectedInput, match="of"):
        records.check({**cosig, "of": "st" + "a" * 24})


@settings(max_examples=60, deadline=None)
@given(flip=st.integers(min_value=-1, max_value=8 * 72 - 1), stamp=st.sampled_from([5, 2**63]))
def test_a_signature_line_checked_with_a_kept_verifier_answers_as_without(
    flip: int, stamp: int
) -> None:
    # The transcript's verifier keeps one crypto.verifier per key; the answer must not change,
    # for the sender's line and a cosignature, intact or with one bit flipped, by any key.
    other = crypto.SigningKey(bytes(range(1, 33)))
    cb = checkpoint.check_checkpoint_body(checkpoint.checkpoint_body(KEY, CH, _hashes(2)))
    cos = note.cosign(cb.text, station_id(other.public), other, 5)
    if stamp != 5:  # a timestamp beyond 2^63-1, the signature otherwise intact
        cos = note.Signature(cos.name, cos.key_id, stamp.to_bytes(8, "big") + cos.signature[8:])
    sender = checkpoint.Member(station_id(KEY.public), "A", KEY.public)
    cosigner = checkpoint.Member(station_id(other.public), "B", other.public)
    for sig in (cb.signatures[0], cos):
        if 0 <= flip < 8 * len(sig.signature):
            raw = bytearray(sig.signature)
            raw[flip // 8] ^= 1 << (flip % 8)
            sig = note.Signature(sig.name, sig.key_id, bytes(raw))
        for v in (sender.signer, sender.cosigner, cosigner.signer, cosigner.cosigner):
            kept = crypto.verifier(v.public)
            assert checkpoint.verify_signature_line(
                cb.text, sig, v, kept
            ) is checkpoint.verify_signature_line(cb.text, sig, v)
    # Not vacuous: the intact cosignature verifies, unless its timestamp is out of range.
    kept = crypto.verifier(other.public)
    assert checkpoint.verify_signature_line(cb.text, cos, cosigner.cosigner, kept) is (stamp == 5)


def _envelope(seen: int, recipients: int, seq: int = 3) -> Envelope:
    keys = [crypto.SigningKey(bytes([i]) * 32) for i in range(1, 1 + max(seen, recipients))]
    ids = [station_id(k.public) for k in keys]
    kem = crypto.KemKey(bytes(range(32, 64)))
    return seal(
        channels.text_body("hello", "en"),
        identity=KEY,
        sender=station_id(KEY.public),
        channel=CH,
        seq=seq,
        prev=crypto.sha256(b"prev") if seq > 1 else bytes(32),
        seen={m: Ref(i + 1, crypto.sha256(m.encode())) for i, m in enumerate(ids[:seen])},
        recipients=[RecipientKey(m, "AAAAAAAAAAAA", kem.public) for m in ids[:recipients]],
        now_ms=1_790_000_000_000,
    )[0]


ENVELOPES = [_envelope(0, 1, 1), _envelope(1, 1), _envelope(3, 2), _envelope(2, 5)]


@pytest.mark.parametrize("env", ENVELOPES, ids=lambda e: f"seq{e.seq}-to{len(e.keys)}")
def test_the_fast_scan_reads_envelopes_as_the_reference_parser_does(env: Envelope) -> None:
    fast = scan.scan_fast(env.raw)
    assert fast is not None
    assert fast.signing_input == signing_input(env)
    assert (fast.channel, fast.sender, fast.seq, fast.ts, fast.sig) == (
        env.channel, env.sender, env.seq, env.ts, env.sig,
    )  # fmt: skip
    assert fast.recipients == tuple(k.to for k in env.keys)
    assert fast.seen == tuple(
        (m, r.seq, b64e(r.hash).encode()) for m, r in sorted(env.seen.items())
    )


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(0, len(ENVELOPES) - 1),
    edits=st.lists(
        st.tuples(
            st.integers(0, 10_000), st.sampled_from(b'{}[]":,019AQgw_-z \\.'), st.integers(0, 2)
        ),
        min_size=1,
        max_size=3,
    ),
)  # fmt: skip
def test_the_fast_scan_never_accepts_what_the_reference_refuses(
    which: int, edits: list[tuple[int, int, int]]
) -> None:
    raw = bytearray(ENVELOPES[which].raw)
    for pos, ch, op in edits:
        k = pos % len(raw)
        if op == 0:
            raw[k] = ch
        elif op == 1:
            del raw[k]
        else:
            raw.insert(k, ch)
    data = bytes(raw)
    fast = scan.scan_fast(data)
    try:
        ref = parse_envelope(data)
    except RejectedInput:
        assert fast is None
        return
    # Either path may take an envelope the reference accepts; if the fast one does, it agrees.
    if fast is not None:
        assert fast.signing_input == signing_input(ref) and fast.seq == ref.seq


@pytest.mark.parametrize("env", ENVELOPES, ids=lambda e: f"seq{e.seq}-to{len(e.keys)}")
def test_the_grammar_reads_an_envelope_as_the_reference_parser_does(env: Envelope) -> None:
    assert grammar.match(env.raw) is not None
    assert parse_envelope(env.raw) == parse_envelope_reference(env.raw)


@settings(max_examples=500, deadline=None)
@given(
    which=st.integers(0, len(ENVELOPES) - 1),
    edits=st.lists(
        st.tuples(
            st.integers(0, 10_000), st.sampled_from(b'{}[]":,019AQgw_-z \\.'), st.integers(0, 2)
        ),
        min_size=1,
        max_size=3,
    ),
)  # fmt: skip
def test_parse_envelope_accepts_and_refuses_as_the_reference_does(
    which: int, edits: list[tuple[int, int, int]]
) -> None:
    raw = bytearray(ENVELOPES[which].raw)
    for pos, ch, op in edits:
        k = pos % len(raw)
        if op == 0:
            raw[k] = ch
        elif op == 1:
            del raw[k]
        else:
            raw.insert(k, ch)
    data = bytes(raw)
    try:
        ref = parse_envelope_reference(data)
    except RejectedInput as exc:
        with pytest.raises(RejectedInput) as got:
            parse_envelope(data)
        assert (got.value.code, got.value.message) == (exc.code, exc.message)
        return
    assert parse_envelope(data) == ref


def test_the_grammar_refuses_a_ciphertext_too_short_to_open() -> None:
    env = ENVELOPES[1]
    short = env.raw.replace(b64e(env.ct).encode(), b64e(env.ct[: MIN_CT_BYTES - 1]).encode())
    assert grammar.match(short) is None and scan.scan_fast(short) is None
    with pytest.raises(RejectedInput, match="ct: at least"):
        scan.scan_envelope(short)


def test_scan_envelope_names_the_reference_error() -> None:
    raw = ENVELOPES[1].raw.replace(b'"v":1', b'"v": 1')
    with pytest.raises(RejectedInput) as exc:
        scan.scan_envelope(raw)
    assert exc.value.code is Code.MALFORMED and "canonical" in exc.value.message


def test_origin_names_one_chain() -> None:
    sid = station_id(KEY.public)
    assert checkpoint.parse_origin(checkpoint.origin(CH, sid)) == (CH, sid)
    for bad in ("example.com/log", f"parley/chain/v1/{CH}", f"parley/chain/v1/x/{sid}"):
        with pytest.raises(RejectedInput):
            checkpoint.parse_origin(bad)


def _answer(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except RejectedInput as exc:
        return (exc.code, exc.message)


_TAILS = st.one_of(
    st.text(max_size=120),
    st.text(alphabet="\u2014 \n\x00\x7f\ud800+=/abAB019é", max_size=120),
    st.builds(
        lambda name, raw, end: f"\u2014 {name} {base64.b64encode(raw).decode()}{end}",
        st.sampled_from(["st" + "b" * 24, "w+x", "", "name with space", "é"]),
        st.binary(max_size=90),
        st.sampled_from(["\n", "", "\n\n", "=\n", "\n\u2014 x AAAAAAA=\n"]),
    ),
)


@settings(max_examples=400, deadline=None)
@given(tail=_TAILS, signatures=st.integers(min_value=1, max_value=100))
def test_a_note_read_as_a_known_note_and_one_more_line_is_the_note_parse_note_reads(
    tail: str, signatures: int
) -> None:
    # The verifier reads a cosignature body's note as its checkpoint's note, already parsed,
    # plus the cosigner's line: it must give exactly parse_note's answer, or defer to it.
    cb = checkpoint.check_checkpoint_body(checkpoint.checkpoint_body(KEY, CH, _hashes(3)))
    prefix = note.Note(cb.text, cb.signatures * signatures).format()
    data = prefix + tail
    fast = note.parse_longer_note(data, len(prefix), note.parse_note(prefix))
    assert fast is None or fast == note.parse_note(data)
    cosig, _ = checkpoint.cosign_body(cb, crypto.SigningKey(bytes(range(1, 33))), 5)
    body = {**cosig, "note": data}
    known = {prefix: checkpoint.parse_signed_checkpoint(prefix, "x")}
    assert _answer(checkpoint.check_cosign_body, body, known) == _answer(
        checkpoint.check_cosign_body, body
    )


def test_a_cosignature_note_is_read_from_its_checkpoints_note() -> None:
    cb = checkpoint.check_checkpoint_body(checkpoint.checkpoint_body(KEY, CH, _hashes(3)))
    cosig, line = checkpoint.cosign_body(cb, crypto.SigningKey(bytes(range(1, 33))), 5)
    prefix = note.Note(cb.text, cb.signatures).format()
    assert cosig["note"] == prefix + line.line()
    fast = note.parse_longer_note(cosig["note"], len(prefix), note.parse_note(prefix))
    assert fast == note.parse_note(cosig["note"])  # not deferred: the common case is taken
