"""The station calls of the busiest routes, run on the API's own worker threads (issue 14).

FastAPI runs a plain `def` route on AnyIO's worker threads, whose hand-over there and back cost
about 34 us of CPU per request on this machine against about 21 us for a thread pool executor's
(uvloop, an empty call, same minute). The routes every request mix goes through (status, the
inbox, history pages, alarms, who am I) are therefore `async def` and hand their station call to
`run` instead; they do nothing else on the event loop. The sends do not come here: they await the
writer's group commit on the loop (station/writer.py run_async), so no thread waits per send.
As many threads as AnyIO's default (40); the context (the log fields of the request,
station/logs.py) goes with the call, as AnyIO's does.

A short store read the event loop needs (a peer request's sender) is made right there while the
store is free, and here while another thread holds it (station/onloop.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

THREADS = 40

T = TypeVar("T")

_pool = ThreadPoolExecutor(THREADS, thread_name_prefix="parley-api")


async def run(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on a worker thread, in the caller's context."""
    call = functools.partial(contextvars.copy_context().run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(_pool, call)
