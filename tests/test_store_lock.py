"""The store's lock (store/lock.py): re-entrant, and a thread blocked on it has it before a
holder that lets go and would take it again at once (the writer between two groups). Threads
are real; every wait is bounded."""

from __future__ import annotations

import threading

from parley.store.lock import StoreLock
from tests.net import wait


def _blocked_taker(lock: StoreLock, order: list[str], name: str) -> threading.Thread:
    def take() -> None:
        with lock:
            order.append(name)

    t = threading.Thread(target=take, daemon=True)
    t.start()
    return t


def test_a_waiting_thread_has_the_lock_before_the_holder_takes_it_again() -> None:
    lock = StoreLock()
    order: list[str] = []
    lock.acquire()
    takers = [_blocked_taker(lock, order, f"waiter{i}") for i in range(3)]
    wait(lambda: lock.waiting == 3, what="three threads blocked on the lock", every_s=0.001)
    lock.release()
    lock.yield_to_waiters()
    with lock:
        order.append("holder")
    for t in takers:
        t.join(5)
        assert not t.is_alive()
    assert order[-1] == "holder" and sorted(order[:-1]) == ["waiter0", "waiter1", "waiter2"]


def test_it_is_reentrant_and_counts_only_blocked_threads() -> None:
    lock = StoreLock()
    with lock, lock:
        assert lock.waiting == 0
        got: list[bool] = []
        t = threading.Thread(target=lambda: got.append(lock.acquire(blocking=False)))
        t.start()
        t.join(5)
        assert got == [False] and lock.waiting == 0  # a try that fails waits for nothing
    assert lock.acquire(blocking=False)
    lock.release()


def test_yielding_with_nobody_waiting_returns_at_once_and_is_bounded_otherwise() -> None:
    lock = StoreLock()
    lock.yield_to_waiters()  # nobody waits: nothing to do
    lock.acquire()
    # A waiter that cannot take the lock while it is held: the holder yields for at most limit_s,
    # holding it (here the holder yields without letting go, the bound is all that ends it).
    t = _blocked_taker(lock, [], "stuck")
    wait(lambda: lock.waiting == 1, what="a thread blocked on the lock", every_s=0.001)
    lock.yield_to_waiters(limit_s=0.01)
    assert lock.waiting == 1
    lock.release()
    t.join(5)
    assert not t.is_alive() and lock.waiting == 0
