"""The transport seam: the pure retry, probe, path and batch rules (a table each), and the whole
dispatcher carrying a real exchange between two stations over the in-memory transport.

Stations are real (SQLite files, crypto, receive path); only the wire is in memory, and the
dispatcher's monotonic clock is one the test moves, so backoff and probing are exact, not timed.
"""

from __future__ import annotations

import ast
import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from parley.domain import channels
from parley.errors import Code, LocalError, RejectedInput
from parley.protocol import crypto
from parley.protocol.bundle import Bundle, make_bundle, parse_bundle, verify_bundle
from parley.station import handovers, paths, vigil
from parley.station.config import Timings
from parley.station.dispatcher import Dispatcher
from parley.station.keys import KeyDesk
from parley.station.node import Station
from parley.station.peering import PeerDesk
from parley.station.users import BOOTSTRAP
from parley.transport import policy
from parley.transport.base import TransportError
from parley.transport.bundle import BundleTransport
from parley.transport.memory import MemoryNet
from tests.net import Stations, wait
from tests.pair import Clock, introduce, make_station

R = policy.RetryPolicy(base_ms=100, max_ms=1000)


# --- retry ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("previous", "expected"),
    [(0, 100), (100, 200), (200, 400), (400, 800), (800, 1000), (1000, 1000)],
)
def test_retry_delay_doubles_from_base_up_to_max(previous: float, expected: float) -> None:
    assert R.next_delay_ms(previous) == expected


@pytest.mark.parametrize(("base", "most"), [(0, 10), (-1, 10), (20, 10)])
def test_impossible_retry_policies_are_refused(base: int, most: int) -> None:
    with pytest.raises(LocalError) as exc:
        policy.RetryPolicy(base, most)
    assert exc.value.code == Code.INVALID_REQUEST


@pytest.mark.parametrize(
    ("failures", "u", "now", "next_try"),
    [
        (1, 0.0, 1000, 1050),  # 100 ms delay, jitter takes half
        (1, 0.999, 1000, 1000 + 100 * (0.5 + 0.5 * 0.999)),
        (2, 0.0, 1000, 1100),
        (5, 0.0, 1000, 1500),  # capped at 1000 ms
        (9, 0.5, 0, 750),
    ],
)
def test_backoff_waits_a_jittered_delay(failures: int, u: float, now: int, next_try: float) -> None:
    b = policy.Backoff(R)
    for _ in range(failures):
        due = b.failed(now, u)
    assert due == pytest.approx(next_try)
    assert not b.ready(now) and b.ready(next_try) and b.backing_off


def test_any_success_ends_the_backoff_at_once() -> None:
    b = policy.Backoff(R)
    for _ in range(6):
        b.failed(0, 0.9)
    b.reset()
    assert b.ready(0) and not b.backing_off
    assert b.failed(0, 0.0) == 50  # and the next failure starts from the base again


# --- probing -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("failures", "interval"),
    [(0, 1000), (1, 250), (2, 250), (3, 1000), (7, 1000)],
)
def test_probe_interval_shrinks_after_a_failure_until_the_link_is_down(
    failures: int, interval: float
) -> None:
    assert policy.probe_interval_ms(1000, failures, down_after=3) == interval


@pytest.mark.parametrize(
    ("now", "last", "failures", "due"),
    [
        (0, None, 0, True),  # never contacted
        (874, 0, 0, False),
        (875, 0, 0, True),  # an eighth early: it shares the round of a peer due just before
        (1000, 0, 0, True),
        (218, 0, 1, False),
        (219, 0, 1, True),
        (874, 0, 3, False),  # down: once a heartbeat, to see it come back
    ],
)
def test_probe_due(now: float, last: float | None, failures: int, due: bool) -> None:
    assert policy.probe_due(now, last, 1000, failures, 3) is due


def test_a_death_is_confirmed_within_two_heartbeats() -> None:
    """The worst case: the peer dies right after answering a ping. The next ping (one interval
    later) fails, then two more at quarter intervals: down after one and a half intervals."""
    hb, down_after = 1000, 3
    t, failures = 0.0, 0
    while failures < down_after:
        t += policy.probe_interval_ms(hb, failures, down_after)
        failures += 1
    assert t == 1.5 * hb


# --- paths and batches ---------------------------------------------------------------------------
D, RL = policy.Path.DIRECT, policy.Path.RELAY


