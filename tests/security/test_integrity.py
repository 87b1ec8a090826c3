"""Integrity at rest and anchored verification (issue 13 §5).

1. A station's database edited while the station is stopped: each changed body, envelope or
   chain link is shown as failed by the API, the CLI and the console (never its stored text as
   verified), raises one critical alarm per envelope however often it is read, is found by the
   self-audit on start, keeps the transcript digest from claiming equality, and cannot make a
   fold, a proof or an export pass it on silently. The self-audit runs on SQLite and PostgreSQL,
   in chunks, sleeping between them.
2. `parley transcript verify` / `check-proof` and the console's upload-and-verify accept only
   anchored member keys: a forged export signed with made-up keys (built by the real code with
   fresh keys) fails by default and with --trust of the real keys, and passes only under
   --unsafe-trust-file-keys, with the warning printed; a real export passes anchored.

Every test states how many cases it tried.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import secrets
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from parley.app import serve
from parley.domain import channels, translation
from parley.errors import Code, Conflict, LocalError
from parley.protocol import crypto, export, verifier
from parley.protocol.encoding import b64e, canonical
from parley.protocol.proof import check_proof
from parley.protocol.trust import (
    UNSAFE_TRUST_FILE_KEYS,
    Anchor,
    Anchors,
    parse_anchor,
    parse_trust_file,
)
from parley.station import checkpoints as cps
from parley.station import features, selfaudit
from parley.station import talks as talks_station
from parley.station.config import Config, Timings
from parley.station.dispatcher import Dispatcher
from parley.station.node import Station
from parley.store import checkpoints as cp_db
from parley.store import integrity as integrity_db
from parley.store.base import SqlStore
from parley.store.sqlite import SqliteStore
from parley.transport.memory import MemoryNet
from tests.net import Stations, parley, wait
from tests.pair import Clock, Net, hotline, introduce, make_station, open_channel

pytest_plugins = ["tests.stores"]  # `store`: SQLite, then PostgreSQL

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = secrets.token_urlsafe(18)
TEXTS = [f"Message {i}: the exercise window opens at 0{i}:00 UTC" for i in range(8)]


# --- helpers --------------------------------------------------------------------------------------


def integrity_alarms(alarms: list[Any]) -> list[Any]:
    return [a for a in alarms if (a["kind"] if isinstance(a, dict) else a.kind) == "integrity"]


def rows_by_text(db: sqlite3.Connection, ch: str, sender: str) -> dict[str, tuple[bytes, int]]:
    rows = db.execute(
        "SELECT e.hash, e.seq, b.body FROM envelopes e JOIN bodies b ON b.hash = e.hash"
        " WHERE e.channel = ? AND e.sender = ?",
        (ch, sender),
    ).fetchall()
    return {json.loads(body).get("text", ""): (bytes(h), int(seq)) for h, seq, body in rows}


def resign_free_edit(raw: bytes) -> tuple[bytes, bytes, int]:
    """The envelope with its time moved by 1 ms, re-encoded canonically: (bytes, hash, ts).
    Stored with its new hash and time, only the signature can tell."""
    doc = json.loads(raw)
    doc["ts"] += 1
    new = canonical(doc)
    return new, crypto.sha256(new), int(doc["ts"])


def tamper_three(path: Path, ch: str, sender: str) -> dict[str, list[int]]:
    """Edit a stopped station's SQLite file three ways; returns the seqs each case shows on."""
    db = sqlite3.connect(path)
    by_text = rows_by_text(db, ch, sender)
    shows: dict[str, list[int]] = {}
    # 1. a body: the text changed, its hash and salt left alone
    h, seq = by_text[TEXTS[1]]
    db.execute("UPDATE bodies SET body = replace(body, 'opens', 'closes') WHERE hash = ?", (h,))
    shows["body"] = [seq]
    # 2. the envelope bytes: changed and stored under their new hash, with matching columns
    h, seq = by_text[TEXTS[3]]
    (raw,) = db.execute("SELECT raw FROM envelopes WHERE hash = ?", (h,)).fetchone()
    new, nh, ts = resign_free_edit(bytes(raw))
    db.execute("UPDATE envelopes SET raw = ?, hash = ?, ts = ? WHERE hash = ?", (new, nh, ts, h))
    db.execute("UPDATE bodies SET hash = ? WHERE hash = ?", (nh, h))
    shows["envelope"] = [seq, seq + 1]  # and its successor no longer follows it
    # 3. a chain link: one envelope (and its body) removed; its successor shows the break
    h, seq = by_text[TEXTS[5]]
    db.execute("DELETE FROM bodies WHERE hash = ?", (h,))
    db.execute("DELETE FROM envelopes WHERE hash = ?", (h,))
    shows["link"] = [seq + 1]
    db.commit()
    db.close()
    return shows


