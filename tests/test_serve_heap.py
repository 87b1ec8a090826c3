"""A serving station freezes its start-up heap (issue 14: a full garbage collection walked every
module, route and model built at start-up, stalling every request for 50 to 185 ms)."""

from __future__ import annotations

import gc

from parley.app.serve import freeze_heap


def test_start_up_objects_leave_the_collectors_sight_and_new_garbage_is_still_collected() -> None:
    try:
        freeze_heap()
        assert gc.get_freeze_count() > 1000  # the imported code, at least

        class Node:
            other: object = None

        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle made after start-up: still the collector's
        del a, b
        assert gc.collect() >= 2
    finally:
        gc.unfreeze()
