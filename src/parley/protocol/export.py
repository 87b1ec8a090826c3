"""The transcript file format (docs/protocol.md §17.3): writing it and splitting it into lines.

A transcript file is lines ending in "\\n" (split on 0x0A only): the magic line, a header,
envelopes byte for byte (with the body and salt the exporter holds), assembled cosigned
checkpoints, and the exporter's signature over everything before it. `verifier` reads it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from parley.errors import Code, LocalError
from parley.protocol import crypto
from parley.protocol.checkpoint import Member
from parley.protocol.encoding import b64e, canonical

FORMAT = "parley-transcript/v1"
TRANSCRIPT_LABEL = b"parley/transcript/v1\x00"


def _line(*fields: bytes) -> bytes:
    for f in fields:
        if b"\t" in f or b"\n" in f:
            raise LocalError(Code.INVALID_REQUEST, "a transcript field contains a tab or newline")
    return b"\t".join(fields) + b"\n"


class TranscriptWriter:
    """Produces the lines of a transcript file, hashing them for the exporter's signature.

        parley-transcript/v1
        header      <canonical JSON: v, channel, exported_by, exported_at, members>
        envelope    <envelope bytes> [<salt b64u> <canonical body JSON>]     (in causal order)
        checkpoint  <canonical JSON: sender, size, note with every signature held>
        signature   <b64u Ed25519 by exported_by over TRANSCRIPT_LABEL || SHA-256(lines above)>

    Fields are separated by one tab; no field can hold a tab or newline (canonical JSON
    escapes them inside strings).
    """

    def __init__(
        self, channel: str, members: Sequence[Member], exported_by: str, exported_at: int
    ) -> None:
        if exported_by not in {m.station for m in members}:
            raise LocalError(Code.INVALID_REQUEST, "the exporter must be a member")
        self._hash = crypto.sha256_hasher()
        self._head = [
            FORMAT.encode("ascii") + b"\n",
            _line(
                b"header",
                canonical(
                    {
                        "v": 1,
                        "channel": channel,
                        "exported_by": exported_by,
                        "exported_at": exported_at,
                        "members": [m.to_json() for m in sorted(members, key=lambda m: m.station)],
                    }
                ),
            ),
        ]

    def _emit(self, line: bytes) -> bytes:
        self._hash.update(line)
        return line

    def start(self) -> list[bytes]:
        """The first two lines: the magic line and the header."""
        return [self._emit(line) for line in self._head]

    def envelope(
        self, raw: bytes, salt: bytes | None = None, body_text: bytes | None = None
    ) -> bytes:
        if salt is None or body_text is None:
            return self._emit(_line(b"envelope", raw))
        return self._emit(_line(b"envelope", raw, b64e(salt).encode("ascii"), body_text))

    def checkpoint(self, sender: str, size: int, signed_note: str) -> bytes:
        doc = {"sender": sender, "size": size, "note": signed_note}
        return self._emit(_line(b"checkpoint", canonical(doc)))

    def finish(self, key: crypto.SigningKey) -> bytes:
        sig = key.sign(TRANSCRIPT_LABEL, self._hash.digest())
        return _line(b"signature", b64e(sig).encode("ascii"))


def read_lines(data: bytes) -> Iterator[bytes]:
    """The lines of a transcript held in memory, each with its b"\\n" (split on 0x0A only)."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        stop = len(data) if end < 0 else end + 1
        yield data[start:stop]
        start = stop
