"""Property tests for the protocol core: canonical encoding, envelopes, chains, receipts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.errors import Code, RejectedInput
from parley.protocol import crypto, encoding
from parley.protocol.delivery import (
    ChainHead,
    ChainState,
    Decision,
    Facts,
    Verdict,
    decide,
    lookups,
)
from parley.protocol.encoding import b64d, b64e, canonical, parse
from parley.protocol.envelope import (
    COMMIT_LABEL,
    PRECEDENCES,
    ZERO_HASH,
    Envelope,
    Recipient,
    RecipientKey,
    Ref,
    SealBatch,
    _aad,
    _unsigned_bytes,
    open_envelope,
    parse_envelope,
    parse_envelope_reference,
    seal,
    verify_signature,
)
from parley.protocol.identity import fingerprint, station_id
from parley.protocol.receipt import decode_receipt, sign_receipt, verify_receipt
from parley.protocol.scan import commitment_b64, commitments_match

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_round_trip(value: Any) -> None:
    raw = canonical(value)
    assert parse(raw) == value
    assert canonical(parse(raw)) == raw


# Keys and strings from the whole of Unicode (astral planes, U+E000.., control characters,
# but no lone surrogates), and integers beyond ±2^53, exercise both paths of `canonical`.
wide_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
wide_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | wide_text,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(wide_text, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400)
@given(wide_values)
def test_canonical_fast_path_agrees_with_the_reference(value: Any) -> None:
    import rfc8785

    try:
        want = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(RejectedInput):
            canonical(value)
        return
    assert canonical(value) == want


def _reference_parse(data: bytes) -> Any:
    """`parse` as docs/protocol.md §2 states it: the document must equal canonical(itself)."""
    value = parse(data, require_canonical=False)
    if canonical(value) != data:
        raise RejectedInput(Code.MALFORMED, "document is not in canonical (RFC 8785) form")
    return value


# Encodings of one value that differ from the canonical one: whitespace, key order, escapes,
# ASCII escapes of non-ASCII text (json.dumps's default).
_encodings = [
    lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode(),
    lambda v: json.dumps(v, ensure_ascii=True, sort_keys=True, separators=(",", ":")).encode(),
    lambda v: json.dumps(v, ensure_ascii=False, sort_keys=True).encode(),
    lambda v: json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode(),
]


@settings(max_examples=400)
@given(wide_values, st.sampled_from(range(len(_encodings))), st.booleans())
def test_parse_refuses_exactly_what_is_not_canonical(value: Any, how: int, deep: bool) -> None:
    data = _encodings[how](value)
    if deep:
        data = b"[" * 12 + data + b"]" * 12
    _decides_as_the_reference(data)


@pytest.mark.parametrize(
    "data",
    [
        b'{"\\ud800":1}', b'["\\ud800"]', b'{"a":9007199254740993}',
        b"[" * 25 + b"]" * 25, b"[" * 24 + b"]" * 24, '{"\uff61":1,"\U0001f600":2}'.encode(),
        '{"\U0001f600":2,"\uff61":1}'.encode(), '{"한":"글"}'.encode(), b'{"a":-9007199254740991}',
    ],
)  # fmt: skip
def test_parse_decides_edge_cases_as_the_reference(data: bytes) -> None:
    _decides_as_the_reference(data)


def _decides_as_the_reference(data: bytes) -> None:
    """parse() accepts what the reference parser accepts, with the same value, and refuses what
    it refuses, with the same message."""
    try:
        want = _reference_parse(data)
    except RejectedInput as exc:
        with pytest.raises(RejectedInput) as got:
            parse(data)
        assert got.value.message == exc.message
        return
    assert parse(data) == want


def test_canonical_sorts_keys_by_utf16_code_units() -> None:
    # U+FF61 sorts after U+1F600 by code point but before it by UTF-16 code units.
    doc = {"\uff61": 1, "\U0001f600": 2}
    assert canonical(doc) == '{"\U0001f600":2,"\uff61":1}'.encode()


@given(st.binary(max_size=64))
def test_base64url_round_trip(data: bytes) -> None:
    assert b64d(b64e(data)) == data
    assert "=" not in b64e(data)


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=600))
def test_the_commitment_as_text_is_the_commitment_encoded(salt: bytes, text: bytes) -> None:
    # scan.commitment_b64 writes the hash and the encoding out for the span reader's loop.
    assert commitment_b64(salt, text).decode() == b64e(crypto.sha256(COMMIT_LABEL + salt + text))


@given(
    bodies=st.lists(
        st.tuples(
            st.binary(min_size=32, max_size=32),
            st.binary(max_size=300),
            st.one_of(st.none(), st.binary(min_size=32, max_size=32)),
        ),
        max_size=12,
    )
)
def test_commitments_checked_at_once_answer_as_each_checked_alone(
    bodies: list[tuple[bytes, bytes, bytes | None]],
) -> None:
    # The span reader's check of all its bodies' commitments at once: each body's own
    # commitment, or (where given) another 32-byte value's, in canonical base64url.
    salts = [b64e(salt).encode() for salt, _, _ in bodies]
    texts = [text for _, text, _ in bodies]
    commits = [
        commitment_b64(salt, text) if other is None else b64e(other).encode()
        for salt, text, other in bodies
    ]
    alone = all(
        commitment_b64(salt, text) == commit
        for (salt, text, _), commit in zip(bodies, commits, strict=True)
    )
    assert commitments_match(salts, texts, commits) is alone


def test_commitments_of_other_shapes_do_not_match() -> None:
    salt, text = bytes(range(32)), b'{"type":"text"}'
    good = (b64e(salt).encode(), text, commitment_b64(salt, text))
    assert commitments_match(*([x] for x in good))
    assert not commitments_match([good[0] + b"A"], [text], [good[2]])  # a salt too long
    assert not commitments_match([good[0], good[0]], [text], [good[2]])  # not one per body
    assert not commitments_match([good[0]], [text], [good[2] + b"A"])


@given(st.text(max_size=5).map(lambda s: s + "="))
def test_padded_base64_is_refused(text: str) -> None:
    with pytest.raises(RejectedInput):
        b64d(text)


def _reference_b64d(text: object, size: int | None) -> bytes | str:
    try:
        return encoding._b64d_reference(text, "f", size)
    except RejectedInput as exc:
        return exc.message


def _b64d(text: object, size: int | None) -> bytes | str:
    try:
        return b64d(text, field="f", size=size)
    except RejectedInput as exc:
        return exc.message


_B64_CHARS = "AQgwBZ09-_+/=\n é"


@settings(max_examples=400)
@given(
    text=st.one_of(
        st.binary(max_size=40).map(b64e),
        st.binary(min_size=1, max_size=40).map(b64e).map(lambda t: t[:-1] + "B"),
        st.text(alphabet=_B64_CHARS, max_size=12),
        st.text(max_size=8),
    ),
    size=st.sampled_from([None, 0, 1, 2, 32]),
)
def test_base64url_fast_decoding_answers_as_the_reference(text: str, size: int | None) -> None:
    # Canonical text is decoded at once; everything else is the reference path's to refuse.
    assert _b64d(text, size) == _reference_b64d(text, size)


def test_base64url_decoding_refuses_what_is_not_text() -> None:
    assert (
        _b64d(b"QQ", None) == _reference_b64d(b"QQ", None) == "f: expected unpadded base64url text"
    )


def test_floats_are_refused() -> None:
    with pytest.raises(RejectedInput, match="floats"):
        canonical({"x": 1.5})
    with pytest.raises(RejectedInput):
        parse(b'{"x":1.5}')


def test_fingerprint_is_twelve_groups_of_five_digits() -> None:
    fp = fingerprint(bytes(32))
    groups = fp.split(" ")
    assert len(groups) == 12 and all(len(g) == 5 and g.isdigit() for g in groups)
    assert fingerprint(bytes(32)) != fingerprint(b"\x01" + bytes(31))


class Party:
    def __init__(self) -> None:
        self.key = crypto.SigningKey.generate()
        self.kem = crypto.KemKey.generate()
        self.id = station_id(self.key.public)

    def rk(self) -> RecipientKey:
        return RecipientKey(self.id, b64e(bytes(9)), self.kem.public)


A, B = Party(), Party()
CH = b64e(bytes(16))


def chain(texts: list[str], start_ts: int = 1000) -> list[Envelope]:
    out: list[Envelope] = []
    prev = ZERO_HASH
    for i, t in enumerate(texts, 1):
        env, _ = seal(
            {"type": "text", "text": t, "lang": "en"},
            identity=A.key, sender=A.id, channel=CH, seq=i, prev=prev, seen={},
            recipients=[B.rk()], now_ms=start_ts + i,
        )  # fmt: skip
        out.append(env)
        prev = env.hash
    return out


@settings(max_examples=25, deadline=None)
@given(st.text(max_size=200))
def test_seal_open_round_trip(text: str) -> None:
    body = {"type": "text", "text": text, "lang": "ko"}
    env, salt = seal(
        body, identity=A.key, sender=A.id, channel=CH, seq=1, prev=ZERO_HASH, seen={},
        recipients=[B.rk()], now_ms=5,
    )  # fmt: skip
    again = parse_envelope(env.raw)
    assert again == env
    verify_signature(again, A.key.public)
    opened = open_envelope(again, B.id, B.kem)
    assert opened.body == body and opened.salt == salt


def test_a_batch_shares_its_ephemeral_key_and_each_envelope_opens_alone() -> None:
    """§4.5: envelopes sealed with one SealBatch carry one `eph`; each still opens by itself,
    and in one batch opening, with one derivation; single seals each get their own key."""
    batch, prev, envs = SealBatch(), ZERO_HASH, []
    for i in range(1, 6):
        env, _ = seal(
            {"type": "text", "text": "x", "lang": "en"}, identity=A.key, sender=A.id, channel=CH,
            seq=i, prev=prev, seen={}, recipients=[B.rk()], now_ms=i, batch=batch,
        )  # fmt: skip
        envs.append(parse_envelope(env.raw))
        prev = env.hash
    assert {e.eph for e in envs} == {batch.ephemeral.public}
    assert len({e.keys[0].wrap for e in envs}) == 5
    together = crypto.WrapKeys()
    for e in envs:
        assert open_envelope(e, B.id, B.kem).body == open_envelope(e, B.id, B.kem, together).body
    assert len(together._keys) == 1
    assert len({e.eph for e in chain(["a", "b", "c"])}) == 3


PARTIES = [Party() for _ in range(4)]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 2**53 - 1), st.integers(0, 2**53 - 1), st.sampled_from(PRECEDENCES),
    st.lists(st.sampled_from(range(1, 4)), min_size=1, max_size=3, unique=True),
    st.dictionaries(st.sampled_from(range(1, 4)), st.integers(1, 2**53 - 1), max_size=3),
    st.text(max_size=50),
)  # fmt: skip
def test_a_sealed_envelope_is_what_parsing_its_bytes_gives(
    seq: int, ts: int, prec: str, to: list[int], seen: dict[int, int], text: str
) -> None:
    """seal builds its Envelope from the parts (issue 14), not by parsing its own bytes: both
    parsers must read those bytes back as the very same envelope."""
    sender = PARTIES[0]
    env, _ = seal(
        {"type": "text", "text": text, "lang": "en"},
        identity=sender.key, sender=sender.id, channel=CH, seq=seq,
        prev=ZERO_HASH if seq == 1 else crypto.sha256(b"prev"),
        seen={PARTIES[m].id: Ref(q, crypto.sha256(bytes([m]))) for m, q in seen.items()},
        recipients=[PARTIES[i].rk() for i in to], now_ms=ts, prec=prec,
    )  # fmt: skip
    assert parse_envelope(env.raw) == env == parse_envelope_reference(env.raw)
    verify_signature(env, sender.key.public)


def _document(
    channel: str,
    sender: str,
    seq: int,
    prev: bytes,
    ts: int,
    prec: str,
    seen: dict[str, Ref],
    commit: bytes,
    eph: bytes,
    keys: list[Recipient],
    nonce: bytes,
    ct: bytes,
) -> dict[str, Any]:
    """The unsigned envelope as a document, as docs/protocol.md §4.1 lists its members."""
    return {
        "v": 1, "ch": channel, "from": sender, "seq": seq, "prev": b64e(prev), "ts": ts,
        "prec": prec,
        "seen": {m: {"seq": r.seq, "hash": b64e(r.hash)} for m, r in sorted(seen.items())},
        "commit": b64e(commit), "eph": b64e(eph),
        "keys": [{"to": k.to, "kid": k.kid, "wrap": b64e(k.wrap)} for k in keys],
        "nonce": b64e(nonce), "ct": b64e(ct),
    }  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 2**53 - 1), st.integers(0, 2**53 - 1), st.sampled_from(PRECEDENCES),
    st.lists(st.sampled_from(range(1, 4)), min_size=1, max_size=3, unique=True),
    st.dictionaries(st.sampled_from(range(1, 4)), st.integers(1, 2**53 - 1), max_size=3),
    st.binary(min_size=16, max_size=300),
)  # fmt: skip
def test_the_spliced_unsigned_envelope_is_the_canonical_one(
    seq: int, ts: int, prec: str, to: list[int], seen: dict[int, int], ct: bytes
) -> None:
    """seal writes the unsigned envelope's bytes out itself (issue 14): for any parts it
    accepts they must be canonical() of the document."""
    parts = (
        CH, PARTIES[0].id, seq, crypto.sha256(b"prev"), ts, prec,
        {PARTIES[m].id: Ref(q, crypto.sha256(bytes([m]))) for m, q in seen.items()},
        crypto.sha256(b"commit"), crypto.sha256(b"eph"),
        [Recipient(PARTIES[i].id, PARTIES[i].rk().kid, crypto.sha256(bytes([i])) * 2) for i in to],
        bytes(24), ct,
    )  # fmt: skip
    assert _unsigned_bytes(*parts) == canonical(_document(*parts))


@given(st.text(max_size=30), st.text(max_size=30), st.integers(-(2**53) + 1, 2**53 - 1))
def test_the_spliced_aad_is_the_canonical_one(channel: str, sender: str, seq: int) -> None:
    """The AEAD's associated data is spliced for plain texts (issue 14): it must be exactly the
    canonical encoding, whatever the texts hold."""
    for ch, frm in ((channel, sender), (CH, PARTIES[0].id), (CH + channel, sender)):
        want = canonical({"ch": ch, "from": frm, "seq": seq})
        assert _aad(ch, frm, seq) == want


BAD_PARTS: list[tuple[str, dict[str, Any]]] = [
    ("sender", {"sender": "not-a-station"}),
    ("channel", {"channel": b64e(bytes(15))}),
    ("seq 0", {"seq": 0, "prev": ZERO_HASH}),
    ("seq too big", {"seq": 2**53, "prev": bytes(range(32))}),
    ("ts negative", {"now_ms": -1}),
    ("prev of the first", {"prev": bytes(range(32))}),
    ("zero prev later", {"seq": 2}),
    ("seen names the sender", {"seen": {A.id: Ref(1, bytes(32))}}),
    ("seen seq 0", {"seen": {B.id: Ref(0, bytes(32))}}),
    ("seen hash size", {"seen": {B.id: Ref(1, bytes(31))}}),
    ("recipient twice", {"recipients": [B.rk(), B.rk()]}),
    ("recipient kid", {"recipients": [RecipientKey(B.id, "short", B.kem.public)]}),
]


@pytest.mark.parametrize(("why", "change"), BAD_PARTS, ids=[w for w, _ in BAD_PARTS])
def test_seal_refuses_parts_no_parser_would_accept(why: str, change: dict[str, Any]) -> None:
    parts: dict[str, Any] = {
        "identity": A.key, "sender": A.id, "channel": CH, "seq": 1, "prev": ZERO_HASH,
        "seen": {}, "recipients": [B.rk()], "now_ms": 5,
    } | change  # fmt: skip
    with pytest.raises(RejectedInput) as e:
        seal({"type": "text", "text": "x", "lang": "en"}, **parts)
    assert e.value.code == Code.MALFORMED


def test_only_a_recipient_can_open() -> None:
    env = chain(["secret"])[0]
    with pytest.raises(RejectedInput) as e:
        open_envelope(env, A.id, A.kem)
    assert e.value.code == "not_a_recipient"
    with pytest.raises(RejectedInput) as e:
        open_envelope(env, B.id, crypto.KemKey.generate())
    assert e.value.code == "decrypt_failed"


def _decide(env: Envelope, held: dict[int, Envelope]) -> Decision:
    """The delivery machine for B receiving A's chain, B holding `held` of it."""
    top = max(held) if held else 0
    heads = {A.id: ChainHead(top, held[top].hash, held[top].ts)} if held else {}
    facts = Facts.of(env)
    hashes = {k: held[k[1]].hash if k[1] in held else None for k in lookups(facts, B.id, heads)}
    state = ChainState(B.id, frozenset({A.id, B.id}), heads, hashes)
    return decide(facts, state, now_ms=10**6)


