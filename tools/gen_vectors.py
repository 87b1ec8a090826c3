"""Regenerate the protocol conformance vectors in vectors/protocol/ deterministically.

    .venv/bin/python tools/gen_vectors.py            # rewrite vectors/protocol/*.json
    .venv/bin/python tools/gen_vectors.py --check    # exit 1 if a file is not what it would write

Every key, salt, content key, nonce, ephemeral key and timestamp is a fixed value (mostly
`bytes(range(k, k + 32))`), and sealing goes through `envelope.seal_from_parts`, so the output is
the same on every run. tests/test_vectors.py replays the files against the implementation and
against an independent re-derivation from the primitives, and checks that the worked examples in
docs/protocol.md are the ones stored here.

Conventions in the files (also stated in each file's "encoding" field):
- a field ending in `_hex` is bytes in lowercase hex; one ending in `_b64u` is bytes in unpadded
  base64url (RFC 4648 §5);
- any other string is UTF-8 text; where it is a JSON document (`envelope`, `signing_input`, …) the
  exact bytes are the UTF-8 encoding of that text;
- integers are JSON integers (times are Unix milliseconds).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

from parley.domain import channels
from parley.errors import RejectedInput
from parley.protocol import (
    crypto,
    encoding,
    envelope,
    handover,
    identity,
    merkle,
    note,
    receipt,
    request,
    trust,
)
from parley.protocol.checkpoint import (
    Member,
    check_checkpoint_body,
    checkpoint_body,
    cosign_body,
    leaves,
    origin,
)
from parley.protocol.delivery import DEFAULT_SKEW_MS
from parley.protocol.encoding import b64e, canonical
from parley.protocol.export import TRANSCRIPT_LABEL, TranscriptWriter
from parley.protocol.proof import check_proof, make_proof
from parley.protocol.verifier import verify_transcript

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "vectors" / "protocol"

ENCODING_NOTE = (
    "Fields ending in _hex are bytes as lowercase hex; fields ending in _b64u are bytes as "
    "unpadded base64url (RFC 4648 section 5). Every other string is UTF-8 text; a JSON document "
    "given as text (envelope, signing_input, plaintext, aad, ...) is exactly the UTF-8 bytes of "
    "that text. Times are Unix milliseconds."
)

# 2026-01-01T00:00:00Z
T0 = 1_767_225_600_000
MINUTE = 60_000
DAY = 24 * 3600 * 1000


def fixed(start: int, n: int = 32) -> bytes:
    """bytes(range(start, start + n)), wrapping at 256: the fixed inputs of every vector."""
    return bytes((start + i) % 256 for i in range(n))


def hx(data: bytes) -> str:
    return data.hex()


# --- the three test stations ------------------------------------------------------------------


class Station:
    def __init__(self, name: str, lang: str, seed_start: int, prekey_start: int, url: str):
        self.name = name
        self.lang = lang
        self.key = crypto.SigningKey(fixed(seed_start))
        self.prekey = crypto.KemKey(fixed(prekey_start))
        self.id = identity.station_id(self.key.public)
        self.url = url
        self.record = identity.sign_prekey(
            self.key, self.prekey.public, T0 - DAY, T0 - DAY + 8 * DAY
        )

    @property
    def recipient(self) -> envelope.RecipientKey:
        return envelope.RecipientKey(self.id, self.record.kid, self.prekey.public)


ALPHA = Station("Station Alpha", "en", 0x00, 0x80, "https://alpha.example:8443")
BRAVO = Station("브라보 연락소", "ko", 0x20, 0xA0, "https://bravo.example")
CHARLIE = Station("Facilitator Charlie", "en", 0x40, 0xC0, "https://charlie.example")
STATIONS = {"alpha": ALPHA, "bravo": BRAVO, "charlie": CHARLIE}
BY_ID = {s.id: s for s in STATIONS.values()}
CHANNEL_AB = b64e(fixed(0xF0, 16))
CHANNEL_ABC = b64e(fixed(0xE0, 16))


# --- canonical.json -----------------------------------------------------------------------------


def _reject_case(desc: str, data: bytes) -> dict[str, Any]:
    try:
        encoding.parse(data)
    except RejectedInput as exc:
        case: dict[str, Any] = {"desc": desc, "input_hex": hx(data)}
        with contextlib.suppress(UnicodeDecodeError):
            case["input"] = data.decode("utf-8")
        case["error"] = str(exc.code)
        return case
    raise AssertionError(f"parse() accepted {data!r}, expected a rejection")


def canonical_vectors() -> dict[str, Any]:
    encode_inputs = [
        ("canon-sorted", "object keys are sorted", '{"b": 2, "a": 1}'),
        ("canon-whitespace", "whitespace is removed", '{ "a" : [ 1 , 2 , 3 ] , "b" : { } }'),
        (
            "canon-nested",
            "nested objects are sorted at every level",
            '{"z": {"y": 1, "x": [{"b": 1, "a": 2}]}}',
        ),
        (
            "canon-utf16",
            "keys sort by UTF-16 code units, not code points (U+1F600 before U+FF61)",
            '{"\\uff61": 1, "\\ud83d\\ude00": 2, "z": 3, "\\u00e9": 4}',
        ),
        (
            "canon-strings",
            'strings: only \\" \\\\ \\b \\f \\n \\r \\t and \\u00XX for other controls are escaped',
            '"\\u0041\\u00e9\\u20ac\\u0007\\u001f\\n\\t\\"\\\\\\/\\u007f"',
        ),
        (
            "canon-korean",
            "Korean text is kept as raw UTF-8",
            '{"text": "\\ud68c\\ub2f4 \\uc81c\\uc548"}',
        ),
        ("canon-ints", "largest safe integers", "[9007199254740991, -9007199254740991, 0, -1]"),
        ("canon-literals", "literals", "[true, false, null]"),
        ("canon-empty", "empty containers", '{"a": [], "b": {}}'),
        ("canon-depth", "24 levels of nesting is the maximum", "[" * 24 + "0" + "]" * 24),
        (
            "canon-depth-empty",
            "an empty array at level 24 is allowed: arrays and objects count, scalars add none",
            "[" * 24 + "]" * 24,
        ),
        (
            "canon-depth-mixed",
            "objects and arrays count alike: 12 objects and 12 arrays, alternating",
            '{"a":[' * 12 + "true" + "]}" * 12,
        ),
    ]
    encode = []
    for case_id, desc, text in encode_inputs:
        value = json.loads(text)
        out = canonical(value)
        assert encoding.parse(out) == value
        encode.append(
            {
                "id": case_id,
                "desc": desc,
                "input": text,
                "canonical": out.decode("utf-8"),
                "canonical_hex": hx(out),
            }
        )
    reject = [
        _reject_case("a float", b'{"a":1.5}'),
        _reject_case("an integer written as a float", b'{"a":1.0}'),
        _reject_case("an exponent", b'{"a":1e3}'),
        _reject_case("2^53 is outside the safe integer range", b'{"a":9007199254740992}'),
        _reject_case("-2^53 is outside the safe integer range", b'{"a":-9007199254740992}'),
        _reject_case("negative zero", b"-0"),
        _reject_case("NaN", b"NaN"),
        _reject_case("a duplicate key", b'{"a":1,"a":2}'),
        _reject_case("keys out of order", b'{"b":1,"a":2}'),
        _reject_case("whitespace", b'{"a": 1}'),
        _reject_case("trailing newline", b'{"a":1}\n'),
        _reject_case("an unnecessary \\u escape", b'"\\u00e9"'),
        _reject_case("an escaped solidus", b'"\\/"'),
        _reject_case("an upper-case \\u escape", b'"\\u001F"'),
        _reject_case("a lone surrogate", b'"\\ud800"'),
        _reject_case("invalid UTF-8", b'"\xff"'),
        _reject_case("25 levels of nesting", b"[" * 25 + b"0" + b"]" * 25),
        _reject_case("25 levels of nesting, the last an empty array", b"[" * 25 + b"]" * 25),
        _reject_case(
            "25 levels of nesting, the last an empty object", b"[" * 24 + b"{}" + b"]" * 24
        ),
        _reject_case("a leading zero", b"01"),
    ]
    b64_ok = [
        {"text": "", "bytes_hex": ""},
        {"text": "AA", "bytes_hex": "00"},
        {"text": "AAE", "bytes_hex": "0001"},
        {"text": "AAEC", "bytes_hex": "000102"},
        {"text": "-_8", "bytes_hex": "fbff"},
    ]
    for case in b64_ok:
        assert encoding.b64d(case["text"]).hex() == case["bytes_hex"]
        assert b64e(bytes.fromhex(case["bytes_hex"])) == case["text"]
    b64_reject = []
    for desc, text in [
        ("padding", "AAE="),
        ("padding", "AA=="),
        ("standard alphabet +", "+_8"),
        ("standard alphabet /", "-/8"),
        ("non-zero trailing bits", "AAF"),
        ("impossible length", "AAECA"),
        ("whitespace", "AA EC"),
    ]:
        try:
            encoding.b64d(text)
        except RejectedInput as exc:
            b64_reject.append({"desc": desc, "text": text, "error": str(exc.code)})
        else:
            raise AssertionError(f"b64d accepted {text!r}")
    return {
        "description": "RFC 8785 canonical JSON as Parley uses it: encode cases (an ordinary JSON "
        "text -> its one canonical form) and byte strings parse() must refuse; unpadded base64url.",
        "encoding": ENCODING_NOTE,
        "limits": {
            "max_document_bytes": encoding.MAX_DOCUMENT_BYTES,
            "max_depth": encoding.MAX_DEPTH,
            "max_safe_int": 2**53 - 1,
        },
        "encode": encode,
        "reject": reject,
        "base64url": {"valid": b64_ok, "reject": b64_reject},
    }


# --- identity.json ------------------------------------------------------------------------------


def identity_vectors() -> dict[str, Any]:
    stations = []
    for name, st in STATIONS.items():
        fp = identity.fingerprint(st.key.public)
        stations.append(
            {
                "id": f"identity-{name}",
                "seed_hex": hx(st.key.seed),
                "public_hex": hx(st.key.public),
                "public_b64u": b64e(st.key.public),
                "station_id": st.id,
                "fingerprint": fp,
                "fingerprint_qr": f"parley-fp:{st.id}:{fp.replace(' ', '')}",
            }
        )
    prekeys = []
    for name, st in STATIONS.items():
        rec = st.record
        prekeys.append(
            {
                "id": f"prekey-{name}",
                "identity_seed_hex": hx(st.key.seed),
                "prekey_secret_hex": hx(st.prekey.secret),
                "prekey_public_hex": hx(st.prekey.public),
                "not_before": rec.not_before,
                "not_after": rec.not_after,
                "kid": rec.kid,
                "label_hex": hx(identity.PREKEY_LABEL),
                "signing_input": canonical(rec.body()).decode("utf-8"),
                "sig_hex": hx(rec.sig),
                "record": canonical(rec.to_json()).decode("utf-8"),
            }
        )
    invitations: list[dict[str, Any]] = []
    for name, st in (("alpha", ALPHA), ("bravo", BRAVO)):
        inv = identity.make_invitation(st.key, st.name, st.lang, [st.record], [st.url], T0)
        doc = canonical({**inv.body(), "sig": b64e(inv.sig)})
        invitations.append(
            {
                "id": f"invitation-{name}",
                "identity_seed_hex": hx(st.key.seed),
                "name": st.name,
                "lang": st.lang,
                "prekeys": [f"prekey-{name}"],
                "addresses": [st.url],
                "created": T0,
                "label_hex": hx(identity.INVITE_LABEL),
                "signing_input": canonical(inv.body()).decode("utf-8"),
                "sig_hex": hx(inv.sig),
                "document": doc.decode("utf-8"),
                "invitation": inv.encode(),
            }
        )
    good = invitations[0]["invitation"]
    body = good[len(identity.INVITE_PREFIX) :]
    bad_sig_doc = json.loads(invitations[0]["document"])
    bad_sig_doc["name"] = "Station Mallory"
    bad_station_doc = json.loads(invitations[0]["document"])
    bad_station_doc["station"] = BRAVO.id
    bad_prekey_doc = json.loads(invitations[0]["document"])
    bad_prekey_doc["prekeys"] = [BRAVO.record.to_json()]
    invitation_reject = [
        ("an address that is not a URL", _signed_invite(ALPHA, addresses=["not a url"])),
        ("an address of another scheme", _signed_invite(ALPHA, addresses=["ftp://x"])),
        ("an address with user info", _signed_invite(ALPHA, addresses=["https://u@alpha.example"])),
        ("an address with a query", _signed_invite(ALPHA, addresses=["https://alpha.example/?a"])),
        ("an address without a host", _signed_invite(ALPHA, addresses=["https://:8443"])),
        ("the same address twice", _signed_invite(ALPHA, addresses=[ALPHA.url, ALPHA.url])),
        ("a blank name", _signed_invite(ALPHA, name=" \t")),
        ("an empty name", _signed_invite(ALPHA, name="")),
        ("a blank lang", _signed_invite(ALPHA, lang=" ")),
        ("created is not an integer", _signed_invite(ALPHA, created=str(T0))),
        (
            "a prekey validity time is not an integer",
            _signed_invite(ALPHA, prekeys=[{**ALPHA.record.to_json(), "not_after": True}]),
        ),
        ("wrong prefix", "parley-invitation:" + body),
        ("padded base64url", good + "="),
        ("signature does not cover the changed name", _invite(bad_sig_doc)),
        ("station id does not match the identity key", _invite(bad_station_doc)),
        ("a prekey signed by another station", _invite(bad_prekey_doc)),
        ("not canonical JSON inside", identity.INVITE_PREFIX + b64e(b'{"v": 1}')),
    ]
    for _, text in invitation_reject:
        try:
            identity.parse_invitation(text)
        except RejectedInput as exc:
            assert str(exc.code) == "bad_invitation"
        else:
            raise AssertionError("invitation accepted")

    # Whether an invitation is usable now (identity.check_current): `created` at most the skew
    # window ahead, and at least one prekey not yet expired. Alpha's prekey ends at T0 + 7 days.
    not_after = ALPHA.record.not_after
    invitation_current = []
    for desc, now, error in [
        ("created now", T0, None),
        ("created exactly the skew window ahead of the clock", T0 - DEFAULT_SKEW_MS, None),
        ("created 1 ms beyond the skew window", T0 - DEFAULT_SKEW_MS - 1, "bad_invitation"),
        ("a week old, its prekey valid until the last millisecond", not_after, None),
        ("its only prekey expired 1 ms ago", not_after + 1, "bad_invitation"),
    ]:
        inv = identity.parse_invitation(good)
        try:
            identity.check_current(inv, now, DEFAULT_SKEW_MS)
        except RejectedInput as exc:
            assert str(exc.code) == error, desc
        else:
            assert error is None, desc
        invitation_current.append(
            {"desc": desc, "invitation": "invitation-alpha", "now": now,
             "skew_ms": DEFAULT_SKEW_MS, "error": error}
        )  # fmt: skip

    good_rec = ALPHA.record.to_json()
    prekey_reject = []
    for desc, value, signer, code in [
        ("validity changed after signing",
         {**good_rec, "not_after": good_rec["not_after"] + 1}, ALPHA, "bad_signature"),
        ("checked against another station's identity", good_rec, BRAVO, "malformed"),
        ("kid does not match the public key", {**good_rec, "kid": BRAVO.record.kid}, ALPHA,
         "malformed"),
        ("unknown field", {**good_rec, "extra": 1}, ALPHA, "malformed"),
    ]:  # fmt: skip
        try:
            identity.parse_prekey(value, signer.key.public)
        except RejectedInput as exc:
            assert str(exc.code) == code, (desc, exc)
        else:
            raise AssertionError(desc)
        prekey_reject.append(
            {
                "desc": desc,
                "record": canonical(value).decode("utf-8"),
                "identity_public_hex": hx(signer.key.public),
                "error": code,
            }
        )
    return {
        "description": "Station ids, fingerprints, signed prekey records and invitations derived "
        "from fixed Ed25519 seeds and X25519 secrets.",
        "encoding": ENCODING_NOTE,
        "stations": stations,
        "prekeys": prekeys,
        "prekey_reject": prekey_reject,
        "invitations": invitations,
        "invitation_reject": [
            {"desc": d, "invitation": t, "error": "bad_invitation"} for d, t in invitation_reject
        ],
        "invitation_current": invitation_current,
        "station_id_syntax": {
            "valid": [ALPHA.id, "st" + "a" * 24, "st" + "7" * 24],
            "invalid": [
                "st" + "a" * 23,
                "st" + "a" * 25,
                "ST" + "a" * 24,
                "st" + "A" * 24,
                "st" + "a" * 23 + "1",
                "st" + "a" * 23 + "8",
                "sx" + "a" * 24,
                "st" + "a" * 23 + "=",
            ],
        },
    }


def _invite(doc: dict[str, Any]) -> str:
    return identity.INVITE_PREFIX + b64e(canonical(doc))


def _signed_invite(st: Station, **changes: Any) -> str:
    """A correctly signed invitation of `st` whose body breaks one rule: the refusal is for the
    rule, not the signature."""
    body = {
        **identity.make_invitation(st.key, st.name, st.lang, [st.record], [st.url], T0).body(),
        **changes,
    }
    sig = st.key.sign(identity.INVITE_LABEL, canonical(body))
    return _invite({**body, "sig": b64e(sig)})


# --- envelope.json ------------------------------------------------------------------------------


def _ref_json(seen: dict[str, envelope.Ref]) -> dict[str, Any]:
    return {m: {"seq": r.seq, "hash_hex": hx(r.hash)} for m, r in sorted(seen.items())}


def envelope_case(
    case_id: str,
    desc: str,
    *,
    sender: Station,
    recipients: list[Station],
    channel: str,
    seq: int,
    prev: bytes,
    seen: dict[str, envelope.Ref],
    ts: int,
    prec: str,
    body: dict[str, Any],
    salt: bytes,
    content_key: bytes,
    nonce: bytes,
    ephemeral: bytes,
) -> tuple[dict[str, Any], envelope.Envelope]:
    eph = crypto.KemKey(ephemeral)
    env = envelope.seal_from_parts(
        body,
        identity=sender.key,
        sender=sender.id,
        channel=channel,
        seq=seq,
        prev=prev,
        seen=seen,
        recipients=[r.recipient for r in recipients],
        now_ms=ts,
        prec=prec,
        salt=salt,
        content_key=content_key,
        nonce=nonce,
        ephemeral=eph,
    )
    wraps = []
    for r in sorted(recipients, key=lambda s: s.id):
        shared = sodium.crypto_scalarmult(eph.secret, r.prekey.public)
        wrap_key = sodium.crypto_generichash_blake2b_salt_personal(
            shared + eph.public + r.prekey.public,
            digest_size=32,
            key=b"",
            person=b"parley-wrap-v1\x00\x00",
        )
        mine = env.key_for(r.id)
        assert mine is not None
        wraps.append(
            {
                "to": r.id,
                "kid": r.record.kid,
                "prekey_public_hex": hx(r.prekey.public),
                "shared_secret_hex": hx(shared),
                "wrap_key_hex": hx(wrap_key),
                "wrap_hex": hx(mine.wrap),
            }
        )
    plaintext = canonical({"body": body, "salt": b64e(salt)})
    aad = canonical({"ch": channel, "from": sender.id, "seq": seq})
    signing_input = envelope.signing_input(env)
    case = {
        "id": case_id,
        "desc": desc,
        "inputs": {
            "sender": sender.id,
            "sender_seed_hex": hx(sender.key.seed),
            "recipients": [
                {
                    "station": r.id,
                    "kid": r.record.kid,
                    "prekey_public_hex": hx(r.prekey.public),
                    "prekey_secret_hex": hx(r.prekey.secret),
                }
                for r in recipients
            ],
            "channel": channel,
            "seq": seq,
            "prev_hex": hx(prev),
            "seen": _ref_json(seen),
            "ts": ts,
            "prec": prec,
            "body": body,
            "salt_hex": hx(salt),
            "content_key_hex": hx(content_key),
            "nonce_hex": hx(nonce),
            "ephemeral_secret_hex": hx(ephemeral),
        },
        "outputs": {
            "commitment_hex": hx(env.commit),
            "ephemeral_public_hex": hx(env.eph),
            "wraps": wraps,
            "plaintext": plaintext.decode("utf-8"),
            "aad": aad.decode("utf-8"),
            "ct_hex": hx(env.ct),
            "label_hex": hx(envelope.ENVELOPE_LABEL),
            "signing_input": signing_input.decode("utf-8"),
            "signature_hex": hx(env.sig),
            "envelope": env.raw.decode("utf-8"),
            "envelope_hash_hex": hx(env.hash),
            "envelope_hash_b64u": b64e(env.hash),
        },
    }
    return case, env


def _resign(doc: dict[str, Any], sender: Station) -> str:
    doc = {k: v for k, v in doc.items() if k != "sig"}
    doc["sig"] = b64e(sender.key.sign(envelope.ENVELOPE_LABEL, canonical(doc)))
    return canonical(doc).decode("utf-8")


def _flip(b64: str, index: int = 0) -> str:
    raw = bytearray(encoding.b64d(b64))
    raw[index] ^= 0x01
    return b64e(bytes(raw))


def envelope_vectors() -> dict[str, Any]:
    c1, e1 = envelope_case(
        "envelope-1",
        "first envelope of Alpha's chain: it proposes a hotline channel to Bravo (prev is zero, "
        "nothing seen yet)",
        sender=ALPHA,
        recipients=[BRAVO],
        channel=CHANNEL_AB,
        seq=1,
        prev=envelope.ZERO_HASH,
        seen={},
        ts=T0,
        prec="ROUTINE",
        body=channels.propose_body("hotline", "Alpha–Bravo hotline", [ALPHA.id, BRAVO.id]),
        salt=fixed(0x10),
        content_key=fixed(0x30),
        nonce=fixed(0x50, 24),
        ephemeral=fixed(0x70),
    )
    c2, e2 = envelope_case(
        "envelope-2",
        "Bravo consents to the proposal (first of Bravo's chain; `seen` names Alpha's seq 1)",
        sender=BRAVO,
        recipients=[ALPHA],
        channel=CHANNEL_AB,
        seq=1,
        prev=envelope.ZERO_HASH,
        seen={ALPHA.id: e1.ref},
        ts=T0 + MINUTE,
        prec="IMMEDIATE",
        body=channels.control_body("consent", b64e(e1.hash)),
        salt=fixed(0x11),
        content_key=fixed(0x31),
        nonce=fixed(0x51, 24),
        ephemeral=fixed(0x71),
    )
    c3, e3 = envelope_case(
        "envelope-3",
        "Alpha's second envelope, linked by prev to envelope-1: a Korean text message "
        "(seen: Bravo's seq 1)",
        sender=ALPHA,
        recipients=[BRAVO],
        channel=CHANNEL_AB,
        seq=2,
        prev=e1.hash,
        seen={BRAVO.id: e2.ref},
        ts=T0 + 2 * MINUTE,
        prec="PRIORITY",
        body=channels.text_body("내일 09:00에 예정된 발사는 시험 발사입니다. 확인 바랍니다.", "ko"),
        salt=fixed(0x12),
        content_key=fixed(0x32),
        nonce=fixed(0x52, 24),
        ephemeral=fixed(0x72),
    )
    c4, _ = envelope_case(
        "envelope-4",
        "Charlie (a facilitator) proposes a facilitated channel: one envelope, two recipients, "
        "one wrap each under the same ephemeral key",
        sender=CHARLIE,
        recipients=[ALPHA, BRAVO],
        channel=CHANNEL_ABC,
        seq=1,
        prev=envelope.ZERO_HASH,
        seen={},
        ts=T0 + 3 * MINUTE,
        prec="FLASH",
        body=channels.propose_body(
            "facilitated",
            "Talks about talks / 회담을 위한 회담",
            [ALPHA.id, BRAVO.id, CHARLIE.id],
            facilitator=CHARLIE.id,
        ),
        salt=fixed(0x13),
        content_key=fixed(0x33),
        nonce=fixed(0x53, 24),
        ephemeral=fixed(0x73),
    )
    cases = [c1, c2, c3, c4]
    return {
        "description": "Envelopes sealed with envelope.seal_from_parts from fixed inputs: every "
        "intermediate value and the canonical envelope, then envelopes that must fail.",
        "encoding": ENCODING_NOTE,
        "limits": {
            "max_envelope_bytes": envelope.MAX_ENVELOPE_BYTES,
            "max_recipients": envelope.MAX_RECIPIENTS,
        },
        "cases": cases,
        "reject": envelope_rejects(c1, c3, e3),
    }


def envelope_rejects(c1: dict[str, Any], c3: dict[str, Any], e3: envelope.Envelope) -> list[Any]:
    """Each case: the envelope text, who checks it (station + prekey) and the first check that
    must fail: `parse` (parse_envelope), `verify` (verify_signature) or `open` (open_envelope)."""
    doc = json.loads(c3["outputs"]["envelope"])
    out: list[dict[str, Any]] = []

    def add(desc: str, text: str, stage: str, code: str, me: Station = BRAVO) -> None:
        out.append(
            {
                "desc": desc,
                "envelope": text,
                "sender": ALPHA.id,
                "recipient": me.id,
                "recipient_prekey_secret_hex": hx(me.prekey.secret),
                "stage": stage,
                "error": code,
            }
        )

    add("ct tampered (one bit), signature not renewed", canonical(
        {**doc, "ct": _flip(doc["ct"])}).decode(), "verify", "bad_signature")  # fmt: skip
    add("signature tampered (one bit)", canonical(
        {**doc, "sig": _flip(doc["sig"])}).decode(), "verify", "bad_signature")  # fmt: skip
    add("signed by another station's key", _resign(doc, CHARLIE), "verify", "bad_signature")
    add("ct tampered (one bit) and re-signed by the sender",
        _resign({**doc, "ct": _flip(doc["ct"], 5)}, ALPHA), "open", "decrypt_failed")  # fmt: skip
    add("wrong commitment, signed by the sender", _resign(
        {**doc, "commit": b64e(fixed(0x99))}, ALPHA), "open", "commitment_mismatch")  # fmt: skip
    add("seq changed to 3 and re-signed: the AAD no longer matches", _resign(
        {**doc, "seq": 3}, ALPHA), "open", "decrypt_failed")  # fmt: skip
    add("wrap tampered and re-signed", _resign({**doc, "keys": [
        {**doc["keys"][0], "wrap": _flip(doc["keys"][0]["wrap"], 40)}]}, ALPHA),
        "open", "decrypt_failed")  # fmt: skip
    add("ephemeral key replaced by the all-zero (low-order) point and re-signed",
        _resign({**doc, "eph": b64e(bytes(32))}, ALPHA), "open", "decrypt_failed")  # fmt: skip
    add("opened by a station that is not a recipient", c3["outputs"]["envelope"], "open",
        "not_a_recipient", me=CHARLIE)  # fmt: skip
    # A body that decrypts but is not {"body", "salt"}: same content key, so the wrap still opens.
    content_key = fixed(0x32)
    aad = canonical({"ch": doc["ch"], "from": doc["from"], "seq": doc["seq"]})
    bad_pt = canonical({"body": {"type": "text", "text": "x" * 32, "lang": "en"}})
    bad_ct = crypto.aead_encrypt(content_key, e3.nonce, bad_pt, aad)
    add("plaintext lacks its salt (re-encrypted and re-signed)",
        _resign({**doc, "ct": b64e(bad_ct)}, ALPHA), "open", "bad_body")  # fmt: skip
    # Shape errors found by parse_envelope (no signature needed to find them).
    add("not canonical: a space after a colon",
        c3["outputs"]["envelope"].replace('"v":1', '"v": 1'), "parse", "malformed")  # fmt: skip
    add("unknown field", _resign({**doc, "x": 1}, ALPHA), "parse", "malformed")
    add("missing field", canonical({k: v for k, v in doc.items() if k != "seen"}).decode(),
        "parse", "malformed")  # fmt: skip
    add("version 2", _resign({**doc, "v": 2}, ALPHA), "parse", "malformed")
    add("seq 2 with a zero prev", _resign({**doc, "prev": b64e(bytes(32))}, ALPHA), "parse",
        "malformed")  # fmt: skip
    d1 = json.loads(c1["outputs"]["envelope"])
    add("seq 1 with a non-zero prev", _resign({**d1, "prev": b64e(fixed(1))}, ALPHA), "parse",
        "malformed")  # fmt: skip
    add("seq 0", _resign({**d1, "seq": 0}, ALPHA), "parse", "malformed")
    add("padded base64url in nonce", canonical({**doc, "nonce": doc["nonce"] + "="}).decode(),
        "parse", "malformed")  # fmt: skip
    add("nonce of 12 bytes", _resign({**doc, "nonce": b64e(fixed(0, 12))}, ALPHA), "parse",
        "malformed")  # fmt: skip
    add("unknown precedence", _resign({**doc, "prec": "URGENT"}, ALPHA), "parse", "malformed")
    add("the sender among the recipients", _resign({**doc, "keys": [
        *doc["keys"], {"to": ALPHA.id, "kid": ALPHA.record.kid, "wrap": doc["keys"][0]["wrap"]}
    ]}, ALPHA), "parse", "malformed")  # fmt: skip
    two = sorted(
        [
            doc["keys"][0],
            {"to": CHARLIE.id, "kid": CHARLIE.record.kid, "wrap": doc["keys"][0]["wrap"]},
        ],
        key=lambda k: k["to"],
        reverse=True,
    )
    add("recipients not sorted", _resign({**doc, "keys": two}, ALPHA), "parse", "malformed")
    add("the sender in its own seen references", _resign({**doc, "seen": {
        **doc["seen"], ALPHA.id: {"seq": 1, "hash": b64e(bytes(32))}}}, ALPHA), "parse",
        "malformed")  # fmt: skip
    short = envelope.MIN_CT_BYTES
    ref_b = doc["seen"][BRAVO.id]
    add("an empty ct (shorter than the 16-byte tag plus the shortest plaintext)",
        _resign({**doc, "ct": ""}, ALPHA), "parse", "malformed")  # fmt: skip
    add("a ct of 79 bytes, one short of the minimum",
        _resign({**doc, "ct": b64e(fixed(0, short - 1))}, ALPHA), "parse", "malformed")  # fmt: skip
    add("a ct of exactly the minimum 80 bytes that does not decrypt",
        _resign({**doc, "ct": b64e(fixed(0, short))}, ALPHA), "open", "decrypt_failed")  # fmt: skip
    add("a seen seq of 0", _resign({**doc, "seen": {BRAVO.id: {**ref_b, "seq": 0}}}, ALPHA),
        "parse", "malformed")  # fmt: skip
    add("a seen seq as text", _resign({**doc, "seen": {BRAVO.id: {**ref_b, "seq": "1"}}}, ALPHA),
        "parse", "malformed")  # fmt: skip
    add("a seen key that is not a station id", _resign({**doc, "seen": {"bravo": ref_b}}, ALPHA),
        "parse", "malformed")  # fmt: skip
    add("a float timestamp", c3["outputs"]["envelope"].replace(
        f'"ts":{doc["ts"]}', f'"ts":{doc["ts"]}.5'), "parse", "malformed")  # fmt: skip
    for case in out:
        _check_reject(case)
    return out


def _check_reject(case: dict[str, Any]) -> None:
    try:
        env = envelope.parse_envelope(case["envelope"].encode())
        assert case["stage"] != "parse", case["desc"]
        envelope.verify_signature(env, BY_ID[case["sender"]].key.public)
        assert case["stage"] != "verify", case["desc"]
        envelope.open_envelope(
            env,
            case["recipient"],
            crypto.KemKey(bytes.fromhex(case["recipient_prekey_secret_hex"])),
        )
    except RejectedInput as exc:
        assert str(exc.code) == case["error"], (case["desc"], exc)
        return
    raise AssertionError(f"accepted: {case['desc']}")


# --- receipt.json -------------------------------------------------------------------------------


def receipt_vectors(envs: dict[str, Any]) -> dict[str, Any]:
    e1, e2, e3 = (envs[f"envelope-{i}"] for i in (1, 2, 3))
    h = {k: bytes.fromhex(v["outputs"]["envelope_hash_hex"]) for k, v in envs.items()}
    cases: list[dict[str, Any]] = []
    # Alpha's chain on CHANNEL_AB is envelope-1, envelope-3: the receiver's root over it.
    alpha_root = merkle.root([merkle.leaf_hash(h["envelope-1"]), merkle.leaf_hash(h["envelope-3"])])
    for case_id, desc, by, of, seq, hh, head, ts, root in [
        ("receipt-1", "Bravo holds Alpha's chain up to seq 2 (envelope-3); Bravo's own chain "
         "is at seq 1 (envelope-2)", BRAVO, ALPHA, e3["inputs"]["seq"], h["envelope-3"],
         envelope.Ref(1, h["envelope-2"]), T0 + 2 * MINUTE + 1500, None),
        ("receipt-2", "Alpha holds Bravo's chain up to seq 1 (envelope-2); Alpha has sent "
         "nothing yet on that channel so there is no head", ALPHA, BRAVO, e2["inputs"]["seq"],
         h["envelope-2"], None, T0 + MINUTE + 700, None),
        ("receipt-3", "receipt-1 carrying Bravo's checkpoint of Alpha's chain: the RFC 9162 "
         "root of envelope-1 and envelope-3 as Bravo holds them", BRAVO, ALPHA,
         e3["inputs"]["seq"], h["envelope-3"], envelope.Ref(1, h["envelope-2"]),
         T0 + 2 * MINUTE + 1500, alpha_root),
    ]:  # fmt: skip
        r = receipt.sign_receipt(
            by.key, by.id, CHANNEL_AB, of.id, envelope.Ref(seq, hh), head, ts, root
        )
        cases.append(
            {
                "id": case_id,
                "desc": desc,
                "inputs": {
                    "by": by.id,
                    "by_seed_hex": hx(by.key.seed),
                    "channel": CHANNEL_AB,
                    "of": of.id,
                    "seq": seq,
                    "hash_hex": hx(hh),
                    "head": None if head is None else {"seq": head.seq, "hash_hex": hx(head.hash)},
                    "ts": ts,
                    "root_hex": None if root is None else hx(root),
                },
                "outputs": {
                    "label_hex": hx(receipt.RECEIPT_LABEL),
                    "signing_input": canonical(r.body()).decode("utf-8"),
                    "sig_hex": hx(r.sig),
                    "receipt": r.encode().decode("utf-8"),
                },
            }
        )
    del e1
    good = json.loads(cases[0]["outputs"]["receipt"])
    reject = []
    for desc, value, code in [
        ("seq raised after signing", {**good, "seq": good["seq"] + 1}, "bad_signature"),
        ("signed by the other station", {**good, "by": ALPHA.id}, "bad_signature"),
        ("missing ts", {k: v for k, v in good.items() if k != "ts"}, "malformed"),
        ("unknown field", {**good, "extra": True}, "malformed"),
        ("padded hash", {**good, "hash": good["hash"] + "="}, "malformed"),
        ("seq 0", {**good, "seq": 0}, "malformed"),
        ("head without hash", {**good, "head": {"seq": 1}}, "malformed"),
        ("root added after signing", {**good, "root": b64e(alpha_root)}, "bad_signature"),
        ("root of 31 bytes", {**good, "root": b64e(alpha_root[:31])}, "malformed"),
    ]:
        try:
            r = receipt.parse_receipt(value)
            receipt.verify_receipt(r, BRAVO.key.public)
        except RejectedInput as exc:
            assert str(exc.code) == code, (desc, exc)
        else:
            raise AssertionError(desc)
        reject.append(
            {
                "desc": desc,
                "receipt": canonical(value).decode("utf-8"),
                "verify_with_public_hex": hx(BRAVO.key.public),
                "error": code,
            }
        )
    return {
        "description": "Receipts signed with receipt.sign_receipt from fixed keys, over the "
        "envelopes of envelope.json; then receipts that must fail parse_receipt or "
        "verify_receipt (checked with Bravo's public key).",
        "encoding": ENCODING_NOTE,
        "limits": {"max_receipt_bytes": receipt.MAX_RECEIPT_BYTES},
        "cases": cases,
        "reject": reject,
    }


# --- request.json -------------------------------------------------------------------------------


def request_vectors(envs: dict[str, Any]) -> dict[str, Any]:
    batch = (envs["envelope-1"]["outputs"]["envelope"] + "\n" +
             envs["envelope-3"]["outputs"]["envelope"]).encode()  # fmt: skip
    cases: list[dict[str, Any]] = []
    for case_id, desc, st, method, path, body, ts in [
        ("request-push", "Alpha pushes a batch of two envelopes (NDJSON) to Bravo", ALPHA, "POST",
         "/peer/v1/envelopes", batch, T0 + 2 * MINUTE + 250),
        ("request-ping", "Bravo pings Alpha (empty body)", BRAVO, "GET", "/peer/v1/ping", b"",
         T0 + 5 * MINUTE),
    ]:  # fmt: skip
        header = request.sign_request(st.key, st.id, method, path, body, ts)
        signed = canonical(
            {"method": method, "path": path, "ts": ts, "body": b64e(crypto.sha256(body))}
        )
        cases.append(
            {
                "id": case_id,
                "desc": desc,
                "inputs": {
                    "station": st.id,
                    "seed_hex": hx(st.key.seed),
                    "method": method,
                    "path": path,
                    "body": body.decode("utf-8"),
                    "ts": ts,
                },
                "outputs": {
                    "body_bytes": len(body),
                    "body_sha256_b64u": b64e(crypto.sha256(body)),
                    "label_hex": hx(request.REQUEST_LABEL),
                    "signing_input": signed.decode("utf-8"),
                    "header": header,
                },
            }
        )
    push = cases[0]
    header = push["outputs"]["header"]
    ts = push["inputs"]["ts"]
    sid, _, sig = header.split(".")
    verify = [
        ("at the signing time", header, "POST", "/peer/v1/envelopes", batch, ts, None),
        ("method compared in upper case", header, "post", "/peer/v1/envelopes", batch, ts, None),
        ("receiver's clock exactly skew ahead", header, "POST", "/peer/v1/envelopes", batch,
         ts + DEFAULT_SKEW_MS, None),
        ("receiver's clock exactly skew behind", header, "POST", "/peer/v1/envelopes", batch,
         ts - DEFAULT_SKEW_MS, None),
        ("receiver's clock 1 ms beyond the window (replay later)", header, "POST",
         "/peer/v1/envelopes", batch, ts + DEFAULT_SKEW_MS + 1, "clock_skew"),
        ("request 1 ms beyond the window in the future", header, "POST", "/peer/v1/envelopes",
         batch, ts - DEFAULT_SKEW_MS - 1, "clock_skew"),
        ("another path", header, "POST", "/peer/v1/ping", batch, ts, "bad_signature"),
        ("another body", header, "POST", "/peer/v1/envelopes", batch[:-1], ts, "bad_signature"),
        ("another time in the header", f"{sid}.{ts + 1}.{sig}", "POST", "/peer/v1/envelopes",
         batch, ts, "bad_signature"),
        ("missing header", "", "POST", "/peer/v1/envelopes", batch, ts, "unknown_sender"),
        ("two parts", f"{sid}.{ts}", "POST", "/peer/v1/envelopes", batch, ts, "malformed"),
        ("padded signature", header + "=", "POST", "/peer/v1/envelopes", batch, ts, "malformed"),
        ("not a station id", f"xx{sid[2:]}.{ts}.{sig}", "POST", "/peer/v1/envelopes", batch, ts,
         "malformed"),
        ("time of 17 digits", f"{sid}.{ts:017d}.{sig}", "POST", "/peer/v1/envelopes", batch, ts,
         "malformed"),
        ("time with a leading zero", f"{sid}.0{ts}.{sig}", "POST", "/peer/v1/envelopes", batch,
         ts, "malformed"),
        ("time with a plus sign", f"{sid}.+{ts}.{sig}", "POST", "/peer/v1/envelopes", batch, ts,
         "malformed"),
        ("the body with a trailing newline", header, "POST", "/peer/v1/envelopes", batch + b"\n",
         ts, "bad_signature"),
    ]  # fmt: skip
    checks = []
    for desc, hdr, method, path, body, now, code in verify:
        try:
            auth = request.parse_auth(hdr)
            request.verify_request(auth, ALPHA.key.public, method, path, body, now)
        except RejectedInput as exc:
            assert str(exc.code) == code, (desc, exc)
        else:
            assert code is None, desc
        checks.append(
            {
                "desc": desc,
                "header": hdr,
                "public_hex": hx(ALPHA.key.public),
                "method": method,
                "path": path,
                "body": body.decode("utf-8"),
                "now": now,
                "skew_ms": DEFAULT_SKEW_MS,
                "error": code,
            }
        )
    return {
        "description": "Parley-Auth request headers signed with request.sign_request from fixed "
        "keys, then verify_request checks at given receiver clocks (error null = accepted).",
        "encoding": ENCODING_NOTE,
        "header": request.HEADER,
        "cases": cases,
        "verify": checks,
    }


# --- checkpoint.json ----------------------------------------------------------------------------


def _seal_plain(sender: Station, to: Station, seq: int, prev: bytes, seen: dict[str, envelope.Ref],
                ts: int, body: dict[str, Any]) -> envelope.Envelope:  # fmt: skip
    """One more envelope of a chain, from fixed inputs derived from its seq."""
    k = seq + (0x00 if sender is ALPHA else 0x40)
    return envelope.seal_from_parts(
        body,
        identity=sender.key,
        sender=sender.id,
        channel=CHANNEL_AB,
        seq=seq,
        prev=prev,
        seen=seen,
        recipients=[to.recipient],
        now_ms=ts,
        prec="ROUTINE",
        salt=fixed(0x11 + k),
        content_key=fixed(0x31 + k),
        nonce=fixed(0x51 + k, 24),
        ephemeral=crypto.KemKey(fixed(0x71 + k)),
    )


def _merkle_cases(hashes: list[bytes]) -> dict[str, Any]:
    tree = leaves(hashes)
    return {
        "id": "checkpoint-chain",
        "desc": "Alpha's chain on the Alpha-Bravo channel, seq 1..7 (envelope-1, envelope-3, "
        "then five more): the Merkle leaves are the envelope hashes",
        "envelope_hashes_hex": [hx(h) for h in hashes],
        "leaf_hashes_hex": [hx(h) for h in tree],
        "roots_by_size_hex": [hx(merkle.root(tree[:n])) for n in range(1, len(tree) + 1)],
        "inclusion": [
            {"index": i, "size": n,
             "proof_hex": [hx(p) for p in merkle.inclusion_proof(i, tree[:n])]}
            for i, n in [(0, 1), (1, 2), (1, 7), (4, 7), (6, 7), (3, 4)]
        ],
        "consistency": [
            {"old_size": m, "new_size": n,
             "proof_hex": [hx(p) for p in merkle.consistency_proof(m, tree[:n])]}
            for m, n in [(1, 7), (3, 7), (4, 7), (6, 7), (2, 5), (7, 7)]
        ],
    }  # fmt: skip


def checkpoint_vectors(envs: dict[str, Any]) -> dict[str, Any]:
    e1, e2, e3 = (
        envelope.parse_envelope(envs[f"envelope-{i}"]["outputs"]["envelope"].encode())
        for i in (1, 2, 3)
    )
    bodies: dict[bytes, tuple[bytes, dict[str, Any]]] = {
        e.hash: (fixed(0x10 + i), envs[f"envelope-{n}"]["inputs"]["body"])
        for i, (n, e) in enumerate([(1, e1), (2, e2), (3, e3)])
    }
    chain = [e1, e3]
    seen_b = {BRAVO.id: e2.ref}

    def add(body: dict[str, Any]) -> envelope.Envelope:
        seq = len(chain) + 1
        env = _seal_plain(ALPHA, BRAVO, seq, chain[-1].hash, seen_b, T0 + (seq + 1) * MINUTE, body)
        bodies[env.hash] = (fixed(0x11 + seq), body)
        chain.append(env)
        return env

    add(channels.text_body("Alpha 3: the launch window is 09:00-09:30 UTC.", "en"))
    add(channels.text_body("Alpha 4: 발사 구역은 통보한 대로입니다.", "ko"))
    cp0_body = checkpoint_body(ALPHA.key, CHANNEL_AB, [e.hash for e in chain])
    add(cp0_body)
    add(channels.text_body("Alpha 6: impact area unchanged.", "en"))
    add(channels.text_body("Alpha 7: we will confirm after the launch.", "en"))
    hashes = [e.hash for e in chain]
    cp1_body = checkpoint_body(ALPHA.key, CHANNEL_AB, hashes, prev=4)
    cp1_env = add(cp1_body)
    cp1 = check_checkpoint_body(cp1_body)
    stamp = (T0 + 12 * MINUTE) // 1000
    cosig_body, cosig_line = cosign_body(cp1, BRAVO.key, stamp)
    b2 = _seal_plain(BRAVO, ALPHA, 2, e2.hash, {ALPHA.id: cp1_env.ref}, T0 + 12 * MINUTE,
                     cosig_body)  # fmt: skip
    bodies[b2.hash] = (fixed(0x11 + 2 + 0x40), cosig_body)

    signer = Member(ALPHA.id, ALPHA.name, ALPHA.key.public)
    text = cp1.text
    checkpoints = {
        "id": "checkpoint-1",
        "desc": "Alpha checkpoints its chain 1..7 (sent as its seq 8), with a consistency proof "
        "from its previous checkpoint of size 4 (sent as its seq 5)",
        "inputs": {
            "signer_seed_hex": hx(ALPHA.key.seed),
            "channel": CHANNEL_AB,
            "sender": ALPHA.id,
            "size": 7,
            "prev": 4,
        },
        "outputs": {
            "origin": origin(CHANNEL_AB, ALPHA.id),
            "root_hex": hx(cp1.root),
            "note_text": text,
            "key_name": ALPHA.id,
            "key_id_hex": hx(signer.signer.key_id),
            "vkey": signer.signer.vkey(),
            "signature_hex": hx(cp1.signatures[0].signature),
            "signed_note": cp1_body["note"],
            "body": cp1_body,
        },
    }
    cosigned = note.parse_note(cosig_body["note"])
    cosigner = Member(BRAVO.id, BRAVO.name, BRAVO.key.public)
    cosignature = {
        "id": "cosignature-1",
        "desc": "Bravo, having checked checkpoint-1 against its own copy of Alpha's chain, "
        "countersigns it (C2SP tlog-cosignature/v1) and sends this body as its seq 2",
        "inputs": {
            "cosigner_seed_hex": hx(BRAVO.key.seed),
            "timestamp": stamp,
            "checkpoint": "checkpoint-1",
        },
        "outputs": {
            "key_name": BRAVO.id,
            "key_id_hex": hx(cosigner.cosigner.key_id),
            "vkey": cosigner.cosigner.vkey(),
            "signed_message": note.cosignature_message(text, stamp).decode("utf-8"),
            "signature_hex": hx(cosig_line.signature),
            "line": cosig_line.line().rstrip("\n"),
            "cosigned_note": cosig_body["note"],
            "body": cosig_body,
        },
    }
    assert cosigned.signatures[1] == cosig_line

    # A transcript of the whole channel as Bravo holds it, exported and signed by Bravo.
    members = [signer, cosigner]
    writer = TranscriptWriter(CHANNEL_AB, members, BRAVO.id, T0 + 20 * MINUTE)
    lines = writer.start()
    order = [e1, e2, *chain[1:], b2]
    for e in order:
        salt, body = bodies[e.hash]
        lines.append(writer.envelope(e.raw, salt, canonical(body)))
    lines.append(writer.checkpoint(ALPHA.id, 7, cosig_body["note"]))
    lines.append(writer.finish(BRAVO.key))
    # Checked as an auditor who compared both members' fingerprints out of band would.
    trusted = trust.Anchors.of_keys([(m.identity, m.name) for m in members])
    report = verify_transcript(lines, trust=trusted)
    assert report.ok and all(c.passed for c in report.checks.values()), report.to_json()
    file_vector = {
        "id": "transcript-1",
        "desc": "The Alpha-Bravo channel as Bravo holds it (Alpha seq 1..8, Bravo seq 1..2) "
        "with plaintext, checkpoint-1 and cosignature-1, exported by Bravo",
        "exporter_seed_hex": hx(BRAVO.key.seed),
        "label_hex": hx(TRANSCRIPT_LABEL),
        "signed_digest_hex": hx(hashlib.sha256(b"".join(lines[:-1])).digest()),
        "file": b"".join(lines).decode("utf-8"),
        "checks": {c.name: c.passed for c in report.checks.values()},
        # passed and failed items per check, counted as docs/protocol.md §17.3 says (anchored)
        "counts": {c.name: [c.passed, c.failed] for c in report.checks.values()},
    }
    salt3, body3 = bodies[e3.hash]
    proof = make_proof(
        channel=CHANNEL_AB, sender=signer, cosigners=[cosigner], envelope_raw=e3.raw,
        salt=salt3, body_text=canonical(body3).decode("utf-8"),
        signed_note=cosig_body["note"], chain_hashes=hashes, seq=2,
    )  # fmt: skip
    assert check_proof(proof, trust=trusted).ok
    proof_vector = {
        "id": "proof-1",
        "desc": "Bravo proves to a third party what Alpha said at seq 2 (envelope-3): the "
        "message, its envelope, and an inclusion proof against checkpoint-1 as Bravo cosigned it",
        "proof": proof,
    }

    rejects = []
    for desc, change in [
        ("size differs from the note", {"size": 8}),
        ("root differs from the note", {"root": b64e(bytes(32))}),
        ("prev not below size", {"prev": 7}),
        ("consistency proof one hash short", {"proof": cp1_body["proof"][:-1]}),
        ("a first checkpoint with a proof", {"prev": 0}),
        ("unknown field", {"extra": 1}),
        ("another origin", {"note": cp1_body["note"].replace("parley/chain/v1/", "example.org/")}),
    ]:  # fmt: skip
        bad = {**cp1_body, **change}
        try:
            check_checkpoint_body(bad)
        except RejectedInput as exc:
            assert str(exc.code) == "bad_body", desc
        else:
            raise AssertionError(desc)
        rejects.append({"desc": desc, "body": bad, "error": "bad_body"})
    return {
        "description": "Checkpoints over one sender's chain (RFC 9162 trees whose leaves are "
        "envelope hashes; C2SP signed notes and cosignature/v1), a transcript file and a proof "
        "of one message, all from the fixed keys and envelopes of envelope.json.",
        "encoding": ENCODING_NOTE,
        "chain": _merkle_cases(hashes),
        "checkpoints": [checkpoints],
        "cosignatures": [cosignature],
        "transcripts": [file_vector],
        "proofs": [proof_vector],
        "reject": rejects,
    }


# --- handover.json ------------------------------------------------------------------------------


def handover_vectors() -> dict[str, Any]:
    """Alpha hands its identity over to a new key (§3.6); then what a receiver refuses."""
    new = crypto.SigningKey(fixed(0x60))
    newer = crypto.SigningKey(fixed(0x70))
    created, until = T0 + DAY, T0 + 8 * DAY
    h1 = handover.make_handover(ALPHA.key, new, ALPHA.id, 1, created, until)
    h2 = handover.make_handover(new, newer, ALPHA.id, 2, created + DAY, until + DAY, h1.hash)
    cases = []
    for case_id, desc, h, old, nk in [
        ("handover-1", "Alpha's first hand-over, from its first key to a new one", h1, ALPHA.key,
         new),
        ("handover-2", "Alpha's second hand-over, naming the hash of the first", h2, new, newer),
    ]:  # fmt: skip
        cases.append(
            {
                "id": case_id,
                "desc": desc,
                "inputs": {
                    "station": ALPHA.id,
                    "old_seed_hex": hx(old.seed),
                    "new_seed_hex": hx(nk.seed),
                    "seq": h.seq,
                    "created": h.created,
                    "old_until": h.old_until,
                    "prev_b64u": b64e(h.prev),
                },
                "outputs": {
                    "label_hex": hx(handover.HANDOVER_LABEL),
                    "signing_input": canonical(h.body()).decode("utf-8"),
                    "sig_old_b64u": b64e(h.sig_old),
                    "sig_new_b64u": b64e(h.sig_new),
                    "record": h.raw.decode("utf-8"),
                    "hash_b64u": b64e(h.hash),
                },
            }
        )
    mallory = CHARLIE.key  # an admitted peer of Bravo's, trying to hand Alpha over to itself
    forged = handover.make_handover(mallory, new, ALPHA.id, 1, created, until)
    only_old = dict(h1.to_json(), sig_new=b64e(mallory.sign(handover.HANDOVER_LABEL,
                                                             canonical(h1.body()))))  # fmt: skip
    tampered = dict(h1.to_json(), old_until=until + DAY)
    rejects: list[tuple[str, Any, list[bytes], str | None]] = [
        ("valid: held key is Alpha's first key", h1.to_json(), [ALPHA.key.public], None),
        ("valid: the second after the first", h2.to_json(), [ALPHA.key.public, new.public], None),
        ("forged: another station's key hands Alpha over (wrong old key)", forged.to_json(),
         [ALPHA.key.public], "bad_handover"),
        ("wrong old key: the receiver holds another key for Alpha", h1.to_json(),
         [BRAVO.key.public], "bad_handover"),
        ("forged: no proof of possession of the new key", only_old, [ALPHA.key.public],
         "bad_handover"),
        ("tampered: old_until changed after signing", tampered, [ALPHA.key.public],
         "bad_handover"),
        ("out of order: the second without the first", h2.to_json(), [new.public],
         "bad_handover"),
        ("the new key is the old key", handover.Handover(ALPHA.id, 1, ALPHA.key.public,
         ALPHA.key.public, created, until, handover.ZERO).to_json(), [ALPHA.key.public],
         "bad_handover"),
    ]  # fmt: skip
    checks = []
    for desc, record, held, code in rejects:
        epochs = [handover.Epoch(held[0], 0, None)]
        if len(held) > 1:
            epochs = handover.follow(held[0], ALPHA.id, [h1], check_id=False)
        try:
            handover.verify_next(epochs, ALPHA.id, record)
        except RejectedInput as exc:
            assert str(exc.code) == code, (desc, exc)
        else:
            assert code is None, desc
        checks.append(
            {
                "desc": desc,
                "station": ALPHA.id,
                "held_keys_hex": [hx(k) for k in held],
                "record": canonical(record).decode("utf-8"),
                "error": code,
            }
        )
    # Alpha's invitation after its first hand-over: signed by the new key, its prekey record
    # signed by the new key and naming Alpha's id, the hand-over carried (§3.4, §3.6).
    pk = identity.sign_prekey(new, ALPHA.prekey.public, created, created + 7 * DAY, ALPHA.id)
    inv = identity.make_invitation(
        new, ALPHA.name, ALPHA.lang, [pk], [ALPHA.url], created + 1000, (h1,)
    )
    invitations = [
        {
            "id": "invitation-alpha-rotated",
            "desc": "Alpha's invitation after handover-1, carrying it",
            "identity_seed_hex": hx(new.seed),
            "prekey_record": canonical(pk.to_json()).decode("utf-8"),
            "handovers": ["handover-1"],
            "created": inv.created,
            "signing_input": canonical(inv.body()).decode("utf-8"),
            "invitation": inv.encode(),
            "station": ALPHA.id,
        }
    ]
    # the same without its hand-over: the id no longer derives from the key that signs
    bare = dict(inv.body(), sig=b64e(inv.sig))
    del bare["handovers"]
    wrong_end = identity.Invitation(
        ALPHA.name, ALPHA.lang, newer.public, (identity.sign_prekey(
            newer, ALPHA.prekey.public, created, created + 7 * DAY, ALPHA.id),),
        (), created + 1000, b"", (h1,),
    )  # fmt: skip
    wrong_end_doc = dict(
        wrong_end.body(),
        sig=b64e(newer.sign(identity.INVITE_LABEL, canonical(wrong_end.body()))),
    )
    invitation_reject = []
    for desc, doc in [
        ("the hand-over left out: the station id does not derive from the signing key", bare),
        ("the hand-overs end at another key than the one that signs", wrong_end_doc),
        ("an empty handovers list", dict(bare, handovers=[])),
    ]:
        text = identity.INVITE_PREFIX + b64e(canonical(doc))
        try:
            identity.parse_invitation(text)
        except RejectedInput as exc:
            assert str(exc.code) == "bad_invitation", (desc, exc)
        else:
            raise AssertionError(desc)
        invitation_reject.append({"desc": desc, "invitation": text, "error": "bad_invitation"})
    return {
        "description": "Identity hand-overs (docs/protocol.md section 3.6) signed by the old and "
        "the new key from fixed seeds; then verify_next checks a record against the keys a "
        "receiver holds for that station, in order (error null = accepted); then an invitation "
        "of the rotated station carrying its hand-over (section 3.4), and ones refused.",
        "encoding": ENCODING_NOTE,
        "cases": cases,
        "verify": checks,
        "invitations": invitations,
        "invitation_reject": invitation_reject,
    }


# --- driver -------------------------------------------------------------------------------------


def build() -> dict[str, str]:
    """file name -> exact file text."""
    env = envelope_vectors()
    by_id = {c["id"]: c for c in env["cases"]}
    docs = {
        "canonical.json": canonical_vectors(),
        "identity.json": identity_vectors(),
        "envelope.json": env,
        "receipt.json": receipt_vectors(by_id),
        "request.json": request_vectors(by_id),
        "checkpoint.json": checkpoint_vectors(by_id),
        "handover.json": handover_vectors(),
    }
    return {name: json.dumps(d, indent=1, ensure_ascii=False) + "\n" for name, d in docs.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args(argv)
    files = build()
    if args.check:
        stale = [n for n, t in files.items() if not (OUT / n).is_file()
                 or (OUT / n).read_text("utf-8") != t]  # fmt: skip
        for n in stale:
            print(f"stale: vectors/protocol/{n}", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text, "utf-8")
        print(f"wrote vectors/protocol/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
