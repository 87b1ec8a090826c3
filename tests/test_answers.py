"""station/answers.py: a kept answer is used only while the store is unchanged, and while one
thread works an answer out the others asking for it wait and take it (no stampede)."""

from __future__ import annotations

import threading
import time
from typing import Any

from parley.station.answers import Answers


class Store:
    """What Answers asks of a store: its version, moved by hand."""

    def __init__(self) -> None:
        self.v = (0, 0)

    def version(self) -> tuple[int, int]:
        return self.v


def test_many_threads_asking_at_once_work_an_answer_out_once() -> None:
    store = Store()
    answers = Answers(store, lambda: 0)  # type: ignore[arg-type]
    calls = 0
    started = threading.Event()

    def work() -> Any:
        nonlocal calls
        calls += 1
        started.set()
        time.sleep(0.2)  # long enough that every other thread arrives meanwhile
        return {"n": calls}

    got: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: got.append(answers.kept("inbox", work))) for _ in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert calls == 1
    assert got == [b'{"n":1}'] * 20
    store.v = (0, 1)  # the store moved: worked out afresh
    assert answers.kept("inbox", work) == b'{"n":2}'
    assert answers.kept("other", work) == b'{"n":3}'  # another key, its own answer


def test_an_answer_worked_out_while_the_store_moved_is_not_kept() -> None:
    store = Store()
    answers = Answers(store, lambda: 0)  # type: ignore[arg-type]
    n = 0

    def work() -> Any:
        nonlocal n
        n += 1
        store.v = (0, n)  # a write happened while it was worked out
        return n

    assert answers.kept("k", work) == b"1"
    assert answers.kept("k", work) == b"2"
