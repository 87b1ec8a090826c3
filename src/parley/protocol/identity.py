"""Station identity: ids, voice-comparable fingerprints, signed medium-term keys and invitations.

Rules:
- A station's identity is its Ed25519 public key. Its id is derived from that key and nothing else:
  `st` + the first 15 bytes of SHA-256("parley/station-id/v1" || key), lowercase base32.
- A fingerprint is 12 groups of 5 decimal digits (60 digits, ~199 bits), read aloud group by group.
  Decimal rather than emoji, because emoji render and translate differently between parties.
- Medium-term X25519 keys ("prekeys") are signed by the identity key with a validity window; a
  sender wraps for the newest prekey of the recipient that is valid at the envelope's time.
- An invitation is a signed document carrying identity, prekeys and addresses. It proves possession
  of the key; only the out-of-band fingerprint comparison proves whose key it is. Its name and
  language are not blank; each address is an absolute http(s) URL with a host and nothing else
  (no user info, query or fragment). Whether it is still usable (`created` not ahead of the
  clock, an unexpired prekey) depends on `now`, so it is a separate check (`check_current`).
- A station that rotated its identity key (§3.6) signs its invitation with its current key and
  carries its hand-over chain (`handovers`, 1..64 records in order): the chain must start at the
  key its id derives from and end at the key that signs, each record continuing the one before
  (`handover.follow`). Without hand-overs the id derives from the signing key itself.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from parley.errors import Code, RejectedInput
from parley.protocol import crypto, handover
from parley.protocol.encoding import b64d, b64e, canonical, parse
from parley.protocol.handover import Handover
from parley.protocol.ids import is_station_id as is_station_id
from parley.protocol.ids import station_id as station_id
from parley.protocol.schema import (
    require_fields,
    require_int,
    require_str,
    require_str_list,
)

PREKEY_LABEL = b"parley/prekey/v1\x00"
INVITE_LABEL = b"parley/invite/v1\x00"
INVITE_PREFIX = "parley-invite:"
MAX_PREKEYS = 8
MAX_ADDRESSES = 8
# 64 hand-overs of about 560 B each fit beside the rest of a rotated station's invitation.
MAX_INVITATION_BYTES = 64 * 1024
MAX_INVITATION_CHARS = len(INVITE_PREFIX) + (MAX_INVITATION_BYTES * 4 + 2) // 3


def fingerprint(identity_public: bytes) -> str:
    """60 decimal digits in 12 groups of 5, derived from the identity key."""
    digest = crypto.sha512(b"parley/fingerprint/v1" + identity_public)
    groups = [int.from_bytes(digest[i * 5 : i * 5 + 5], "big") % 100_000 for i in range(12)]
    return " ".join(f"{g:05d}" for g in groups)


# Printable ASCII without space: what an address may contain (an IDN host goes in as punycode).
_URL_CHARS = re.compile(r"[!-~]+")


def is_blank(text: str) -> bool:
    """Empty or only whitespace (Python `str.isspace`, the definition of docs/protocol.md §19)."""
    return not text or text.isspace()


def check_address(url: str) -> None:
    """An address is an absolute http or https URL with a host, optionally a port and a path,
    and nothing a client would have to interpret: no user info, query or fragment."""
    if not _URL_CHARS.fullmatch(url) or not url.startswith(("http://", "https://")):
        raise RejectedInput(Code.MALFORMED, f"address {url!r}: expected an http(s) URL")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RejectedInput(Code.MALFORMED, f"address {url!r}: {exc}") from exc
    if not parts.hostname or "@" in parts.netloc or port == 0:
        raise RejectedInput(Code.MALFORMED, f"address {url!r}: expected a host (and a port)")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise RejectedInput(Code.MALFORMED, f"address {url!r}: no query or fragment")


@dataclass(frozen=True)
class Prekey:
    """A signed, medium-term X25519 public key of a station."""

    station: str
    kid: str
    public: bytes
    not_before: int
    not_after: int
    sig: bytes

    def body(self) -> dict[str, Any]:
        return {
            "station": self.station,
            "kid": self.kid,
            "public": b64e(self.public),
            "not_before": self.not_before,
            "not_after": self.not_after,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "sig": b64e(self.sig)}

    def valid_at(self, now_ms: int) -> bool:
        return self.not_before <= now_ms <= self.not_after


def key_id(public: bytes) -> str:
    return b64e(crypto.sha256(b"parley/kid/v1" + public)[:9])


def sign_prekey(
    identity: crypto.SigningKey,
    public: bytes,
    not_before: int,
    not_after: int,
    station: str | None = None,
) -> Prekey:
    # `station`: after an identity hand-over (§3.6) the id derives from the first key, not this.
    sid = station or station_id(identity.public)
    unsigned = Prekey(sid, key_id(public), public, not_before, not_after, b"")
    sig = identity.sign(PREKEY_LABEL, canonical(unsigned.body()))
    return Prekey(sid, unsigned.kid, public, not_before, not_after, sig)


def parse_prekey(value: object, identity_public: bytes, station: str | None = None) -> Prekey:
    """Parse and verify a prekey record against the identity key that must have signed it.

    A record that verified once is not checked again (every send names a peer's prekey): the
    cache is keyed by every field of the record and the identity key, so only the very same
    record under the very same key is taken from it."""
    if isinstance(value, dict):
        try:
            return _parse_prekey_cached(tuple(sorted(value.items())), identity_public, station)
        except TypeError:  # an unhashable field value: not a valid record either
            pass
    return _parse_prekey(value, identity_public, station)


@functools.lru_cache(maxsize=1024)
def _parse_prekey_cached(
    items: tuple[tuple[str, object], ...], identity_public: bytes, station: str | None
) -> Prekey:
    return _parse_prekey(dict(items), identity_public, station)


def _parse_prekey(value: object, identity_public: bytes, station: str | None = None) -> Prekey:
    obj = require_fields(
        value, "prekey", {"station", "kid", "public", "not_before", "not_after", "sig"}
    )
    pk = Prekey(
        station=require_str(obj, "station", 32),
        kid=require_str(obj, "kid", 16),
        public=b64d(obj["public"], field="prekey.public", size=32),
        not_before=require_int(obj, "not_before"),
        not_after=require_int(obj, "not_after"),
        sig=b64d(obj["sig"], field="prekey.sig", size=64),
    )
    if pk.station != (station or station_id(identity_public)) or pk.kid != key_id(pk.public):
        raise RejectedInput(Code.MALFORMED, "prekey does not belong to this station")
    if pk.not_after < pk.not_before:
        raise RejectedInput(Code.MALFORMED, "prekey validity window is inverted")
    if not crypto.verify(identity_public, PREKEY_LABEL, canonical(pk.body()), pk.sig):
        raise RejectedInput(Code.BAD_SIGNATURE, "prekey signature does not verify")
    return pk


@dataclass(frozen=True)
class Invitation:
    name: str
    lang: str
    identity: bytes
    prekeys: tuple[Prekey, ...]
    addresses: tuple[str, ...]
    created: int
    sig: bytes
    handovers: tuple[Handover, ...] = ()  # empty unless the station rotated its key (§3.6)

    @property
    def genesis(self) -> bytes:
        """The station's first identity key: the one its id derives from (§3.1)."""
        return self.handovers[0].old if self.handovers else self.identity

    @property
    def station(self) -> str:
        return station_id(self.genesis)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.identity)

    def body(self) -> dict[str, Any]:
        body = {
            "v": 1,
            "station": self.station,
            "name": self.name,
            "lang": self.lang,
            "identity": b64e(self.identity),
            "prekeys": [p.to_json() for p in self.prekeys],
            "addresses": list(self.addresses),
            "created": self.created,
        }
        if self.handovers:
            body["handovers"] = [h.to_json() for h in self.handovers]
        return body

    def encode(self) -> str:
        doc = {**self.body(), "sig": b64e(self.sig)}
        return INVITE_PREFIX + b64e(canonical(doc))


