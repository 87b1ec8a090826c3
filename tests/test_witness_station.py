"""A station as a C2SP tlog-witness, through its real app and SQLite store: answers as the spec
says, persists the latest cosigned state, and a bad request changes nothing."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from parley.app.build import build_app
from parley.protocol import crypto, merkle, note, transcript
from parley.protocol import witness as core
from parley.station import witness
from parley.station.node import Station
from tests.pair import Clock, introduce, make_station

CHANNEL = "AAAAAAAAAAAAAAAAAAAAAA"
LEAVES = [merkle.leaf_hash(f"envelope {i}".encode()) for i in range(12)]


@dataclass
class World:
    w: Station
    a: Station
    stranger: Station
    client: TestClient

    @property
    def origin(self) -> str:
        return transcript.origin(CHANNEL, self.a.id)

    def signed(self, size: int, leaves: list[bytes] = LEAVES, by: Station | None = None) -> str:
        signer = by or self.a
        text = note.Checkpoint(
            transcript.origin(CHANNEL, signer.id), size, merkle.root(leaves[:size])
        ).format()
        return note.sign_note(text, signer.id, signer.identity)

    def post(self, body: bytes) -> tuple[int, str, str]:
        r = self.client.post("/witness/add-checkpoint", content=body)
        return r.status_code, r.headers.get("content-type", ""), r.text

    def add(self, old: int, proof: list[bytes], signed: str) -> tuple[int, str, str]:
        return self.post(core.format_request(old, proof, signed))


def snapshot(db: Path) -> str:
    h = hashlib.sha256()
    with closing(sqlite3.connect(db)) as conn:
        for t in ("witness_state", "evidence", "alarms"):
            h.update(repr(conn.execute(f"SELECT * FROM {t}").fetchall()).encode())
    return h.hexdigest()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock()
    w = make_station(tmp_path / "w", "UN", "en", clock)
    w.cfg.witness = {"peers": True, "per_minute": 1000}
    a = make_station(tmp_path / "a", "South", "en", clock)
    stranger = make_station(tmp_path / "s", "Stranger", "en", clock)
    introduce(w, a)
    with TestClient(build_app(w, "t" * 32)) as client:
        yield World(w, a, stranger, client)


def test_a_first_checkpoint_and_its_extension_are_cosigned_and_kept(world: World) -> None:
    status, ctype, body = world.add(0, [], world.signed(5))
    assert status == 200 and ctype.startswith("text/plain")
    wkey = witness.key(world.w)
    cosigned = note.Note(note.parse_note(world.signed(5)).text, ()).text + "\n"
    opened = note.open_note(world.signed(5) + body, [wkey.verifier])
    assert opened.signed_by(wkey.verifier)
    assert opened.verified[0].timestamp == world.w.clock() // 1000
    assert cosigned.startswith(world.origin)
    proof = merkle.consistency_proof(5, LEAVES[:9])
    assert world.add(5, proof, world.signed(9))[0] == 200
    held = witness.db.state(world.w.store, world.origin)
    assert held is not None and (held.size, held.root) == (9, merkle.root(LEAVES[:9]))
    # The witness key is its own: not the identity key that cosigns as a channel member.
    assert wkey.key.public != world.w.identity.public
    described = world.client.get("/witness").json()
    assert described["vkey"] == wkey.verifier.vkey() and described["origins_held"] == 1


def test_bad_input_gets_the_spec_answer_and_changes_nothing(world: World) -> None:
    assert world.add(0, [], world.signed(5))[0] == 200
    db = world.w.store.path  # type: ignore[attr-defined]
    before = snapshot(db)
    proof = merkle.consistency_proof(5, LEAVES[:9])
    forged = note.sign_note(
        note.parse_note(world.signed(9)).text, world.a.id, crypto.SigningKey.generate()
    )
    cases = {
        "unknown log": (world.add(0, [], world.signed(3, by=world.stranger)), 404),
        "bad signature": (world.add(5, proof, forged), 403),
        "replay of an older size": (world.add(5, [], world.signed(3)), 400),
        "stale old size": (world.add(0, [], world.signed(9)), 409),
        "oversize": (world.post(b"old 0\n" + b"A" * 70_000 + b"\n\n"), 413),
        "malformed": (world.post(b"old 01\n\n" + world.signed(9).encode()), 400),
        "64 proof lines": (world.add(5, proof * 20, world.signed(9)), 400),
    }
    for what, ((status, ctype, body), want) in cases.items():
        assert status == want, (what, status, body)
        if status == 409:
            assert ctype == core.SIZE_CONTENT_TYPE and body == "5\n"
    assert snapshot(db) == before


def test_an_inconsistent_checkpoint_is_refused_kept_as_evidence_and_alarmed(world: World) -> None:
    assert world.add(0, [], world.signed(5))[0] == 200
    forked = [*LEAVES[:2], merkle.leaf_hash(b"rewritten"), *LEAVES[3:]]
    proof = merkle.consistency_proof(5, forked[:9])
    status, _, _ = world.add(5, proof, world.signed(9, forked))
    assert status == 422
    status, ctype, body = world.add(5, [], world.signed(5, forked))
    assert (status, ctype, body) == (409, core.SIZE_CONTENT_TYPE, "5\n")
    held = witness.db.state(world.w.store, world.origin)
    assert held is not None and held.root == merkle.root(LEAVES[:5])
    kept = [e for e in world.w.store.evidence() if e[3] == witness.EVIDENCE]
    notes = {bytes(e[4]).decode() for e in kept}
    assert world.signed(9, forked) in notes and world.signed(5) in notes
    assert world.signed(5, forked) in notes
    alarms = [x for x in world.w.store.alarms() if x.kind == witness.ALARM]
    assert alarms and all(x.severity == "critical" for x in alarms)


def test_a_station_that_is_no_witness_answers_404(tmp_path: Path) -> None:
    clock = Clock()
    w = make_station(tmp_path / "w", "North", "ko", clock)
    a = make_station(tmp_path / "a", "South", "en", clock)
    introduce(w, a)
    text = note.Checkpoint(transcript.origin(CHANNEL, a.id), 1, LEAVES[0]).format()
    with TestClient(build_app(w, "t" * 32)) as client:
        r = client.post(
            "/witness/add-checkpoint",
            content=core.format_request(0, [], note.sign_note(text, a.id, a.identity)),
        )
        assert r.status_code == 404
        assert not witness.db.origins(w.store)


def test_each_address_is_rate_limited(world: World) -> None:
    world.w.cfg.witness = {"peers": True, "per_minute": 3}
    witness._settings.pop(world.w, None)
    with TestClient(build_app(world.w, "t" * 32)) as client:
        answers = [
            client.post("/witness/add-checkpoint", content=b"x").status_code for _ in range(5)
        ]
    assert answers[:3] == [400, 400, 400] and answers[3:] == [429, 429]


def test_explicit_logs_and_settings_are_checked() -> None:
    key = crypto.SigningKey(bytes(32))
    vkey = note.Verifier("example.org/log", key.public).vkey()
    s = witness.parse_settings({"logs": [{"vkey": vkey, "origin": "example.org/log"}]}, "w")
    assert s.enabled and list(s.logs) == ["example.org/log"]
    for bad in (
        {"logs": [{"vkey": vkey}]},  # no origin: must be a Parley station's key
        {"name": "has space"},
        {"per_minute": 0},
        {"surprise": 1},
    ):
        with pytest.raises(Exception, match="witness"):
            witness.parse_settings(bad, "w")
