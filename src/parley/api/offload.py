"""The station calls of the busiest routes, run on the API's own worker threads (issue 14).

FastAPI runs a plain `def` route on AnyIO's worker threads, whose hand-over there and back cost
about 34 us of CPU per request on this machine against about 21 us for a thread pool executor's
(uvloop, an empty call, same minute). The routes every request mix goes through (status, the
inbox, history pages, alarms, who am I) are therefore `async def` and hand their station call to
`run` instead; they do nothing else on the event loop. The sends do not come here: they await the
writer's group commit on the loop (station/writer.py run_async), so no thread waits per send.
As many threads as AnyIO's default (40); the context (the log fields of the request,
station/logs.py) goes with the call, as AnyIO's does.

`run_unless_held` is for a short store read the event loop needs (a peer request's sender):
made right there while the store is free, and on a worker thread while another thread holds
it. Made on the loop then, it held every request, push and answer of the process until that
thread's transaction (a group of sends, some 20-40 ms at `delivery --batch 100`) committed.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

THREADS = 40

T = TypeVar("T")

_pool = ThreadPoolExecutor(THREADS, thread_name_prefix="parley-api")


class Lock(Protocol):
    """The store's lock (store/lock.py), as `run_unless_held` uses it."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...

    def release(self) -> None: ...


async def run(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on a worker thread, in the caller's context."""
    call = functools.partial(contextvars.copy_context().run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(_pool, call)


async def run_unless_held(lock: Lock, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` at once if `lock` (the store's) can be had without waiting, holding it
    meanwhile; else `run` it on a worker thread, which waits for it instead of the loop."""
    if lock.acquire(blocking=False):
        try:
            return fn(*args)
        finally:
            lock.release()
    return await run(fn, *args)