def _check_invitation_fields(name: str, lang: str, addresses: tuple[str, ...]) -> None:
    if is_blank(name):
        raise RejectedInput(Code.MALFORMED, "name: must not be blank")
    if is_blank(lang):
        raise RejectedInput(Code.MALFORMED, "lang: must not be blank")
    for url in addresses:
        check_address(url)
    if len(set(addresses)) != len(addresses):
        raise RejectedInput(Code.MALFORMED, "addresses: each address once")


def make_invitation(
    identity: crypto.SigningKey,
    name: str,
    lang: str,
    prekeys: list[Prekey],
    addresses: list[str],
    now_ms: int,
    handovers: tuple[Handover, ...] = (),
) -> Invitation:
    """Sign an invitation with the current key `identity`; a rotated station passes its
    hand-over chain (§3.6), which must end at that key."""
    _check_invitation_fields(name, lang, tuple(addresses))
    unsigned = Invitation(
        name, lang, identity.public, tuple(prekeys), tuple(addresses), now_ms, b"", handovers
    )
    _check_chain(unsigned)
    sig = identity.sign(INVITE_LABEL, canonical(unsigned.body()))
    return Invitation(
        name, lang, identity.public, tuple(prekeys), tuple(addresses), now_ms, sig, handovers
    )


def _check_chain(inv: Invitation) -> None:
    """A rotated station's hand-overs lead from the key its id derives from to the key that
    signs the invitation."""
    if not inv.handovers:
        return
    epochs = handover.follow(inv.genesis, inv.station, list(inv.handovers))
    if epochs[-1].public != inv.identity:
        raise RejectedInput(
            Code.MALFORMED, "the hand-overs do not end at the key that signs the invitation"
        )
    if inv.created < inv.handovers[-1].created:
        raise RejectedInput(Code.MALFORMED, "created before the signing key was handed over")


