"""Transcript export and offline verification, and proofs of one message (issue 5 items 2, 3).

A clean export passes every named check; tampering with each kind of field makes verification
fail naming that check; a proof reveals its message and no other; the CLI checks files with no
station running; the API guards exports; and real stations do it end to end.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.app.build import build_app
from parley.cli import verifying
from parley.cli.verifying import verify_file
from parley.domain import channels
from parley.errors import NotFound
from parley.protocol import crypto, note, scan, spans, verifier
from parley.protocol.checkpoint import checkpoint_body
from parley.protocol.encoding import b64d, b64e, canonical
from parley.protocol.envelope import ENVELOPE_LABEL
from parley.protocol.export import read_lines
from parley.protocol.proof import check_proof
from parley.protocol.report import Report
from parley.protocol.trust import Anchors
from parley.protocol.verifier import TRANSCRIPT_CHECKS, verify_transcript
from parley.station import checkpoints as cps
from parley.station import users
from parley.station.node import Station
from parley.store import checkpoints as db
from tests.net import Stations, parley, wait
from tests.pair import Clock, Net, introduce, make_station, open_channel

TOKEN = "t" * 32
TEXTS_A = [f"South message {i}: the launch window opens at 0{i}:00" for i in range(7)]
TEXTS_B = [f"North answer {i}: acknowledged" for i in range(4)]


class World:
    def __init__(self, tmp: Path) -> None:
        self.clock = Clock()
        self.a = make_station(tmp / "a", "South", "en", self.clock)
        self.b = make_station(tmp / "b", "North", "ko", self.clock)
        introduce(self.a, self.b)
        self.net = Net()
        self.ch = open_channel(self.net, self.a, self.b)
        for station in (self.a, self.b):
            cps.policy(station).every_envelopes = 4
        for i, text in enumerate(TEXTS_A):
            self.a.send(self.ch, channels.text_body(text, "en"))
            if i < len(TEXTS_B):
                self.b.send(self.ch, channels.text_body(TEXTS_B[i], "ko"))
            self.exchange()
        self.exchange()

    def exchange(self) -> None:
        for _ in range(4):
            self.net.deliver(self.a, self.b)
            self.net.deliver(self.b, self.a)

    def export(self, st: Station | None = None) -> list[bytes]:
        data = b"".join(cps.export(st or self.a, self.ch, "auditor"))
        return list(read_lines(data))

    def anchors(self) -> Anchors:
        """What an auditor who compared both stations' fingerprints trusts."""
        return Anchors.of_keys([(self.a.identity.public, "a"), (self.b.identity.public, "b")])

    def seq_of(self, st: Station, text: str) -> int:
        for e, b in st.store.channel_events(self.ch):
            if b is not None and b.body.get("text") == text:
                return e.seq
        raise AssertionError(text)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("transcript"))
    yield w
    w.a.store.close()
    w.b.store.close()


@pytest.fixture(scope="module")
def lines(world: World) -> list[bytes]:
    return world.export()


def verify(lines: list[bytes], w: World) -> Report:
    """The report on `lines`, which checking the whole file a span at a time gives too, wherever
    the spans end."""
    report = verify_transcript(lines, trust=w.anchors())
    data = b"".join(lines)
    for span_bytes in (1, 2500, verifier.SPAN_BYTES):
        spread = verifier.verify_buffer(data, trust=w.anchors(), span_bytes=span_bytes)
        assert spread.to_json() == report.to_json()
    return report


# --- a clean export -------------------------------------------------------------------------------


def test_a_clean_export_passes_every_check(world: World, lines: list[bytes]) -> None:
    report = verify(lines, world)
    assert report.ok, report.to_json()
    # Every check had something to check: a check that passed vacuously proves nothing.
    assert all(c.passed > 0 for c in report.checks.values()), report.to_json()
    facts = report.facts
    assert facts["exported_by"] == world.a.id and facts["bodies"] == facts["envelopes"]
    chains = {c["sender"]: c for c in facts["chains"]}
    for station in (world.a, world.b):
        assert chains[station.id]["envelopes"] == station.store.head_seq(world.ch, station.id)
        assert chains[station.id]["cosigned_up_to"] > 0
    # Both members hold the same transcript, so Bravo's export checks out the same way.
    assert verify(world.export(world.b), world).ok


def _fields(line: bytes) -> list[bytes]:
    return line.rstrip(b"\n").split(b"\t")


def _line(fields: list[bytes]) -> bytes:
    return b"\t".join(fields) + b"\n"


