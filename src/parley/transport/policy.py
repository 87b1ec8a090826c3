"""When to try a peer again, which path to take, how much to send: pure rules, time and
randomness passed in (like pyca's `encrypt_at_time`), so a table of cases tests every one.

Retry (`Backoff`, one per peer):
- A failed attempt, or an answer that moved nothing, backs off exponentially with jitter: the
  delay starts at `base_ms`, doubles per failure up to `max_ms`, and the next try is at
  now + delay × (1/2 + u/2) for a uniform u in [0, 1) the caller draws.
- Any success (a push that progressed, a ping answered, a new envelope queued) resets it: after
  a peer restarts, the first answered ping ends the backoff, so delivery resumes within one
  probe interval instead of after the remaining backoff.

Probing (`probe_interval_ms`): a direct link is pinged when nothing has been exchanged with it
for one heartbeat interval; after a failed contact, every quarter interval until it is down
(quick confirmation, as a failure detector's suspicion is confirmed before it is declared);
while down, every interval. Each probe may go an eighth of its interval early, to share the
round of a peer due just before (`probe_due`). Pings are not held back by the retry backoff.
So a peer that dies is seen failing within one interval and confirmed down (`down_after`
consecutive failures, 3 by default) within one and a half; one that comes back is seen within
one.

Paths (`push_paths`): no route → direct (or nothing: a peer without address pulls from us);
`--via R` → relay R only; `--via R --fallback` → direct while the link is not down, then R
(also when a direct push has just failed).

Batches (`batch_size`): 128 envelopes; each full batch (a backlog) doubles the next, up to 512
(the peer API's limit), and a batch that empties the queue starts again at 128. `fitting`
also keeps a batch's bytes under the peer API's body limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from parley.errors import Code, LocalError

MIN_BATCH = 128
MAX_BATCH = 512  # the peer API's limit on envelopes per push (MAX_FRAME_ENVELOPES)
MAX_BATCH_BYTES = 16 * 1024 * 1024 - 64 * 1024  # under the 16 MiB body limit, with headroom


@dataclass(frozen=True)
class RetryPolicy:
    base_ms: int
    max_ms: int

    def __post_init__(self) -> None:
        if not 0 < self.base_ms <= self.max_ms:
            raise LocalError(Code.INVALID_REQUEST, "need 0 < retry_base_ms <= retry_max_ms")

    def next_delay_ms(self, previous_ms: float) -> float:
        """The delay after one more failure; `previous_ms` 0 means none so far."""
        return float(self.base_ms) if previous_ms <= 0 else min(previous_ms * 2, self.max_ms)


@dataclass
class Backoff:
    """One peer's retry state. `u` is a uniform draw in [0, 1) made by the caller."""

    policy: RetryPolicy
    delay_ms: float = 0.0
    next_try_ms: float = 0.0

    def ready(self, now_ms: float) -> bool:
        return now_ms >= self.next_try_ms

    def failed(self, now_ms: float, u: float) -> float:
        """Back off once more; returns when the next try is due."""
        self.delay_ms = self.policy.next_delay_ms(self.delay_ms)
        self.next_try_ms = now_ms + self.delay_ms * (0.5 + 0.5 * u)
        return self.next_try_ms

    def reset(self) -> None:
        self.delay_ms = 0.0
        self.next_try_ms = 0.0

    @property
    def backing_off(self) -> bool:
        return self.delay_ms > 0


def probe_interval_ms(heartbeat_ms: int, failures: int, down_after: int) -> float:
    """How long a direct link may stay without any exchange before we ping it."""
    return heartbeat_ms / 4 if 0 < failures < down_after else float(heartbeat_ms)


PROBE_EARLY = 1 / 8  # share of its interval by which a probe may go early (see probe_due)


def probe_due(
    now_ms: float, last_contact_ms: float | None, heartbeat_ms: int, failures: int, down_after: int
) -> bool:
    """Whether to ping now. A probe is due an eighth of its interval early: the dispatcher
    wakes when the first peer is due and goes over every peer, and the peers due shortly after
    share that round instead of each waking it again. Otherwise round trips, which leave last
    contacts a few ms apart, would keep one round per peer and heartbeat, each over all peers:
    quadratic in the peers for a station with nothing to send. Early never delays detection."""
    if last_contact_ms is None:
        return True
    interval = probe_interval_ms(heartbeat_ms, failures, down_after)
    return now_ms - last_contact_ms >= interval * (1 - PROBE_EARLY)


class Path(StrEnum):
    DIRECT = "direct"
    RELAY = "relay"


def push_paths(
    has_address: bool, via: str | None, fallback: bool, link_down: bool
) -> tuple[Path, ...]:
    """The paths to offer our outbox on, in order; the next only if the one before could not be
    reached. Empty: nothing is pushed (the peer pulls from us)."""
    if via is None:
        return (Path.DIRECT,) if has_address else ()
    if fallback and has_address and not link_down:
        return (Path.DIRECT, Path.RELAY)
    return (Path.RELAY,)


def batch_size(previous: int, previous_was_full: bool) -> int:
    """Envelopes to ask the outbox for next (module rules)."""
    if not previous_was_full or previous <= 0:
        return MIN_BATCH
    return min(previous * 2, MAX_BATCH)


def fitting(sizes: Sequence[int], max_bytes: int = MAX_BATCH_BYTES) -> int:
    """How many items, of these byte sizes in order, go in one request: at least one, and no
    more than `max_bytes` together (a newline after each included)."""
    total = 0
    for i, n in enumerate(sizes):
        total += n + 1
        if total > max_bytes and i > 0:
            return i
    return len(sizes)
