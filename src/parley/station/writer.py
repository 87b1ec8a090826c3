"""Group commit: sends that arrive together share one durable transaction.

Rules:
- One writer per store. A thread with a send to commit queues it as a job. If no thread is
  committing, it becomes the committer (leader/follower: there is no thread of the writer's own to
  start, stop or leak) and commits whatever is queued, at most MAX_GROUP sends per transaction
  (a job counts its sends: a batch's many), until its own job is in a committed group; then it
  hands the role to a thread still waiting.
  While one group is being committed (its fsync is the slow part), the next one gathers.
- Each job runs in a savepoint: one that raises is undone alone, its caller gets the exception,
  and the rest of the group commits.
- A job's answer is released only after COMMIT returned, so "queued" is still only said for what
  is on disk (`synchronous=FULL` on SQLite, `synchronous_commit=on` on PostgreSQL). If the commit
  fails, every job of the group gets that error and none of them is reported queued.
- A job started by a thread that is already inside a store transaction runs there at once,
  joining that transaction: queueing it would wait for the very transaction that holds the store.
- A job may be soft (`durable=False`: a peer's receipts settling our outbox, which the peer
  gives again if they are lost): a group of soft jobs only commits without waiting for the
  disk (SqlStore.soft_tx); one durable job makes the whole group durable.
- A job may go `ahead` of the queued sends (a peer's receipts settling our outbox): it is
  small, and the peer's next push may wait for it. Behind a queue of batches it waited for
  all of them (0.5 s at `delivery --batch 100`, issue 14); ahead, for one group at most.
- A group holds at most MAX_GROUP sends, a batch counting as its messages (one batch may
  exceed it alone), and between two groups the threads waiting for the store have it first
  (store/lock.py): a read or a settle waits for one group, not for the queue.
- A caller on an event loop (the API's sends) queues its job with `run_async` and awaits it: no
  thread of its own waits for the commit. If nobody is committing, the job starts a drain on one
  of the writer pool's threads (DRAINS, made as needed and shared by every writer of the
  process), which commits groups until the queue is empty; each group's waiting coroutines are
  woken by one call into their loop. A thread that stops leading with jobs still queued starts a
  drain for them, and a drain waits for a thread's lead to end, so every queued job is
  committed by someone. Thread callers never wait for a drain that has not started: they lead
  themselves when nobody is committing (a drain queued behind busy pool threads cannot stall
  them). Each async job runs in its caller's context (the request's log fields).
- Every committed group adds to two counters in the store (`writer.groups`, `writer.sends`), in
  the same transaction, so /metrics shows how much grouping happens, whichever worker is scraped.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from parley.store.base import SqlStore

T = TypeVar("T")

MAX_GROUP = 256  # sends in one transaction (a batch's count; one job may exceed it alone):
# bounds how long one group holds the store
DRAINS = ThreadPoolExecutor(4, thread_name_prefix="parley-writer")

_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class _Job(Generic[T]):
    __slots__ = ("done", "durable", "error", "fn", "value", "waiter", "weight")

    def __init__(
        self,
        fn: Callable[[], T],
        durable: bool = True,
        waiter: _Waiter | None = None,
        weight: int = 1,
    ) -> None:
        self.fn = fn
        self.durable = durable
        self.weight = weight  # sends it commits
        self.waiter = waiter  # an async caller's loop and future
        self.done = False
        self.value: T | None = None
        self.error: BaseException | None = None

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # set when there is no error


class Writer:
    def __init__(self, store: SqlStore, max_group: int = MAX_GROUP) -> None:
        self.store = store
        self.max_group = max_group
        self._cv = threading.Condition()
        self._queue: deque[_Job[Any]] = deque()
        self._ahead = 0  # jobs at the queue's front queued `ahead`
        self._leading = False
        self._draining = False  # a drain is queued on DRAINS and has not taken the lead yet

    def run(
        self, fn: Callable[[], T], durable: bool = True, weight: int = 1, ahead: bool = False
    ) -> T:
        """Run `fn` (store writes) in the next group's transaction; return its result once that
        transaction is committed, or raise what `fn` or the commit raised. `durable=False`,
        `ahead`: see the module rules. `weight`: the sends `fn` commits (a batch's), for
        MAX_GROUP."""
        if self.store.in_tx():
            return fn()
        job: _Job[T] = _Job(fn, durable, weight=weight)
        with self._cv:
            if ahead:
                self._queue.insert(self._ahead, job)
                self._ahead += 1
            else:
                self._queue.append(job)
            while not job.done and self._leading:
                self._cv.wait()
            if job.done:
                return job.result()
            self._leading = True
        try:
            while not job.done:
                self._commit_next()
        finally:
            self._step_down()
        return job.result()

    async def run_async(self, fn: Callable[[], T], durable: bool = True, weight: int = 1) -> T:
        """`run` for a coroutine: the same group commit, awaited (module rules)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        job = _Job(_in_context(fn), durable, (loop, waiter), weight)
        with self._cv:
            self._queue.append(job)
            start = not (self._leading or self._draining)
            self._draining = self._draining or start
        if start:
            DRAINS.submit(self._drain)
        return await waiter

    def _drain(self) -> None:
        with self._cv:
            while self._leading:
                self._cv.wait()
            self._leading, self._draining = True, False
        try:
            while True:
                with self._cv:
                    if not self._queue:
                        break
                self._commit_next()
        finally:
            self._step_down()

    def _step_down(self) -> None:
        with self._cv:
            self._leading = False
            self._cv.notify_all()
            start = not self._draining and any(job.waiter for job in self._queue)
            self._draining = self._draining or start
        if start:
            DRAINS.submit(self._drain)

    def _commit_next(self) -> None:
        with self._cv:
            group: list[_Job[Any]] = []
            weight = 0
            while self._queue and (not group or weight + self._queue[0].weight <= self.max_group):
                group.append(self._queue.popleft())
                weight += group[-1].weight
            self._ahead = max(0, self._ahead - len(group))
        # The last group's commit has just let go of the store: a thread that waited for it
        # meanwhile (a read, a push answer's settle) has it before the next group (store/lock.py).
        self.store.lock.yield_to_waiters()
        ok = 0
        durable = any(job.durable for job in group)
        try:
            with self.store.tx() if durable else self.store.soft_tx():
                for job in group:
                    try:
                        with self.store.savepoint():
                            job.value = job.fn()
                        ok += 1
                    except Exception as exc:  # this send fails alone; its caller gets it
                        job.error = exc
                if ok:
                    self.store.count_group(ok)
        except BaseException as exc:
            # Nothing of this group is durable: nobody may be told "queued".
            for job in group:
                if job.error is None:
                    job.error = exc
        finally:
            with self._cv:
                for job in group:
                    job.done = True
                self._cv.notify_all()
            _wake([job for job in group if job.waiter is not None])


def _in_context(fn: Callable[[], T]) -> Callable[[], T]:
    ctx = contextvars.copy_context()
    return lambda: ctx.run(fn)


def _wake(jobs: list[_Job[Any]]) -> None:
    """Answer the async callers of a committed group: one call into each of their loops."""
    loops: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
    for job in jobs:
        assert job.waiter is not None
        loops.setdefault(job.waiter[0], []).append(job)
    for loop, mine in loops.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, mine)


def _settle(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        assert job.waiter is not None
        future = job.waiter[1]
        if future.done():  # the caller was cancelled; the job is committed all the same
            continue
        if job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.value)


__all__ = ["MAX_GROUP", "Writer"]
