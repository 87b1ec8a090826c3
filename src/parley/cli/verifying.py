"""Offline verification as the command line and the benchmarks run it: the file mapped into
memory, spans of envelope lines checked in one worker process per core but one (each maps the
same file: no line is copied between processes), while this process checks spans too and adds
each span's results to the chains in file order (protocol/verifier.verify_buffer)."""

from __future__ import annotations

import contextlib
import gc
import mmap
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from parley.protocol import spans, verifier
from parley.protocol.report import Report
from parley.protocol.trust import TrustPolicy
from parley.protocol.witness_policy import WitnessPolicy

_mapped: mmap.mmap | None = None  # the file, in each worker process
# The GIL switch interval while workers check spans. Their spans go to them, and their results
# come back (~240 KB a span, through a 64 KiB pipe), on the pool's threads in this process,
# each waiting for the GIL at every step while this process checks a span of its own: at the
# default 5 ms a worker stood idle 0.05-0.44 s of a 7 s run (200,000 envelopes) between spans.
HANDOFF_S = 0.001


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def mapped(path: Path) -> Iterator[mmap.mmap | bytes]:
    """The file's bytes, mapped (an empty file cannot be mapped: its bytes are b"")."""
    with path.open("rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            yield m


def _open(path: str) -> None:
    global _mapped
    gc.disable()  # this worker only checks spans, then exits: see collector_off
    with open(path, "rb") as f:
        _mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _check(start: int, end: int, members: spans.Members) -> spans.Span | None:
    assert _mapped is not None
    return spans.check_span(_mapped, start, end, members)


class _Workers:
    def __init__(self, pool: ProcessPoolExecutor, workers: int) -> None:
        self.pool, self.workers = pool, workers

    def __call__(self, start: int, end: int, members: spans.Members) -> Future[spans.Span | None]:
        return self.pool.submit(_check, start, end, members)


@contextlib.contextmanager
def span_workers(path: Path, processes: int | None = None) -> Iterator[verifier.SpanCheck | None]:
    """Workers that check spans of the file at `path`: `processes` of them (one per core but
    one by default, since the calling process checks spans too); None when that is none."""
    n = cores() - 1 if processes is None else processes
    if n < 1 or path.stat().st_size == 0:
        yield None
        return
    was = sys.getswitchinterval()
    sys.setswitchinterval(min(was, HANDOFF_S))
    try:
        with ProcessPoolExecutor(max_workers=n, initializer=_open, initargs=(str(path),)) as pool:
            yield _Workers(pool, n)
    finally:
        sys.setswitchinterval(was)


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a file is verified (as it was after).
    Checking a span leaves no cycles behind, but its growing lists and the chains' trees are
    what each collection walks: on the 200,000-envelope file the collections took ~37 ms of
    the main process's CPU (0.19 us per envelope)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def verify_file(
    path: Path,
    progress: Callable[[int], None] | None = None,
    processes: int | None = None,
    *,
    trust: TrustPolicy,
    witnesses: WitnessPolicy | None = None,
) -> Report:
    """`verifier.verify_buffer` over the file at `path`, on every core."""
    with collector_off(), mapped(path) as buf, span_workers(path, processes) as workers:
        return verifier.verify_buffer(buf, progress, workers, trust=trust, witnesses=witnesses)