def _envelopes(lines: list[bytes]) -> list[tuple[int, dict[str, Any]]]:
    return [(i, json.loads(_fields(ln)[1])) for i, ln in enumerate(lines)
            if ln.startswith(b"envelope\t")]  # fmt: skip


def _index(lines: list[bytes], sender: str, seq: int) -> int:
    for i, doc in _envelopes(lines):
        if doc["from"] == sender and doc["seq"] == seq:
            return i
    raise AssertionError((sender, seq))


# --- tampering: each kind of field fails the check that covers it ---------------------------------


def tamper_body(w: World, lines: list[bytes]) -> list[bytes]:
    i = _index(lines, w.a.id, w.seq_of(w.a, TEXTS_A[2]))
    f = _fields(lines[i])
    f[3] = f[3].replace(b"0", b"1")  # 02:00 -> 12:00 and so on; still canonical JSON
    return [*lines[:i], _line(f), *lines[i + 1 :]]


def tamper_signature(w: World, lines: list[bytes]) -> list[bytes]:
    i = _index(lines, w.b.id, 3)
    f = _fields(lines[i])
    doc = json.loads(f[1])
    sig = doc["sig"]
    doc["sig"] = sig[:10] + ("B" if sig[10] != "B" else "C") + sig[11:]
    f[1] = canonical(doc)
    return [*lines[:i], _line(f), *lines[i + 1 :]]


def tamper_order(w: World, lines: list[bytes]) -> list[bytes]:
    out = list(lines)
    i, j = _index(lines, w.a.id, 4), _index(lines, w.a.id, 5)
    out[i], out[j] = out[j], out[i]
    return out


def tamper_drop(w: World, lines: list[bytes]) -> list[bytes]:
    i = _index(lines, w.a.id, 3)
    return [*lines[:i], *lines[i + 1 :]]


def tamper_causal(w: World, lines: list[bytes]) -> list[bytes]:
    """Move one of Bravo's envelopes before the envelope of Alpha's that it says it has seen."""
    envs = _envelopes(lines)
    for i, doc in envs:
        seen = doc["seen"].get(w.a.id)
        if doc["from"] != w.b.id or not seen or seen["seq"] < 2:
            continue
        j = _index(lines, w.a.id, seen["seq"])
        if any(d["from"] == w.b.id for k, d in envs if j < k < i):
            continue  # moving it would also reorder Bravo's own chain
        out = list(lines)
        out.insert(j, out.pop(i))
        return out
    raise AssertionError("no envelope of Bravo's has seen Alpha's chain")


def _checkpoint_line(w: World, lines: list[bytes]) -> tuple[int, dict[str, Any]]:
    for i, ln in enumerate(lines):
        if ln.startswith(b"checkpoint\t"):
            doc = json.loads(_fields(ln)[1])
            if doc["sender"] == w.a.id:
                return i, doc
    raise AssertionError("no checkpoint line")


def tamper_checkpoint(w: World, lines: list[bytes]) -> list[bytes]:
    """Change the root a checkpoint claims: the sender's signature no longer covers it."""
    i, doc = _checkpoint_line(w, lines)
    cp = note.parse_checkpoint(note.parse_note(doc["note"]).text)
    doc["note"] = doc["note"].replace(b64e_std(cp.root_hash), b64e_std(crypto.sha256(b"x")))
    return [*lines[:i], _line([b"checkpoint", canonical(doc)]), *lines[i + 1 :]]


def tamper_checkpoint_resigned(w: World, lines: list[bytes]) -> list[bytes]:
    """The sender itself signs a root its envelopes do not have (a checkpoint that lies)."""
    i, doc = _checkpoint_line(w, lines)
    cp = note.parse_checkpoint(note.parse_note(doc["note"]).text)
    lie = note.Checkpoint(cp.origin, cp.size, crypto.sha256(b"another history"))
    doc["note"] = note.sign_note(note.format_checkpoint(lie), w.a.id, w.a.identity)
    return [*lines[:i], _line([b"checkpoint", canonical(doc)]), *lines[i + 1 :]]


def tamper_cosignature(w: World, lines: list[bytes]) -> list[bytes]:
    i, doc = _checkpoint_line(w, lines)
    signed = note.parse_note(doc["note"])
    own, cosig = signed.signatures
    flipped = cosig.signature[:-1] + bytes([cosig.signature[-1] ^ 1])
    bad = note.Signature(cosig.name, cosig.key_id, flipped)
    doc["note"] = note.Note(signed.text, (own, bad)).format()
    return [*lines[:i], _line([b"checkpoint", canonical(doc)]), *lines[i + 1 :]]


