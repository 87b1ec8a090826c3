"""The self-audit: the whole store re-checked in the background, at start and then periodically.

A read checks what it shows (station/integrity.py); the self-audit checks what nobody reads, so
a change to an old message, a deleted envelope or a checkpoint that no longer matches its chain
is found within one period even if no one opens that channel.

Rules:
1. It runs where the duties run (app/serve.py `_duties`): the one process of a SQLite station,
   the dispatcher-lock holder of a PostgreSQL one, never in several workers at once.
2. A pass walks every stored envelope by id (within a chain that is seq order) and checks, for
   each: steps a–d of station/integrity.py with the signature verified afresh, never taken from
   memory; its chain link (seq 1, 2, 3 … with nothing missing or repeated, `prev` the SHA-256 of
   the stored bytes of seq − 1); and, when its chain reaches the size of a checkpoint held for
   it, that checkpoint: its note signed by the chain's sender, naming that chain and size, with
   the root of the stored chain. At the end, a checkpoint its chain never reached (envelopes
   missing from the end, or a chain with none) is a finding too.
3. A finding raises the same alarm as a read (one per item; `found_by` = selfaudit). Envelopes it
   verifies are remembered as a read's would be, so reads after a pass are cheap.
4. Bounded CPU: a pass works in chunks of `selfaudit_chunk` envelopes (default 256) on a worker
   thread, and after each chunk sleeps `cpu × (100 / selfaudit_cpu_percent − 1)` (at least
   MIN_PAUSE_S), where cpu is the chunk's own CPU time: it uses at most that share of one core
   (default 20 %) and yields the event loop and the store between chunks.
5. A pass starts at start-up, then `selfaudit_period_ms` (default 6 h) after the previous one
   ended; 0 turns the self-audit off. Each pass's summary is kept (meta `selfaudit`) and shown by
   `Station.status()`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from parley.errors import Code, ParleyError, RejectedInput
from parley.protocol import checkpoint, crypto, merkle, note
from parley.station.integrity import KeyOf, body_problem, envelope_problem, link_problem
from parley.store import checkpoints as checkpoints_db
from parley.store import integrity as db
from parley.store.base import BodyRow, EnvelopeRow

if TYPE_CHECKING:
    from parley.station.node import Station

MIN_PAUSE_S = 0.01

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class _Chain:
    """One sender's chain on one channel as the pass has walked it so far."""

    seq: int = 0
    hash: bytes = b""  # SHA-256 of the stored bytes of `seq`
    frontier: merkle.Frontier = field(default_factory=merkle.Frontier)
    due: dict[int, checkpoints_db.CheckpointRow] = field(default_factory=dict)  # by size