def _apply_in_order(envs: list[Envelope]) -> list[Verdict]:
    held: dict[int, Envelope] = {}
    verdicts = []
    for env in envs:
        d = _decide(env, held)
        verdicts.append(d.verdict)
        if d.verdict is Verdict.ACCEPT:
            held[env.seq] = env
    return verdicts


@settings(max_examples=50, deadline=None)
@given(st.permutations(range(6)), st.lists(st.integers(0, 5), max_size=6))
def test_chain_applies_strictly_in_order(order: list[int], dups: list[int]) -> None:
    """Whatever order and duplication the network produces, only the next seq is accepted,
    every envelope is accepted exactly once, and never out of order."""
    envs = chain([f"m{i}" for i in range(6)])
    arrivals = [envs[i] for i in order] + [envs[i] for i in dups]
    accepted: list[int] = []
    held: dict[int, Envelope] = {}
    for _ in range(7):  # re-offer rounds, as retries do
        for env in arrivals:
            d = _decide(env, held)
            if d.verdict is Verdict.ACCEPT:
                held[env.seq] = env
                accepted.append(env.seq)
            else:
                assert d.verdict in (Verdict.GAP, Verdict.DUPLICATE)
    assert accepted == list(range(1, 7))


def test_a_forked_chain_is_equivocation() -> None:
    real = chain(["a", "b"])
    fork = chain(["a", "B!"])
    assert _apply_in_order([real[0], real[1], fork[1]]) == [
        Verdict.ACCEPT, Verdict.ACCEPT, Verdict.EQUIVOCATION,
    ]  # fmt: skip
    other_root = chain(["x", "y"], start_ts=0)
    assert _apply_in_order([real[0], other_root[1]])[1] is Verdict.EQUIVOCATION


def test_receipt_round_trip_and_tamper() -> None:
    r = sign_receipt(B.key, B.id, CH, A.id, Ref(3, bytes(32)), None, 77)
    again = decode_receipt(r.encode())
    verify_receipt(again, B.key.public)
    doc = parse(r.encode())
    doc["seq"] = 4
    with pytest.raises(RejectedInput):
        verify_receipt(decode_receipt(canonical(doc)), B.key.public)
