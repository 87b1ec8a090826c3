"""The one module that makes cryptographic calls: libsodium (through PyNaCl), hashlib, hmac,
secrets and argon2. Everything cryptographic goes through here (tests/security/test_crypto_calls.py
fails on a direct import anywhere else).

Recipes, not primitives, are exported to the rest of the core:
- Ed25519 signatures with a domain-separation label per kind of document;
- X25519 key agreement + BLAKE2b key derivation to wrap a per-envelope key for each recipient
  (the shape of age's X25519 recipient stanza);
- XChaCha20-Poly1305 (IETF) for bodies;
- SHA-256 (and SHA-512, BLAKE2b where a format fixes them) for hashes;
- for the station's own use, not the wire: random tokens, constant-time comparison, HMAC-SHA-256
  and argon2id password hashes.
Every decryption failure is the same `DecryptFailed`: no oracle for an attacker.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.exceptions
import nacl.signing
import nacl.utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from nacl._sodium import ffi as _sodium_ffi  # the C library nacl.bindings wraps
from nacl._sodium import lib as _sodium_lib

from parley.errors import Code, RejectedInput

SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32
AEAD_KEY_BYTES = 32
AEAD_NONCE_BYTES = 24
HASH_BYTES = 32


class DecryptFailed(RejectedInput):
    def __init__(self) -> None:
        super().__init__(Code.DECRYPT_FAILED, "the body could not be decrypted with our keys")


def random_bytes(n: int) -> bytes:
    return nacl.utils.random(n)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# The constructor itself, for loops that hash an item at a time (`sha256_new(data).digest()`):
# a transcript's verifier hashes each envelope three times, and a call to `sha256` more each.
sha256_new = hashlib.sha256


def sha256_hasher() -> hashlib._Hash:
    """An incremental SHA-256, for hashing what arrives in pieces (a file, a stream of lines)."""
    return hashlib.sha256()


def sha512(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


def blake2b(data: bytes, size: int) -> bytes:
    """BLAKE2b with a `size`-byte digest (1..64)."""
    return hashlib.blake2b(data, digest_size=size).digest()


# --- station-local secrets (never on the wire) ---------------------------------------------------


def token(nbytes: int) -> str:
    """A random URL-safe token of `nbytes` random bytes (tokens, session ids, passwords)."""
    return secrets.token_urlsafe(nbytes)


def token_hex(nbytes: int) -> str:
    """A random hex token of `nbytes` random bytes, for short identifiers."""
    return secrets.token_hex(nbytes)


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Compare secrets in constant time (text is compared as its UTF-8 bytes)."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


_passwords = PasswordHasher()  # argon2id with RFC 9106's defaults


def hash_password(password: str) -> str:
    """The encoded argon2id hash of `password` (salt and parameters included)."""
    return _passwords.hash(password)


def verify_password(encoded: str, password: str) -> bool:
    """True if `password` matches `encoded`; False for a wrong password or a damaged hash."""
    try:
        return _passwords.verify(encoded, password)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(encoded: str) -> bool:
    """True if `encoded` was made with weaker parameters than today's."""
    return _passwords.check_needs_rehash(encoded)


# --- Ed25519 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key (the 32-byte seed)."""

    seed: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(random_bytes(32))

    @functools.cached_property
    def _expanded(self) -> nacl.signing.SigningKey:
        # Expanding the seed costs a hash and a base-point multiplication, as much as half a
        # signature: done once per key, not per envelope.
        return nacl.signing.SigningKey(self.seed)

    @functools.cached_property
    def public(self) -> bytes:
        return bytes(self._expanded.verify_key)

    def sign(self, label: bytes, message: bytes) -> bytes:
        return self._expanded.sign(label + message).signature

    def __repr__(self) -> str:
        return "SigningKey(<secret>)"