def tamper_header(w: World, lines: list[bytes]) -> list[bytes]:
    f = _fields(lines[1])
    doc = json.loads(f[1])
    doc["exported_at"] += 1
    return [lines[0], _line([b"header", canonical(doc)]), *lines[2:]]


def tamper_member_key(w: World, lines: list[bytes]) -> list[bytes]:
    f = _fields(lines[1])
    doc = json.loads(f[1])
    doc["members"][0]["identity"] = b64e(crypto.SigningKey(bytes(32)).public)
    return [lines[0], _line([b"header", canonical(doc)]), *lines[2:]]


def tamper_truncate(w: World, lines: list[bytes]) -> list[bytes]:
    return lines[:-1]


def b64e_std(data: bytes) -> str:
    """Standard padded base64, as a C2SP checkpoint writes its root."""
    return base64.b64encode(data).decode()


# (tamper, the check that must fail, every check that may fail with it)
CASES: list[tuple[Callable[[World, list[bytes]], list[bytes]], str, set[str]]] = [
    (tamper_body, "body_commitment", {"export_signature"}),
    # The hash of an envelope covers its signature: what links to it breaks too.
    (tamper_signature, "signature", {"export_signature", "causal_order", "chain_links",
                                     "checkpoint_root", "consistency", "cosignature"}),
    (tamper_order, "seq_order", {"export_signature", "chain_links", "causal_order",
                                 "checkpoint_root", "consistency", "cosignature"}),
    (tamper_drop, "seq_order", {"export_signature", "chain_links", "causal_order",
                                "checkpoint_root", "consistency", "cosignature", "timestamps"}),
    (tamper_causal, "causal_order", {"export_signature", "cosignature"}),
    (tamper_checkpoint, "checkpoint_signature", {"export_signature"}),
    (tamper_checkpoint_resigned, "checkpoint_root", {"export_signature"}),
    (tamper_cosignature, "cosignature", {"export_signature"}),
    (tamper_header, "export_signature", set()),
    (tamper_member_key, "file_format", set()),
    (tamper_truncate, "export_signature", set()),
]  # fmt: skip


@pytest.mark.parametrize(("tamper", "check", "also"), CASES, ids=[c[0].__name__ for c in CASES])
def test_tampering_fails_the_check_that_covers_it(
    world: World,
    lines: list[bytes],
    tamper: Callable[[World, list[bytes]], list[bytes]],
    check: str,
    also: set[str],
) -> None:
    changed = tamper(world, lines)
    assert changed != lines
    report = verify(changed, world)
    assert not report.ok
    assert check in report.failed, report.to_json()
    assert set(report.failed) <= {check, *also}, report.to_json()
    assert report[check].failures  # and it says why


def test_a_signature_changed_alongside_its_envelope_hash_still_breaks_the_chain(
    world: World, lines: list[bytes]
) -> None:
    # Alpha's seq 3 replaced by another envelope Alpha really signed (an equivocation): the
    # signature holds, the chain does not.
    i = _index(lines, world.a.id, 3)
    f = _fields(lines[i])
    doc = json.loads(f[1])
    doc["ts"] += 1
    unsigned = {k: v for k, v in doc.items() if k != "sig"}
    doc["sig"] = b64e(world.a.identity.sign(b"parley/envelope/v1\x00", canonical(unsigned)))
    changed = [*lines[:i], _line([b"envelope", canonical(doc), *f[2:]]), *lines[i + 1 :]]
    report = verify(changed, world)
    assert "signature" not in report.failed
    assert {"chain_links", "causal_order", "checkpoint_root"} <= set(report.failed)


def test_a_wrong_consistency_proof_fails_consistency(tmp_path: Path) -> None:
    w = World(tmp_path)
    first = db.latest_checkpoint(w.a.store, w.ch, w.a.id)
    assert first is not None
    body = checkpoint_body(w.a.identity, w.ch, db.chain_hashes(w.a.store, w.ch, w.a.id), first.size)
    body["proof"] = [b64e(crypto.sha256(b"not it")), *body["proof"][1:]]
    w.a.send(w.ch, body)
    w.exchange()
    report = verify(w.export(), w)
    assert set(report.failed) == {"consistency"}, report.to_json()


@pytest.mark.parametrize("cut", [0, 1, 2], ids=["empty", "magic-only", "bad-magic"])
def test_files_that_are_not_transcripts_fail_closed(
    world: World, lines: list[bytes], cut: int
) -> None:
    given = [[], lines[:1], [b"parley-bundle/v1\n", *lines[1:]]][cut]
    report = verify(given, world)
    assert not report.ok and "file_format" in report.failed


