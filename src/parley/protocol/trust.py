"""Trust anchors: which member keys an offline verifier accepts. The person verifying gives them;
the file being verified never does.

A transcript file (or a proof of one message) names its members' identity keys itself. Whoever
makes up keys can sign a file with them in which every signature verifies, so only keys learned
out of band tell a real transcript from a self-consistent forgery. Verification is therefore
anchored, and fails closed (the shape of sigstore's verification policies):

- `Anchors`: the keys to trust, each given as a station id, a fingerprint, a public key or an
  invitation (whose signature is checked). Every member key a file names must match one, or the
  `member_keys` check fails and names it. An empty set is an error (`no_trust_anchors`), never
  "nothing to trust, so nothing to check".
- `UNSAFE_TRUST_FILE_KEYS`: take the file's own keys. Only under that name; a report made with it
  carries `UNSAFE_WARNING` in its facts, and the CLI prints it around the result.

Trust file (`--trust FILE`): UTF-8 text, one anchor per line; blank lines and everything from a
`#` on are ignored; at most MAX_TRUST_BYTES and MAX_ANCHORS anchors. A line is one of

    parley-invite:…                          an invitation, as `parley peer invite` prints it
    parley-fp:<station id>:<60 digits>       the fingerprint QR payload
    <station id> <fingerprint>               e.g. as `parley station show` prints them
    <fingerprint>                            12 groups of 5 digits, or the 60 digits together
    <station id>                             st… (26 characters)
    <public key>                             the identity key, base64url (43 characters)

An anchor matches a key when everything it names (station id, fingerprint, key) is that key's.
A station id is 120 bits of a hash of the key and a fingerprint about 199: neither can be met by
another key in practice, so either alone anchors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from parley.errors import Code, LocalError, ParleyError
from parley.protocol.encoding import b64d
from parley.protocol.identity import fingerprint, is_station_id, parse_invitation, station_id

MAX_TRUST_BYTES = 1 << 20
MAX_ANCHORS = 10_000
UNSAFE_NAME = "unsafe-trust-file-keys"
UNSAFE_WARNING = (
    "UNSAFE: the member keys were taken from the file itself (--unsafe-trust-file-keys). "
    "Anyone can make up keys and sign a file with them that passes every other check: this "
    "result proves nothing about who wrote it until you compare each member's fingerprint with "
    "one you verified out of band."
)
NO_ANCHORS = (
    "no trust anchors: give the keys to trust (--trust FILE, --member FINGERPRINT, or run it "
    f"at a station, which trusts its own key and its known peers); --{UNSAFE_NAME} trusts the "
    "file's own keys, which proves nothing about who wrote it"
)
_GROUPS = re.compile(r"[0-9]{5}")
_DIGITS = re.compile(r"[0-9]{60}")


@dataclass(frozen=True)
class Anchor:
    """One trusted key, by whatever the person gave: its station id, fingerprint and/or key."""

    source: str  # where it came from, for people: "trust.txt line 3", "--member", "peer North"
    station: str = ""
    fingerprint: str = ""  # the 60 digits, without spaces
    key: bytes = b""

    def matches(self, identity: bytes) -> bool:
        return (
            (not self.key or self.key == identity)
            and (not self.station or self.station == station_id(identity))
            and (not self.fingerprint or self.fingerprint == _digits_of(identity))
        )


@dataclass(frozen=True)
class Anchors:
    """A non-empty set of trusted keys."""

    anchors: tuple[Anchor, ...]

    def __post_init__(self) -> None:
        if not self.anchors:
            raise LocalError(Code.NO_TRUST_ANCHORS, NO_ANCHORS)

    def anchor_of(self, identity: bytes) -> Anchor | None:
        return next((a for a in self.anchors if a.matches(identity)), None)

    @classmethod
    def of_keys(cls, keys: Iterable[tuple[bytes, str]]) -> Anchors:
        """Anchors from (identity key, source) pairs, e.g. a station's own key and its peers'."""
        return cls(tuple(Anchor(source, station_id(k), key=k) for k, source in keys))


class UnsafeTrustFileKeys:
    """Trust whatever keys the file names. The name says what it is."""

    name = UNSAFE_NAME
    warning = UNSAFE_WARNING

    def __repr__(self) -> str:
        return "UNSAFE_TRUST_FILE_KEYS"


UNSAFE_TRUST_FILE_KEYS = UnsafeTrustFileKeys()
TrustPolicy = Anchors | UnsafeTrustFileKeys


def _digits_of(identity: bytes) -> str:
    return fingerprint(identity).replace(" ", "")


def parse_anchor(text: str, source: str) -> Anchor:
    """One anchor in any of the forms of the module docstring; LocalError naming `source`."""
    tokens = text.split()

    def bad(why: str) -> LocalError:
        return LocalError(
            Code.INVALID_REQUEST,
            f"{source}: {why}; expected a station id, a fingerprint (12 groups of 5 digits), "
            "both, a public key (base64url), a parley-fp: payload or an invitation",
        )

    if len(tokens) == 1 and tokens[0].startswith("parley-invite:"):
        try:
            inv = parse_invitation(tokens[0])
        except ParleyError as exc:
            raise bad(exc.message) from exc
        return Anchor(source, inv.station, key=inv.genesis)  # the key its id derives from
    if len(tokens) == 1 and tokens[0].startswith("parley-fp:"):
        _, _, rest = tokens[0].partition(":")
        sid, _, digits = rest.partition(":")
        if not is_station_id(sid) or not _DIGITS.fullmatch(digits):
            raise bad("not a parley-fp:<station id>:<60 digits> payload")
        return Anchor(source, sid, digits)
    station = ""
    if tokens and is_station_id(tokens[0]):
        station, tokens = tokens[0], tokens[1:]
    if not tokens:
        if not station:
            raise bad("nothing to trust on this line")
        return Anchor(source, station)
    if len(tokens) == 12 and all(_GROUPS.fullmatch(t) for t in tokens):
        return Anchor(source, station, "".join(tokens))
    if len(tokens) == 1 and _DIGITS.fullmatch(tokens[0]):
        return Anchor(source, station, tokens[0])
    if len(tokens) == 1 and len(tokens[0]) == 43:
        try:
            key = b64d(tokens[0], field="public key", size=32)
        except ParleyError as exc:
            raise bad(exc.message) from exc
        return Anchor(source, station, key=key)
    raise bad(f"cannot read {text.strip()[:80]!r}")


def parse_trust_file(data: bytes, name: str) -> list[Anchor]:
    """The anchors of a trust file (module docstring); LocalError naming the line at fault."""
    if len(data) > MAX_TRUST_BYTES:
        raise LocalError(
            Code.INVALID_REQUEST, f"{name}: a trust file holds at most {MAX_TRUST_BYTES} bytes"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LocalError(Code.INVALID_REQUEST, f"{name}: not UTF-8 text") from exc
    out: list[Anchor] = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if len(out) >= MAX_ANCHORS:
            raise LocalError(
                Code.INVALID_REQUEST, f"{name}: at most {MAX_ANCHORS} anchors in one file"
            )
        out.append(parse_anchor(line, f"{name} line {n}"))
    if not out:
        raise LocalError(Code.NO_TRUST_ANCHORS, f"{name}: the file names no key to trust")
    return out