def verify(public: bytes, label: bytes, message: bytes, signature: bytes) -> bool:
    """True if `signature` is `public`'s Ed25519 signature over label || message."""
    if len(public) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        _verify_key(public).verify(label + message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


def verifier(public: bytes) -> Callable[[bytes, bytes], bool]:
    """`verify` for many messages under one key, the label already prefixed to each: True if
    `signature` is `public`'s Ed25519 signature over `message` (for checking a whole transcript,
    where the per-call lookups of `verify` add up)."""
    opened = signed_verifier(public)

    def verified(message: bytes, signature: bytes) -> bool:
        return len(signature) == SIGNATURE_BYTES and opened(signature + message)

    return verified


class Verifiers(dict[bytes, Callable[[bytes, bytes], bool]]):
    """`verifier(public)` for each key, made when it is first asked for: for a caller that
    checks many messages by a few keys (a transcript's note lines, a received batch)."""

    def __missing__(self, public: bytes) -> Callable[[bytes, bytes], bool]:
        check = self[public] = verifier(public)
        return check


def signed_verifier(public: bytes) -> Callable[[bytes], bool]:
    """`verifier` for messages in libsodium's combined form, the 64-byte signature followed by
    the message (the label already prefixed): a caller that builds that one buffer saves the
    copy `verifier` makes (the transcript's span reader, per envelope)."""
    try:
        key = _verify_key(public) if len(public) == PUBLIC_KEY_BYTES else None
    except (nacl.exceptions.ValueError, ValueError):
        key = None
    if key is None:
        return lambda signed: False
    check = key.verify
    errors = (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError)
    # libsodium's crypto_sign_open, the very check VerifyKey.verify makes, called with one
    # output buffer for all the messages: the binding allocates and clears a buffer the size of
    # the message, copies the message out and raises on failure, ~4 us a transcript envelope.
    sign_open, out = _sodium_lib.crypto_sign_open, _uncleared("unsigned char[]", _OPENED)
    out_len = _sodium_ffi.new("unsigned long long *")

    def verified(signed: bytes) -> bool:
        n = len(signed)
        if n <= SIGNATURE_BYTES + _OPENED:
            return n >= SIGNATURE_BYTES and sign_open(out, out_len, signed, n, public) == 0
        try:
            check(signed)
        except errors:
            return False
        return True

    return verified


def signed_verifier_all(public: bytes) -> Callable[[list[bytes]], bool]:
    """`signed_verifier` for a list of messages in the combined form: True if every one is
    `public`'s, False at the first that is not (a transcript span's envelopes by one key: one
    call per span, not a Python call around each of libsodium's)."""
    if len(public) != PUBLIC_KEY_BYTES:
        return lambda batch: not batch
    sign_open, out = _sodium_lib.crypto_sign_open, _uncleared("unsigned char[]", _OPENED)
    out_len = _sodium_ffi.new("unsigned long long *")
    longest = SIGNATURE_BYTES + _OPENED

    def verified_all(batch: list[bytes]) -> bool:
        for signed in batch:
            n = len(signed)
            if n > longest:
                if not signed_verifier(public)(signed):  # longer than any envelope: rare
                    return False
            elif n < SIGNATURE_BYTES or sign_open(out, out_len, signed, n, public) != 0:
                return False
        return True

    return verified_all


_OPENED = 256 * 1024  # messages up to this long are opened into a verifier's own buffer
# The opened messages' buffers are written by libsodium and never read: not cleared when made
# (clearing 256 KiB per verifier was most of a transcript span's set-up, per key and span).
_uncleared = _sodium_ffi.new_allocator(should_clear_after_alloc=False)


@functools.lru_cache(maxsize=256)
def _verify_key(public: bytes) -> nacl.signing.VerifyKey:
    # A station verifies the same few peers' keys over and over.
    return nacl.signing.VerifyKey(public)


# --- X25519 key wrapping --------------------------------------------------------------------------


@dataclass(frozen=True)
class KemKey:
    """An X25519 private key."""

    secret: bytes

    @classmethod
    def generate(cls) -> KemKey:
        return cls(random_bytes(32))

    @classmethod
    def with_public(cls, secret: bytes, public: bytes) -> KemKey:
        """The key, its public half computed before from this very secret (not checked: a
        wrong one only makes every open fail)."""
        key = cls(secret)
        key.__dict__["public"] = public  # where functools.cached_property keeps it
        return key

    @functools.cached_property
    def public(self) -> bytes:
        # Computed once per key: a seal and every open used to pay a base-point multiplication.
        return sodium.crypto_scalarmult_base(self.secret)

    def __repr__(self) -> str:
        return "KemKey(<secret>)"


_WRAP_LABEL = b"parley/wrap/v1"


def _wrap_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    # BLAKE2b with no key and a zero salt, as libsodium's crypto_generichash_blake2b_salt_personal
    # computes it: hashlib's is the same function without PyNaCl's argument checks (1 us against
    # 11 per call, loaded; one per seal and one per open, issue 14). tests/test_vectors.py holds
    # the two equal.
    return hashlib.blake2b(
        shared + ephemeral_public + recipient_public,
        digest_size=AEAD_KEY_BYTES,
        person=b"parley-wrap-v1\x00\x00",
    ).digest()


class WrapKeys:
    """Wrap keys (§4.5), each derived once, for the envelopes of one batch. A sender seals a
    batch with one ephemeral key, so one X25519 per recipient serves all of it, and a recipient
    opens it with one X25519 per ephemeral key (issue 14: the X25519s were a quarter of a
    batch's CPU at both ends). Keep one for a batch only: it holds keys derived from prekey and
    ephemeral secrets, which erasing a prekey or ending a batch must not leave behind."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: dict[tuple[bytes, bytes], bytes] = {}

    def sending(self, ephemeral: KemKey, recipient_public: bytes) -> bytes:
        key = self._keys.get((ephemeral.secret, recipient_public))
        if key is None:
            shared = sodium.crypto_scalarmult(ephemeral.secret, recipient_public)
            key = _wrap_key(shared, ephemeral.public, recipient_public)
            self._keys[(ephemeral.secret, recipient_public)] = key
        return key

    def receiving(self, recipient: KemKey, ephemeral_public: bytes) -> bytes:
        key = self._keys.get((recipient.secret, ephemeral_public))
        if key is None:
            try:
                shared = sodium.crypto_scalarmult(recipient.secret, ephemeral_public)
            except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
                raise DecryptFailed() from exc  # a low-order or malformed ephemeral key
            key = _wrap_key(shared, ephemeral_public, recipient.public)
            self._keys[(recipient.secret, ephemeral_public)] = key
        return key


def wrap(
    content_key: bytes,
    ephemeral: KemKey,
    recipient_public: bytes,
    nonce: bytes,
    keys: WrapKeys | None = None,
) -> bytes:
    """Encrypt `content_key` to `recipient_public` (X25519 + BLAKE2b + XChaCha20-Poly1305).
    `nonce`: the envelope's own random nonce. The wrap key repeats for every envelope sealed
    with the same ephemeral key, so the nonce must not."""
    key = (keys or WrapKeys()).sending(ephemeral, recipient_public)
    return aead_encrypt(key, nonce, content_key, _WRAP_LABEL)


def unwrap(
    wrapped: bytes,
    ephemeral_public: bytes,
    recipient: KemKey,
    nonce: bytes,
    keys: WrapKeys | None = None,
) -> bytes:
    key = (keys or WrapKeys()).receiving(recipient, ephemeral_public)
    out = aead_decrypt(key, nonce, wrapped, _WRAP_LABEL)
    if len(out) != AEAD_KEY_BYTES:
        raise DecryptFailed()
    return out


# --- AEAD -----------------------------------------------------------------------------------------


# XChaCha20-Poly1305 called in libsodium directly, as nacl.bindings calls it, without the
# binding's per-call checks and copies (issue 14: 6-13 -> 2-5 us a call, loaded; two calls per
# seal and two per open). The C functions read key and nonce at their fixed sizes, so those
# sizes are checked here first. tests/test_crypto_aead.py holds both ways equal.
_AEAD_TAG_BYTES = 16


def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    if len(key) != AEAD_KEY_BYTES or len(nonce) != AEAD_NONCE_BYTES:
        raise ValueError("an AEAD key is 32 bytes and its nonce 24")
    size = len(plaintext) + _AEAD_TAG_BYTES
    out = _sodium_ffi.new("unsigned char[]", size)
    _sodium_lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out, _sodium_ffi.NULL, plaintext, len(plaintext), aad, len(aad), _sodium_ffi.NULL,
        nonce, key,
    )  # fmt: skip
    sealed: bytes = _sodium_ffi.buffer(out, size)[:]
    return sealed


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        if (
            len(key) != AEAD_KEY_BYTES
            or len(nonce) != AEAD_NONCE_BYTES
            or len(ciphertext) < _AEAD_TAG_BYTES
        ):
            raise DecryptFailed()
        size = len(ciphertext) - _AEAD_TAG_BYTES
        out = _sodium_ffi.new("unsigned char[]", max(size, 1))
        failed = _sodium_lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
            out, _sodium_ffi.NULL, _sodium_ffi.NULL, ciphertext, len(ciphertext), aad, len(aad),
            nonce, key,
        )  # fmt: skip
    except TypeError as exc:
        raise DecryptFailed() from exc
    if failed:
        raise DecryptFailed()
    opened: bytes = _sodium_ffi.buffer(out, size)[:]
    return opened
