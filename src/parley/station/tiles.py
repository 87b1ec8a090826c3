"""Each chain's tree, read-only, in the C2SP tlog-tiles layout (protocol/tiles.py), so an auditor
can follow a Parley chain with existing transparency-log tools.

    <prefix> = /api/v1/channels/{channel}/chains/{sender}
    <prefix>/checkpoint        the latest checkpoint held for that chain: the sender's signed note
                               with every member and witness cosignature held
    <prefix>/tile/<L>/<N>[.p/<W>], <prefix>/tile/entries/<N>[.p/<W>]   tiles and entry bundles
                               within that checkpoint's tree

Who may: exactly who may read the channel's checkpoints (`channel.read`, and on a back channel
only its named representatives: `Station.guard`), since tiles and entries are envelope hashes
and sizes, the channel's metadata. Nothing beyond the latest checkpoint held is served.
"""

from __future__ import annotations

from parley.errors import Code, NotFound
from parley.protocol import tiles
from parley.station import checkpoints
from parley.station.node import Station
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.store import checkpoints as db
from parley.store import witness as wdb


def _latest(station: Station, who: User, channel: str, sender: str) -> db.CheckpointRow:
    authorize(who, Action.CHANNEL_READ)
    state = station.guard(channel, who)
    if sender not in state.members:
        raise NotFound(Code.NOT_FOUND, f"no chain of {sender} on channel {channel}")
    row = db.latest_checkpoint(station.store, channel, sender)
    if row is None:
        raise NotFound(Code.NOT_FOUND, "no checkpoint of that chain is held yet")
    return row


def checkpoint(station: Station, who: User, channel: str, sender: str) -> str:
    row = _latest(station, who, channel, sender)
    cosigs = db.cosignatures(station.store, channel, sender, row.size)
    lines = [w.line for w in wdb.cosignatures(station.store, channel, sender, row.size)]
    return checkpoints.signed_note(row, cosigs, lines)


def tile(station: Station, who: User, channel: str, sender: str, path: str) -> bytes:
    row = _latest(station, who, channel, sender)
    parsed = tiles.parse_tile_path(path)
    if parsed.entries:
        first = parsed.index * tiles.WIDTH
        hashes = db.chain_hashes(station.store, channel, sender, first + parsed.count, first)
        return tiles.entry_bundle(hashes, row.size, parsed)
    tree = checkpoints.chain_tree(station, channel, sender, row.size)
    return tiles.tile(tree, row.size, parsed)
