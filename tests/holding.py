"""Something held on a thread of its own (a store transaction, the store's lock) while a test
looks at what another thread does meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager


@contextmanager
def held_elsewhere(
    hold: Callable[[], AbstractContextManager[object]], inside: Callable[[], object] = lambda: None
) -> Iterator[None]:
    """`hold()` entered on another thread, and `inside()` run there, before the block starts;
    left when the block ends (the thread is joined)."""
    entered, release = threading.Event(), threading.Event()

    def holder() -> None:
        with hold():
            inside()
            entered.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert entered.wait(10)
        yield
    finally:
        release.set()
        t.join(10)