def parse_invitation(text: str) -> Invitation:
    """Decode and verify an invitation. Raises RejectedInput(bad_invitation) naming what failed."""
    text = text.strip()
    if not text.startswith(INVITE_PREFIX):
        raise RejectedInput(Code.BAD_INVITATION, f"an invitation starts with {INVITE_PREFIX!r}")
    if len(text) > MAX_INVITATION_CHARS:
        raise RejectedInput(
            Code.BAD_INVITATION, f"an invitation is at most {MAX_INVITATION_CHARS} characters"
        )
    try:
        raw = b64d(text[len(INVITE_PREFIX) :], field="invitation")
        obj = require_fields(
            parse(raw, limit=MAX_INVITATION_BYTES),
            "invitation",
            {"v", "station", "name", "lang", "identity", "prekeys", "addresses", "created", "sig"},
            frozenset({"handovers"}),
        )
        if type(obj["v"]) is not int or obj["v"] != 1:
            raise RejectedInput(Code.MALFORMED, "unsupported invitation version")
        identity = b64d(obj["identity"], field="invitation.identity", size=32)
        prekeys_raw = obj["prekeys"]
        if not isinstance(prekeys_raw, list) or not 1 <= len(prekeys_raw) <= MAX_PREKEYS:
            raise RejectedInput(Code.MALFORMED, f"invitation needs 1..{MAX_PREKEYS} prekeys")
        handovers = _parse_handovers(obj["handovers"]) if "handovers" in obj else ()
        # A rotated station's prekeys name its id (the first key's), not the signing key's id.
        station = station_id(handovers[0].old) if handovers else None
        inv = Invitation(
            name=require_str(obj, "name", 100),
            lang=require_str(obj, "lang", 16),
            identity=identity,
            prekeys=tuple(parse_prekey(p, identity, station) for p in prekeys_raw),
            addresses=tuple(require_str_list(obj, "addresses", MAX_ADDRESSES, 300)),
            created=require_int(obj, "created"),
            sig=b64d(obj["sig"], field="invitation.sig", size=64),
            handovers=handovers,
        )
        if obj["station"] != inv.station:
            what = "the key its hand-overs start from" if handovers else "the identity key"
            raise RejectedInput(Code.MALFORMED, f"station id does not match {what}")
        _check_chain(inv)
        _check_invitation_fields(inv.name, inv.lang, inv.addresses)
        if not crypto.verify(identity, INVITE_LABEL, canonical(inv.body()), inv.sig):
            raise RejectedInput(Code.BAD_SIGNATURE, "invitation signature does not verify")
    except RejectedInput as exc:
        raise RejectedInput(Code.BAD_INVITATION, f"invalid invitation: {exc.message}") from exc
    return inv


def _parse_handovers(value: object) -> tuple[Handover, ...]:
    """The optional `handovers` member, when present: 1..64 records (an empty list or null
    would be a second encoding of "none")."""
    if not isinstance(value, list) or not 1 <= len(value) <= handover.MAX_HANDOVERS:
        raise RejectedInput(
            Code.MALFORMED, f"handovers: 1..{handover.MAX_HANDOVERS} records when present"
        )
    return tuple(handover.parse_handover(v) for v in value)


def check_current(inv: Invitation, now_ms: int, skew_ms: int) -> tuple[Prekey, ...]:
    """Refuse an invitation a station cannot use now: one `created` more than the skew window
    ahead of `now` (a clock far off, or a document made to look newer than a real one), or one
    whose prekeys have all expired (nothing could be sealed to it). Returns the unexpired
    prekeys, the ones worth keeping."""
    if inv.created > now_ms + skew_ms:
        raise RejectedInput(
            Code.BAD_INVITATION,
            f"invalid invitation: created {inv.created - now_ms} ms in the future"
            f" (allowed {skew_ms} ms); check both clocks",
        )
    live = tuple(p for p in inv.prekeys if now_ms <= p.not_after)
    if not live:
        raise RejectedInput(
            Code.BAD_INVITATION,
            "invalid invitation: every prekey in it has expired; ask the peer for a new one",
        )
    return live
