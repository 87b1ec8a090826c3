"""A channel with a 1-of-1 witness policy between South and North, witnessed by the UN station
over real HTTP on loopback: cosignatures kept at both members and carried by exports; a witness
that is down makes checkpoints wait (alarm) while delivery goes on; a forked chain shown to the
witness is refused with a conflict and alarmed; the export verifies against a witness policy
only with the witness's cosignatures present."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from parley.app.build import build_app
from parley.cli.demo import free_port
from parley.errors import RejectedInput
from parley.protocol import merkle, note, transcript
from parley.protocol import witness as core
from parley.protocol.export import read_lines
from parley.protocol.verifier import verify_transcript
from parley.protocol.witness_policy import parse_policy
from parley.station import checkpoints, witness, witnessing
from parley.station.node import Station
from parley.store import checkpoints as cdb
from parley.store import witness as wdb
from tests.pair import Clock, Net, introduce, make_station


class Served:
    """A station's app served by uvicorn on a loopback port in a thread; stop and start again."""

    def __init__(self, station: Station) -> None:
        self.station, self.port = station, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            build_app(self.station, "t" * 32), host="127.0.0.1", port=self.port,
            log_level="warning",
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60  # a liveness bound: slow on a loaded machine
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        assert self.server is not None and self.thread is not None
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class World:
    net: Net
    clock: Clock
    a: Station
    b: Station
    un: Station
    served: Served
    channel: str
    vkey: str

    def talk(self, n: int) -> None:
        for i in range(n):
            self.a.send(self.channel, {"type": "text", "text": f"message {i}", "lang": "en"})
        self.net.deliver(self.a, self.b)
        self.net.deliver(self.b, self.a)

    def checkpoint(self, both: bool = False) -> int:
        size = checkpoints.issue(self.a, self.channel).size
        self.net.deliver(self.a, self.b)  # North countersigns
        if both:
            checkpoints.issue(self.b, self.channel)
        self.net.deliver(self.b, self.a)
        self.net.deliver(self.a, self.b)
        return size

    def submit(self) -> None:
        for st in (self.a, self.b):
            witnessing.submit_due(st, self.clock())

    def policy(self, k: str = "1") -> str:
        wk = witness.key(self.un)
        return (
            f"# the UN witnesses the hotline\nwitness {wk.name} {wk.key.public.hex()} "
            f"{self.served.url}/witness\ngroup un {k} {wk.name}\nquorum un\n"
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    un = make_station(tmp_path / "un", "UN", "en", clock)
    un.cfg.witness = {"peers": True}
    for x, y in ((a, b), (a, un), (b, un)):
        introduce(x, y)
    served = Served(un)
    served.start()
    vkey = witness.key(un).verifier.vkey()
    net = Net()
    ch = a.propose_channel(
        "hotline", "Military hotline", [b.id],
        witnesses=[{"vkey": vkey, "url": f"{served.url}/witness"}], witness_k=1,
    )  # fmt: skip
    net.deliver(a, b)
    b.control(ch, "consent")
    net.deliver(b, a)
    assert a.channel_state(ch).witnesses == ((vkey, f"{served.url}/witness"),)
    try:
        yield World(net, clock, a, b, un, served, ch, vkey)
    finally:
        if served.server is not None and not served.server.should_exit:
            served.stop()


def _export(st: Station, channel: str) -> list[bytes]:
    return list(read_lines(b"".join(checkpoints.export(st, channel))))


def test_every_checkpoint_is_witnessed_and_the_export_verifies_only_with_it(
    world: World,
) -> None:
    world.talk(3)
    first = world.checkpoint()
    world.talk(2)
    second = world.checkpoint(both=True)
    world.submit()
    # South submitted both in order; North found the witness already at the second one (409),
    # which vouches for the first too, and got that one cosigned.
    rows = wdb.cosignatures(world.a.store, world.channel, world.a.id)
    assert {r.size for r in rows} == {first, second}
    assert second in {r.size for r in wdb.cosignatures(world.b.store, world.channel, world.a.id)}
    listed = checkpoints.listing(world.a, world.channel)
    assert all(r["witnessed_by"] == [witness.key(world.un).name] for r in listed
               if r["sender"] == world.a.id)  # fmt: skip
    # The console's ledger line names the witness of each chain's latest checkpoint too.
    from parley.station.users import User

    ledger = checkpoints.chain_heads(world.a, User("x", frozenset({"operator"})), world.channel)
    assert all(h["witnessed_by"] == [witness.key(world.un).name] for h in ledger)
    held = wdb.state(world.un.store, transcript.origin(world.channel, world.a.id))
    assert held is not None and held.size == second
    # The witness sees checkpoints, never envelopes.
    assert world.channel not in world.un.store.list_channels()

    lines = _export(world.b, world.channel)
    trust = checkpoints.anchors(world.a)
    policy = parse_policy(world.policy())
    report = verify_transcript(lines, trust=trust, witnesses=policy)
    assert report.ok, [(c, report[c].failures) for c in report.failed]
    assert report["witnesses"].passed >= 1
    # Without the witness's lines, the same file fails the policy and says what is missing.
    bare = _strip_witness_lines(lines, witness.key(world.un).name)
    bad = verify_transcript(bare, trust=trust, witnesses=policy)
    assert not bad.ok and "witnesses" in bad.failed
    why = " ".join(bad["witnesses"].failures)
    assert "group 'un' needs 1" in why and witness.key(world.un).name in why
    # Without a policy the witness lines are simply not counted on.
    assert verify_transcript(lines, trust=trust).ok


def _strip_witness_lines(lines: list[bytes], name: str) -> list[bytes]:
    import json

    out = []
    for line in lines:
        if line.startswith(b"checkpoint\t"):
            doc = json.loads(line.split(b"\t", 1)[1])
            doc["note"] = "".join(
                part for part in doc["note"].splitlines(keepends=True)
                if not part.startswith(f"\u2014 {name} ")
            )  # fmt: skip
            line = b"checkpoint\t" + json.dumps(doc, separators=(",", ":")).encode() + b"\n"
        out.append(line)
    return out


def test_a_witness_down_makes_checkpoints_wait_with_an_alarm_not_delivery(world: World) -> None:
    world.talk(2)
    world.checkpoint()
    world.submit()
    world.served.stop()
    world.talk(3)
    size = world.checkpoint()
    world.submit()
    alarms = [x for x in world.a.store.alarms() if x.kind == witnessing.ALARM_DOWN]
    assert len(alarms) == 1 and "does not answer" in alarms[0].message
    # Delivery went on: North holds everything South sent.
    assert world.b.store.hash_at(world.channel, world.a.id, size + 1) is not None
    assert size not in {r.size for r in wdb.cosignatures(world.a.store, world.channel)}
    listed = checkpoints.listing(world.a, world.channel)
    assert [r["witnessed_by"] for r in listed if r["size"] == size and r["sender"] == world.a.id] \
        == [[]]  # fmt: skip
    world.submit()  # within the backoff: not even tried, no second alarm
    assert len([x for x in world.a.store.alarms() if x.kind == witnessing.ALARM_DOWN]) == 1
    world.served.start()
    world.clock.advance(61_000)
    world.submit()
    assert size in {r.size for r in wdb.cosignatures(world.a.store, world.channel, world.a.id)}
    assert not [x for x in world.a.store.alarms() if x.kind == witnessing.ALARM_DOWN]


def test_a_forked_chain_shown_to_the_witness_is_refused_and_alarmed(world: World) -> None:
    world.talk(3)
    first = world.checkpoint()
    world.submit()
    # South shows the witness another history of its chain, branching after what was cosigned.
    world.talk(3)
    real = world.checkpoint()
    held = checkpoints.chain_tree(world.a, world.channel, world.a.id, real)
    leaves = [held.leaf(i) for i in range(first)]
    forked = leaves + [merkle.leaf_hash(f"other {i}".encode()) for i in range(real - first)]
    text = note.Checkpoint(
        transcript.origin(world.channel, world.a.id), real, merkle.root(forked)
    ).format()
    fork_note = note.sign_note(text, world.a.id, world.a.identity)
    proof = merkle.consistency_proof(first, forked)
    ans = witness.add_checkpoint(world.un, core.format_request(first, proof, fork_note))
    assert ans.status == 200  # a fork after the cosigned size is, alone, indistinguishable
    # North now submits the history it holds: the witness answers with a conflict.
    witnessing.submit_due(world.b, world.clock())
    alarms = [x for x in world.b.store.alarms() if x.kind == witnessing.ALARM_CONFLICT]
    assert alarms and alarms[0].severity == "critical"
    kept = [e for e in world.b.store.evidence() if e[3] == witnessing.ALARM_CONFLICT]
    ours = cdb.checkpoint_at(world.b.store, world.channel, world.a.id, real)
    assert ours is not None and any(bytes(e[4]) == ours.note.encode() for e in kept)
    assert any(b"409" in bytes(e[4]) for e in kept)
    # The witness itself kept both notes and alarmed.
    at_witness = [x for x in world.un.store.alarms() if x.kind == witness.ALARM]
    assert at_witness and at_witness[0].severity == "critical"
    notes = {bytes(e[4]).decode() for e in world.un.store.evidence()}
    assert fork_note in notes


def test_a_proposal_names_valid_witnesses_only(world: World) -> None:
    good = {"vkey": world.vkey, "url": "http://127.0.0.1:1/witness"}
    member_key = note.Verifier(world.a.id, world.a.identity.public).vkey()  # type 0x01
    for bad in (
        [{"vkey": member_key, "url": good["url"]}],
        [{"vkey": world.vkey, "url": "ftp://x"}],
        [good, dict(good)],
    ):
        with pytest.raises(RejectedInput):
            world.a.propose_channel("hotline", "x", [world.b.id], witnesses=bad, witness_k=1)
    with pytest.raises(RejectedInput):
        world.a.propose_channel("hotline", "x", [world.b.id], witnesses=[good], witness_k=2)