# --- the CLI, offline -----------------------------------------------------------------------------


def test_the_cli_verifies_offline_and_names_every_check(
    world: World, lines: list[bytes], tmp_path: Path
) -> None:
    good = tmp_path / "good.transcript"
    good.write_bytes(b"".join(lines))
    keys = tmp_path / "trusted.txt"
    keys.write_text(f"# compared by voice\n{world.a.id} {world.a.fingerprint}\n{world.b.id}\n")
    res = parley("transcript", "verify", str(good), "--trust", str(keys))
    for name in TRANSCRIPT_CHECKS:
        assert name in res.stdout
    assert "every check passed" in res.stdout and world.b.fingerprint in res.stdout
    bad = tmp_path / "bad.transcript"
    bad.write_bytes(b"".join(tamper_signature(world, lines)))
    members = ["--member", world.a.fingerprint, "--member", world.b.fingerprint]
    res = parley("transcript", "verify", str(bad), *members, ok=False)
    assert res.returncode == 1 and "FAIL" in res.stdout
    out = json.loads(parley("transcript", "verify", str(bad), *members, "--json", ok=False).stdout)
    assert not out["ok"]
    assert "signature" in {c["check"] for c in out["checks"] if c["status"] == "fail"}


# --- proofs of one message ------------------------------------------------------------------------


def test_a_proof_reveals_its_message_and_nothing_else(world: World, tmp_path: Path) -> None:
    seq = world.seq_of(world.a, TEXTS_A[1])
    doc = cps.prove(world.b, world.ch, world.a.id, seq, "auditor")
    report = check_proof(doc, trust=world.anchors())
    assert report.ok, report.to_json()
    assert all(c.passed for c in report.checks.values())
    assert report.facts["body"]["text"] == TEXTS_A[1] and report.facts["seq"] == seq
    assert [c["station"] for c in report.facts["cosigners"]] == [world.b.id]
    text = json.dumps(doc, ensure_ascii=False)
    for other in [*TEXTS_A, *TEXTS_B]:
        if other != TEXTS_A[1]:
            assert other not in text
    # Nor any other envelope, even encrypted: only sibling subtree hashes of the Merkle tree.
    mine = json.loads(doc["envelope"])
    for e in world.b.store.envelopes(world.ch):
        ct = json.loads(e.raw)["ct"]
        assert (ct in text) == (ct == mine["ct"])
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(doc))
    res = parley("transcript", "check-proof", str(path), "--member", world.a.id, "--member",
                 world.b.id)  # fmt: skip
    assert TEXTS_A[1] in res.stdout and "every check passed" in res.stdout


def _proof_tampers(w: World) -> list[tuple[str, Callable[[dict[str, Any]], None], str]]:
    def body(d: dict[str, Any]) -> None:
        d["body"] = d["body"].replace("launch", "lunch")

    def inclusion(d: dict[str, Any]) -> None:
        h = bytearray(b64d(d["inclusion"]["hashes"][0]))
        h[0] ^= 1
        d["inclusion"]["hashes"][0] = b64e(bytes(h))

    def no_cosignature(d: dict[str, Any]) -> None:
        signed = note.parse_note(d["checkpoint"])
        d["checkpoint"] = note.Note(signed.text, signed.signatures[:1]).format()

    def other_leaf(d: dict[str, Any]) -> None:
        d["inclusion"]["index"] += 1

    def signature(d: dict[str, Any]) -> None:
        env = json.loads(d["envelope"])
        env["sig"] = env["sig"][:5] + ("A" if env["sig"][5] != "A" else "B") + env["sig"][6:]
        d["envelope"] = canonical(env).decode()

    def checkpoint(d: dict[str, Any]) -> None:
        d["members"][0]["identity"] = b64e(w.b.identity.public)
        d["members"][0]["station"] = w.b.id

    return [
        ("body", body, "body_commitment"),
        ("inclusion", inclusion, "inclusion"),
        ("cosignature", no_cosignature, "cosignature"),
        ("leaf", other_leaf, "inclusion"),
        ("signature", signature, "signature"),
        ("sender", checkpoint, "envelope_format"),
    ]


