"""C2SP signed notes, checkpoints and cosignatures: published vectors, round trips, tampering."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.errors import Code, LocalError, RejectedInput
from parley.protocol import crypto, note
from parley.protocol.note import Checkpoint, Signature, Verifier

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors" / "note" / "c2sp.json").read_text("utf-8")
)
BY_DESC = {v["desc"]: v for v in VECTORS["signed_notes"]}
SUMDB = next(v for v in VECTORS["signed_notes"] if "checkpoint" in v)


def _skey(text: str) -> tuple[str, crypto.SigningKey]:
    """A golang.org/x/mod/sumdb/note private key: PRIVATE+KEY+name+id+base64(0x01 || seed)."""
    _, _, name, key_id, material = text.split("+", 4)
    raw = base64.b64decode(material)
    assert raw[0] == note.ED25519 and len(raw) == 33
    key = crypto.SigningKey(raw[1:])
    assert note.key_id(name, note.ED25519, key.public).hex() == key_id
    return name, key


def _names(sigs: Any) -> list[str]:
    return [s.verifier.name if hasattr(s, "verifier") else s.name for s in sigs]


# --- published vectors ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["signed_notes"], ids=lambda c: c["desc"])
def test_published_notes_open(case: dict[str, Any]) -> None:
    opened = note.open_note(case["note"].encode(), [note.parse_vkey(k) for k in case["vkeys"]])
    assert opened.text == case["text"]
    assert _names(opened.verified) == case["verified"]
    assert _names(opened.unverified) == case["unverified"]
    assert all(v.timestamp is None for v in opened.verified)


@pytest.mark.parametrize(
    "case", [c for c in VECTORS["signed_notes"] if "skey" in c], ids=lambda c: c["desc"]
)
def test_signing_reproduces_published_note_exactly(case: dict[str, Any]) -> None:
    name, key = _skey(case["skey"])
    assert note.sign_note(case["text"], name, key) == case["note"]


@pytest.mark.parametrize("case", VECTORS["rejected_notes"], ids=lambda c: c["desc"])
def test_published_bad_notes_are_rejected(case: dict[str, Any]) -> None:
    with pytest.raises(RejectedInput) as err:
        note.open_note(case["note"].encode(), [note.parse_vkey(k) for k in case["vkeys"]])
    assert err.value.code == case["code"]


@pytest.mark.parametrize("case", VECTORS["rejected_notes_bytes_hex"], ids=lambda c: c["desc"])
def test_published_bad_bytes_are_rejected(case: dict[str, Any]) -> None:
    with pytest.raises(RejectedInput) as err:
        note.parse_note(bytes.fromhex(case["note_hex"]))
    assert err.value.code == case["code"]


@pytest.mark.parametrize("case", VECTORS["vkeys"], ids=lambda c: c["vkey"][:40])
def test_published_vkeys(case: dict[str, Any]) -> None:
    if not case["valid"]:
        with pytest.raises(RejectedInput):
            note.parse_vkey(case["vkey"])
        return
    verifier = note.parse_vkey(case["vkey"])
    assert verifier.sig_type == case["type"]
    assert verifier.vkey() == case["vkey"]  # key ID derivation matches the publisher's


@pytest.mark.parametrize("case", VECTORS["key_pairs"], ids=lambda c: c["vkey"].split("+")[0])
def test_published_private_keys_match_their_vkeys(case: dict[str, Any]) -> None:
    name, key = _skey(case["skey"])
    assert Verifier(name, key.public).vkey() == case["vkey"]


@pytest.mark.parametrize("case", VECTORS["cosignature_timestamps"], ids=lambda c: c["desc"])
def test_published_cosignature_timestamps(case: dict[str, Any]) -> None:
    raw = base64.b64decode(case["signature_b64"])
    sig = Signature("cosigner.example", raw[:4], raw[4:])
    if case["timestamp"] is None:
        with pytest.raises(RejectedInput):
            note.cosignature_timestamp(sig)
    else:
        assert note.cosignature_timestamp(sig) == case["timestamp"]


def test_cosignature_message_matches_the_spec_example() -> None:
    case = VECTORS["cosignature_message"]
    assert note.cosignature_message(case["body"], case["timestamp"]) == case["message"].encode()


def test_spec_checkpoint_example_parses() -> None:
    case = VECTORS["checkpoint_example"]
    parsed = note.parse_note(case["note"])
    cp = note.parse_checkpoint(parsed.text)
    assert (cp.origin, cp.size, cp.extensions) == (case["origin"], case["size"], ())
    assert cp.root_hash == base64.b64decode(case["root_hash_b64"])
    assert cp.format() == parsed.text
    assert parsed.format() == case["note"]
    with pytest.raises(RejectedInput) as err:  # we hold no key for example.com
        note.open_note(case["note"], [])
    assert err.value.code == Code.UNKNOWN_KEY


def test_real_sumdb_checkpoint_parses() -> None:
    cp = note.parse_checkpoint(SUMDB["text"])
    want = SUMDB["checkpoint"]
    assert (cp.origin, cp.size) == (want["origin"], want["size"])
    assert cp.root_hash == base64.b64decode(want["root_hash_b64"])


# --- cosignatures ---------------------------------------------------------------------------------

WIT1_NAME, WIT1 = _skey(VECTORS["key_pairs"][1]["skey"])
WIT1_COSIGNER = Verifier(WIT1_NAME, WIT1.public, note.COSIGNATURE_V1)
SUMDB_KEY = note.parse_vkey(SUMDB["vkeys"][0])
T = 1_700_000_000


def test_cosignature_round_trip_on_a_real_checkpoint() -> None:
    sig = note.cosign(SUMDB["text"], WIT1_NAME, WIT1, T)
    assert sig.key_id == WIT1_COSIGNER.key_id
    assert note.verify_cosignature(SUMDB["text"], sig, WIT1_COSIGNER) == T
    cosigned = note.parse_note(SUMDB["note"]).with_signature(sig).format()
    opened = note.open_note(cosigned, [SUMDB_KEY, WIT1_COSIGNER])
    assert [(v.verifier, v.timestamp) for v in opened.verified] == [
        (SUMDB_KEY, None),
        (WIT1_COSIGNER, T),
    ]
    assert opened.signed_by(WIT1_COSIGNER)


def test_cosignature_is_not_an_ed25519_note_signature() -> None:
    # Type 0x04 and 0x01 keys have different key IDs, so neither is mistaken for the other.
    sig = note.cosign(SUMDB["text"], WIT1_NAME, WIT1, T)
    plain = Verifier(WIT1_NAME, WIT1.public, note.ED25519)
    cosigned = note.Note(SUMDB["text"], (sig,)).format()
    with pytest.raises(RejectedInput) as err:
        note.open_note(cosigned, [plain])
    assert err.value.code == Code.UNKNOWN_KEY
    with pytest.raises(LocalError):
        note.verify_cosignature(SUMDB["text"], sig, plain)


@pytest.mark.parametrize(
    "tamper",
    ["body", "timestamp", "signature", "extension"],
)
def test_tampered_cosignature_fails(tamper: str) -> None:
    body = SUMDB["text"] + "an extension\n"
    sig = note.cosign(body, WIT1_NAME, WIT1, T)
    if tamper == "body":
        body = body.replace("35225469", "35225470")
    elif tamper == "timestamp":
        sig = Signature(sig.name, sig.key_id, (T + 1).to_bytes(8, "big") + sig.signature[8:])
    elif tamper == "signature":
        sig = Signature(sig.name, sig.key_id, sig.signature[:-1] + bytes([sig.signature[-1] ^ 1]))
    else:
        body = body.replace("an extension", "an extensioN")
    with pytest.raises(RejectedInput) as err:
        note.verify_cosignature(body, sig, WIT1_COSIGNER)
    assert err.value.code == Code.BAD_SIGNATURE


def test_cosignature_by_another_key_is_refused() -> None:
    sig = note.cosign(SUMDB["text"], "other.example/w", WIT1, T)
    with pytest.raises(RejectedInput) as err:
        note.verify_cosignature(SUMDB["text"], sig, WIT1_COSIGNER)
    assert err.value.code == Code.UNKNOWN_KEY


def test_cosign_refuses_what_is_not_a_checkpoint() -> None:
    with pytest.raises(RejectedInput):
        note.cosign("just a note\n", WIT1_NAME, WIT1, T)
    with pytest.raises(LocalError):
        note.cosign(SUMDB["text"], WIT1_NAME, WIT1, 2**63)
    with pytest.raises(LocalError):
        note.cosign(SUMDB["text"], "bad name", WIT1, T)


def test_cosignature_timestamp_above_2_63_is_refused() -> None:
    sig = note.cosign(SUMDB["text"], WIT1_NAME, WIT1, T)
    forged = Signature(sig.name, sig.key_id, (2**63).to_bytes(8, "big") + sig.signature[8:])
    with pytest.raises(RejectedInput) as err:
        note.verify_cosignature(SUMDB["text"], forged, WIT1_COSIGNER)
    assert "2^63" in err.value.message


# --- open_note trust rules ------------------------------------------------------------------------

PETER = BY_DESC["TestOpen: both signers known"]
PETER_KEY, ENOCH_KEY = (note.parse_vkey(k) for k in PETER["vkeys"])


def test_a_bad_repeat_from_a_known_key_rejects_the_note() -> None:
    # golang.org/x/mod skips repeats of a verified key; the spec says known keys MUST verify.
    lines = PETER["note"].split("\n")
    good = lines[-3]
    bad = good[:-6] + ("AAAA" if good[-6:-2] != "AAAA" else "BBBB") + good[-2:]
    text = PETER["note"] + bad + "\n"
    with pytest.raises(RejectedInput) as err:
        note.open_note(text, [PETER_KEY])
    assert err.value.code == Code.BAD_SIGNATURE


def test_repeated_good_signature_is_reported_once() -> None:
    first_sig_line = PETER["note"].split("\n")[-3] + "\n"
    opened = note.open_note(PETER["note"] + first_sig_line, [PETER_KEY])
    assert _names(opened.verified) == ["PeterNeumann"]


def test_ambiguous_trusted_keys_are_our_error() -> None:
    # Identical duplicates are harmless.
    assert note.open_note(PETER["note"], [PETER_KEY, note.parse_vkey(PETER["vkeys"][0])])

    # Two different keys with the same name and key ID cannot be told apart: refuse the
    # configuration. A real 32-bit collision is costly to find, so fake one.
    class Colliding(Verifier):
        @property
        def key_id(self) -> bytes:
            return PETER_KEY.key_id

    with pytest.raises(LocalError):
        note.open_note(PETER["note"], [PETER_KEY, Colliding("PeterNeumann", ENOCH_KEY.public)])


def test_size_limits() -> None:
    sig_line = PETER["note"].split("\n")[-3] + "\n"
    text = PETER["text"] + "\n"
    assert note.parse_note(text + sig_line * 100)
    with pytest.raises(RejectedInput) as err:
        note.parse_note(text + sig_line * 101)
    assert err.value.code == Code.MALFORMED
    huge = "x" * note.MAX_NOTE_BYTES + "\n\n" + sig_line
    with pytest.raises(RejectedInput) as err:
        note.parse_note(huge)
    assert err.value.code == Code.OVERSIZED


@pytest.mark.parametrize(
    "bad",
    [
        "text\n\n— name\n",  # no signature
        "text\n\n— name AAAA\n",  # 3 bytes: shorter than a key ID + 1
        "text\n\n— name AAAAAA==\n",  # 4 bytes: key ID only
        "text\n\n— name AAAAAAA\n",  # missing padding
        "text\n\n— name AAAAAAB=\n",  # non-canonical trailing bits
        "text\n\n— name AAAAAA-_\n",  # base64url alphabet
        "text\n\n— a+b AAAAAAA=\n",  # "+" in name
        "text\n\n— \u00a0x AAAAAAA=\n",  # Unicode space in name
        "text\n\n-- name AAAAAAA=\n",  # not an em dash
        "text\n\n— name AAAAAAA= \n",  # trailing space
        "text\r\n\n— name AAAAAAA=\n",  # carriage return
        "text\n\n— name AAAAAAA=\n\n",  # blank line after signatures
    ],
)
def test_malformed_notes(bad: str) -> None:
    with pytest.raises(RejectedInput) as err:
        note.parse_note(bad)
    assert err.value.code == Code.MALFORMED


# --- checkpoints ----------------------------------------------------------------------------------

ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()
URLSAFE_B64 = base64.urlsafe_b64encode(bytes([0xFF]) * 32).decode()  # uses "_" where std has "/"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (f"log\n12\n{ROOT_B64}", "missing final newline"),
        ("log\n12\n", "two lines"),
        (f"\n12\n{ROOT_B64}\n", "empty origin"),
        (f"log\n012\n{ROOT_B64}\n", "leading zero"),
        (f"log\n+12\n{ROOT_B64}\n", "sign"),
        (f"log\n 12\n{ROOT_B64}\n", "space"),
        (f"log\n1_2\n{ROOT_B64}\n", "underscore"),
        (f"log\n\u0661\u0662\n{ROOT_B64}\n", "non-ASCII digits"),
        (f"log\n{2**64}\n{ROOT_B64}\n", "size above uint64"),
        (f"log\n12\n{base64.b64encode(ROOT[:31]).decode()}\n", "31-byte root"),
        (f"log\n12\n{URLSAFE_B64}\n", "base64url"),
        (f"log\n12\n{ROOT_B64.rstrip('=')}\n", "unpadded"),
        (f"log\n12\n{ROOT_B64}\n\n", "empty extension line"),
        (f"log\n12\n{ROOT_B64}\next\n\n", "empty trailing extension line"),
        (f"log\t1\n12\n{ROOT_B64}\n", "control character"),
    ],
)
def test_malformed_checkpoints(body: str, why: str) -> None:
    with pytest.raises(RejectedInput) as err:
        note.parse_checkpoint(body)
    assert err.value.code == Code.MALFORMED, why


def test_checkpoint_formatting_refuses_what_it_could_not_parse() -> None:
    for cp in [
        Checkpoint("", 1, ROOT),
        Checkpoint("a\nb", 1, ROOT),
        Checkpoint("log", -1, ROOT),
        Checkpoint("log", 1, ROOT[:31]),
        Checkpoint("log", 1, ROOT, ("",)),
    ]:
        with pytest.raises(LocalError):
            cp.format()


_line = st.text(
    st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=40
)
_name = st.text(
    st.characters(min_codepoint=0x21, exclude_categories=["Cs", "Zs", "Zl", "Zp"]).filter(
        lambda c: c != "+" and not c.isspace()
    ),
    min_size=1,
    max_size=30,
)


@given(
    _line,
    st.integers(0, 2**64 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(_line, max_size=3),
)
def test_checkpoint_round_trip(origin: str, size: int, root: bytes, ext: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(ext))
    assert note.parse_checkpoint(cp.format()) == cp


@given(st.lists(_line, min_size=1, max_size=5), _name, st.binary(min_size=32, max_size=32))
def test_sign_open_round_trip(lines: list[str], name: str, seed: bytes) -> None:
    key = crypto.SigningKey(seed)
    text = "".join(line + "\n" for line in lines)
    signed = note.sign_note(text, name, key)
    opened = note.open_note(signed.encode(), [Verifier(name, key.public)])
    assert opened.text == text
    assert note.parse_vkey(Verifier(name, key.public).vkey()) == Verifier(name, key.public)
    tampered = signed.replace(lines[0], lines[0] + "!", 1)
    with pytest.raises(RejectedInput) as err:
        note.open_note(tampered, [Verifier(name, key.public)])
    assert err.value.code == Code.BAD_SIGNATURE


@given(st.binary(max_size=300))
def test_parse_note_fails_only_with_rejected_input(data: bytes) -> None:
    try:
        parsed = note.parse_note(data)
    except RejectedInput:
        return
    assert parsed.format().encode() == data  # what parses re-encodes to the same bytes


@given(st.text(max_size=200))
def test_parse_checkpoint_fails_only_with_rejected_input(text: str) -> None:
    try:
        cp = note.parse_checkpoint(text)
    except RejectedInput:
        return
    assert cp.format() == text


def _valid_name_by_character(name: str) -> bool:
    return (
        bool(name)
        and "+" not in name
        and not any(ch.isspace() or ord(ch) < 0x20 for ch in name)
        and note._encodable(name)
    )


@given(st.text(max_size=12) | st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=12))
def test_valid_name_agrees_with_the_character_rule(name: str) -> None:
    # A printable-ASCII name is answered by one pattern; every name gets the rule's answer.
    assert note.valid_name(name) == _valid_name_by_character(name)


@pytest.mark.parametrize("bad", ["\x00", "\t", "\x1f", "\r", "\x0b"])
@pytest.mark.parametrize("where", [0, 1, 2, 3])
def test_a_control_character_in_any_checkpoint_line_is_refused(bad: str, where: int) -> None:
    lines = ["example.com/log", "5", base64.b64encode(bytes(32)).decode(), "ext"]
    lines[where] += bad
    with pytest.raises(RejectedInput):
        note.parse_checkpoint("".join(line + "\n" for line in lines))
