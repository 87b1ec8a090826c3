"""Short store reads the event loop makes itself while the store is free (issue 14).

A read handed to a worker thread and back costs some 20-35 µs of CPU, and on a busy loop it
waits its turn for the interpreter both ways: about 0.6 ms on the way of a paced message
(bench/stages.py, the dispatcher's plan). Made on the loop while another thread holds the
store, the same read held every request, push and answer of the process until that thread's
transaction (a group of sends, 20-40 ms at `delivery --batch 100`) committed. So: right there
if the store's lock can be had without waiting, held meanwhile; else on a worker thread, which
waits for it instead of the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Lock(Protocol):
    """The store's lock (store/lock.py), as `run_unless_held` uses it."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...

    def release(self) -> None: ...


async def run_unless_held(
    lock: Lock,
    fn: Callable[..., T],
    *args: Any,
    elsewhere: Callable[..., Awaitable[Any]] = asyncio.to_thread,
) -> T:
    """`fn(*args)` at once if `lock` can be had without waiting, holding it meanwhile; else
    `elsewhere(fn, *args)` (a worker thread: asyncio's, or the API's own pool)."""
    if lock.acquire(blocking=False):
        try:
            return fn(*args)
        finally:
            lock.release()
    result: T = await elsewhere(fn, *args)
    return result