def test_a_tampered_proof_fails_naming_the_check(world: World, tmp_path: Path) -> None:
    seq = world.seq_of(world.a, TEXTS_A[1])
    for name, change, check in _proof_tampers(world):
        doc = json.loads(json.dumps(cps.prove(world.b, world.ch, world.a.id, seq)))
        change(doc)
        report = check_proof(doc, trust=world.anchors())
        assert check in report.failed and not report.ok, (name, report.to_json())
    doc = cps.prove(world.b, world.ch, world.a.id, seq)
    _proof_tampers(world)[0][1](doc)
    path = tmp_path / "bad-proof.json"
    path.write_text(json.dumps(doc))
    trusted = ["--member", world.a.fingerprint, "--member", world.b.fingerprint]
    res = parley("transcript", "check-proof", str(path), *trusted, ok=False)
    assert res.returncode == 1 and "body_commitment" in res.stdout


def test_no_proof_without_a_countersigned_checkpoint(world: World) -> None:
    head = world.a.store.head_seq(world.ch, world.a.id)
    world.a.send(world.ch, channels.text_body("not yet checkpointed", "en"))
    with pytest.raises(NotFound, match="countersigned checkpoint"):
        cps.prove(world.a, world.ch, world.a.id, head + 1)


# --- the operator API -----------------------------------------------------------------------------


def test_the_api_exports_for_the_roles_the_table_names(world: World) -> None:
    # The role table (station/roles.py, `transcript.export`): auditors, admins and the people
    # who speak on channels export; a translator, or a user with no role, does not.
    now = world.clock()
    users.create_user(world.a, "tran", ["translator"], "tran checks every word", now, "admin")
    users.create_user(world.a, "audra", ["auditor"], "audra reads every transcript", now, "admin")
    _, translator = users.create_token(world.a, "tran", "cli", now, "tran")
    _, auditor = users.create_token(world.a, "audra", "cli", now, "audra")
    with TestClient(build_app(world.a, TOKEN)) as client:
        path = f"/api/v1/channels/{world.ch}/export"
        r = client.get(path, headers={"Authorization": f"Bearer {translator}"})
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        r = client.get(path, headers={"Authorization": f"Bearer {auditor}"})
        assert r.status_code == 200
        report = verify_transcript(read_lines(r.content), trust=world.anchors())
        assert report.ok
        seq = world.seq_of(world.a, TEXTS_A[0])
        r = client.get(
            f"/api/v1/channels/{world.ch}/proof",
            params={"sender": world.a.id, "seq": seq},
            headers={"Authorization": f"Bearer {auditor}"},
        )
        assert r.status_code == 200
        assert check_proof(r.json(), trust=world.anchors()).ok
        r = client.get(
            f"/api/v1/channels/{world.ch}/checkpoints", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert r.status_code == 200 and r.json()
        r = client.post(
            f"/api/v1/channels/{world.ch}/checkpoint",
            headers={"Authorization": f"Bearer {auditor}"},
        )
        assert r.status_code == 403
    assert ("audra", "transcript.export") in [(x[1], x[2]) for x in world.a.store.audit_log()]


# --- real stations --------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_stations_export_verify_prove_and_check(tmp_path: Path) -> None:
    with Stations(tmp_path, [("South", "en"), ("North", "ko")]) as net:
        ch = net.open_channel("South", ["North"])
        net.cli("South", "send", ch, "The test launch is at 09:00.")
        net.cli("South", "send", ch, "It is a test, not a threat.")
        net.cli("South", "transcript", "checkpoint", ch)
        south = net.api("South")
        wait(
            lambda: any(cp["cosigners"] for cp in south.get(f"/channels/{ch}/checkpoints")),
            what="North to countersign South's checkpoint",
        )
        out = tmp_path / "north.transcript"
        net.cli("North", "transcript", "export", ch, "--out", str(out))
        # At a station: its own key and its known peers anchor the members' keys.
        res = parley("transcript", "verify", str(out), data=net.dirs["South"])
        assert "every check passed" in res.stdout and "anchored by known peer North" in res.stdout
        proof = tmp_path / "proof.json"
        net.cli("North", "transcript", "prove", ch, "--seq", "2", "--sender", "South",
                "--out", str(proof))  # fmt: skip
        res = parley("transcript", "check-proof", str(proof), data=net.dirs["North"])
        assert "The test launch is at 09:00." in res.stdout
        assert "not a threat" not in proof.read_text()


# --- hostile input --------------------------------------------------------------------------------


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 10**9), st.sampled_from(b'\t\n{}[]":,0aA_-=\\ \x00\xff')),
        min_size=1,
        max_size=4,
    )
)
def test_verify_never_raises_and_fails_closed(
    world: World, lines: list[bytes], edits: list[tuple[int, int]]
) -> None:
    data = bytearray(b"".join(lines))
    for pos, byte in edits:
        data[pos % len(data)] = byte
    report = verify_transcript(read_lines(bytes(data)), trust=world.anchors())
    assert report.ok == (bytes(data) == b"".join(lines))
    spread = verifier.verify_buffer(bytes(data), trust=world.anchors(), span_bytes=2000)
    assert spread.to_json() == report.to_json()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(path=st.lists(st.sampled_from(["members", "inclusion", "hashes", 0, 1, "index"]),
                     max_size=3),
       value=st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers()),
                       st.dictionaries(st.text(max_size=3), st.integers())))  # fmt: skip
