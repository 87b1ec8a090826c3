"""Offline verification as the command line, the console and the benchmarks run it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

from parley.protocol import verifier


@contextlib.contextmanager
def signature_worker() -> Iterator[verifier.BatchVerify]:
    """Envelope signatures checked in one worker process while this one parses and checks the
    rest of the file: the crypto still runs on one core, as in the raw rate it is compared with,
    and the file's other checks run beside it instead of after it."""
    with ProcessPoolExecutor(max_workers=1) as pool:

        def start(jobs: list[verifier.SignatureJob]) -> Callable[[], list[bool]]:
            return pool.submit(_check, jobs).result

        yield start


def _check(jobs: list[verifier.SignatureJob]) -> list[bool]:
    return verifier.verify_now(jobs)()
