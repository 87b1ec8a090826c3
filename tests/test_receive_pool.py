"""A large batch's crypto in worker processes (station/cryptopool.py): the same answers as the
serial path, envelope for envelope, refusals included; a killed worker loses nothing."""

from __future__ import annotations

import os
import signal
from concurrent.futures import wait
from pathlib import Path

from parley.domain import channels
from parley.errors import Code
from parley.protocol import crypto
from parley.protocol.envelope import parse_envelope, seal
from parley.station import cryptopool
from parley.station.cryptopool import CryptoPool, Job, Ticket
from parley.station.node import Station
from parley.station.receiving import POOL_MIN
from tests.net import LIVENESS_S
from tests.pair import Clock, Net, introduce, make_station


def stations(tmp: Path) -> tuple[Station, Station, Station, str]:
    """South sends on a three-way line to North (pooled) and UN (serial)."""
    clock = Clock()
    a, b, c = (make_station(tmp / n, n, "en", clock) for n in ("a", "b", "c"))
    for x, y in ((a, b), (a, c), (b, c)):
        introduce(x, y)
    net = Net()
    ch = a.propose_channel("hotline", "Line", [b.id, c.id])
    net.deliver(a, b)
    net.deliver(a, c)
    for x in (b, c):
        x.control(ch, "consent")
        for y in (a, b, c):
            if y is not x:
                net.deliver(x, y)
    b.receiver.pool = CryptoPool(2)
    wait(b.receiver.pool.start(), timeout=LIVENESS_S)  # a batch never waits for workers
    c.receiver.pool = None
    return a, b, c, ch


def sealed(a: Station, ch: str, body: dict[str, object], signer: crypto.SigningKey) -> bytes:
    """The next envelope of `a`'s chain (not stored at `a`), signed by `signer`."""
    head = a.store.head(ch, a.id)
    assert head is not None
    members = a.channel_state(ch).members
    env, _ = seal(
        body,
        identity=signer,
        sender=a.id,
        channel=ch,
        seq=head.seq + 1,
        prev=head.hash,
        seen={},
        recipients=[a.recipient_key(m, a.clock()) for m in members if m != a.id],
        now_ms=a.clock(),
    )
    return env.raw


def batch(a: Station, to: Station, ch: str, n: int, start: int = 0) -> list[bytes]:
    """`a` sends `n` messages; their envelopes as a push to `to` would carry them."""
    a.send_many(ch, [(channels.text_body(f"m{start + i}", "en"), "ROUTINE") for i in range(n)])
    rows = a.store.pending(to.id, 10 * n)
    return [r.raw for r in rows][-n:]


def answers(st: Station, raws: list[bytes]) -> list[dict[str, object]]:
    results, _ = st.receive_batch(raws)
    return [r.to_json() for r in results]


def test_a_pooled_batch_answers_as_the_serial_one(tmp_path: Path) -> None:
    a, b, c, ch = stations(tmp_path)
    mallory = crypto.SigningKey.generate()
    # Refusals mid-batch: a signature by another key (the station checks again itself after
    # the worker), bytes that do not parse (never sent to a worker), a body no form allows
    # (opened by a worker, refused when applied); the envelopes after them still apply.
    first = batch(a, b, ch, 5)
    forged = sealed(a, ch, channels.text_body("forged", "en"), mallory)
    bad_body = sealed(a, ch, {"type": "no such form"}, a.identity)  # as seq 6, refused
    raws = [*first, forged, b"{not an envelope", bad_body, *batch(a, b, ch, POOL_MIN - 5, 5)]
    got, want = answers(b, raws), answers(c, raws)
    print(f"{len(raws)} envelopes, workers {b.receiver.pool and b.receiver.pool.pids()}")
    assert got == want
    codes = [r.get("code") for r in got]
    assert codes[5:8] == [Code.BAD_SIGNATURE, Code.MALFORMED, Code.BAD_BODY]
    assert sum(r["status"] == "accepted" for r in got) == POOL_MIN
    assert b.store.head_seq(ch, a.id) == c.store.head_seq(ch, a.id)
    # A re-sent batch is all duplicates, opened nowhere.
    assert answers(b, raws[8:]) == answers(c, raws[8:])