@pytest.mark.parametrize(
    ("address", "via", "fallback", "down", "ways"),
    [
        (True, None, False, False, (D,)),
        (True, None, False, True, (D,)),  # no route: direct even when down (probing)
        (False, None, False, False, ()),  # it pulls from us
        (True, "r", False, False, (RL,)),  # always through the relay
        (False, "r", False, False, (RL,)),
        (True, "r", True, False, (D, RL)),  # fallback: direct first
        (True, "r", True, True, (RL,)),  # fallback while down: relay only
        (False, "r", True, False, (RL,)),
    ],
)
def test_push_paths(
    address: bool, via: str | None, fallback: bool, down: bool, ways: tuple[policy.Path, ...]
) -> None:
    assert policy.push_paths(address, via, fallback, down) == ways


@pytest.mark.parametrize(
    ("previous", "full", "size"),
    [(0, False, 128), (128, False, 128), (128, True, 256), (256, True, 512), (512, True, 512),
     (512, False, 128)],
)  # fmt: skip
def test_batches_grow_with_the_backlog(previous: int, full: bool, size: int) -> None:
    assert policy.batch_size(previous, full) == size


@pytest.mark.parametrize(
    ("sizes", "limit", "n"),
    [([], 100, 0), ([10, 10, 10], 100, 3), ([50, 49, 1], 100, 1), ([500], 100, 1),
     ([49, 49, 1], 100, 2)],
)  # fmt: skip
def test_a_batch_stays_under_the_body_limit(sizes: list[int], limit: int, n: int) -> None:
    assert policy.fitting(sizes, limit) == n


# --- the dispatcher over the in-memory transport -------------------------------------------------
class Counting(PeerDesk):
    """The real peer service, counting the envelopes of each push."""

    def __init__(self, station: Station) -> None:
        super().__init__(station)
        self.pushes: list[int] = []

    def push(self, caller: str, raws: list[bytes]) -> dict[str, Any]:
        self.pushes.append(len(raws))
        return super().push(caller, raws)


class World:
    def __init__(self, tmp: Path) -> None:
        self.clock = Clock()
        self.mono = 0.0  # the dispatchers' monotonic clock, in ms
        self.a = make_station(tmp / "a", "South", "en", self.clock, "127.0.0.1:7001")
        self.b = make_station(tmp / "b", "North", "ko", self.clock, "127.0.0.1:7002")
        introduce(self.a, self.b)
        self.net = MemoryNet()
        self.desk_a, self.desk_b = Counting(self.a), Counting(self.b)
        self.net.attach(self.a.cfg.url, self.desk_a)
        self.net.attach(self.b.cfg.url, self.desk_b)
        self.da = Dispatcher(self.a, self.net.transport(self.a.id), lambda: self.mono)
        self.db = Dispatcher(self.b, self.net.transport(self.b.id), lambda: self.mono)

    def rounds(self, n: int = 3) -> None:
        async def go() -> None:
            for _ in range(n):
                await self.da.round()
                await self.db.round()

        asyncio.run(go())

    def open(self) -> str:
        ch = self.a.propose_channel("hotline", "Hotline", [self.b.id])
        self.rounds()
        self.b.control(ch, "consent")
        self.rounds()
        assert self.a.channel_state(ch).is_open and self.b.channel_state(ch).is_open
        return ch


def texts(st: Station, ch: str) -> list[str]:
    return [m.body["text"] for m in st.messages(ch, limit=5000) if m.body.get("type") == "text"]


def test_the_memory_transport_carries_a_real_exchange(tmp_path: Path) -> None:
    w = World(tmp_path)
    ch = w.open()
    w.a.send(ch, channels.text_body("hello North", "en"))
    w.b.send(ch, channels.text_body("안녕하세요", "ko"))
    w.rounds()
    for st in (w.a, w.b):  # stored order differs between members when envelopes cross
        assert sorted(texts(st, ch)) == ["hello North", "안녕하세요"]
    for st in (w.a, w.b):
        assert all(p["pending"] == 0 and p["link"] == "up" for p in st.status()["peers"])
    assert w.a.transcript_digest(ch)["digest"] == w.b.transcript_digest(ch)["digest"]