def test_check_proof_never_raises(world: World, path: list[Any], value: Any) -> None:
    doc: Any = json.loads(json.dumps(cps.prove(world.b, world.ch, world.a.id, 2)))
    target = doc
    for key in path[:-1]:
        try:
            target = target[key]
        except (KeyError, IndexError, TypeError):
            break
    with contextlib.suppress(IndexError, TypeError):
        target[path[-1] if path else "format"] = value
    report = check_proof(doc, trust=world.anchors())
    assert isinstance(report.ok, bool)


# --- checking on every core -----------------------------------------------------------------------


def _forge_signature(line: bytes) -> bytes:
    at = line.index(b'"sig":"') + 7  # the signature's first character, changed
    return line[:at] + (b"B" if line[at : at + 1] != b"B" else b"C") + line[at + 1 :]


def _span_starts(data: bytes, span_bytes: int, in_flight: int = 1) -> list[int]:
    """Where verify_buffer's spans start (after the header), as it cuts them with `in_flight`
    spans checked at once (one per process, and SPANS_AHEAD more per worker)."""
    pos = data.index(b"\n", data.index(b"\n") + 1) + 1
    starts = []
    while pos < len(data):
        starts.append(pos)
        pos = verifier.span_end(data, pos, span_bytes, in_flight)
    return starts


def test_spans_of_a_clean_export_are_taken_whole(world: World, lines: list[bytes]) -> None:
    # Each span's envelopes are checked in one go: the line path is not taken for any of them.
    data = b"".join(lines)
    context = _context(world)
    envelopes = sum(1 for ln in lines if ln.startswith(b"envelope\t"))
    taken = 0
    starts = _span_starts(data, 2500)
    for start, end in zip(starts, [*starts[1:], len(data)], strict=True):
        span = spans.check_span(data, start, end, context)
        assert span is not None
        taken += span.lines
        if span.stop < end:  # only the lines after the envelopes end a span early
            assert not data[span.stop :].count(b"\nenvelope\t")
    assert taken == envelopes


def _context(world: World) -> spans.Members:
    return spans.Members(
        world.ch,
        {st.id: ((st.identity.public, 0, -1),) for st in (world.a, world.b)},
        {world.a.id: (world.b.id,), world.b.id: (world.a.id,)},
    )


def _sender_times(lines: list[bytes], sender: str) -> list[int]:
    return [
        json.loads(ln.split(b"\t")[1])["ts"]
        for ln in lines
        if ln.startswith(b"envelope\t") and json.loads(ln.split(b"\t")[1])["from"] == sender
    ]


@pytest.mark.parametrize(
    "window",
    ["exact", "starts after the first", "ends before the last"],
)
def test_a_span_is_taken_only_if_each_envelope_is_in_its_senders_key_time(
    world: World, lines: list[bytes], window: str
) -> None:
    # A sender with one key has its span's time checked as a whole (first and last envelope):
    # the span must be refused exactly when one envelope is outside the key's time.
    data = b"".join(lines)
    start = data.index(b"\n", data.index(b"\n") + 1) + 1
    times = _sender_times(lines, world.a.id)
    lo, hi = {
        "exact": (times[0], times[-1]),
        "starts after the first": (times[0] + 1, -1),
        "ends before the last": (0, times[-1] - 1),
    }[window]
    context = _context(world)
    keys = {**context.keys, world.a.id: ((world.a.identity.public, lo, hi),)}
    span = spans.check_span(data, start, len(data), context._replace(keys=keys))
    assert (span is not None) is (window == "exact")
    if span is not None:
        assert span == spans.check_span(data, start, len(data), context)


def _ct_last(line: bytes, char: bytes) -> bytes:
    at = line.index(b'","eph":"') - 1  # the ciphertext's last character
    return line[:at] + char + line[at + 1 :]