class Counted(CryptoPool):
    """The real pool, counting the jobs it was given."""

    submitted = 0

    def submit(self, jobs: list[Job]) -> Ticket | None:
        self.submitted += len(jobs)
        return super().submit(jobs)


def test_a_batch_never_waits_for_workers_to_start(tmp_path: Path) -> None:
    """The first large batch starts the workers and is done in the station meanwhile (spawning
    them takes seconds on a loaded machine, and a push held that long delays every message
    behind it); once they are up, large batches go to them."""
    a, b, c, ch = stations(tmp_path)
    assert b.receiver.pool is not None
    b.receiver.pool.close()
    pool = b.receiver.pool = Counted(2)
    a.send_many(ch, [(channels.text_body(f"m{i}", "en"), "ROUTINE") for i in range(2 * POOL_MIN)])
    raws = [r.raw for r in a.store.pending(b.id, 4 * POOL_MIN)]  # from b's head on
    first, more = raws[: len(raws) // 2], raws[len(raws) // 2 :]
    assert answers(b, first) == answers(c, first)
    assert pool.submitted == 0 and pool.pids(), "done here while the workers start"
    wait(pool.start(), timeout=LIVENESS_S)
    assert answers(b, more) == answers(c, more)
    assert pool.submitted == len(more)
    assert b.store.head_seq(ch, a.id) == c.store.head_seq(ch, a.id) == a.store.head_seq(ch, a.id)
    pool.close()


def test_a_worker_says_what_the_serial_path_says(tmp_path: Path) -> None:
    """`work` in process: a signature under a wrong key is "not verified" (never a refusal:
    the station decides), an unopenable body is its refusal's code."""
    a, b, _, ch = stations(tmp_path)
    [raw] = batch(a, b, ch, 1)
    env = parse_envelope(raw)
    mine = env.key_for(b.id)
    assert mine is not None
    kem = b.prekey(mine.kid)
    assert kem is not None
    outs = cryptopool.work(
        [
            cryptopool.job(env, b.id, a.identity.public, None),
            cryptopool.job(env, b.id, b.identity.public, None),
            cryptopool.job(env, b.id, a.identity.public, kem),
            cryptopool.job(env, b.id, a.identity.public, crypto.KemKey.generate()),
        ]
    )
    assert [o[0] for o in outs] == [True, False, True, True]
    assert outs[2][1] == b._open(env)  # the body, salt and bytes a serial open gives
    # One verifier per key within a job list: a flipped signature byte, a key that is no key
    # and a short signature are each "not verified", beside the same key's good one.
    signed, sig, key, _ = cryptopool.job(env, b.id, a.identity.public, None)
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    odd = [
        (signed, flipped, key, None), (signed, sig, key[:31], None), (signed, sig[:63], key, None),
    ]  # fmt: skip
    assert [o[0] for o in cryptopool.work([(signed, sig, key, None), *odd])] == [True] + [False] * 3
    assert outs[3][1] == (str(Code.DECRYPT_FAILED), "the body could not be decrypted with our keys")


def test_a_killed_worker_loses_no_message(tmp_path: Path) -> None:
    a, b, c, ch = stations(tmp_path)
    pool = b.receiver.pool
    assert pool is not None
    wait(pool.start(), timeout=LIVENESS_S)
    before = pool.pids()
    os.kill(before[0], signal.SIGKILL)
    raws = batch(a, b, ch, POOL_MIN)
    # The pool broke under this batch (or before it): the batch is done serially, whole.
    assert answers(b, raws) == answers(c, raws)
    assert b.store.head_seq(ch, a.id) == c.store.head_seq(ch, a.id) == a.store.head_seq(ch, a.id)
    # The next large batch starts new workers.
    more = batch(a, b, ch, POOL_MIN, start=POOL_MIN)
    assert answers(b, more) == answers(c, more)
    after = pool.pids()
    print(f"workers before {before}, after {after}")
    assert after and not set(after) & set(before)
    pool.close()
    assert pool.pids() == []
