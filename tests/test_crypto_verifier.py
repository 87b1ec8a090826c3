"""crypto.verifier (libsodium's crypto_sign_open into one buffer per key) answers exactly as
crypto.verify (PyNaCl's VerifyKey.verify) for every kind of message and signature."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.protocol import crypto

KEY = crypto.SigningKey(bytes(range(32)))
OTHER = crypto.SigningKey(bytes(range(1, 33)))
LABEL = b"parley/test/v1\x00"


def _cases(message: bytes) -> list[tuple[bytes, bytes]]:
    sig = KEY.sign(LABEL, message)
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    return [
        (message, sig),  # good
        (message + b"x", sig),  # another message
        (message, flipped),  # a changed signature
        (message, OTHER.sign(LABEL, message)),  # another key's
        (message, sig[:63]),  # too short
        (message, sig + b"\x00"),  # too long
        (message, bytes(64)),  # all zero
    ]


@settings(max_examples=40, deadline=None)
@given(message=st.binary(max_size=2048))
def test_verifier_agrees_with_verify(message: bytes) -> None:
    check = crypto.verifier(KEY.public)
    for msg, sig in _cases(message):
        assert check(LABEL + msg, sig) == crypto.verify(KEY.public, LABEL, msg, sig)
    assert check(LABEL + message, KEY.sign(LABEL, message)) is True


@pytest.mark.parametrize("size", [crypto._OPENED - len(LABEL), crypto._OPENED + 1, 300_000])
def test_long_messages_either_side_of_the_buffer(size: int) -> None:
    check = crypto.verifier(KEY.public)
    for msg, sig in _cases(bytes(size)):
        assert check(LABEL + msg, sig) == crypto.verify(KEY.public, LABEL, msg, sig)


def test_a_verifier_for_a_key_that_is_not_one_refuses_everything() -> None:
    sig = KEY.sign(LABEL, b"m")
    for public in (b"", bytes(31), bytes(33)):
        assert crypto.verifier(public)(LABEL + b"m", sig) is False
    # 32 bytes that are not a usable point: libsodium refuses, as VerifyKey.verify does
    assert crypto.verifier(bytes(32))(LABEL + b"m", sig) is crypto.verify(
        bytes(32), LABEL, b"m", sig
    )


@settings(max_examples=40, deadline=None)
@given(message=st.binary(max_size=2048))
def test_the_combined_form_agrees_with_verify(message: bytes) -> None:
    # signed_verifier takes the signature and the message as one buffer, as libsodium does.
    check = crypto.signed_verifier(KEY.public)
    for msg, sig in _cases(message):
        assert check(sig + LABEL + msg) == crypto.verify(KEY.public, LABEL, msg, sig)
    assert check(KEY.sign(LABEL, message) + LABEL + message) is True
    assert check(KEY.sign(LABEL, message)[:63]) is False  # shorter than a signature


@pytest.mark.parametrize("size", [crypto._OPENED - len(LABEL), crypto._OPENED + 1, 300_000])
def test_the_combined_form_either_side_of_the_buffer(size: int) -> None:
    check = crypto.signed_verifier(KEY.public)
    for msg, sig in _cases(bytes(size)):
        assert check(sig + LABEL + msg) == crypto.verify(KEY.public, LABEL, msg, sig)


def test_a_combined_form_verifier_for_a_key_that_is_not_one_refuses_everything() -> None:
    sig = KEY.sign(LABEL, b"m")
    for public in (b"", bytes(31), bytes(33)):
        assert crypto.signed_verifier(public)(sig + LABEL + b"m") is False
    assert crypto.signed_verifier(bytes(32))(sig + LABEL + b"m") is crypto.verify(
        bytes(32), LABEL, b"m", sig
    )


@settings(max_examples=40, deadline=None)
@given(message=st.binary(max_size=2048), picks=st.lists(st.integers(0, 6), max_size=8))
def test_a_run_verifier_answers_as_each_message_verified_alone(
    message: bytes, picks: list[int]
) -> None:
    # signed_verifier_all: one call for a span's envelopes by one key.
    cases = [sig + LABEL + msg for msg, sig in _cases(message)]
    batch = [cases[i] for i in picks]
    one = crypto.signed_verifier(KEY.public)
    assert crypto.signed_verifier_all(KEY.public)(batch) is all(one(sm) for sm in batch)
    assert crypto.signed_verifier_all(KEY.public)([cases[0]] * 3) is True


@pytest.mark.parametrize("size", [crypto._OPENED - len(LABEL), crypto._OPENED + 1, 300_000])
def test_a_run_verifier_either_side_of_the_buffer(size: int) -> None:
    cases = [sig + LABEL + msg for msg, sig in _cases(bytes(size))]
    check = crypto.signed_verifier_all(KEY.public)
    assert check([cases[0], cases[0]]) is True
    for bad in cases[1:]:
        assert check([cases[0], bad]) is False
        assert check([bad, cases[0]]) is False


def test_a_run_verifier_for_a_key_that_is_not_one_refuses_every_message() -> None:
    sm = KEY.sign(LABEL, b"m") + LABEL + b"m"
    for public in (b"", bytes(31), bytes(33), bytes(32)):
        assert crypto.signed_verifier_all(public)([sm]) is False
        assert crypto.signed_verifier_all(public)([]) is True  # nothing to refuse


def test_verifiers_keep_one_verifier_per_key_and_agree_with_verify() -> None:
    keys = [crypto.SigningKey.generate() for _ in range(2)]
    checks = crypto.Verifiers()
    for i in range(6):
        key, other = keys[i % 2], keys[1 - i % 2]
        msg = b"line %d" % i
        sig = key.sign(b"", msg)
        assert checks[key.public](msg, sig) and crypto.verify(key.public, b"", msg, sig)
        assert not checks[other.public](msg, sig)
    assert len(checks) == 2 and checks[keys[0].public] is checks[keys[0].public]
    assert not checks[b"\x00" * 31](b"m", bytes(64))  # a key that is no key refuses everything
