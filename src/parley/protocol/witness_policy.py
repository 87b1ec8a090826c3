"""Witness policies: which witnesses must have cosigned, in the Sigsum trust policy format.

The format is Sigsum's (https://git.glasklar.is/sigsum/core/sigsum-go, doc/policy.md), read as
written there, one declaration a line, `#` starting a comment:

    log <hex Ed25519 key> [<url>]          a log key: here, a channel member's identity key
    witness <name> <hex Ed25519 key> [<url>]
    group <name> <k | any | all> <member name>...   members: witnesses or earlier groups
    quorum <name | none>                   exactly once: the group or witness that must be met

One Parley reading: a witness's <name> is its signed-note key name (the name in its cosignature
lines), because a C2SP cosignature/v1 key ID is computed from the name and the key
(tlog-cosignature); a Sigsum name is local to the file. Names are declared before use and once.
If `log` lines are given, every chain's sender key must be one of them.

Bounds: 64 KiB, 1 000 declarations, 256 members a group. Errors are RejectedInput(MALFORMED)
naming the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from parley.errors import Code, RejectedInput
from parley.protocol import note

MAX_BYTES = 64 * 1024
MAX_DECLARATIONS = 1000
MAX_GROUP = 256
_HEX_KEY = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Group:
    name: str
    k: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class WitnessPolicy:
    witnesses: dict[str, note.Verifier]  # by name; cosignature/v1 verifiers
    groups: dict[str, Group]
    quorum: str  # "" for `quorum none`
    logs: frozenset[bytes] = field(default_factory=frozenset)

    def verifier_for(self, sig: note.Signature) -> note.Verifier | None:
        v = self.witnesses.get(sig.name)
        return v if v is not None and v.key_id == sig.key_id else None

    def satisfied(self, name: str, cosigned: set[str]) -> bool:
        if name in self.witnesses:
            return name in cosigned
        g = self.groups[name]
        return sum(self.satisfied(m, cosigned) for m in g.members) >= g.k

    def unmet(self, cosigned: set[str]) -> str:
        """'' if the quorum is met; else what is missing, named, e.g. "group 'un' needs 1 of
        [un.example/w1] and has none"."""
        if not self.quorum or self.satisfied(self.quorum, cosigned):
            return ""
        return self._why(self.quorum, cosigned)

    def _why(self, name: str, cosigned: set[str]) -> str:
        if name in self.witnesses:
            return f"no valid cosignature by witness {name}"
        g = self.groups[name]
        have = [m for m in g.members if self.satisfied(m, cosigned)]
        missing = [self._why(m, cosigned) for m in g.members if m not in have]
        return (
            f"group {name!r} needs {g.k} of {list(g.members)} and has "
            f"{len(have)}{' (' + ', '.join(have) + ')' if have else ''}: " + "; ".join(missing)
        )


def parse_policy(data: bytes | str) -> WitnessPolicy:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_BYTES:
        raise RejectedInput(Code.OVERSIZED, f"a witness policy is at most {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedInput(Code.MALFORMED, "the witness policy is not UTF-8") from exc
    witnesses: dict[str, note.Verifier] = {}
    groups: dict[str, Group] = {}
    logs: set[bytes] = set()
    quorum: str | None = None
    count = 0
    for n, line in enumerate(text.split("\n"), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        count += 1
        if count > MAX_DECLARATIONS:
            raise _bad(n, f"more than {MAX_DECLARATIONS} declarations")
        kind, args = words[0], words[1:]
        if quorum is not None:
            raise _bad(n, "nothing may follow the quorum line")
        if kind == "log" and len(args) in (1, 2):
            logs.add(_key(n, args[0]))
        elif kind == "witness" and len(args) in (2, 3):
            name = args[0]
            _new_name(n, name, witnesses, groups)
            if not note.valid_name(name):
                raise _bad(n, f"{name!r} is not a key name")
            witnesses[name] = note.Verifier(name, _key(n, args[1]), note.COSIGNATURE_V1)
        elif kind == "group" and len(args) >= 3:
            name, threshold, members = args[0], args[1], tuple(args[2:])
            _new_name(n, name, witnesses, groups)
            if len(members) > MAX_GROUP or len(set(members)) != len(members):
                raise _bad(n, f"a group has 1..{MAX_GROUP} distinct members")
            for m in members:
                if m not in witnesses and m not in groups:
                    raise _bad(n, f"{m!r} is not a witness or group declared above")
            k = _threshold(n, threshold, len(members))
            groups[name] = Group(name, k, members)
        elif kind == "quorum" and len(args) == 1:
            if args[0] != "none" and args[0] not in witnesses and args[0] not in groups:
                raise _bad(n, f"{args[0]!r} is not a witness or group declared above")
            quorum = "" if args[0] == "none" else args[0]
        else:
            raise _bad(n, f"not a policy line: {line.strip()[:80]!r}")
    if quorum is None:
        raise RejectedInput(Code.MALFORMED, "the witness policy has no quorum line")
    return WitnessPolicy(witnesses, groups, quorum, frozenset(logs))


def evaluate(policy: WitnessPolicy, signatures: Iterable[tuple[note.Signature, bool]]) -> str:
    """'' if the (signature, verified) pairs meet the quorum, else what is unmet."""
    ok = {s.name for s, good in signatures if good and policy.verifier_for(s) is not None}
    return policy.unmet(ok)


def _bad(n: int, msg: str) -> RejectedInput:
    return RejectedInput(Code.MALFORMED, f"witness policy line {n}: {msg}")


def _key(n: int, text: str) -> bytes:
    if not _HEX_KEY.fullmatch(text):
        raise _bad(n, "a key is 64 lowercase hex digits (a 32-byte Ed25519 public key)")
    return bytes.fromhex(text)


def _new_name(n: int, name: str, *taken: Mapping[str, object]) -> None:
    if name == "none" or any(name in t for t in taken):
        raise _bad(n, f"the name {name!r} is declared twice (or is 'none')")


def _threshold(n: int, text: str, size: int) -> int:
    if text == "any":
        return 1
    if text == "all":
        return size
    if not text.isdigit() or not 1 <= int(text) <= size:
        raise _bad(n, f"a threshold is any, all or 1..{size}")
    return int(text)