class Pass:
    """One pass over the store; `step()` does one chunk."""

    def __init__(self, station: Station, chunk: int) -> None:
        self.station = station
        self.chunk = chunk
        self.after = 0
        self.chains: dict[tuple[str, str], _Chain] = {}
        self.loaded: dict[str, dict[str, dict[int, checkpoints_db.CheckpointRow]]] = {}
        self.started = station.clock()
        self.envelopes = self.checkpoints = self.problems = self.chunks = 0
        self.done = False
        self.saved: dict[str, Any] = {}

    def step(self) -> tuple[bool, float]:
        """Check the next chunk: (whether the pass is over, the CPU seconds it took)."""
        cpu = time.thread_time()
        rows = db.page(self.station.store, self.after, self.chunk)
        key_of = self.station.integrity.key_of()
        for e, b in rows:
            self._envelope(e, b, key_of)
            self.after = e.id
        self.chunks += 1
        if len(rows) < self.chunk:
            self._finish()
        return self.done, time.thread_time() - cpu

    def run(self) -> dict[str, Any]:
        """The whole pass at once (tests, and a station with nothing else to do)."""
        while not self.step()[0]:
            pass
        return self.saved

    # --- one envelope -----------------------------------------------------------------------------
    def _envelope(self, e: EnvelopeRow, b: BodyRow | None, key_of: KeyOf) -> None:
        self.envelopes += 1
        integ = self.station.integrity
        s, problem = envelope_problem(e, key_of, integ.verified, recheck=True)
        if s is not None and not problem:
            _, problem = body_problem(s, b)
        chain = self._chain(e.channel, e.sender)
        if not problem and e.seq != chain.seq + 1:
            what = "envelopes are missing" if e.seq > chain.seq + 1 else "stored out of order"
            problem = f"its chain goes from seq {chain.seq} to seq {e.seq}: {what}"
        elif not problem and s is not None:
            problem = link_problem(e, s, chain.hash or None)
        if problem:
            self._found(e.channel, e.sender, e.seq, problem)
        h = crypto.sha256(e.raw)
        chain.seq, chain.hash = e.seq, h
        chain.frontier.append(merkle.leaf_hash(h))
        cp = chain.due.pop(chain.frontier.size, None)
        if cp is not None:
            self._checkpoint(cp, chain.frontier.root(), key_of)

    def _chain(self, channel: str, sender: str) -> _Chain:
        chain = self.chains.get((channel, sender))
        if chain is None:
            chain = self.chains[(channel, sender)] = _Chain()
            chain.due = self._checkpoints_of(channel).get(sender, {})
        return chain

    def _checkpoints_of(self, channel: str) -> dict[str, dict[int, checkpoints_db.CheckpointRow]]:
        if channel not in self.loaded:
            by_sender: dict[str, dict[int, checkpoints_db.CheckpointRow]] = {}
            for cp in checkpoints_db.checkpoints(self.station.store, channel):
                by_sender.setdefault(cp.sender, {})[cp.size] = cp
            self.loaded[channel] = by_sender
        return self.loaded[channel]

    # --- checkpoints --------------------------------------------------------------------------
    def _checkpoint(
        self,
        cp: checkpoints_db.CheckpointRow,
        root: bytes,
        key_of: KeyOf,
    ) -> None:
        self.checkpoints += 1
        keys = key_of(cp.sender, -1)  # any key of the sender's: a note carries no time we trust
        problem = ""
        try:
            if not keys:
                raise RejectedInput(Code.UNKNOWN_SENDER, "its signer is not a known peer")
            signers = [note.Verifier(cp.sender, k, note.ED25519) for k in keys]
            opened = note.open_note(cp.note, signers)
            head = note.parse_checkpoint(opened.text)
        except ParleyError as exc:
            problem = f"its note is not signed by the chain's sender ({exc.message})"
        else:
            if (head.origin, head.size, head.root_hash) != (
                checkpoint.origin(cp.channel, cp.sender),
                cp.size,
                cp.root,
            ):
                problem = "its note does not name this chain, size and root"
            elif cp.root != root:
                problem = (
                    f"its root is not the root of the stored chain's first {cp.size} envelopes"
                )
        if problem:
            self._found(cp.channel, cp.sender, cp.size, problem, "checkpoint")

    def _finish(self) -> None:
        for channel in self.station.store.list_channels():
            for sender, due in self._checkpoints_of(channel).items():
                chain = self.chains.get((channel, sender))
                held = chain.frontier.size if chain else 0
                for size in sorted(due):  # those its chain never reached
                    self.checkpoints += 1
                    self._found(
                        channel, sender, size,
                        f"it covers {size} envelopes of the chain, but the store holds {held}",
                        "checkpoint",
                    )  # fmt: skip
        self.done = True
        previous = db.last_pass(self.station.store) or {}
        self.saved = self.summary(int(previous.get("passes", 0)) + 1)
        db.save_pass(self.station.store, self.saved)

    def _found(
        self, channel: str, sender: str, seq: int, problem: str, kind: str = "envelope"
    ) -> None:
        self.problems += 1
        self.station.integrity.report(channel, sender, seq, problem, "selfaudit", kind)

    def summary(self, passes: int = 0) -> dict[str, Any]:
        return {
            "passes": passes,
            "started": self.started,
            "finished": self.station.clock() if self.done else None,
            "envelopes": self.envelopes,
            "checkpoints": self.checkpoints,
            "chunks": self.chunks,
            "problems": self.problems,
        }


def pause_s(cpu_s: float, cpu_percent: int) -> float:
    """How long to sleep after a chunk that took `cpu_s` of CPU (rule 4)."""
    return max(MIN_PAUSE_S, cpu_s * (100 / cpu_percent - 1))


async def run(station: Station, sleep: Sleep = asyncio.sleep) -> None:
    """Passes forever (rule 5); a duty (app/serve.py). Does nothing when the period is 0."""
    t = station.cfg.timings
    while t.selfaudit_period_ms > 0:
        audit = Pass(station, t.selfaudit_chunk)
        while True:
            done, cpu = await asyncio.to_thread(audit.step)
            await sleep(pause_s(cpu, t.selfaudit_cpu_percent))
            if done:
                break
        await sleep(t.selfaudit_period_ms / 1000)
    await asyncio.Event().wait()  # off: a duty that returns would count as a failure
