"""Stations joined in memory (like h11's test helpers): real stores and crypto, no sockets.

`Net.deliver(a, b)` moves a's pending envelopes for b into b's receive path and hands b's
receipts back through the receipt handling every path shares (station/paths.apply_answer), so
tests drive exactly the code a running station uses, with a clock they control. (The whole
dispatcher over the in-memory transport: tests/test_transport.py.)
"""

from __future__ import annotations

from pathlib import Path

from parley.protocol import crypto
from parley.protocol.identity import parse_invitation
from parley.station import features, paths
from parley.station.config import Config, Timings
from parley.station.node import ReceiveResult, Station
from parley.store.sqlite import SqliteStore


class Clock:
    def __init__(self, start_ms: int = 1_790_000_000_000) -> None:
        self.now = start_ms

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


def make_station(
    tmp: Path, name: str, lang: str, clock: Clock, listen: str = "127.0.0.1:9"
) -> Station:
    """`listen` gives the address its invitation names (nothing listens there)."""
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = Config(name=name, lang=lang, listen=listen, timings=Timings())
    st = Station(cfg, SqliteStore(tmp / "parley.db"), crypto.SigningKey.generate(), clock)
    st.rotate_prekeys()
    return features.install(st)


def introduce(a: Station, b: Station) -> None:
    a.add_peer(parse_invitation(b.invitation().encode()))
    b.add_peer(parse_invitation(a.invitation().encode()))


class Net:
    def deliver(self, a: Station, b: Station) -> list[ReceiveResult]:
        """Deliver everything a has pending for b; returns b's results."""
        out: list[ReceiveResult] = []
        while True:
            batch = a.store.pending(b.id, 128)
            if not batch:
                return out
            results, receipts = b.receive_batch([r.raw for r in batch])
            out.extend(results)
            progressed = paths.apply_answer(
                a, b.id, [r.to_json() for r in results], [r.to_json() for r in receipts], set()
            )
            if not progressed:
                return out


def open_channel(net: Net, a: Station, b: Station, kind: str = "hotline") -> str:
    ch = a.propose_channel(kind, "Military hotline", [b.id])
    net.deliver(a, b)
    b.control(ch, "consent")
    net.deliver(b, a)
    assert a.channel_state(ch).is_open and b.channel_state(ch).is_open
    return ch


def hotline(tmp: Path) -> tuple[Net, Clock, Station, Station, str]:
    """South (en) and North (ko), introduced, with an open hotline: (net, clock, a, b, channel)."""
    clock = Clock()
    a = make_station(tmp / "a", "South", "en", clock)
    b = make_station(tmp / "b", "North", "ko", clock)
    introduce(a, b)
    net = Net()
    return net, clock, a, b, open_channel(net, a, b)
