"""The store calls that must not hold the event loop (station/onloop.py, api/offload.py)."""

from __future__ import annotations

import asyncio
import threading

from parley.api import offload
from parley.station.onloop import run_unless_held
from parley.store.lock import StoreLock
from tests.holding import held_elsewhere


def test_a_call_runs_on_the_loop_while_the_store_is_free_and_on_a_worker_while_it_is_held() -> None:
    lock = StoreLock()

    def read() -> int:
        with lock:  # as a store read takes the store's lock
            return threading.get_ident()

    async def main() -> None:
        here = threading.get_ident()
        assert await run_unless_held(lock, read) == here  # free: no hop
        with held_elsewhere(lambda: lock):
            call = asyncio.create_task(run_unless_held(lock, read, elsewhere=offload.run))
            await asyncio.sleep(0.05)  # the loop goes on while the call waits for the store
            assert not call.done()
        assert await call != here  # it waited on a worker thread

    asyncio.run(main())
