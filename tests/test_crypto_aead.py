"""crypto.aead_encrypt / aead_decrypt (libsodium's XChaCha20-Poly1305 called directly) answer
exactly as PyNaCl's bindings do, and refuse what those refuse."""

from __future__ import annotations

import nacl.exceptions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl import bindings as sodium

from parley.protocol import crypto


@settings(max_examples=60, deadline=None)
@given(
    st.binary(min_size=32, max_size=32), st.binary(min_size=24, max_size=24),
    st.binary(max_size=3000), st.binary(max_size=100),
)  # fmt: skip
def test_aead_agrees_with_the_binding(key: bytes, nonce: bytes, text: bytes, aad: bytes) -> None:
    ct = crypto.aead_encrypt(key, nonce, text, aad)
    assert ct == sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(text, aad, nonce, key)
    assert crypto.aead_decrypt(key, nonce, ct, aad) == text
    for bad_ct, bad_aad in ((ct[:-1] + bytes([ct[-1] ^ 1]), aad), (ct, aad + b"x"), (ct[:15], aad)):
        with pytest.raises((nacl.exceptions.CryptoError, ValueError)):
            sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(bad_ct, bad_aad, nonce, key)
        with pytest.raises(crypto.DecryptFailed):
            crypto.aead_decrypt(key, nonce, bad_ct, bad_aad)


@pytest.mark.parametrize(
    "key, nonce",
    [(bytes(n), bytes(24)) for n in (31, 33)] + [(bytes(32), bytes(n)) for n in (23, 25)],
)
def test_wrong_sizes_are_refused_before_libsodium_reads_them(key: bytes, nonce: bytes) -> None:
    with pytest.raises(ValueError):
        crypto.aead_encrypt(key, nonce, b"text", b"")
    with pytest.raises(crypto.DecryptFailed):
        crypto.aead_decrypt(key, nonce, bytes(40), b"")


def test_what_is_not_bytes_does_not_decrypt() -> None:
    with pytest.raises(crypto.DecryptFailed):
        crypto.aead_decrypt(bytes(32), bytes(24), "x" * 40, b"")  # type: ignore[arg-type]


def test_a_wrapped_key_opens_only_for_its_recipient_and_nonce() -> None:
    me, other, eph = crypto.KemKey.generate(), crypto.KemKey.generate(), crypto.KemKey.generate()
    k, nonce = crypto.random_bytes(32), crypto.random_bytes(24)
    w = crypto.wrap(k, eph, me.public, nonce)
    assert crypto.unwrap(w, eph.public, me, nonce) == k
    with pytest.raises(crypto.DecryptFailed):
        crypto.unwrap(w, eph.public, other, nonce)
    with pytest.raises(crypto.DecryptFailed):
        crypto.unwrap(w, eph.public, me, crypto.random_bytes(24))


def test_one_ephemeral_key_wraps_a_batch_with_one_x25519_per_recipient() -> None:
    """§4.5: a batch shares its ephemeral key; each wrap has its envelope's nonce, so equal
    content keys still wrap to different bytes, and each opens only with its own nonce."""
    me, you, eph = crypto.KemKey.generate(), crypto.KemKey.generate(), crypto.KemKey.generate()
    sending, receiving = crypto.WrapKeys(), crypto.WrapKeys()
    k = crypto.random_bytes(32)
    nonces = [crypto.random_bytes(24) for _ in range(5)]
    wraps = [crypto.wrap(k, eph, to.public, n, sending) for n in nonces for to in (me, you)]
    assert len(set(wraps)) == 10
    assert len(sending._keys) == 2  # one derivation per recipient for the whole batch
    for n, w in zip(nonces, wraps[::2], strict=True):
        assert crypto.unwrap(w, eph.public, me, n, receiving) == k
        assert crypto.unwrap(w, eph.public, me, n) == k  # the same key, derived afresh
    assert len(receiving._keys) == 1
    with pytest.raises(crypto.DecryptFailed):
        crypto.unwrap(wraps[0], eph.public, me, nonces[1], receiving)
    with pytest.raises(crypto.DecryptFailed):  # a low-order point is refused, and not kept
        crypto.unwrap(wraps[0], bytes(32), me, nonces[0], receiving)
    assert len(receiving._keys) == 1
