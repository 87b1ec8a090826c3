"""Protocol conformance vectors (vectors/protocol/*.json) and docs/protocol.md's worked examples.

Three kinds of check:
- the implementation reproduces every stored output byte for byte, and refuses every negative
  case with the stored error code;
- an independent re-derivation from the primitives (hashlib, PyNaCl, rfc8785), written from
  docs/protocol.md and not from parley.protocol, reproduces the same bytes, so the document says
  enough for a second implementation;
- every fenced block in docs/protocol.md tagged `vector:<id>[:<field path>]` equals the stored
  vector, and tools/gen_vectors.py regenerates the files exactly.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import nacl.signing
import pytest
import rfc8785

from parley.domain import records
from parley.errors import Code, RejectedInput
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
    transcript,
)
from parley.protocol.envelope import RecipientKey, Ref
from parley.protocol.trust import Anchors

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "vectors" / "protocol"
DOC = ROOT / "docs" / "protocol.md"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text("utf-8"))
    return data


CANON = _load("canonical.json")
IDENT = _load("identity.json")
ENV = _load("envelope.json")
RCPT = _load("receipt.json")
REQ = _load("request.json")
CP = _load("checkpoint.json")
HO = _load("handover.json")
ALL = {
    "canonical.json": CANON,
    "identity.json": IDENT,
    "envelope.json": ENV,
    "receipt.json": RCPT,
    "request.json": REQ,
    "checkpoint.json": CP,
    "handover.json": HO,
}
SEEDS = {s["station_id"]: bytes.fromhex(s["seed_hex"]) for s in IDENT["stations"]}
PUBLICS = {s["station_id"]: bytes.fromhex(s["public_hex"]) for s in IDENT["stations"]}


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c.get("id") or c["desc"] for c in cases]


def _code(exc: pytest.ExceptionInfo[RejectedInput]) -> str:
    return str(exc.value.code)


# --- the generator ------------------------------------------------------------------------------


def test_generator_reproduces_the_files_exactly() -> None:
    spec = importlib.util.spec_from_file_location("gen_vectors", ROOT / "tools" / "gen_vectors.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    files = gen.build()
    assert sorted(files) == sorted(ALL)
    for name, text in files.items():
        assert (VECTORS / name).read_text("utf-8") == text, f"{name} is stale: run the generator"


def test_every_error_code_in_the_vectors_exists() -> None:
    codes = {str(c) for c in Code}

    def walk(v: object) -> None:
        if isinstance(v, dict):
            if isinstance(v.get("error"), str):
                assert v["error"] in codes
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(ALL)


# --- canonical.json -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CANON["encode"], ids=_ids(CANON["encode"]))
def test_canonical_encoding(case: dict[str, Any]) -> None:
    value = json.loads(case["input"])
    out = encoding.canonical(value)
    assert out == case["canonical"].encode("utf-8") == bytes.fromhex(case["canonical_hex"])
    assert rfc8785.dumps(value) == out  # the reference encoder agrees
    assert encoding.parse(out) == value  # and the canonical form is accepted as is


@pytest.mark.parametrize("case", CANON["reject"], ids=_ids(CANON["reject"]))
def test_canonical_parse_rejects(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["input_hex"])
    if "input" in case:
        assert case["input"].encode("utf-8") == data
    with pytest.raises(RejectedInput) as exc:
        encoding.parse(data)
    assert _code(exc) == case["error"]


def test_canonical_limits() -> None:
    limits = CANON["limits"]
    assert limits["max_document_bytes"] == encoding.MAX_DOCUMENT_BYTES
    assert limits["max_depth"] == encoding.MAX_DEPTH
    big = b'"' + b"a" * (limits["max_document_bytes"] - 1) + b'"'
    with pytest.raises(RejectedInput) as exc:
        encoding.parse(big)
    assert _code(exc) == "oversized"
    assert encoding.parse(big[:-2] + b'"') == "a" * (limits["max_document_bytes"] - 2)


@pytest.mark.parametrize("case", CANON["base64url"]["valid"], ids=lambda c: c["text"] or "empty")
def test_base64url_valid(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["bytes_hex"])
    assert encoding.b64d(case["text"]) == raw
    assert encoding.b64e(raw) == case["text"]


@pytest.mark.parametrize("case", CANON["base64url"]["reject"], ids=lambda c: c["text"])
def test_base64url_rejects(case: dict[str, Any]) -> None:
    with pytest.raises(RejectedInput) as exc:
        encoding.b64d(case["text"])
    assert _code(exc) == case["error"]


# --- identity.json ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", IDENT["stations"], ids=_ids(IDENT["stations"]))
def test_identity_derivations(case: dict[str, Any]) -> None:
    key = crypto.SigningKey(bytes.fromhex(case["seed_hex"]))
    assert key.public.hex() == case["public_hex"]
    assert encoding.b64e(key.public) == case["public_b64u"]
    assert identity.station_id(key.public) == case["station_id"]
    assert identity.is_station_id(case["station_id"])
    assert identity.fingerprint(key.public) == case["fingerprint"]
    assert case["fingerprint_qr"] == (
        f"parley-fp:{case['station_id']}:{case['fingerprint'].replace(' ', '')}"
    )
    # Reference, from docs/protocol.md §Identity.
    pub = bytes(nacl.signing.SigningKey(key.seed).verify_key)
    digest = hashlib.sha256(b"parley/station-id/v1" + pub).digest()[:15]
    assert "st" + base64.b32encode(digest).decode().lower() == case["station_id"]
    fp = hashlib.sha512(b"parley/fingerprint/v1" + pub).digest()
    groups = [int.from_bytes(fp[5 * i : 5 * i + 5], "big") % 100_000 for i in range(12)]
    assert " ".join(f"{g:05d}" for g in groups) == case["fingerprint"]
    assert re.fullmatch(r"(\d{5} ){11}\d{5}", case["fingerprint"])


@pytest.mark.parametrize("case", IDENT["prekeys"], ids=_ids(IDENT["prekeys"]))
def test_prekey_records(case: dict[str, Any]) -> None:
    key = crypto.SigningKey(bytes.fromhex(case["identity_seed_hex"]))
    kem = crypto.KemKey(bytes.fromhex(case["prekey_secret_hex"]))
    assert kem.public.hex() == case["prekey_public_hex"]
    rec = identity.sign_prekey(key, kem.public, case["not_before"], case["not_after"])
    assert rec.kid == case["kid"]
    assert encoding.canonical(rec.body()).decode() == case["signing_input"]
    assert rec.sig.hex() == case["sig_hex"]
    assert encoding.canonical(rec.to_json()).decode() == case["record"]
    parsed = identity.parse_prekey(json.loads(case["record"]), key.public)
    assert parsed == rec
    # Reference.
    kid = hashlib.sha256(b"parley/kid/v1" + kem.public).digest()[:9]
    assert base64.urlsafe_b64encode(kid).decode() == case["kid"]  # 9 bytes: never padded
    label = bytes.fromhex(case["label_hex"])
    assert label == b"parley/prekey/v1\x00"
    signed = nacl.signing.SigningKey(key.seed).sign(label + case["signing_input"].encode())
    assert signed.signature.hex() == case["sig_hex"]


@pytest.mark.parametrize("case", IDENT["prekey_reject"], ids=_ids(IDENT["prekey_reject"]))
def test_prekey_rejects(case: dict[str, Any]) -> None:
    with pytest.raises(RejectedInput) as exc:
        identity.parse_prekey(
            json.loads(case["record"]), bytes.fromhex(case["identity_public_hex"])
        )
    assert _code(exc) == case["error"]


@pytest.mark.parametrize("case", IDENT["invitations"], ids=_ids(IDENT["invitations"]))
def test_invitations(case: dict[str, Any]) -> None:
    key = crypto.SigningKey(bytes.fromhex(case["identity_seed_hex"]))
    records = {p["id"]: p for p in IDENT["prekeys"]}
    prekeys = [identity.parse_prekey(json.loads(records[i]["record"]), key.public)
               for i in case["prekeys"]]  # fmt: skip
    inv = identity.make_invitation(
        key, case["name"], case["lang"], prekeys, case["addresses"], case["created"]
    )
    assert encoding.canonical(inv.body()).decode() == case["signing_input"]
    assert inv.sig.hex() == case["sig_hex"]
    assert inv.encode() == case["invitation"]
    back = identity.parse_invitation(case["invitation"])
    assert back == inv
    # Reference: prefix + base64url(canonical document); the document is the body plus "sig".
    doc = json.loads(case["document"])
    assert rfc8785.dumps(doc).decode() == case["document"]
    assert case["invitation"] == "parley-invite:" + base64.urlsafe_b64encode(
        case["document"].encode()
    ).decode().rstrip("=")
    label = bytes.fromhex(case["label_hex"])
    assert label == b"parley/invite/v1\x00"
    sig = nacl.signing.SigningKey(key.seed).sign(label + case["signing_input"].encode()).signature
    assert encoding.b64e(sig) == doc["sig"]


@pytest.mark.parametrize("case", IDENT["invitation_reject"], ids=_ids(IDENT["invitation_reject"]))
def test_invitation_rejects(case: dict[str, Any]) -> None:
    with pytest.raises(RejectedInput) as exc:
        identity.parse_invitation(case["invitation"])
    assert _code(exc) == case["error"]


@pytest.mark.parametrize("case", IDENT["invitation_current"], ids=_ids(IDENT["invitation_current"]))
def test_invitation_is_current(case: dict[str, Any]) -> None:
    text = next(i["invitation"] for i in IDENT["invitations"] if i["id"] == case["invitation"])
    inv = identity.parse_invitation(text)
    if case["error"] is None:
        assert identity.check_current(inv, case["now"], case["skew_ms"])
        return
    with pytest.raises(RejectedInput) as exc:
        identity.check_current(inv, case["now"], case["skew_ms"])
    assert _code(exc) == case["error"]


def test_station_id_syntax() -> None:
    syntax = IDENT["station_id_syntax"]
    for text in syntax["valid"]:
        assert identity.is_station_id(text)
        assert re.fullmatch(r"st[a-z2-7]{24}", text)
    for text in syntax["invalid"]:
        assert not identity.is_station_id(text)
        assert not re.fullmatch(r"st[a-z2-7]{24}", text)
    for s in IDENT["stations"]:
        assert identity.is_station_id(s["station_id"])


# --- envelope.json ------------------------------------------------------------------------------


def _seen(inputs: dict[str, Any]) -> dict[str, Ref]:
    return {m: Ref(r["seq"], bytes.fromhex(r["hash_hex"])) for m, r in inputs["seen"].items()}


def _seal(inputs: dict[str, Any]) -> envelope.Envelope:
    return envelope.seal_from_parts(
        inputs["body"],
        identity=crypto.SigningKey(bytes.fromhex(inputs["sender_seed_hex"])),
        sender=inputs["sender"],
        channel=inputs["channel"],
        seq=inputs["seq"],
        prev=bytes.fromhex(inputs["prev_hex"]),
        seen=_seen(inputs),
        recipients=[
            RecipientKey(r["station"], r["kid"], bytes.fromhex(r["prekey_public_hex"]))
            for r in inputs["recipients"]
        ],
        now_ms=inputs["ts"],
        prec=inputs["prec"],
        salt=bytes.fromhex(inputs["salt_hex"]),
        content_key=bytes.fromhex(inputs["content_key_hex"]),
        nonce=bytes.fromhex(inputs["nonce_hex"]),
        ephemeral=crypto.KemKey(bytes.fromhex(inputs["ephemeral_secret_hex"])),
    )


@pytest.mark.parametrize("case", ENV["cases"], ids=_ids(ENV["cases"]))
def test_seal_from_parts_reproduces_the_envelope(case: dict[str, Any]) -> None:
    inputs, out = case["inputs"], case["outputs"]
    env = _seal(inputs)
    assert env.raw == out["envelope"].encode("utf-8")
    assert env.hash.hex() == out["envelope_hash_hex"]
    assert encoding.b64e(env.hash) == out["envelope_hash_b64u"]
    assert env.commit.hex() == out["commitment_hex"]
    assert env.eph.hex() == out["ephemeral_public_hex"]
    assert [(k.to, k.kid, k.wrap.hex()) for k in env.keys] == [
        (w["to"], w["kid"], w["wrap_hex"]) for w in out["wraps"]
    ]
    assert env.ct.hex() == out["ct_hex"]
    assert env.sig.hex() == out["signature_hex"]
    assert envelope.signing_input(env).decode("utf-8") == out["signing_input"]
    salt = bytes.fromhex(inputs["salt_hex"])
    assert envelope.commitment(salt, inputs["body"]).hex() == out["commitment_hex"]


@pytest.mark.parametrize("case", ENV["cases"], ids=_ids(ENV["cases"]))
def test_parse_verify_and_open(case: dict[str, Any]) -> None:
    inputs, out = case["inputs"], case["outputs"]
    raw = out["envelope"].encode("utf-8")
    env = envelope.parse_envelope(raw)
    assert env.raw == raw and env.hash.hex() == out["envelope_hash_hex"]
    assert (env.channel, env.sender, env.seq, env.ts, env.prec) == (
        inputs["channel"], inputs["sender"], inputs["seq"], inputs["ts"], inputs["prec"],
    )  # fmt: skip
    assert env.prev.hex() == inputs["prev_hex"]
    assert env.seen == _seen(inputs)
    envelope.verify_signature(env, PUBLICS[inputs["sender"]])
    assert env.recipients == {r["station"] for r in inputs["recipients"]}
    for r in inputs["recipients"]:
        opened = envelope.open_envelope(
            env, r["station"], crypto.KemKey(bytes.fromhex(r["prekey_secret_hex"]))
        )
        assert opened.body == inputs["body"]
        assert opened.salt.hex() == inputs["salt_hex"]


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize("case", ENV["cases"], ids=_ids(ENV["cases"]))
def test_envelope_reference_derivation(case: dict[str, Any]) -> None:
    """Seal again from the primitives, following docs/protocol.md only."""
    i, out = case["inputs"], case["outputs"]
    salt, k = bytes.fromhex(i["salt_hex"]), bytes.fromhex(i["content_key_hex"])
    nonce, eph_sk = bytes.fromhex(i["nonce_hex"]), bytes.fromhex(i["ephemeral_secret_hex"])
    body_bytes = rfc8785.dumps(i["body"])
    commit = hashlib.sha256(b"parley/commit/v1\x00" + salt + body_bytes).digest()
    assert commit.hex() == out["commitment_hex"]
    eph_pk = sodium.crypto_scalarmult_base(eph_sk)
    assert eph_pk.hex() == out["ephemeral_public_hex"]
    keys = []
    for r, w in zip(sorted(i["recipients"], key=lambda r: r["station"]), out["wraps"], strict=True):
        pk = bytes.fromhex(r["prekey_public_hex"])
        shared = sodium.crypto_scalarmult(eph_sk, pk)
        assert shared.hex() == w["shared_secret_hex"]
        wk = hashlib.blake2b(
            shared + eph_pk + pk, digest_size=32, person=b"parley-wrap-v1"
        ).digest()  # hashlib pads the personalisation with zero bytes to 16, as libsodium does
        assert wk.hex() == w["wrap_key_hex"]
        wrap = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(k, b"parley/wrap/v1", nonce, wk)
        assert wrap.hex() == w["wrap_hex"]
        keys.append({"to": r["station"], "kid": r["kid"], "wrap": _b64u(wrap)})
    plaintext = rfc8785.dumps({"body": i["body"], "salt": _b64u(salt)})
    assert plaintext.decode() == out["plaintext"]
    aad = rfc8785.dumps({"ch": i["channel"], "from": i["sender"], "seq": i["seq"]})
    assert aad.decode() == out["aad"]
    ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, nonce, k)
    assert ct.hex() == out["ct_hex"]
    doc = {
        "v": 1, "ch": i["channel"], "from": i["sender"], "seq": i["seq"],
        "prev": _b64u(bytes.fromhex(i["prev_hex"])), "ts": i["ts"], "prec": i["prec"],
        "seen": {m: {"seq": r["seq"], "hash": _b64u(bytes.fromhex(r["hash_hex"]))}
                 for m, r in i["seen"].items()},
        "commit": _b64u(commit), "eph": _b64u(eph_pk), "keys": keys, "nonce": _b64u(nonce),
        "ct": _b64u(ct),
    }  # fmt: skip
    signing_input = rfc8785.dumps(doc)
    assert signing_input.decode() == out["signing_input"]
    label = bytes.fromhex(out["label_hex"])
    assert label == b"parley/envelope/v1\x00"
    sk = nacl.signing.SigningKey(bytes.fromhex(i["sender_seed_hex"]))
    sig = sk.sign(label + signing_input).signature
    assert sig.hex() == out["signature_hex"]
    raw = rfc8785.dumps({**doc, "sig": _b64u(sig)})
    assert raw.decode() == out["envelope"]
    assert hashlib.sha256(raw).hexdigest() == out["envelope_hash_hex"]


def test_envelope_chain_links() -> None:
    by_id = {c["id"]: c for c in ENV["cases"]}
    e1, e2, e3 = by_id["envelope-1"], by_id["envelope-2"], by_id["envelope-3"]
    assert e1["inputs"]["prev_hex"] == "00" * 32 and e1["inputs"]["seq"] == 1
    assert e3["inputs"]["prev_hex"] == e1["outputs"]["envelope_hash_hex"]
    assert (
        e3["inputs"]["seen"][e2["inputs"]["sender"]]["hash_hex"]
        == (e2["outputs"]["envelope_hash_hex"])
    )
    assert e2["inputs"]["body"]["target"] == e1["outputs"]["envelope_hash_b64u"]
    assert any(len(c["inputs"]["recipients"]) >= 2 for c in ENV["cases"])


@pytest.mark.parametrize("case", ENV["reject"], ids=_ids(ENV["reject"]))
def test_envelope_rejects(case: dict[str, Any]) -> None:
    stage = case["stage"]
    with pytest.raises(RejectedInput) as exc:
        env = envelope.parse_envelope(case["envelope"].encode("utf-8"))
        assert stage != "parse", "parse_envelope accepted it"
        envelope.verify_signature(env, PUBLICS[case["sender"]])
        assert stage != "verify", "verify_signature accepted it"
        envelope.open_envelope(
            env,
            case["recipient"],
            crypto.KemKey(bytes.fromhex(case["recipient_prekey_secret_hex"])),
        )
    assert _code(exc) == case["error"]


def test_envelope_size_limit() -> None:
    assert ENV["limits"]["max_envelope_bytes"] == envelope.MAX_ENVELOPE_BYTES
    with pytest.raises(RejectedInput) as exc:
        envelope.parse_envelope(b" " * (envelope.MAX_ENVELOPE_BYTES + 1))
    assert _code(exc) == "oversized"


# --- receipt.json -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", RCPT["cases"], ids=_ids(RCPT["cases"]))
def test_receipts(case: dict[str, Any]) -> None:
    i, out = case["inputs"], case["outputs"]
    key = crypto.SigningKey(bytes.fromhex(i["by_seed_hex"]))
    head = (
        None if i["head"] is None else Ref(i["head"]["seq"], bytes.fromhex(i["head"]["hash_hex"]))
    )
    root = None if i["root_hex"] is None else bytes.fromhex(i["root_hex"])
    r = receipt.sign_receipt(
        key, i["by"], i["channel"], i["of"], Ref(i["seq"], bytes.fromhex(i["hash_hex"])), head,
        i["ts"], root,
    )  # fmt: skip
    assert encoding.canonical(r.body()).decode() == out["signing_input"]
    assert r.sig.hex() == out["sig_hex"]
    assert r.encode().decode() == out["receipt"]
    back = receipt.decode_receipt(out["receipt"].encode())
    assert back == r
    receipt.verify_receipt(back, PUBLICS[i["by"]])
    # Reference.
    label = bytes.fromhex(out["label_hex"])
    assert label == b"parley/receipt/v1\x00"
    doc = json.loads(out["receipt"])
    sig = doc.pop("sig")
    assert rfc8785.dumps(doc).decode() == out["signing_input"]
    assert (
        _b64u(nacl.signing.SigningKey(key.seed).sign(label + rfc8785.dumps(doc)).signature) == sig
    )
    if root is not None:
        # Reference: the root of the chain the receipt covers, from the envelopes of the vectors
        # (RFC 9162: leaf = H(0x00 || envelope hash), node = H(0x01 || left || right)).
        chain = [
            bytes.fromhex(e["outputs"]["envelope_hash_hex"])
            for e in ENV["cases"]
            if e["inputs"]["channel"] == i["channel"] and e["inputs"]["sender"] == i["of"]
        ]
        leaves = [hashlib.sha256(b"\x00" + h).digest() for h in chain[: i["seq"]]]
        while len(leaves) > 1:
            pairs = [leaves[k : k + 2] for k in range(0, len(leaves), 2)]
            leaves = [hashlib.sha256(b"\x01" + p[0] + p[1]).digest() if len(p) == 2 else p[0]
                      for p in pairs]  # fmt: skip
        assert _b64u(leaves[0]) == doc["root"]


@pytest.mark.parametrize("case", RCPT["reject"], ids=_ids(RCPT["reject"]))
def test_receipt_rejects(case: dict[str, Any]) -> None:
    with pytest.raises(RejectedInput) as exc:
        r = receipt.parse_receipt(json.loads(case["receipt"]))
        receipt.verify_receipt(r, bytes.fromhex(case["verify_with_public_hex"]))
    assert _code(exc) == case["error"]


# --- request.json -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", REQ["cases"], ids=_ids(REQ["cases"]))
def test_request_signing(case: dict[str, Any]) -> None:
    i, out = case["inputs"], case["outputs"]
    key = crypto.SigningKey(bytes.fromhex(i["seed_hex"]))
    body = i["body"].encode("utf-8")
    header = request.sign_request(key, i["station"], i["method"], i["path"], body, i["ts"])
    assert header == out["header"]
    auth = request.parse_auth(header)
    assert (auth.station, auth.ts) == (i["station"], i["ts"])
    request.verify_request(auth, key.public, i["method"], i["path"], body, i["ts"])
    # Reference.
    assert _b64u(hashlib.sha256(body).digest()) == out["body_sha256_b64u"]
    signed = rfc8785.dumps(
        {"method": i["method"].upper(), "path": i["path"], "ts": i["ts"],
         "body": out["body_sha256_b64u"]}
    )  # fmt: skip
    assert signed.decode() == out["signing_input"]
    label = bytes.fromhex(out["label_hex"])
    assert label == b"parley/request/v1\x00"
    sig = nacl.signing.SigningKey(key.seed).sign(label + signed).signature
    assert out["header"] == f"{i['station']}.{i['ts']}.{_b64u(sig)}"


@pytest.mark.parametrize("case", REQ["verify"], ids=_ids(REQ["verify"]))
def test_request_verification(case: dict[str, Any]) -> None:
    def run() -> None:
        auth = request.parse_auth(case["header"] or None)
        request.verify_request(
            auth, bytes.fromhex(case["public_hex"]), case["method"], case["path"],
            case["body"].encode("utf-8"), case["now"], case["skew_ms"],
        )  # fmt: skip

    if case["error"] is None:
        run()
    else:
        with pytest.raises(RejectedInput) as exc:
            run()
        assert _code(exc) == case["error"]


# --- checkpoint.json ----------------------------------------------------------------------------
# The reference side follows docs/protocol.md §14 and RFC 9162 §2.1 directly: recursive MTH,
# PATH and PROOF, C2SP note lines built by hand, Ed25519 from PyNaCl.


def _mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) <= 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [_mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*_subproof(m, leaves[:k], whole), _mth(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), _mth(leaves[:k])]


CP_CHAIN = CP["chain"]
CP_LEAVES = [
    hashlib.sha256(b"\x00" + bytes.fromhex(h)).digest() for h in CP_CHAIN["envelope_hashes_hex"]
]


def test_checkpoint_chain_leaves_and_roots() -> None:
    assert [x.hex() for x in CP_LEAVES] == CP_CHAIN["leaf_hashes_hex"]
    assert transcript.leaves([bytes.fromhex(h) for h in CP_CHAIN["envelope_hashes_hex"]]) == (
        CP_LEAVES
    )
    for n, want in enumerate(CP_CHAIN["roots_by_size_hex"], start=1):
        assert _mth(CP_LEAVES[:n]).hex() == want == merkle.root(CP_LEAVES[:n]).hex()
    # The chain is Alpha's: envelope-1 and envelope-3 are its seq 1 and 2.
    by_id = {c["id"]: c for c in ENV["cases"]}
    assert CP_CHAIN["envelope_hashes_hex"][:2] == [
        by_id["envelope-1"]["outputs"]["envelope_hash_hex"],
        by_id["envelope-3"]["outputs"]["envelope_hash_hex"],
    ]


@pytest.mark.parametrize(
    "case", CP_CHAIN["inclusion"], ids=lambda c: f"{c['index']}-of-{c['size']}"
)
def test_checkpoint_inclusion_proofs(case: dict[str, Any]) -> None:
    i, n = case["index"], case["size"]
    proof = [bytes.fromhex(h) for h in case["proof_hex"]]
    assert _path(i, CP_LEAVES[:n]) == proof == merkle.inclusion_proof(i, CP_LEAVES[:n])
    merkle.verify_inclusion(CP_LEAVES[i], i, n, proof, _mth(CP_LEAVES[:n]))


@pytest.mark.parametrize(
    "case", CP_CHAIN["consistency"], ids=lambda c: f"{c['old_size']}-to-{c['new_size']}"
)
def test_checkpoint_consistency_proofs(case: dict[str, Any]) -> None:
    m, n = case["old_size"], case["new_size"]
    proof = [bytes.fromhex(h) for h in case["proof_hex"]]
    assert _subproof(m, CP_LEAVES[:n], True) == proof == merkle.consistency_proof(m, CP_LEAVES[:n])
    merkle.verify_consistency(m, n, proof, _mth(CP_LEAVES[:m]), _mth(CP_LEAVES[:n]))


def _note_line(name: str, key_id: bytes, sig: bytes) -> str:
    return f"\u2014 {name} {base64.b64encode(key_id + sig).decode()}"


def test_checkpoint_note() -> None:
    (case,) = CP["checkpoints"]
    i, out = case["inputs"], case["outputs"]
    seed = bytes.fromhex(i["signer_seed_hex"])
    sk = nacl.signing.SigningKey(seed)
    pub = bytes(sk.verify_key)
    assert identity.station_id(pub) == i["sender"] == out["key_name"]
    origin = f"parley/chain/v1/{i['channel']}/{i['sender']}"
    root = _mth(CP_LEAVES[: i["size"]])
    text = f"{origin}\n{i['size']}\n{base64.b64encode(root).decode()}\n"
    assert (out["origin"], out["root_hex"], out["note_text"]) == (origin, root.hex(), text)
    key_id = hashlib.sha256(i["sender"].encode() + b"\n\x01" + pub).digest()[:4]
    assert key_id.hex() == out["key_id_hex"]
    material = base64.b64encode(bytes([1]) + pub).decode()
    assert out["vkey"] == f"{i['sender']}+{key_id.hex()}+{material}"
    sig = sk.sign(text.encode()).signature
    assert sig.hex() == out["signature_hex"]
    assert out["signed_note"] == f"{text}\n{_note_line(i['sender'], key_id, sig)}\n"
    proof = _subproof(i["prev"], CP_LEAVES[: i["size"]], True)
    assert out["body"] == {
        "type": "checkpoint", "note": out["signed_note"], "size": i["size"],
        "root": _b64u(root), "prev": i["prev"], "proof": [_b64u(p) for p in proof],
    }  # fmt: skip
    # The implementation makes the same body and accepts it.
    hashes = [bytes.fromhex(h) for h in CP_CHAIN["envelope_hashes_hex"][: i["size"]]]
    key = crypto.SigningKey(seed)
    assert transcript.checkpoint_body(key, i["channel"], hashes, i["prev"]) == out["body"]
    records.check(out["body"])


def test_cosignature() -> None:
    (case,) = CP["cosignatures"]
    (cp,) = CP["checkpoints"]
    i, out = case["inputs"], case["outputs"]
    sk = nacl.signing.SigningKey(bytes.fromhex(i["cosigner_seed_hex"]))
    pub = bytes(sk.verify_key)
    name = identity.station_id(pub)
    assert name == out["key_name"]
    key_id = hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
    assert key_id.hex() == out["key_id_hex"]
    text = cp["outputs"]["note_text"]
    message = f"cosignature/v1\ntime {i['timestamp']}\n{text}"
    assert message == out["signed_message"]
    sig = i["timestamp"].to_bytes(8, "big") + sk.sign(message.encode()).signature
    assert sig.hex() == out["signature_hex"]
    assert out["line"] == _note_line(name, key_id, sig)
    assert out["cosigned_note"] == cp["outputs"]["signed_note"] + out["line"] + "\n"
    assert out["body"] == {
        "type": "checkpoint.cosign", "of": cp["inputs"]["sender"], "size": cp["inputs"]["size"],
        "note": out["cosigned_note"],
    }  # fmt: skip
    made, _ = transcript.cosign_body(
        transcript.check_checkpoint_body(cp["outputs"]["body"]),
        crypto.SigningKey(bytes.fromhex(i["cosigner_seed_hex"])),
        i["timestamp"],
    )
    assert made == out["body"]
    records.check(out["body"])
    opened = note.open_note(out["cosigned_note"], [note.parse_vkey(cp["outputs"]["vkey"]),
                                                   note.parse_vkey(out["vkey"])])  # fmt: skip
    assert len(opened.verified) == 2


def _both_members() -> Anchors:
    """The auditor trusts the vector stations' keys (as if compared out of band), which
    identity.json gives independently of the transcript and proof files."""
    return Anchors.of_keys([(pk, sid) for sid, pk in PUBLICS.items()])


def test_transcript_file() -> None:
    (case,) = CP["transcripts"]
    data = case["file"].encode("utf-8")
    lines = list(transcript.read_lines(data))
    report = transcript.verify_transcript(lines, trust=_both_members())
    assert report.ok, report.to_json()
    assert {c.name: c.passed for c in report.checks.values()} == case["checks"]
    assert {c.name: [c.passed, c.failed] for c in report.checks.values()} == case["counts"]
    # Reference: the last line signs SHA-256 of every line before it, under the label.
    digest = hashlib.sha256(b"".join(lines[:-1])).digest()
    assert digest.hex() == case["signed_digest_hex"]
    tag, sig = lines[-1].rstrip(b"\n").split(b"\t")
    assert tag == b"signature"
    label = bytes.fromhex(case["label_hex"])
    assert label == b"parley/transcript/v1\x00"
    sk = nacl.signing.SigningKey(bytes.fromhex(case["exporter_seed_hex"]))
    assert _b64u(sk.sign(label + digest).signature) == sig.decode()
    # Each envelope line is an envelope byte for byte, its salt, and its canonical body.
    for line in lines[2:-2]:
        tag, raw, salt, body = line.rstrip(b"\n").split(b"\t")
        env = envelope.parse_envelope(raw)
        commit = hashlib.sha256(b"parley/commit/v1\x00" + encoding.b64d(salt.decode()) + body)
        assert commit.digest() == env.commit and rfc8785.dumps(json.loads(body)) == body
    assert lines[-2].startswith(b"checkpoint\t")


def test_proof_of_one_message() -> None:
    (case,) = CP["proofs"]
    proof = case["proof"]
    report = transcript.check_proof(proof, trust=_both_members())
    assert report.ok and all(c.passed for c in report.checks.values()), report.to_json()
    by_id = {c["id"]: c for c in ENV["cases"]}
    assert proof["envelope"] == by_id["envelope-3"]["outputs"]["envelope"]
    raw = proof["envelope"].encode()
    inc = proof["inclusion"]
    leaf = hashlib.sha256(b"\x00" + hashlib.sha256(raw).digest()).digest()
    assert leaf == CP_LEAVES[inc["index"]]
    assert [_b64u(h) for h in _path(inc["index"], CP_LEAVES[: inc["size"]])] == inc["hashes"]
    # Nothing of the other messages: only this body's text is in the proof.
    assert "Alpha 3" not in json.dumps(proof, ensure_ascii=False)


@pytest.mark.parametrize("case", CP["reject"], ids=_ids(CP["reject"]))
def test_checkpoint_body_rejects(case: dict[str, Any]) -> None:
    with pytest.raises(RejectedInput) as exc:
        records.check(case["body"])
    assert _code(exc) == case["error"]


# --- handover.json ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", HO["cases"], ids=_ids(HO["cases"]))
def test_handover_records(case: dict[str, Any]) -> None:
    i, out = case["inputs"], case["outputs"]
    old = crypto.SigningKey(bytes.fromhex(i["old_seed_hex"]))
    new = crypto.SigningKey(bytes.fromhex(i["new_seed_hex"]))
    h = handover.make_handover(
        old,
        new,
        i["station"],
        i["seq"],
        i["created"],
        i["old_until"],
        encoding.b64d(i["prev_b64u"]),
    )
    assert h.raw.decode() == out["record"] and _b64u(h.hash) == out["hash_b64u"]
    assert handover.parse_handover(out["record"].encode()) == h
    # Reference, from §3.6 and the primitives alone.
    label = bytes.fromhex(out["label_hex"])
    assert label == b"parley/handover/v1\x00"
    body = {
        "v": 1, "station": i["station"], "seq": i["seq"],
        "old": _b64u(nacl.signing.SigningKey(old.seed).verify_key.encode()),
        "new": _b64u(nacl.signing.SigningKey(new.seed).verify_key.encode()),
        "created": i["created"], "old_until": i["old_until"], "prev": i["prev_b64u"],
    }  # fmt: skip
    signed = rfc8785.dumps(body)
    assert signed.decode() == out["signing_input"]
    for seed, field in ((old.seed, "sig_old_b64u"), (new.seed, "sig_new_b64u")):
        sig = nacl.signing.SigningKey(seed).sign(label + signed).signature
        assert _b64u(sig) == out[field]
    record = dict(body, sig_old=out["sig_old_b64u"], sig_new=out["sig_new_b64u"])
    assert rfc8785.dumps(record).decode() == out["record"]
    assert _b64u(hashlib.sha256(rfc8785.dumps(record)).digest()) == out["hash_b64u"]


@pytest.mark.parametrize("case", HO["verify"], ids=_ids(HO["verify"]))
def test_handover_verification(case: dict[str, Any]) -> None:
    held = [bytes.fromhex(k) for k in case["held_keys_hex"]]
    first = handover.parse_handover(HO["cases"][0]["outputs"]["record"].encode())
    epochs = [handover.Epoch(held[0], 0, None)]
    if len(held) > 1:
        epochs = handover.follow(held[0], case["station"], [first], check_id=False)
    assert [e.public for e in epochs] == held
    record = json.loads(case["record"])
    if case["error"] is None:
        h = handover.verify_next(epochs, case["station"], record)
        assert h.old == held[-1]
    else:
        with pytest.raises(RejectedInput) as exc:
            handover.verify_next(epochs, case["station"], record)
        assert _code(exc) == case["error"]


def test_handover_chain_epochs() -> None:
    """After a hand-over the old key signs up to old_until and the new one from created."""
    a, b = (handover.parse_handover(c["outputs"]["record"].encode()) for c in HO["cases"])
    genesis = PUBLICS[a.station]
    epochs = handover.follow(genesis, a.station, [a, b])
    assert [e.public for e in epochs] == [genesis, a.new, b.new]
    assert handover.signers_at(epochs, a.created - 1) == [genesis]
    assert handover.signers_at(epochs, a.created) == [a.new, genesis]
    assert handover.signers_at(epochs, b.created) == [b.new, a.new, genesis]
    assert handover.signers_at(epochs, a.old_until + 1) == [b.new, a.new]
    assert handover.signers_at(epochs, b.old_until + 1) == [b.new]
    with pytest.raises(RejectedInput):
        handover.follow(genesis, a.station, [b])


# --- docs/protocol.md ---------------------------------------------------------------------------

_BLOCK = re.compile(r"^```(\w+) vector:([\w.-]+)(?::([\w.\[\]-]+))?\n(.*?)^```$", re.M | re.S)
REQUIRED_EXAMPLES = {
    "envelope-1",
    "envelope-1:outputs.envelope",
    "envelope-3:outputs.envelope",
    "identity-alpha",
    "prekey-alpha:record",
    "invitation-alpha:invitation",
    "receipt-1",
    "request-push:outputs",
    "checkpoint-1:outputs.signed_note",
    "checkpoint-1:outputs.body",
    "cosignature-1:outputs.cosigned_note",
    "proof-1:proof.inclusion",
    "handover-1:outputs.record",
}


def _cases_by_id() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def walk(v: object) -> None:
        if isinstance(v, dict):
            if isinstance(v.get("id"), str):
                assert v["id"] not in found, f"duplicate vector id {v['id']}"
                found[v["id"]] = v
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(ALL)
    return found


def _select(value: Any, path: str | None) -> Any:
    for part in (path or "").split(".") if path else []:
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _doc_blocks() -> list[tuple[str, str, str | None, str]]:
    text = DOC.read_text("utf-8")
    return [(m[1], m[2], m[3], m[4]) for m in _BLOCK.finditer(text)]


def test_doc_embeds_the_required_examples() -> None:
    tags = {vid + (f":{path}" if path else "") for _, vid, path, _ in _doc_blocks()}
    assert tags >= REQUIRED_EXAMPLES, sorted(REQUIRED_EXAMPLES - tags)
    # A tagged fence the pattern does not understand would escape the check: refuse it.
    fences = [
        ln for ln in DOC.read_text("utf-8").splitlines() if ln.startswith("```") and "vector:" in ln
    ]
    assert len(fences) == len(_doc_blocks()), fences
    assert "```json vector:envelope-1\n" in DOC.read_text("utf-8")


@pytest.mark.parametrize("block", _doc_blocks(), ids=lambda b: b[1] + (f":{b[2]}" if b[2] else ""))
def test_doc_examples_are_the_vectors(block: tuple[str, str, str | None, str]) -> None:
    lang, vid, path, content = block
    cases = _cases_by_id()
    assert vid in cases, f"docs/protocol.md cites unknown vector {vid}"
    want = _select(cases[vid], path)
    if lang == "text":
        assert isinstance(want, str)
        assert content.removesuffix("\n") == want
    elif lang == "json":
        got = json.loads(content)
        if isinstance(want, str) and not isinstance(got, str):
            # A canonical document shown pretty-printed: same value, same canonical bytes.
            assert got == json.loads(want)
            assert rfc8785.dumps(got) == want.encode("utf-8")
        else:
            assert got == want
    else:
        pytest.fail(f"unknown block language {lang!r} for vector {vid}")


@pytest.mark.parametrize("case", HO["invitations"], ids=_ids(HO["invitations"]))
def test_rotated_invitation(case: dict[str, Any]) -> None:
    """§3.4: a rotated station's invitation, signed by its current key, carries the hand-overs
    from the key its id derives from."""
    key = crypto.SigningKey(bytes.fromhex(case["identity_seed_hex"]))
    by_id = {c["id"]: c for c in HO["cases"]}
    chain = tuple(
        handover.parse_handover(by_id[i]["outputs"]["record"].encode()) for i in case["handovers"]
    )
    pk = identity.parse_prekey(json.loads(case["prekey_record"]), key.public, case["station"])
    inv = identity.make_invitation(
        key, "Station Alpha", "en", [pk], ["https://alpha.example:8443"], case["created"], chain
    )
    assert encoding.canonical(inv.body()).decode() == case["signing_input"]
    assert inv.encode() == case["invitation"]
    back = identity.parse_invitation(case["invitation"])
    assert back == inv and back.station == case["station"] == identity.station_id(chain[0].old)
    # Reference: the signature over label ‖ signing input, by the current key.
    doc = json.loads(base64.urlsafe_b64decode(case["invitation"][14:] + "=="))
    sig = nacl.signing.SigningKey(key.seed).sign(
        b"parley/invite/v1\x00" + case["signing_input"].encode()
    )
    assert _b64u(sig.signature) == doc["sig"]


@pytest.mark.parametrize("case", HO["invitation_reject"], ids=_ids(HO["invitation_reject"]))
def test_rotated_invitation_rejects(case: dict[str, Any]) -> None:
    with pytest.raises(RejectedInput) as exc:
        identity.parse_invitation(case["invitation"])
    assert _code(exc) == case["error"]