def test_a_backlog_goes_in_growing_pipelined_batches(tmp_path: Path) -> None:
    w = World(tmp_path)
    ch = w.open()
    w.desk_b.pushes.clear()
    with w.a.store.tx():
        for i in range(1000):
            w.a.send(ch, channels.text_body(f"backlog {i}", "en"))
    queued = len(w.a.store.pending(w.b.id, 5000))  # the texts, and checkpoints among them
    w.rounds(1)
    assert w.desk_b.pushes == [128, 256, 512, queued - 896]  # each answered before the next
    assert len(texts(w.b, ch)) == 1000 and w.a.status()["peers"][0]["pending"] == 0


def test_a_peer_back_from_the_dead_is_served_at_the_next_probe_not_after_the_backoff(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    ch = w.open()
    hb = w.a.cfg.timings.heartbeat_ms
    w.net.cut(w.b.cfg.url)
    w.a.send(ch, channels.text_body("while you were away", "en"))
    for _ in range(8):  # a long outage: the backoff grows to its maximum
        w.mono += hb
        w.rounds(1)
    back = w.da.backoff(w.b.id)
    assert back.delay_ms == w.a.cfg.timings.retry_max_ms
    assert w.a.status()["peers"][0]["link"] == "down"
    assert texts(w.b, ch) == []

    w.net.mend(w.b.cfg.url)
    w.mono += hb  # one heartbeat later: the backoff has not run out, but the probe is due
    assert not back.ready(w.mono)
    w.rounds(1)
    assert texts(w.b, ch) == ["while you were away"]
    assert w.a.status()["peers"][0]["link"] == "up" and not back.backing_off


def test_a_silent_peer_is_declared_down_within_two_heartbeats(tmp_path: Path) -> None:
    """Link state from the dispatcher's own probes, judged at once (no tick in between)."""
    w = World(tmp_path)
    w.open()
    hb = w.a.cfg.timings.heartbeat_ms
    w.mono += hb
    w.rounds(1)  # a heartbeat answered
    assert w.a.store.link(w.b.id).state == "up"  # type: ignore[union-attr]
    w.net.cut(w.b.cfg.url)
    start, states = w.mono, []
    while w.mono - start <= 2 * hb:
        w.mono += hb / 4
        w.rounds(1)
        states.append(w.a.store.link(w.b.id).state)  # type: ignore[union-attr]
    assert states[-1] == "down" and "degraded" in states
    downs = [x for x in w.a.store.alarms() if x.kind == "link" and "→ down" in x.message]
    assert len(downs) == 1  # alarmed once, by the link watch, without waiting for a tick


class Hub:
    """One station with `n` peers over the in-memory transport, its dispatcher on a clock the
    test moves (the peers have no dispatcher: they only answer)."""

    def __init__(self, tmp: Path, n: int) -> None:
        self.clock, self.mono = Clock(), 0.0
        clock = self.clock
        self.st = make_station(tmp / "hub", "Hub", "en", clock, "127.0.0.1:7100")
        self.net = MemoryNet()
        self.net.attach(self.st.cfg.url, PeerDesk(self.st))
        self.peers = []
        for i in range(n):
            p = make_station(tmp / f"p{i}", f"P{i}", "en", clock, f"127.0.0.1:{7101 + i}")
            introduce(self.st, p)
            self.net.attach(p.cfg.url, PeerDesk(p))
            self.peers.append(p)
        self.d = Dispatcher(self.st, self.net.transport(self.st.id), lambda: self.mono)
        self.hb = self.st.cfg.timings.heartbeat_ms

    def idle(self, heartbeats: int) -> int:
        """Run the dispatcher's loop (wait idle_ms, a round) for that long; rounds made."""
        rounds, end = 0, self.mono + heartbeats * self.hb

        async def go() -> None:
            nonlocal rounds
            while self.mono < end:
                wait = self.d.idle_ms()
                self.mono += wait
                self.clock.advance(int(wait))
                await self.d.round()
                rounds += 1

        asyncio.run(go())
        return rounds


def test_an_idle_station_probes_all_its_peers_in_one_round_a_heartbeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round trips leave the peers' last contacts a little apart. Were each probe due only at
    its exact time, the dispatcher would wake once per peer and heartbeat, each round going
    over every peer (quadratic in the peers); a probe due an eighth early shares the round of
    the first one due, so the probes line up after one heartbeat. The answers, which leave
    every link up, are written in one transaction per round, not one per peer."""
    hub = Hub(tmp_path, 12)
    writes: list[int] = []
    real = paths.write_links

    def write_links(st: Station, rows: list[Any]) -> None:
        writes.append(len(rows))
        real(st, rows)

    monkeypatch.setattr(paths, "write_links", write_links)
    hub.idle(1)  # first contacts: new link rows, written and judged at once
    assert writes == []
    for i, p in enumerate(hub.peers):  # spread over a tenth of a heartbeat
        hub.d.last_contact[p.id] = hub.mono + i * hub.hb / 10 / len(hub.peers)
    calls = hub.net.calls
    assert hub.idle(4) <= 5  # one a heartbeat (12 a heartbeat without the early margin)
    assert hub.net.calls - calls == 4 * len(hub.peers)  # every peer still pinged each heartbeat
    assert sum(writes) == 4 * len(hub.peers) and len(writes) <= 5
    assert all(p["link"] == "up" for p in hub.st.status()["peers"])
    last_ok = {hub.st.store.link(p.id).last_ok for p in hub.peers}  # type: ignore[union-attr]
    assert max(last_ok) >= hub.clock() - hub.hb  # written, not only kept in memory


def test_a_failed_contact_judges_that_link_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After each failed contact the link watch runs at once, for the peer it failed with: all
    peers unreachable cost one judgement each per probe, not one per peer (N² a round)."""
    hub = Hub(tmp_path, 8)
    judged: list[str] = []
    real = vigil.judge

    def judge(st: Station, peer: str, now: int) -> tuple[Any, str]:
        judged.append(peer)
        return real(st, peer, now)

    monkeypatch.setattr(vigil, "judge", judge)
    for p in hub.peers:
        hub.net.cut(p.cfg.url)
    hub.idle(1)  # one round: every ping fails
    assert sorted(judged) == sorted(p.id for p in hub.peers)  # 64 judgements before
    assert all(p["link"] == "degraded" for p in hub.st.status()["peers"])


def test_unreachable_and_refusing_peers_are_transport_errors(tmp_path: Path) -> None:
    w = World(tmp_path)
    t = w.net.transport(w.a.id)
    with pytest.raises(TransportError) as exc:
        asyncio.run(t.ping("http://127.0.0.1:1"))
    assert exc.value.code == Code.STATION_UNREACHABLE
    with pytest.raises(TransportError) as exc:
        asyncio.run(t.push(w.b.cfg.url, [b"{}"] * 513))  # over the peer API's batch limit
    assert exc.value.code == Code.OVERSIZED
    # A stranger (not a peer of North) gets nothing of another station's keys through it.
    stranger = w.net.transport("st" + "A" * 43)
    with pytest.raises(TransportError) as exc:
        asyncio.run(stranger.prekeys(w.b.cfg.url, w.a.id))
    assert exc.value.code == Code.UNKNOWN_SENDER


# --- the bundle folder ---------------------------------------------------------------------------
def folder_transport(st: Station, folder: Path) -> BundleTransport:
    def keys_of(peer: str, ts: int) -> list[bytes]:
        return st.signer_keys(peer, ts) if st.store.get_peer(peer) else []

    return BundleTransport(lambda: st.identity, st.id, st.clock, lambda addr: next(
        (p.station for p in st.store.list_peers() if addr == f"file://{folder}"), None
    ), keys_of, st.prekeys)  # fmt: skip


def test_a_shared_folder_carries_envelopes_one_way_and_receipts_back(tmp_path: Path) -> None:
    w = World(tmp_path)
    ch = w.open()
    folder = tmp_path / "courier"
    folder.mkdir()
    addr = f"file://{folder}"
    ta, tb = folder_transport(w.a, folder), folder_transport(w.b, folder)
    for i in range(3):
        w.a.send(ch, channels.text_body(f"by courier {i}", "en"))
    raws = [r.raw for r in w.a.store.pending(w.b.id, 100)]

    async def exchange() -> None:
        assert (await ta.ping(addr)).station == w.b.id
        assert (await ta.push(addr, raws)).receipts == []  # answers come back later, in a file
        await ta.push(addr, raws)  # offered again: the same file, not a second one
        assert len(list(folder.iterdir())) == 1
        got = await tb.pull(addr, {"results": [], "receipts": [], "max": 512})
        assert got.envelopes == raws and not got.more and not list(folder.iterdir())
        results, receipts = w.b.receive_batch(got.envelopes)
        assert {r.status for r in results} == {"accepted"}
        # b's answer goes into the folder with its next pull; a collects it with its own.
        answer = {"results": [], "receipts": [r.to_json() for r in receipts], "max": 0}
        await tb.pull(addr, answer)
        back = await ta.pull(addr, {"results": [], "receipts": [], "max": 512})
        assert w.da.answered(w.b.id, [], back.receipts)
        # Every file carried its writer's prekeys: each side now has the other's newest.
        assert await tb.prekeys(addr) == w.a.prekeys()[:4]
        assert await ta.prekeys(addr) == w.b.prekeys()[:4]

    asyncio.run(exchange())
    assert sorted(texts(w.b, ch)) == [f"by courier {i}" for i in range(3)]
    assert w.a.store.pending(w.b.id, 100) == []


def test_a_forged_bundle_in_the_folder_is_ignored(tmp_path: Path) -> None:
    w = World(tmp_path)
    ch = w.open()
    folder = tmp_path / "courier"
    folder.mkdir()
    w.a.send(ch, channels.text_body("real", "en"))
    forger = crypto.SigningKey.generate()  # signs as South, with a key that is not South's
    b = make_bundle(forger, w.a.id, w.b.id, [r.raw for r in w.a.store.pending(w.b.id, 9)], [],
                    [], 0)  # fmt: skip
    (folder / f"{w.a.id}.{w.b.id}.x.bundle").write_bytes(b.encode())
    got = asyncio.run(
        folder_transport(w.b, folder).pull(f"file://{folder}", {"receipts": [], "max": 512})
    )
    assert got.envelopes == [] and len(list(folder.iterdir())) == 1


def _signed(b: Bundle, key: bytes) -> bool:
    try:
        verify_bundle(b, key)
    except RejectedInput:
        return False
    return True


def test_the_folder_follows_a_rotation_of_the_identity_key_without_a_restart(
    tmp_path: Path,
) -> None:
    """Issue 15: the folder transport signs with the station's current key, read at each write,
    and reads a peer's bundles with the keys of their time (a bundle written just before the
    peer rotated still counts; one by the old key after its grace does not)."""
    w = World(tmp_path)
    ch = w.open()
    folder = tmp_path / "courier"
    folder.mkdir()
    addr = f"file://{folder}"
    ta, tb = folder_transport(w.a, folder), folder_transport(w.b, folder)  # built before
    w.a.send(ch, channels.text_body("before the rotation", "en"))
    old_key = w.a.identity
    asyncio.run(ta.push(addr, [r.raw for r in w.a.store.pending(w.b.id, 9)]))
    KeyDesk(w.a).rotate(BOOTSTRAP, 24 * 3600 * 1000)
    value = handovers.header(w.a)
    assert value is not None
    handovers.accept(w.b, value, w.a.id)  # b followed it (its next HTTP contact)
    w.clock.advance(1000)
    w.a.send(ch, channels.text_body("after the rotation", "en"))
    raws = [r.raw for r in w.a.store.pending(w.b.id, 9)]
    asyncio.run(ta.push(addr, raws[1:]))
    assert len(list(folder.iterdir())) == 2
    signers = []
    for f in folder.iterdir():
        b = parse_bundle(f.read_bytes())
        signers += [k for k in (old_key.public, w.a.identity.public) if _signed(b, k)]
    assert sorted(signers) == sorted([old_key.public, w.a.identity.public])
    got = asyncio.run(tb.pull(addr, {"results": [], "receipts": [], "max": 512}))
    assert got.envelopes == raws and not list(folder.iterdir())
    results, _ = w.b.receive_batch(got.envelopes)
    assert [r.status for r in results] == ["accepted", "accepted"]
    assert texts(w.b, ch)[-2:] == ["before the rotation", "after the rotation"]
    # a hostile holder of the old key, after the grace: its bundle is left unread
    w.clock.advance(2 * 24 * 3600 * 1000)
    w.a.send(ch, channels.text_body("by the old key", "en"))
    late = make_bundle(old_key, w.a.id, w.b.id, [r.raw for r in w.a.store.pending(w.b.id, 9)],
                       [], [], w.clock())  # fmt: skip
    (folder / f"{w.a.id}.{w.b.id}.late.bundle").write_bytes(late.encode())
    got = asyncio.run(tb.pull(addr, {"results": [], "receipts": [], "max": 512}))
    assert got.envelopes == [] and len(list(folder.iterdir())) == 1


# --- real stations -------------------------------------------------------------------------------
def test_a_killed_peer_is_declared_down_and_gets_its_backlog_at_the_first_ping_after_restart(
    tmp_path: Path,
) -> None:
    """Two station processes on loopback. The backoff (10 minutes) is far longer than the waits
    below may take (tests.net.LIVENESS_S each), so the backlog can only arrive through an
    answered ping ending the backoff."""
    timings = Timings(retry_base_ms=600_000, retry_max_ms=1_200_000, heartbeat_ms=500)
    with Stations(tmp_path, [("South", "en"), ("North", "ko")], timings) as net:
        ch = net.open_channel("South", ["North"])
        south = net.api("South")

        def downs() -> int:
            alarms = south.get("/alarms", params={"all": True})
            return sum(1 for x in alarms if x["kind"] == "link" and "→ down" in x["message"])

        net.stop("North", signal.SIGKILL)
        wait(lambda: downs() == 1, what="South to declare the link down")
        south.post(f"/channels/{ch}/messages", json={"text": "while you were down"})
        wait(lambda: south.get("/status")["peers"][0]["pending"] == 1, what="the failed push")
        net.restart("North")
        north = net.api("North")
        wait(
            lambda: any(
                m["body"].get("text") == "while you were down"
                for m in north.get(f"/channels/{ch}/messages")
            ),
            what="the backlog at North, long before South's backoff runs out",
        )
        wait(lambda: south.get("/status")["peers"][0]["pending"] == 0, what="the receipt")
        assert downs() == 1


def test_every_http_client_is_built_by_the_one_factory() -> None:
    """transport/clients.py is the one place an httpx client is made (timeouts, no redirects,
    a connection cap): the CLI, webhooks, translation engines and witnesses ask it for theirs."""
    src = Path(__file__).resolve().parents[1] / "src" / "parley"
    makers = {"Client", "AsyncClient"}
    found = []
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            f = node.func if isinstance(node, ast.Call) else None
            called = f.value if isinstance(f, ast.Attribute) and f.attr in makers else None
            if isinstance(called, ast.Name) and called.id == "httpx":
                found.append(path.relative_to(src).as_posix())
    assert found and set(found) == {"transport/clients.py"}


# --- a shared folder configured in station.json, between running stations -----------------------
def test_two_running_stations_exchange_messages_through_a_shared_folder_only(
    tmp_path: Path,
) -> None:
    """Both stations serve no peer API (`inbound: false`) and each names the other's folder in
    station.json: the proposal, the consent, messages both ways and their receipts all travel
    as bundle files, and the folder is empty once everything is receipted."""
    folder = tmp_path / "courier"
    folder.mkdir()
    timings = Timings(heartbeat_ms=300, retry_base_ms=100, retry_max_ms=1_000)
    with Stations(tmp_path, [("South", "en"), ("North", "ko")], timings) as net:
        for me, other in (("South", "North"), ("North", "South")):
            net.stop(me)
            cfg = json.loads((net.dirs[me] / "station.json").read_text())
            cfg |= {"inbound": False, "folders": {other: str(folder)}}
            (net.dirs[me] / "station.json").write_text(json.dumps(cfg))
        for me in ("South", "North"):
            net.restart(me)
        assert net.api("South").get("/paths")["inbound"] is False
        ch = net.open_channel("South", ["North"])
        net.api("South").post(f"/channels/{ch}/messages", json={"text": "through the folder"})
        net.api("North").post(f"/channels/{ch}/messages", json={"text": "폴더로 답합니다"})

        def texts(name: str) -> list[str]:
            msgs = net.api(name).get(f"/channels/{ch}/messages")
            return sorted(m["body"]["text"] for m in msgs if m["body"].get("type") == "text")

        both = sorted(["through the folder", "폴더로 답합니다"])
        wait(lambda: texts("South") == both and texts("North") == both, what="both messages")

        def settled(name: str) -> bool:
            return all(p["pending"] == 0 for p in net.api(name).get("/status")["peers"])

        wait(lambda: settled("South") and settled("North"), what="every envelope receipted")
        wait(lambda: not list(folder.glob("*.bundle")), what="the folder to empty")