# Envelope lines the span reader must not take: not in the one canonical form, or not of the
# shape it reads. Each sends the span to the line path, which reports it as it always has.
DEFERRED: dict[str, Callable[[bytes], bytes]] = {
    "a space in the envelope": lambda ln: ln.replace(b'\t{"ch"', b'\t{ "ch"', 1),
    "a key escaped": lambda ln: ln.replace(b'"ch":', b'"\\u0063h":', 1),
    "keys out of order": lambda ln: ln.replace(b'{"ch":', b'{"v":1,"ch":', 1).replace(
        b',"v":1}', b"}", 1
    ),
    "a ciphertext bit past its end": lambda ln: _ct_last(ln, b"B" if b"=" in ln else b"9"),
    "a ciphertext of impossible length": lambda ln: _ct_last(ln, b"AB"),
    "a seq with a leading zero": lambda ln: ln.replace(b'"seq":', b'"seq":0', 1),
    "a salt with padding": lambda ln: b"\t".join(
        f + b"=" if i == 2 else f for i, f in enumerate(ln.split(b"\t"))
    ),
    "no body text": lambda ln: ln[: ln.rindex(b"\t")] + b"\n",
    "a tab in the body": lambda ln: ln[:-2] + b"\t" + ln[-2:],
    "sent before 1970": lambda ln: ln.replace(b'"ts":', b'"ts":-', 1),
}


@pytest.mark.parametrize("how", list(DEFERRED))
def test_a_line_the_span_reader_defers_is_reported_as_the_line_path_reports_it(
    world: World, lines: list[bytes], how: str
) -> None:
    envelopes = [i for i, ln in enumerate(lines) if ln.startswith(b"envelope\t")]
    # One with a body (the commitment's fields) after the first few (chains already under way).
    n = next(i for i in envelopes[4:] if lines[i].count(b"\t") == 3)
    changed = list(lines)
    changed[n] = DEFERRED[how](lines[n])
    assert changed[n] != lines[n]
    data = b"".join(changed)
    at = sum(map(len, changed[:n]))
    whole = spans.check_span(data, at - len(changed[n - 1]), len(data), _context(world))
    assert whole is None
    report = verify(changed, world)  # every span size gives the line path's report
    assert not report.ok


