"""Stage stamps for bench/stages.py, loaded by the station processes it starts (this directory
is put first on their PYTHONPATH) and only when PARLEY_STAGES names a directory: the stations'
own code carries no hook. Each process appends `stage seq wall_ms` lines to its own file there.

Stages: at the sender `committed` (Station.send returned; on the API's path that is inside the
writer's group, before its commit), `poked` (the dispatcher woken once a commit is on disk),
`round` (its round begun), `planning` and `planned` (the round's plan, which reads the first
batch, on a worker thread), `pushed` and `answered` (the batch's push on the wire, its answer
back), `settled` (the answer's receipts applied); at the receiver `routed` (the push request
reached its route), `authed` (its body read, its signature about to be checked), `arrived` (the
batch on a worker thread), `verified` (the crypto phase of the batch done), `applied` (the
batch's transaction about to commit), `stored` (committed); besides, `checkpoint` (issued) and
`witnessed`, and `gc<generation>` for collections over 2 ms (seq: the pause in µs).
`poked`, `round`, `routed` and `authed` are the latest such event before the batch's next stage
(a paced run has one push in flight per peer); `poked` and `round` only for a plan's batches.
"""

from __future__ import annotations

import os

_DIR = os.environ.get("PARLEY_STAGES")


def _install(folder: str) -> None:
    import asyncio
    import functools
    import gc
    import threading
    import time
    from typing import Any

    from parley.api import peer as peer_api
    from parley.station import checkpoints, dispatcher, node, receiving, selfaudit
    from parley.store import sqlite

    lock = threading.Lock()
    sink = open(os.path.join(folder, f"stages.{os.getpid()}"), "a", buffering=1)  # noqa: SIM115
    local = threading.local()
    answers: dict[int, list[int]] = {}

    def stamp(stage: str, seqs: list[int], t: float | None = None) -> None:
        t = time.time() * 1000 if t is None else t
        with lock:
            sink.write("".join(f"{stage} {s} {t:.2f}\n" for s in seqs))

    def after(cls: Any, name: str, make: Any) -> None:
        setattr(cls, name, functools.wraps(getattr(cls, name))(make(getattr(cls, name))))

    def send(f: Any) -> Any:
        def w(self: Any, *a: Any, **k: Any) -> Any:
            out = f(self, *a, **k)
            stamp("committed", [out[0].seq])
            return out

        return w

    def offer(f: Any) -> Any:
        async def w(self: Any, peer: str, row: Any, ways: Any, batch: list[Any]) -> Any:
            seqs = [b.seq for b in batch]
            stamp("pushed", seqs)
            out = await f(self, peer, row, ways, batch)
            stamp("answered", seqs)
            if out is not None:
                answers[id(out)] = seqs
            return out

        return w

    def settle(f: Any) -> Any:
        def w(self: Any, peer: str, answer: Any) -> Any:
            out = f(self, peer, answer)
            stamp("settled", answers.pop(id(answer), []))
            return out

        return w

    def settle_all(f: Any) -> Any:
        def w(self: Any, peer: str, settled: list[Any]) -> Any:
            out = f(self, peer, settled)
            stamp("settled", [s for a in settled for s in answers.pop(id(a), [])])
            return out

        return w

    def around(f: Any, enter: Any, leave: Any = None) -> Any:
        """`f`, sync or async, with `enter()` called before it and `leave(what enter gave)`
        after it, even if it raises."""
        if asyncio.iscoroutinefunction(f):

            async def aw(*a: Any, **k: Any) -> Any:
                token = enter()
                try:
                    return await f(*a, **k)
                finally:
                    if leave is not None:
                        leave(token)

            return functools.wraps(f)(aw)

        def w(*a: Any, **k: Any) -> Any:
            token = enter()
            try:
                return f(*a, **k)
            finally:
                if leave is not None:
                    leave(token)

        return functools.wraps(f)(w)

    # The latest of some events, stamped on the batch that follows them: with one push in flight
    # per peer at a paced rate, the wake-up before a plan and the request before a receive.
    marks: dict[str, float] = {}

    def mark(name: str, f: Any) -> Any:
        return around(f, lambda: marks.__setitem__(name, time.time() * 1000))

    def plan(f: Any) -> Any:
        def w(self: Any, *a: Any, **k: Any) -> Any:
            t0 = time.time() * 1000
            out = f(self, *a, **k)
            seqs = [b.seq for v in out if v.first for b in v.first[2]]
            stamp("poked", seqs, marks.get("poked", t0))
            stamp("round", seqs, marks.get("round", t0))
            stamp("planning", seqs, t0)
            stamp("planned", seqs)
            return out

        return w

    def prepare_all(f: Any) -> Any:
        def w(self: Any, *a: Any, **k: Any) -> Any:
            t0 = time.time() * 1000
            out = f(self, *a, **k)
            local.seqs = [x.env.seq for x in out if x.env is not None]
            stamp("routed", local.seqs, marks.get("routed", t0))
            stamp("authed", local.seqs, marks.get("authed", t0))
            stamp("arrived", local.seqs, t0)
            stamp("verified", local.seqs)
            return out

        return w

    def then(stage: str) -> Any:
        """A wrapper stamping `stage` for the batch `prepare_all` saw, once the call returns."""

        def wrap(f: Any) -> Any:
            def w(self: Any, *a: Any, **k: Any) -> Any:
                out = f(self, *a, **k)
                stamp(stage, getattr(local, "seqs", []))
                return out

            return w

        return wrap

    def module_fn(mod: Any, name: str, stage: str, seq: Any) -> None:
        f = getattr(mod, name)

        def w(*a: Any, **k: Any) -> Any:
            out = f(*a, **k)
            stamp(stage, [seq(a, out)])
            return out

        setattr(mod, name, functools.wraps(f)(w))

    after(node.Station, "send", send)
    after(dispatcher.Dispatcher, "_offer", offer)
    after(dispatcher.Dispatcher, "_plan", plan)
    dispatcher.Dispatcher._poke = mark("poked", dispatcher.Dispatcher._poke)
    dispatcher.Dispatcher.round = mark("round", dispatcher.Dispatcher.round)
    peer_api._authenticated = mark("routed", peer_api._authenticated)
    peer_api.verify_request = mark("authed", peer_api.verify_request)
    after(dispatcher.Dispatcher, "_settle", settle)
    after(dispatcher.Dispatcher, "_settle_all", settle_all)
    after(receiving.Receiver, "prepare_all", prepare_all)
    after(receiving.Receiver, "_drain_held", then("applied"))
    after(receiving.Receiver, "batch", then("stored"))
    module_fn(checkpoints, "issue", "checkpoint", lambda a, out: out.seq)
    module_fn(checkpoints, "_witness", "witnessed", lambda a, out: a[1].seq)

    # Work beside the messages, as `ev-<name> <µs it took> <wall ms it began>`: the station's
    # scheduled tasks, the self-audit's chunks, the WAL's checkpoints, heartbeats.
    def took(stage: str, t0: float) -> None:
        stamp(stage, [int((time.time() * 1000 - t0) * 1000)], t0)

    def span(name: str, f: Any) -> Any:
        return around(f, lambda: time.time() * 1000, lambda t0: took(f"ev-{name}", t0))

    class _Timed:
        """A lock that stamps how long it was held (the WAL checkpointer's, held per checkpoint)."""

        def __init__(self, lock: Any) -> None:
            self.lock, self.t0 = lock, 0.0

        def __enter__(self) -> None:
            self.lock.acquire()
            self.t0 = time.time() * 1000

        def __exit__(self, *exc: object) -> None:
            took("ev-wal", self.t0)
            self.lock.release()

    def timed_lock(f: Any) -> Any:
        def w(self: Any, *a: Any, **k: Any) -> None:
            f(self, *a, **k)
            self.lock = _Timed(self.lock)

        return w

    node.Station.tick = span("tick", node.Station.tick)
    selfaudit.Pass.step = span("audit", selfaudit.Pass.step)
    dispatcher.Dispatcher.heartbeat = span("ping", dispatcher.Dispatcher.heartbeat)
    after(sqlite.Checkpointer, "__init__", timed_lock)

    started = [0.0]

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        pause_us = int((time.perf_counter() - started[0]) * 1e6)
        if pause_us > 2000:
            stamp(f"gc{info['generation']}", [pause_us])

    gc.callbacks.append(collected)


if _DIR:
    _install(_DIR)
