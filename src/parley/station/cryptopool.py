"""The crypto of a large received batch on every core: worker processes verify signatures and
open bodies while the station's process parses, looks keys up and applies.

Threads do not help here: PyNaCl releases the GIL only inside each C call, and the parsing and
checks around them keep the GIL busy (bench/receive.py: threads at 0.89 of serial, processes at
1.14 on a loaded machine). So a job crosses to a process as the bytes the crypto reads (the
station has parsed the envelope already) and keys, and comes back as a verdict on the signature
and the opened body (or the refusal's code and message).

Rules:
- A worker is told only what one job needs: the sender's current identity key (public) and, for
  an envelope to open, our prekey for it, secret half included (README, "Security model": the
  workers are this station's own children, started by `spawn`, and keep no key past a job).
- A worker's "does not verify" is never final: the station checks again itself, which also
  tries the keys of an identity hand-over and raises the error a serial receive would.
- A broken pool (a worker killed or crashed) answers None for every job in flight and is
  dropped; the caller does the batch serially, and the next large batch starts a new pool.
- No batch waits for workers to start (`ready`): spawning them and importing the station's code
  takes a second or more, seconds on a loaded machine, and a push held that long is a latency
  spike every message behind it shares (issue 14). The batch that starts them is done here.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from parley.errors import Code, ParleyError, RejectedInput
from parley.protocol import crypto
from parley.protocol.envelope import (
    ENVELOPE_LABEL,
    Envelope,
    Opened,
    Sealed,
    open_sealed,
    sealed_for,
    signing_input,
)

# What a worker needs of one envelope, never the envelope itself (it would parse it again): the
# signed bytes, the signature, the sender's identity key, and when the body is to be opened,
# its sealed parts with our prekey (secret, public).
Job = tuple[bytes, bytes, bytes, tuple[Sealed, bytes, bytes] | None]
# whether the signature verified under that key, and the opened body or (code, message)
Out = tuple[bool, Opened | tuple[str, str] | None]
Ticket = tuple[ProcessPoolExecutor, Future[list[Out]]]


def job(env: Envelope, me: str, identity: bytes, prekey: crypto.KemKey | None) -> Job:
    """The job for `env` (opened too if `prekey` is given; `me` must be a recipient then)."""
    opening = (sealed_for(env, me), prekey.secret, prekey.public) if prekey else None
    return signing_input(env), env.sig, identity, opening


def work(jobs: list[Job]) -> list[Out]:
    """A worker's part of a batch (also callable in process: the tests compare both)."""
    out: list[Out] = []
    # One libsodium verifier per sender key, as the transcript's verifier does: the binding's
    # own call allocates, clears and copies a buffer the size of each envelope.
    verifiers = crypto.Verifiers()
    wrap_keys = crypto.WrapKeys()  # a batch's envelopes share their sender's ephemeral key
    for signed, sig, identity, opening in jobs:
        if not verifiers[identity](ENVELOPE_LABEL + signed, sig):
            out.append((False, None))
        elif opening is None:
            out.append((True, None))
        else:
            sealed, secret, public = opening
            try:
                out.append(
                    (
                        True,
                        open_sealed(sealed, crypto.KemKey.with_public(secret, public), wrap_keys),
                    )
                )
            except ParleyError as exc:
                out.append((True, (str(exc.code), exc.message)))
    return out


def refusal(code_message: tuple[str, str]) -> ParleyError:
    """A worker's refusal as the error the station reports (its code and message are all a
    receive result keeps of it)."""
    return RejectedInput(Code(code_message[0]), code_message[1])


def _init() -> None:
    # A station killed with SIGKILL leaves no orphans: a worker ends when its parent does.
    # (Not PR_SET_PDEATHSIG: that follows the thread that started the worker, a request's
    # thread here, which ends while the station lives on.)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent.sentinel,), daemon=True).start()


def _end_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])  # ready when the parent has ended
    os._exit(0)


def _up() -> None:
    pass


class CryptoPool:
    """Worker processes, started at the first large batch, stopped by `close`."""

    def __init__(self, workers: int, opens: bool = True) -> None:
        self.workers = workers
        # False: workers only verify, and bodies are opened in the station's process (no
        # secret leaves it; bench/receive.py measures both).
        self.opens = opens
        self._lock = threading.Lock()
        self._exec: ProcessPoolExecutor | None = None
        self._ready: list[Future[None]] = []  # one per worker of `_exec`, done when it is up

    @classmethod
    def for_cores(cls) -> CryptoPool | None:
        """One worker per core; none on one core (the station's own process is all it has)."""
        cores = os.cpu_count() or 1
        return cls(cores) if cores > 1 else None

    def start(self) -> list[Future[None]]:
        """Start the workers (if not running): answers one future per worker, done when it
        is up (the executor starts one worker per job waiting, so all start at once)."""
        with self._lock:
            if self._exec is None:
                ex = self._exec = ProcessPoolExecutor(
                    self.workers, multiprocessing.get_context("spawn"), _init
                )
                self._ready = [ex.submit(_up) for _ in range(self.workers)]
            return list(self._ready)

    def ready(self) -> bool:
        """Whether every worker is up; if none is running, they start now (in the background:
        the caller does this batch itself)."""
        up = self.start()
        if not up or not all(f.done() for f in up):
            return False
        if any(f.exception() is not None for f in up):  # a worker died starting: begin again
            with self._lock:
                ex = self._exec
            if ex is not None:
                self._drop(ex)
            return False
        return True

    def submit(self, jobs: list[Job]) -> Ticket | None:
        self.start()
        with self._lock:
            ex = self._exec
        if ex is None:
            return None  # closed meanwhile
        try:
            return ex, ex.submit(work, jobs)
        except (BrokenProcessPool, RuntimeError):
            self._drop(ex)
            return None

    def result(self, ticket: Ticket) -> list[Out] | None:
        ex, fut = ticket
        try:
            return fut.result()
        except BrokenProcessPool:
            self._drop(ex)
            return None

    def pids(self) -> list[int]:
        """The workers' process ids (for tests that kill one)."""
        with self._lock:
            ex = self._exec
        return list(getattr(ex, "_processes", {}) or {}) if ex is not None else []

    def _drop(self, ex: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._exec is ex:
                self._exec, self._ready = None, []
        ex.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            ex, self._exec, self._ready = self._exec, None, []
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)