@pytest.mark.parametrize("span_bytes", [1, 2500, 1 << 20], ids=["line", "few", "one-span"])
def test_a_forged_signature_is_found_in_the_last_span_and_at_a_span_boundary(
    world: World,
    lines: list[bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    span_bytes: int,
) -> None:
    monkeypatch.setattr(verifier, "SPAN_BYTES", span_bytes)
    data = b"".join(lines)
    envelopes = [i for i, ln in enumerate(lines) if ln.startswith(b"envelope\t")]
    offsets = [sum(map(len, lines[:i])) for i in envelopes]
    # verify_file(processes=2) below: two workers, SPANS_AHEAD spans queued in each.
    starts = set(_span_starts(data, span_bytes, 2 * verifier.SPANS_AHEAD + 1))
    first_of_a_span = [i for i, at in zip(envelopes, offsets, strict=True) if at in starts]
    last = envelopes[-1]
    # The last envelope (in the last span that holds envelopes), and the first envelope of a
    # span after the first (its chain continues across the boundary).
    targets = {last, first_of_a_span[-1]}
    if len(first_of_a_span) > 1:
        targets.add(first_of_a_span[len(first_of_a_span) // 2])
    path = tmp_path / "forged.transcript"
    for i in sorted(targets):
        forged = [_forge_signature(ln) if n == i else ln for n, ln in enumerate(lines)]
        path.write_bytes(b"".join(forged))
        inline = verify_transcript(forged, trust=world.anchors())
        spread = verify_file(path, processes=2, trust=world.anchors())
        assert spread.to_json() == inline.to_json()
        assert spread["signature"].failed == 1
        assert spread["signature"].failures[0].startswith(f"line {i + 1} (")
        # (The envelope's hash changed with it: links to it break, and the export signature.)


def test_checking_in_worker_processes_reports_exactly_what_checking_inline_does(
    world: World, lines: list[bytes], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Small spans, so span boundaries fall everywhere.
    monkeypatch.setattr(verifier, "SPAN_BYTES", 2000)
    envelopes = [i for i, ln in enumerate(lines) if ln.startswith(b"envelope\t")]
    bad_sig = [_forge_signature(ln) if n == envelopes[5] else ln for n, ln in enumerate(lines)]
    swapped = list(lines)
    j, k = envelopes[7], envelopes[8]
    swapped[j], swapped[k] = swapped[k], swapped[j]
    dropped = [ln for n, ln in enumerate(lines) if n != envelopes[3]]
    unreadable = list(lines)
    unreadable[envelopes[9]] = b"envelope\t{not json}\n"
    path = tmp_path / "given.transcript"
    for file in (lines, bad_sig, swapped, dropped, unreadable):
        path.write_bytes(b"".join(file))
        inline = verify_transcript(file, trust=world.anchors())
        spread = verify_file(path, processes=2, trust=world.anchors())
        assert spread.to_json() == inline.to_json()
        assert inline.ok is (file is lines)


def _resigned(world: World, line: bytes, old: bytes, new: bytes) -> bytes:
    """The envelope line with `old` (a prev or seen hash's text) made `new`, signed again by its
    sender, so that only the link it names is wrong (its own hash changes with it)."""
    head, raw, *rest = line.split(b"\t")
    raw = raw.replace(old, new, 1)
    at = raw.index(b'"sig":"') + 7
    scanned = scan.scan_envelope(raw[:at] + b"A" * 86 + raw[at + 86 :])
    key = world.a.identity if scanned.sender == world.a.id else world.b.identity
    sig = b64e(key.sign(ENVELOPE_LABEL, scanned.signing_input)).encode("ascii")
    return b"\t".join([head, raw[:at] + sig + raw[at + 86 :], *rest])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(which=st.integers(0, 10**6), field=st.sampled_from(["prev", "seen"]),
       other=st.integers(0, 10**6))  # fmt: skip
def test_a_link_within_a_span_is_checked_as_the_line_path_checks_it(
    world: World, lines: list[bytes], which: int, field: str, other: int
) -> None:
    # check_span compares a span's prev and `seen` hashes with its envelopes' hashes at its end,
    # all at once: a validly signed envelope naming another envelope's hash (or its own again)
    # is refused (or taken) exactly as the line path reports it, at every span size.
    envelopes = [i for i, ln in enumerate(lines) if ln.startswith(b"envelope\t")]
    hashes = [b64e(crypto.sha256(lines[i].split(b"\t")[1])).encode() for i in envelopes]
    n = envelopes[2 + which % (len(envelopes) - 2)]
    env = json.loads(lines[n].split(b"\t")[1])
    old = (env["prev"] if field == "prev" else next(iter(env["seen"].values()))["hash"]).encode()
    changed = list(lines)
    changed[n] = _resigned(world, lines[n], old, hashes[other % len(hashes)])
    report = verify(changed, world)  # every span size gives the line path's report
    assert report.ok is (changed[n] == lines[n])
    data = b"".join(changed)
    start = data.index(b"\n", data.index(b"\n") + 1) + 1
    taken = spans.check_span(data, start, len(data), _context(world))
    assert (taken is not None) is (changed[n] == lines[n])


def _verified_watching(
    world: World,
    lines: list[bytes],
    tmp_path: Path,
    name: str,
    probe: Callable[[], object],
    processes: int,
) -> list[object]:
    """verify_file on `lines`, `probe()` noted at each call of verifier.`name` in this process;
    the report must be the one checking inline gives."""
    path = tmp_path / "clean.transcript"
    path.write_bytes(b"".join(lines))
    seen: list[object] = []
    real = getattr(verifier, name)

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append(probe())
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(verifier, name, watched)
        report = verify_file(path, processes=processes, trust=world.anchors())
    assert report.to_json() == verify_transcript(lines, trust=world.anchors()).to_json()
    return seen


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_while_a_file_is_verified_and_left_as_it_was(
    world: World, lines: list[bytes], tmp_path: Path, enabled: bool
) -> None:
    # verify_file pauses Python's cyclic collector (its collections walk the growing span
    # lists and trees); the report is the same, and the caller's setting comes back.
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        seen = _verified_watching(world, lines, tmp_path, "check_span", gc.isenabled, 0)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert seen and not any(seen)


@pytest.mark.parametrize("processes", [0, 1])
def test_the_switch_interval_is_short_while_workers_check_spans_and_restored_after(
    world: World, lines: list[bytes], tmp_path: Path, processes: int
) -> None:
    # With workers, verify_file shortens the GIL switch interval (the pool's threads in this
    # process hand spans out and take results in at every switch); without them it is left as
    # it is. Either way the report is the same and the caller's interval comes back.
    was = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.004)
        seen = _verified_watching(
            world, lines, tmp_path, "verify_buffer", sys.getswitchinterval, processes
        )
        assert sys.getswitchinterval() == pytest.approx(0.004)
    finally:
        sys.setswitchinterval(was)
    assert seen == [pytest.approx(verifying.HANDOFF_S if processes else 0.004)]