def findings(path: Path) -> list[tuple[str, str, int, str]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT kind, sender, seq, found_by FROM integrity_findings").fetchall()
    finally:
        db.close()
    return [(str(k), str(s), int(q), str(f)) for k, s, q, f in rows]


def login(page: Any, base: str, name: str, path: str) -> None:
    page.goto(base + path)
    page.get_by_label(re.compile("User name|사용자 이름")).fill(name)
    page.get_by_label(re.compile("^(Password|비밀번호)$")).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign in|로그인")).click()
    page.wait_for_url(re.compile(re.escape(path) + r"(\?.*)?$"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (scripts/setup installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            yield b
        finally:
            b.close()


def forged_export(tmp: Path) -> bytes:
    """A self-consistent transcript made by the real code with fresh, made-up keys: stations
    named like the real ones, a channel, messages, checkpoints and cosignatures, all signed."""
    net, _, a, b, ch = hotline(tmp)
    for text in ("Forged: the exercise is cancelled.", "Forged: stand down."):
        a.send(ch, channels.text_body(text, "en"))
    cps.issue(a, ch)
    for _ in range(3):
        net.deliver(a, b)
        net.deliver(b, a)
    data = b"".join(cps.export(a, ch))
    a.store.close()
    b.store.close()
    return data


# --- 1 and 2 against real station processes -------------------------------------------------------


def test_a_store_edited_while_stopped_fails_everywhere_and_a_forgery_fails_anchored(
    tmp_path: Path, browser: Any
) -> None:
    tried = 0
    with Stations(tmp_path, [("South", "en"), ("North", "en")]) as net:
        south, north = net.api("South"), net.api("North")
        north.post("/users", json={"name": "kim", "roles": ["operator", "auditor"],
                                   "password": PASSWORD})  # fmt: skip
        south.post("/users", json={"name": "lee", "roles": ["auditor"], "password": PASSWORD})
        ch = net.open_channel("South", ["North"])
        south.post(f"/channels/{ch}/messages/batch",
                   json={"messages": [{"text": t} for t in TEXTS]})  # fmt: skip
        wait(lambda: len(north.get("/inbox", params={"limit": 100})) >= len(TEXTS) + 1,
             what="North to receive every message")  # fmt: skip
        before = north.get(f"/channels/{ch}/transcript")
        assert before["digest"] and before["integrity"]["ok"]

        net.stop("North")
        db_path = net.dirs["North"] / "parley.db"
        shows = tamper_three(db_path, ch, net.ids["South"])
        net.restart("North")
        # The self-audit runs at start, before anyone reads anything.
        wait(lambda: (north.get("/status")["selfaudit"] or {}).get("passes", 0) >= 1,
             what="the first self-audit pass")  # fmt: skip
        failed_seqs = {q for seqs in shows.values() for q in seqs}
        audit = north.get("/status")["selfaudit"]
        assert audit["problems"] == len(failed_seqs) == 4, audit
        found = findings(db_path)
        assert sorted((s, q, f) for _, s, q, f in found) == sorted(
            (net.ids["South"], q, "selfaudit") for q in failed_seqs
        ), found
        tried += 3
        # The API, twice (the alarm must not repeat per read).
        for _ in range(2):
            msgs = north.get(f"/channels/{ch}/messages")
            bad = {m["seq"]: m for m in msgs if m["signature"] != "verified"}
            assert set(bad) == failed_seqs, bad
            assert all(m["signature"] == "failed" and m["body"] == {} for m in bad.values())
            assert "commitment" in bad[shows["body"][0]]["problem"]
            assert "signature does not verify" in bad[shows["envelope"][0]]["problem"]
            assert "does not follow" in bad[shows["envelope"][1]]["problem"]
            assert "missing" in bad[shows["link"][0]]["problem"]
            assert "closes" not in json.dumps(msgs)
            inbox = north.get("/inbox", params={"limit": 100})
            assert {m["seq"] for m in inbox if m["signature"] == "failed"} == failed_seqs
        # The CLI.
        out = net.cli("North", "inbox", "--limit", "100").stdout
        assert out.count("INTEGRITY CHECK FAILED") == 4 and "closes" not in out, out
        # The transcript digest claims nothing.
        digest = north.get(f"/channels/{ch}/transcript")
        assert digest["digest"] is None and digest["integrity"]["failed"] == 4, digest
        # The console, in a real browser.
        page = browser.new_context().new_page()
        login(page, north.base, "kim", f"/console/channels/{ch}")
        assert page.locator(".integrity-failed").count() == 4
        assert page.locator("[role=alert]", has_text="failed its integrity check").count() == 4
        assert "closes" not in page.content()
        assert page.locator("text=signature verified").count() >= len(TEXTS) - 3
        page.goto(north.base + f"/console/channels/{ch}/transcript")
        assert page.locator("#digest-failed").count() == 1
        tried += 3 * 5  # each case on the API, the inbox, the CLI, the digest and the console

        # An export carries the stored bytes: the offline verifier fails them, not silently.
        exported = tmp_path / "north.transcript"
        net.cli("North", "transcript", "export", ch, "--out", str(exported))
        res = parley(
            "transcript", "verify", str(exported), "--json", data=net.dirs["North"], ok=False
        )
        failed = {c["check"] for c in json.loads(res.stdout)["checks"] if c["status"] == "fail"}
        assert {"body_commitment", "signature", "seq_order"} <= failed, failed
        tried += 1

        # One alarm per envelope, after all those reads, and after another restart and pass.
        alarms = integrity_alarms(north.get("/alarms", params={"all": True}))
        assert len(alarms) == 4 and {a["subject"] for a in alarms} == {ch}, alarms
        assert {a["severity"] for a in alarms} == {"critical"}
        net.restart("North")
        wait(lambda: (north.get("/status")["selfaudit"] or {}).get("passes", 0) >= 2,
             what="the second self-audit pass")  # fmt: skip
        assert north.get("/status")["selfaudit"]["problems"] == 4
        assert len(integrity_alarms(north.get("/alarms", params={"all": True}))) == 4
        tried += 1

        # 2. Anchored verification at a station: South's own export passes with its anchors.
        real = tmp_path / "south.transcript"
        net.cli("South", "transcript", "export", ch, "--out", str(real))
        res = parley("transcript", "verify", str(real), data=net.dirs["South"])
        assert "every check passed" in res.stdout and res.stdout.count("NOT ANCHORED") == 0
        assert "anchored by known peer North" in res.stdout
        forged = tmp_path / "forged.transcript"
        forged.write_bytes(forged_export(tmp_path / "forger"))
        # By default (the station's own key and known peers): fails, naming both keys.
        res = parley("transcript", "verify", str(forged), data=net.dirs["South"], ok=False)
        assert res.returncode == 1 and res.stdout.count("is not anchored") == 2, res.stdout
        assert res.stdout.count("NOT ANCHORED") == 2
        # With --trust of the real keys, as a person would write them down: fails.
        keys = tmp_path / "trusted.txt"
        info = [south.get("/station"), *south.get("/peers")]
        keys.write_text("".join(f"{k['station']} {k['fingerprint']}  # {k['name']}\n"
                                for k in info))  # fmt: skip
        res = parley("transcript", "verify", str(forged), "--trust", str(keys), ok=False)
        assert res.returncode == 1 and res.stdout.count("is not anchored") == 2
        res = parley("transcript", "verify", str(real), "--trust", str(keys))
        assert "every check passed" in res.stdout
        # Only the named unsafe option takes the file's keys, and says so before and after.
        res = parley("transcript", "verify", str(forged), "--unsafe-trust-file-keys")
        assert res.stdout.count("UNSAFE: the member keys were taken from the file") == 2
        assert "OK only if the member keys are the real ones" in res.stdout
        res = parley("transcript", "verify", str(forged), "--unsafe-trust-file-keys", "--json")
        assert json.loads(res.stdout)["facts"]["trust"]["policy"] == "unsafe-trust-file-keys"
        assert "UNSAFE" in res.stderr
        res = parley("transcript", "verify", str(forged), "--unsafe-trust-file-keys",
                     "--trust", str(keys), ok=False)  # fmt: skip
        assert res.returncode == 1 and "cannot be combined" in res.stderr + res.stdout
        tried += 6

        # The console's upload-and-verify uses the station's known peers.
        page = browser.new_context().new_page()
        login(page, south.base, "lee", f"/console/channels/{ch}/transcript")
        for name, data, ok in (("forged", forged.read_bytes(), False),
                               ("real", real.read_bytes(), True)):  # fmt: skip
            page.locator("#tr-file").set_input_files(
                {"name": f"{name}.transcript", "mimeType": "text/plain", "buffer": data}
            )
            page.get_by_role("button", name="Verify file").click()
            verdict = page.locator("#verdict").inner_text()
            want = "Every check passed." if ok else "Verification FAILED"
            assert verdict.startswith(want), (name, verdict)
            row = page.locator("#report tbody tr", has_text="member_keys")
            assert row.locator("td").first.inner_text() == ("pass" if ok else "FAIL")
            tried += 1
    print(f"{tried} cases tried against real stations")
    assert tried == 28, tried


# --- 1 in process: every kind of change, on SQLite and PostgreSQL ---------------------------------


def station_on(store: SqlStore, name: str, clock: Clock) -> Station:
    cfg = Config(name=name, lang="en", listen="127.0.0.1:9", timings=Timings())
    st = Station(cfg, store, crypto.SigningKey.generate(), clock)
    st.rotate_prekeys()
    return features.install(st)


def pair_on(tmp: Path, store: SqlStore) -> tuple[Net, Station, Station, str]:
    """South on SQLite, North on `store`, an open hotline; no automatic checkpoints."""
    clock = Clock()
    a = make_station(tmp / "south", "South", "en", clock)
    b = station_on(store, "North", clock)
    for st in (a, b):
        cps.policy(st).every_envelopes = 10_000
        cps.policy(st).every_ms = 10**12
    introduce(a, b)
    net = Net()
    return net, a, b, open_channel(net, a, b)


def test_the_self_audit_finds_every_kind_of_change_on_both_backends(
    tmp_path: Path, store: SqlStore
) -> None:
    net, a, b, ch = pair_on(tmp_path, store)
    texts = [f"text {i}" for i in range(13)]
    for t in texts[:5]:
        a.send(ch, channels.text_body(t, "en"))
    cp = cps.issue(a, ch)  # South's seq 7 covers 1..6
    for t in texts[5:]:
        a.send(ch, channels.text_body(t, "en"))
    for _ in range(3):
        net.deliver(a, b)
        net.deliver(b, a)
    assert cp_db.checkpoint_at(b.store, ch, a.id, cp.size) is not None
    clean = selfaudit.Pass(b, 4).run()
    assert clean["problems"] == 0 and clean["envelopes"] > 15 and clean["checkpoints"] == 1

    def seq_of(text: str) -> tuple[bytes, int]:
        for e, body in b.store.channel_events(ch):
            if body is not None and body.body.get("text") == text:
                return e.hash, e.seq
        raise AssertionError(text)

    q = b.store.q
    expected: set[tuple[str, str, int]] = set()
    h, seq = seq_of("text 6")  # a body
    q(
        "UPDATE bodies SET body = ? WHERE hash = ?",
        canonical(channels.text_body("x", "en")).decode(),
        h,
    )
    expected.add(("envelope", a.id, seq))
    h, seq = seq_of("text 7")  # a type column: hides a text from the inbox
    q("UPDATE bodies SET type = 'checkpoint' WHERE hash = ?", h)
    expected.add(("envelope", a.id, seq))
    h, seq = seq_of("text 8")  # envelope bytes, stored under their new hash: it and its successor
    row = b.store.envelope_by_hash(h)
    assert row is not None
    new, nh, ts = resign_free_edit(row.raw)
    q("UPDATE envelopes SET raw = ?, hash = ?, ts = ? WHERE hash = ?", new, nh, ts, h)
    q("UPDATE bodies SET hash = ? WHERE hash = ?", nh, h)
    expected |= {("envelope", a.id, seq), ("envelope", a.id, seq + 1)}
    h, seq = seq_of("text 10")  # a chain link: one envelope gone
    q("DELETE FROM bodies WHERE hash = ?", h)
    q("DELETE FROM envelopes WHERE hash = ?", h)
    expected.add(("envelope", a.id, seq + 1))
    q("UPDATE checkpoints SET root = ? WHERE channel = ? AND sender = ?",  # a checkpoint's root
      crypto.sha256(b"another"), ch, a.id)  # fmt: skip
    expected.add(("checkpoint", a.id, cp.size))
    q(  # a checkpoint beyond the chain's end
        "INSERT INTO checkpoints (channel, sender, size, root, seq, note, ts)"
        " SELECT channel, sender, 100, root, 101, note, ts FROM checkpoints WHERE channel = ?",
        ch,
    )
    expected.add(("checkpoint", a.id, 100))

    first = selfaudit.Pass(b, 4).run()
    got = {(f.kind, f.sender, f.seq) for f in integrity_db.findings(b.store)}
    assert got == expected and first["problems"] == len(expected), (got, first)
    assert {f.found_by for f in integrity_db.findings(b.store)} == {"selfaudit"}
    assert first["chunks"] >= first["envelopes"] // 4
    # Reads agree on the envelopes, and nothing is alarmed twice.
    shown = {m.seq for m in b.messages(ch) if not m.verified}
    assert shown == {s for k, _, s in expected if k == "envelope"}
    assert "x" not in [m.body.get("text") for m in b.inbox()]
    second = selfaudit.Pass(b, 4).run()
    assert second["problems"] == len(expected) and second["passes"] == first["passes"] + 1
    assert len(integrity_alarms(b.store.alarms(include_cleared=True))) == len(expected)
    print(f"6 kinds of change, {len(expected)} findings by the self-audit, each alarmed once")
    assert len(expected) == 7


def test_the_self_audit_yields_between_chunks_and_bounds_its_cpu(tmp_path: Path) -> None:
    net, _, a, b, ch = hotline(tmp_path)
    for i in range(20):
        a.send(ch, channels.text_body(f"m{i}", "en"))
    net.deliver(a, b)
    b.cfg.timings = Timings(selfaudit_period_ms=3_600_000, selfaudit_chunk=3,
                            selfaudit_cpu_percent=20)  # fmt: skip
    sleeps: list[float] = []

    class PeriodStarted(Exception):
        pass

    async def sleep(s: float) -> None:
        sleeps.append(s)
        if s == 3600:  # the pass is over: the period starts
            raise PeriodStarted

    # On a thread of its own: a browser fixture of this module may hold this thread's loop.
    with ThreadPoolExecutor(1) as pool, pytest.raises(PeriodStarted):
        pool.submit(asyncio.run, selfaudit.run(b, sleep)).result()
    last = integrity_db.last_pass(b.store)
    n = len(b.store.envelopes(ch))
    assert last is not None and last["envelopes"] == n >= 20
    chunk_sleeps = sleeps[:-1]
    assert len(chunk_sleeps) == last["chunks"] == n // 3 + 1
    assert all(s >= selfaudit.MIN_PAUSE_S for s in chunk_sleeps)
    assert selfaudit.pause_s(0.5, 20) == pytest.approx(2.0)  # 20 %: 4 s idle per 1 s busy
    assert selfaudit.pause_s(0.0, 100) == selfaudit.MIN_PAUSE_S
    bad = [{"selfaudit_chunk": 0}, {"selfaudit_cpu_percent": 101}, {"selfaudit_period_ms": -1}]
    for kw in bad:
        with pytest.raises(LocalError, match=r"timings\.selfaudit"):
            Timings(**kw)
    print(f"{len(chunk_sleeps)} chunks, each followed by a sleep; {len(bad)} bad settings refused")


def test_folds_proofs_exports_and_the_lifecycle_never_use_a_changed_record(
    tmp_path: Path,
) -> None:
    net, _, a, b, ch = hotline(tmp_path)
    row, _ = a.send(ch, channels.text_body("The launch is a test.", "en"))
    ref = b64e(row.hash)
    net.deliver(a, b)
    b.send(ch, translation.human_body(ref, "ko", "발사는 시험입니다.", "north.t", certified=True))
    cps.issue(a, ch)
    for _ in range(3):
        net.deliver(a, b)
        net.deliver(b, a)
    a.control(ch, "suspend", "maintenance")
    net.deliver(a, b)
    assert talks_station.translations(a, ch, ref).state.of(ref)
    assert b.channel_state(ch).state == "suspended"
    cases = 0

    def body_hash(st: Station, kind: str) -> bytes:
        return next(e.hash for e, bd in st.store.channel_events(ch) if bd and bd.type == kind)

    # A translation changed at South: the fold leaves it out (there is none), and alarms.
    a.store.q("UPDATE bodies SET body = replace(body, '시험', '공격') WHERE hash = ?",
              body_hash(a, translation.TYPE))  # fmt: skip
    assert talks_station.translations(a, ch, ref).state.of(ref) == {}
    cases += 1
    # The original text changed at South: no proof of it, and the export fails its check.
    a.store.q("UPDATE bodies SET body = replace(body, 'a test', 'real') WHERE hash = ?", row.hash)
    with pytest.raises(Conflict) as exc:
        cps.prove(a, ch, a.id, row.seq)
    assert exc.value.code == Code.INTEGRITY_FAILED
    cases += 1
    report = verifier.verify_transcript(
        export.read_lines(b"".join(cps.export(a, ch))), trust=cps.anchors(a)
    )
    assert "body_commitment" in report.failed and report["body_commitment"].failed == 2
    cases += 1
    # A lifecycle step changed at North: it is left out of the channel's state. Changed by
    # another connection, as by anyone editing the file: the station's own connection never
    # writes a changed body, and its cached channel states end when another one commits.
    assert isinstance(b.store, SqliteStore)
    with sqlite3.connect(b.store.path) as other:
        other.execute(
            "UPDATE bodies SET body = replace(body, 'maintenance', 'forever') WHERE hash = ?",
            (body_hash(b, "channel.suspend"),),
        )
    assert b.channel_state(ch).state == "open"
    cases += 1
    # One alarm per envelope at each station, however often they were read.
    for _ in range(2):
        a.messages(ch)
        b.messages(ch)
        b.transcript_digest(ch)
    assert len(integrity_alarms(a.store.alarms())) == 2
    assert len(integrity_alarms(b.store.alarms())) == 1
    print(f"{cases} readers refused a changed record")
    assert cases == 4


# --- 2 in process: the anchors -------------------------------------------------------------------


def test_verification_is_anchored_and_fails_closed(tmp_path: Path) -> None:
    net, _, a, b, ch = hotline(tmp_path / "real")
    a.send(ch, channels.text_body("Real message.", "en"))
    cps.issue(a, ch)
    for _ in range(3):
        net.deliver(a, b)
        net.deliver(b, a)
    real = list(export.read_lines(b"".join(cps.export(a, ch))))
    forged = list(export.read_lines(forged_export(tmp_path / "forged")))
    proof = cps.prove(a, ch, a.id, 2)
    anchors = cps.anchors(b)  # what North trusts: itself and South
    cases = 0
    ok = verifier.verify_transcript(real, trust=anchors)
    assert ok.ok and ok["member_keys"].passed == 2
    assert check_proof(proof, trust=anchors).ok
    cases += 2
    bad = verifier.verify_transcript(forged, trust=anchors)
    assert not bad.ok and bad.failed == ["member_keys"] and bad["member_keys"].failed == 2
    assert all("is not anchored" in why for why in bad["member_keys"].failures)
    cases += 1
    # One real member trusted, the other not: the other is named.
    half = Anchors((Anchor("south", a.id),))
    report = verifier.verify_transcript(real, trust=half)
    assert report["member_keys"].failed == 1 and b.id in report["member_keys"].failures[0]
    assert not check_proof(proof, trust=Anchors((Anchor("north", b.id),))).ok
    cases += 2
    unsafe = verifier.verify_transcript(forged, trust=UNSAFE_TRUST_FILE_KEYS)
    assert unsafe.ok and "UNSAFE" in unsafe.facts["trust"]["warning"]
    assert unsafe["member_keys"].status == "none"
    cases += 1
    with pytest.raises(LocalError) as exc:
        Anchors(())
    assert exc.value.code == Code.NO_TRUST_ANCHORS
    cases += 1
    # Every form a trust line takes anchors the key it names; a wrong one does not.
    key = a.identity.public
    fp = a.fingerprint
    forms = [
        a.id, fp, fp.replace(" ", ""), f"{a.id} {fp}", b64e(key),
        f"parley-fp:{a.id}:{fp.replace(' ', '')}", a.invitation().encode(),
    ]  # fmt: skip
    for form in forms:
        assert parse_anchor(form, "t").matches(key), form
        assert not parse_anchor(form, "t").matches(b.identity.public), form
    cases += len(forms)
    assert not parse_anchor(f"{b.id} {fp}", "t").matches(key)  # id and fingerprint disagree
    cases += 1
    text = f"# trusted\n\n{a.id}  # South\n{b.fingerprint}\n".encode()
    assert [x.source for x in parse_trust_file(text, "keys.txt")] == [
        "keys.txt line 3", "keys.txt line 4"
    ]  # fmt: skip
    bad_files = [b"# nothing\n", b"st-not-an-id\n", b"12345 6789\n", b"\xff\xfe\n",
                 b"x" * (1 << 20 | 1)]  # fmt: skip
    for data in bad_files:
        with pytest.raises(LocalError):
            parse_trust_file(data, "keys.txt")
    cases += 1 + len(bad_files)
    # The CLI with no anchors and no station refuses, naming the way out.
    path = tmp_path / "real.transcript"
    path.write_bytes(b"".join(real))
    res = parley("transcript", "verify", str(path), "--data", str(tmp_path / "none"), ok=False)
    assert res.returncode == 1 and "no_trust_anchors" in res.stderr + res.stdout
    res = parley("transcript", "verify", str(path), "--member", a.fingerprint, "--member", b.id)
    assert "every check passed" in res.stdout
    res = parley("transcript", "check-proof", "/dev/null", "--member", "12345", ok=False)
    assert res.returncode == 1 and "invalid_request" in res.stderr + res.stdout
    cases += 3
    print(f"{cases} anchoring cases tried")
    assert cases == 24


def test_the_self_audit_runs_as_a_duty(tmp_path: Path) -> None:
    """Where it runs is where the duties run (app/serve.py): the one process of a SQLite station,
    the dispatcher-lock holder of a PostgreSQL one (tests/test_workers_pg.py hands that on)."""
    _, _, _, b, _ = hotline(tmp_path)
    work = serve._duties(b, Dispatcher(b, MemoryNet().transport(b.id)))
    try:
        audits = [c for c in work if c.cr_code is selfaudit.run.__code__]
    finally:
        for c in work:
            c.close()
    print(f"{len(work)} duties, {len(audits)} of them the self-audit")
    assert len(audits) == 1


# The store's reads that return stored bodies (store/base.py, store/talks.py, store/vigil.py,
# store/checkpoints.py, store/integrity.py).
BODY_READS = {
    "body", "channel_events", "control_events", "received", "records", "typed_events", "event",
    "export_page", "page",
}  # fmt: skip
SRC = Path(__file__).resolve().parents[2] / "src" / "parley"


def _reads_bodies(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    receiver = ast.unparse(node.func.value)
    return node.func.attr in BODY_READS and ("store" in receiver or receiver == "db")


def test_every_reader_of_stored_bodies_goes_through_the_check() -> None:
    """Outside store/ (and the check itself), a function that calls a store read returning
    bodies also calls station/integrity.py in the same function."""
    readers, bad = [], []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("store/") or rel in ("station/integrity.py", "station/selfaudit.py"):
            continue
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(fn, ast.FunctionDef) and any(map(_reads_bodies, ast.walk(fn))):
                readers.append(f"{rel}:{fn.lineno} {fn.name}")
                if "integrity" not in ast.unparse(fn):
                    bad.append(readers[-1])
    print(f"{len(readers)} functions read stored bodies:", *readers, sep="\n  ")
    assert not bad, "\n".join(bad)
    assert len(readers) >= 10
