"""Offline verification as the command line and the benchmarks run it: envelope lines checked
in one worker process per core (reading, hashing, signatures, commitments), while this process
follows the chains, checkpoints and the export signature in file order."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

from parley.protocol import verifier


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def envelope_workers(processes: int | None = None) -> Iterator[verifier.BatchCheck]:
    """A `BatchCheck` that spreads batches over `processes` workers (one per core by default)."""
    with ProcessPoolExecutor(max_workers=processes or cores()) as pool:

        def start(
            batch: list[list[bytes]], members: verifier.Members
        ) -> Callable[[], list[verifier.Checked]]:
            return pool.submit(verifier.check_envelopes, batch, members).result

        yield start
