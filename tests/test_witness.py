"""The sans-I/O C2SP tlog-witness (protocol/witness.py): vectors, the spec's own example request,
cosignatures re-checked with PyNaCl alone, and property tests of the parser."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.errors import Code, RejectedInput
from parley.protocol import crypto, merkle, note, witness

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors" / "witness" / "add-checkpoint.json").read_text(
        "utf-8"
    )
)
NOW = VECTORS["now"]
LOG = witness.Log(VECTORS["log"]["origin"], (note.parse_vkey(VECTORS["log"]["vkey"]),))
WKEY = witness.WitnessKey(
    VECTORS["witness"]["name"], crypto.SigningKey(bytes.fromhex(VECTORS["witness"]["seed_hex"]))
)


def _body(case: dict[str, Any]) -> bytes:
    if "request" in case:
        return str(case["request"]).encode("utf-8")
    rep = case["request_repeat"]
    return str(rep["prefix"]).encode() + b"A" * (int(rep["length"]) - len(rep["prefix"]))


def _state(s: dict[str, Any] | None) -> witness.State | None:
    return None if s is None else witness.State(s["size"], base64.b64decode(s["root_b64"]), "")


def _answer(case: dict[str, Any]) -> tuple[int, witness.Answer | None]:
    try:
        req = witness.parse_request(_body(case))
    except RejectedInput as exc:
        return (413 if exc.code == Code.OVERSIZED else 400), None
    log = LOG if case["origin_known"] else None
    ans = witness.decide(req, log, _state(case["state"]), WKEY, NOW)
    return ans.status, ans


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["desc"])
def test_vector(case: dict[str, Any]) -> None:
    status, ans = _answer(case)
    want = case["answer"]
    assert status == want["status"]
    if ans is None:
        return
    assert ans.content_type == want["content_type"]
    assert ans.suspicious == want["suspicious"]
    if "body" in want:
        assert ans.body.decode() == want["body"]
    after = case["state_after"]
    if ans.new_state is None:
        assert after == case["state"], "a refused request changes nothing"
    else:
        assert after == {"size": ans.new_state.size,
                         "root_b64": base64.b64encode(ans.new_state.root).decode()}  # fmt: skip


def test_vectors_are_what_the_generator_writes() -> None:
    import subprocess
    import sys

    script = Path(__file__).parent.parent / "scripts" / "witness-vectors"
    assert subprocess.run([sys.executable, str(script), "--check"], check=False).returncode == 0


@pytest.mark.parametrize(
    "case", [c for c in VECTORS["cases"] if c["answer"]["status"] == 200], ids=lambda c: c["desc"]
)
def test_cosignature_verifies_with_nacl_alone(case: dict[str, Any]) -> None:
    """Re-derive tlog-cosignature/v1 from the spec: key ID = SHA-256(name \\n 0x04 key)[:4];
    signature = u64 timestamp || Ed25519("cosignature/v1\\ntime T\\n" || checkpoint body)."""
    import hashlib

    signed = case["request"].split("\n\n", 1)[1]
    body = signed[: signed.rindex("\n\n") + 1]
    line = case["answer"]["body"]
    prefix = f"\u2014 {WKEY.name} "
    assert line.startswith(prefix) and line.endswith("\n")
    raw = base64.b64decode(line[len(prefix) : -1])
    pub = WKEY.key.public
    assert raw[:4] == hashlib.sha256(WKEY.name.encode() + b"\n\x04" + pub).digest()[:4]
    ts = int.from_bytes(raw[4:12], "big")
    assert ts == NOW
    message = f"cosignature/v1\ntime {ts}\n{body}".encode()
    nacl.signing.VerifyKey(pub).verify(message, raw[12:])


def test_spec_example_request_parses() -> None:
    """The example body of https://c2sp.org/tlog-witness (add-checkpoint): its shape parses."""
    example = (
        "old 20852014\n"
        "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
        "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
        "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
        "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
        "\n"
        "example.com/behind-the-sofa\n"
        "20852163\n"
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        "\n"
        "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7"
        "u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
        "\u2014 example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wk"
        "s+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
    )
    req = witness.parse_request(example.encode())
    assert (req.old_size, len(req.proof), req.origin) == (
        20852014,
        4,
        "example.com/behind-the-sofa",
    )
    assert req.checkpoint.size == 20852163 and len(req.parsed.signatures) == 2
    assert witness.format_request(req.old_size, req.proof, req.signed_note) == example.encode()


def test_answer_round_trips_through_the_client_parsers() -> None:
    first = VECTORS["cases"][0]
    req = witness.parse_request(_body(first))
    ans = witness.decide(req, LOG, None, WKEY, NOW)
    sigs = witness.parse_answer(ans.body)
    cosigned = note.Note(req.parsed.text, (*req.parsed.signatures, *sigs)).format()
    opened = note.open_note(cosigned, [WKEY.verifier])
    assert opened.signed_by(WKEY.verifier) and opened.verified[0].timestamp == NOW
    conflict = next(c for c in VECTORS["cases"] if c["answer"]["status"] == 409)
    assert witness.parse_conflict(conflict["answer"]["body"].encode()) == 7
    with pytest.raises(RejectedInput):
        witness.parse_conflict(b"07\n")


def _signed(size: int, leaves: list[bytes]) -> str:
    key = crypto.SigningKey(bytes(32))
    text = note.Checkpoint(LOG.origin, size, merkle.root(leaves[:size])).format()
    return note.sign_note(text, LOG.origin, key)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.data())
def test_only_consistent_growth_is_cosigned(n: int, data: st.DataObject) -> None:
    """Random growth sequences: every cosigned state extends the previous one."""
    key = crypto.SigningKey(bytes(32))
    log = witness.Log(LOG.origin, (note.Verifier(LOG.origin, key.public),))
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(n)]
    m = data.draw(st.integers(1, n))
    first = witness.decide(
        witness.parse_request(witness.format_request(0, [], _signed(m, leaves))), log, None,
        WKEY, NOW,
    )  # fmt: skip
    assert first.new_state is not None
    proof = merkle.consistency_proof(m, leaves) if m < n else []
    ok = witness.decide(
        witness.parse_request(witness.format_request(m, proof, _signed(n, leaves))), log,
        first.new_state, WKEY, NOW,
    )  # fmt: skip
    assert ok.status == 200
    other = [*leaves[: m - 1], merkle.leaf_hash(b"fork"), *leaves[m:]]
    forked_proof = merkle.consistency_proof(m, other) if m < n else []
    bad = witness.decide(
        witness.parse_request(witness.format_request(m, forked_proof, _signed(n, other))), log,
        first.new_state, WKEY, NOW,
    )  # fmt: skip
    assert bad.status in (409, 422) and bad.new_state is None and bad.suspicious


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_parser_refuses_garbage_with_rejected_input_only(data: bytes) -> None:
    with contextlib.suppress(RejectedInput):
        witness.parse_request(data)
