"""A chain's Merkle tree in the C2SP tlog-tiles layout (https://c2sp.org/tlog-tiles), sans I/O.

    parse_tile_path("0/x001/x234/067.p/12") -> TilePath(level=0, index=1234067, width=12)
    parse_tile_path("entries/000")          -> TilePath(level=0, index=0, width=None, entries=True)
    tile(tree, size, path)                  -> the tile's bytes (concatenated 32-byte hashes)
    entry_bundle(entries, size, path)       -> big-endian uint16 length-prefixed entries

Rules: a tile at level L, index N holds the Merkle tree hashes of the subtrees of 256^L leaves
numbered N*256 .. N*256+255 (tlog-tiles, "Merkle Tree"); a full tile is 256 wide, a partial one
W = 1..255 wide. Only hashes inside the first `size` leaves (the latest checkpoint's) are served:
anything else is NotFound, so a tile never says more than a signed checkpoint does. A Parley
chain's entries are its envelope hashes (§17.1), so an entry bundle holds 32-byte entries.
Paths are parsed strictly (the spec's encoding only: 3-digit elements, all but the last with an
`x`, no leading zeros in L or W).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from parley.errors import Code, NotFound, RejectedInput
from parley.protocol.merkle import Tree

WIDTH = 256
MAX_LEVEL = 63
_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_X = re.compile(r"x[0-9]{3}")
_LAST = re.compile(r"[0-9]{3}")


@dataclass(frozen=True)
class TilePath:
    level: int
    index: int
    width: int | None  # None: a full tile
    entries: bool = False

    @property
    def count(self) -> int:
        return WIDTH if self.width is None else self.width


def parse_tile_path(path: str) -> TilePath:
    """`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, as after `<prefix>/tile/`."""
    parts = path.split("/")
    if len(parts) > 12:
        raise _bad(path)
    head, rest = parts[0], parts[1:]
    entries = head == "entries"
    if not entries and not (_LEVEL.fullmatch(head) and int(head) <= MAX_LEVEL):
        raise _bad(path)
    width: int | None = None
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        if not _WIDTH.fullmatch(rest[-1]) or int(rest[-1]) > WIDTH - 1:
            raise _bad(path)
        width = int(rest[-1])
        rest = [*rest[:-2], rest[-2][:-2]]
    if not rest or not _LAST.fullmatch(rest[-1]) or not all(_X.fullmatch(p) for p in rest[:-1]):
        raise _bad(path)
    index = 0
    for p in rest:
        index = index * 1000 + int(p.lstrip("x"))
    return TilePath(0 if entries else int(head), index, width, entries)


def tile(tree: Tree, size: int, path: TilePath) -> bytes:
    """The tile's hashes, if every one lies within the first `size` leaves of `tree`."""
    _within(size, path)
    h = 8 * path.level
    first = path.index * WIDTH
    return b"".join(tree.subtree(h, first + i) for i in range(path.count))


def entry_bundle(entries: Sequence[bytes], size: int, path: TilePath) -> bytes:
    """The entries path.index*256 .. +width, given `entries` from that first one on."""
    _within(size, path)
    if len(entries) < path.count:
        raise NotFound(Code.NOT_FOUND, "those entries are not held")
    out = bytearray()
    for e in entries[: path.count]:
        out += len(e).to_bytes(2, "big") + e
    return bytes(out)


def _within(size: int, path: TilePath) -> None:
    # Number of level-L hashes the checkpointed tree has complete.
    complete = size >> (8 * path.level)
    if path.index * WIDTH + path.count > complete:
        raise NotFound(
            Code.NOT_FOUND, "that tile is not within the tree of the latest checkpoint held"
        )


def _bad(path: str) -> RejectedInput:
    return RejectedInput(Code.MALFORMED, f"not a tlog-tiles path: {path[:80]!r}")
