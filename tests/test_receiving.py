"""The receive path with real stations (station/receiving.py): the delivery rules that only a
channel of three members or a hostile peer reaches (wait, broken_chain), batches, and the push
handler leaving the event loop free while a batch is applied.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from parley.app.build import build_app
from parley.domain import channels
from parley.errors import Code, RejectedInput
from parley.protocol.encoding import b64e
from parley.protocol.envelope import Ref, seal
from parley.protocol.request import HEADER, sign_request
from parley.station.node import Accepted, Station
from parley.station.receiving import Arrival
from tests.pair import Clock, Net, introduce, make_station


def three(tmp: Path) -> tuple[Net, Station, Station, Station, str]:
    """South, North and UN, each introduced to the others, with a three-member hotline open."""
    clock = Clock()
    a, b, c = (make_station(tmp / n, n, "en", clock) for n in ("a", "b", "c"))
    for x, y in ((a, b), (a, c), (b, c)):
        introduce(x, y)
    net = Net()
    ch = a.propose_channel("hotline", "Three-way line", [b.id, c.id])
    net.deliver(a, b)
    net.deliver(a, c)
    for x in (b, c):
        x.control(ch, "consent")
        for y in (a, b, c):
            if y is not x:
                net.deliver(x, y)
    for x in (a, b, c):
        assert x.channel_state(ch).is_open
    return net, a, b, c, ch


def texts(st: Station, ch: str) -> list[str]:
    return [m.body["text"] for m in st.messages(ch) if m.body.get("type") == "text"]


def test_an_envelope_waits_for_what_its_sender_had_seen(tmp_path: Path) -> None:
    net, a, b, c, ch = three(tmp_path)
    first, _ = b.send(ch, channels.text_body("North: first", "en"))
    net.deliver(b, c)  # only C has it
    row, _ = c.send(ch, channels.text_body("UN: after North's first", "en"))
    before = a.store.head_seq(ch, c.id)

    # A gets C's message before B's: C had seen B's, so A holds it (wait), stores nothing of it.
    [res] = net.deliver(c, a)
    assert (res.status, res.code, res.expected_seq) == ("wait", Code.GAP, row.seq)
    assert b.id in res.message
    assert a.store.head_seq(ch, c.id) == before and "UN: after North's first" not in texts(a, ch)
    assert res.to_json()["expected_seq"] == row.seq and res.to_json()["code"] == "gap"

    # B's arrives: both are applied in one batch, B's first, and both chains are receipted.
    results, receipts = a.receive_batch([e.raw for e in b.store.pending(a.id, 10)])
    assert [r.status for r in results] == ["accepted"]
    assert texts(a, ch)[-2:] == ["North: first", "UN: after North's first"]
    assert {(r.of, r.seq) for r in receipts} == {(b.id, first.seq), (c.id, row.seq)}
    assert a.store.held_next(ch) == []


def test_a_seen_naming_an_envelope_of_ours_never_sent_is_refused(tmp_path: Path) -> None:
    _, a, b, c, ch = three(tmp_path)
    head = b.store.head(ch, b.id)
    assert head is not None
    mine = a.store.head(ch, a.id)
    assert mine is not None
    for claim in (Ref(mine.seq + 1, bytes(32)), Ref(mine.seq, bytes(32))):
        env, _ = seal(
            channels.text_body("I saw what you never said", "en"),
            identity=b.identity, sender=b.id, channel=ch, seq=head.seq + 1, prev=head.hash,
            seen={a.id: claim}, recipients=[b.recipient_key(m, b.clock()) for m in (a.id, c.id)],
            now_ms=b.clock(),
        )  # fmt: skip
        res = a.receive(env.raw)
        assert (res.status, res.code) == ("rejected", Code.BROKEN_CHAIN)
        assert a.store.head_seq(ch, b.id) == head.seq and a.store.held_next(ch) == []


def test_a_batch_applies_in_order_and_a_refused_body_fails_alone(tmp_path: Path) -> None:
    _, a, b, _, ch = three(tmp_path)
    rows = [a.send(ch, channels.text_body(f"m{i}", "en"))[0] for i in range(3)]
    refuse = {"m1"}

    def observer(st: Station, acc: Accepted) -> None:
        if acc.body.get("text") in refuse:
            raise ValueError("refused by what the body means locally")

    # An observer's refusal is not a ParleyError here: it rolls the whole batch back.
    b.observers.append(observer)
    with contextlib.suppress(ValueError):
        b.receive_batch([r.raw for r in reversed(rows)])
    assert b.store.head_seq(ch, a.id) == rows[0].seq - 1 and b.store.held_next(ch) == []
    b.observers.remove(observer)

    # Sent in reverse, they are held and then applied in chain order in one batch.
    results, receipts = b.receive_batch([r.raw for r in reversed(rows)])
    assert [r.status for r in results] == ["gap", "gap", "accepted"]
    assert texts(b, ch) == ["m0", "m1", "m2"]
    assert [(r.of, r.seq) for r in receipts] == [(a.id, rows[-1].seq)]
    again, _ = b.receive_batch([r.raw for r in rows])
    assert [r.status for r in again] == ["duplicate"] * 3


def test_an_observer_refusing_mid_batch_refuses_that_envelope_alone(tmp_path: Path) -> None:
    """A batch is applied under one savepoint; an observer's refusal undoes it and applies it
    again with a savepoint per stored envelope: the answers and what is stored are those of
    one envelope at a time."""
    _, a, b, c, ch = three(tmp_path)
    rows = [a.send(ch, channels.text_body(f"m{i}", "en"))[0] for i in range(6)]

    def refuse(st: Station, acc: Accepted) -> None:
        if acc.body.get("text") == "m3":
            raise RejectedInput(Code.BAD_BODY, "refused by an observer")

    b.observers.append(refuse)
    c.observers.append(refuse)
    results, receipts = b.receive_batch([r.raw for r in rows])
    alone = [c.receive(r.raw) for r in rows]
    assert [r.to_json() for r in results] == [r.to_json() for r in alone]
    assert [r.status for r in results] == ["accepted"] * 3 + ["rejected", "gap", "gap"]
    assert texts(b, ch) == texts(c, ch) == ["m0", "m1", "m2"]
    assert b.store.body(rows[3].hash) is None
    assert [(r.of, r.seq) for r in receipts] == [(a.id, rows[2].seq)]
    # Without the refusal, the same batch again stores the rest at once.
    b.observers.remove(refuse)
    results, _ = b.receive_batch([r.raw for r in rows])
    assert [r.status for r in results] == ["duplicate"] * 3 + ["accepted"] * 3
    assert texts(b, ch) == [f"m{i}" for i in range(6)]


def test_a_refusal_mid_batch_with_a_later_push_held_ahead_of_it(tmp_path: Path) -> None:
    """Two pushes in flight, the second applied first (held), then the first with a body an
    observer refuses in its middle: answers, receipts and what is stored are those of one
    envelope at a time, and once the refused one goes through, the rest is applied once, in
    order."""
    _, a, b, c, ch = three(tmp_path)
    rows = [a.send(ch, channels.text_body(f"m{i}", "en"))[0] for i in range(6)]
    first, second = [r.raw for r in rows[:4]], [r.raw for r in rows[4:]]

    def refuse(st: Station, acc: Accepted) -> None:
        if acc.body.get("text") == "m2":
            raise RejectedInput(Code.BAD_BODY, "refused by an observer")

    b.observers.append(refuse)
    c.observers.append(refuse)
    early, _ = b.receive_batch(second)
    assert [r.status for r in early] == ["gap", "gap"]
    results, receipts = b.receive_batch(first)
    alone = [c.receive(raw) for raw in second + first]
    assert [r.to_json() for r in early + results] == [r.to_json() for r in alone]
    assert [r.status for r in results] == ["accepted", "accepted", "rejected", "gap"]
    assert texts(b, ch) == texts(c, ch) == ["m0", "m1"]
    assert [(r.of, r.seq) for r in receipts] == [(a.id, rows[1].seq)]
    b.observers.remove(refuse)
    results, receipts = b.receive_batch([r.raw for r in rows[2:]])
    assert texts(b, ch) == [f"m{i}" for i in range(6)]
    assert [(r.of, r.seq) for r in receipts] == [(a.id, rows[-1].seq)]
    assert b.store.held_next(ch) == []
    again, _ = b.receive_batch([r.raw for r in rows])
    assert [r.status for r in again] == ["duplicate"] * 6


def test_push_is_applied_off_the_event_loop(tmp_path: Path) -> None:
    """While a pushed batch is being verified and opened (outside the store's transaction), the
    same station still answers a ping: neither the event loop nor the store is held."""
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    introduce(a, b)
    ch = a.propose_channel("hotline", "Line", [b.id])
    raw = a.store.pending(b.id, 1)[0].raw
    entered, release, waited = threading.Event(), threading.Event(), threading.Event()
    prepare = b.receiver.prepare

    def slow_prepare(raw: bytes, keys: Any = None) -> Arrival:
        entered.set()
        release.wait(30)
        waited.set()
        return prepare(raw, keys)

    b.receiver.prepare = slow_prepare  # type: ignore[method-assign]

    def signed(method: str, path: str, body: bytes) -> dict[str, str]:
        return {HEADER: sign_request(a.identity, a.id, method, path, body, clock())}

    pushed: dict[str, Any] = {}
    with TestClient(build_app(b, "t" * 32)) as client:

        def push() -> None:
            body = raw + b"\n"
            r = client.post("/peer/v1/envelopes", content=body,
                            headers=signed("POST", "/peer/v1/envelopes", body))  # fmt: skip
            pushed["answer"] = r.json()

        t = threading.Thread(target=push)
        t.start()
        try:
            assert entered.wait(30), "the push never reached the observer"
            r = client.get("/peer/v1/ping", headers=signed("GET", "/peer/v1/ping", b""))
            assert r.status_code == 200 and r.json()["station"] == b.id
            assert not waited.is_set(), "the ping was answered only after the push went on"
        finally:
            release.set()
            t.join(60)
    assert [x["status"] for x in pushed["answer"]["results"]] == ["accepted"]
    assert pushed["answer"]["results"][0]["hash"] == b64e(a.store.head(ch, a.id).hash)  # type: ignore[union-attr]
