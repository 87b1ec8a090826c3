"""Read-only queries behind the station's Prometheus metrics.

Each query is bounded by an index or by a small table: per-peer outbox queries use the
`outbox_pending (peer, delivered, …)` index, so their cost follows what is pending or newly
delivered, not the size of the transcript.
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.store.base import SqlStore


def queue(store: SqlStore, peer: str) -> tuple[int, int | None]:
    """(envelopes waiting for `peer`, when the oldest of them was queued in Unix ms)."""
    rows = store.q(
        "SELECT COUNT(*), MIN(e.stored) FROM outbox o JOIN envelopes e ON e.id = o.envelope_id"
        " WHERE o.peer = ? AND o.delivered IS NULL",
        peer,
    )
    n, oldest = rows[0]
    return int(n), int(oldest) if oldest is not None else None


def deliveries_between(
    store: SqlStore, peer: str, after_ms: int, upto_ms: int, bounds_ms: Sequence[int]
) -> tuple[int, int, list[int]]:
    """Deliveries to `peer` receipted in (after_ms, upto_ms]: (count, summed latency in ms,
    cumulative counts of latencies <= each bound). Latency is receipted minus queued; a clock
    that stepped back between the two counts as zero."""
    lat = "CASE WHEN o.delivered > e.stored THEN o.delivered - e.stored ELSE 0 END"
    buckets = "".join(f", SUM(CASE WHEN {lat} <= {int(b)} THEN 1 ELSE 0 END)" for b in bounds_ms)
    rows = store.q(
        f"SELECT COUNT(*), SUM({lat}){buckets}"
        " FROM outbox o JOIN envelopes e ON e.id = o.envelope_id"
        " WHERE o.peer = ? AND o.delivered > ? AND o.delivered <= ?",
        peer, after_ms, upto_ms,
    )  # fmt: skip
    row = rows[0]
    return int(row[0]), int(row[1] or 0), [int(v or 0) for v in row[2:]]


def open_alarms(store: SqlStore) -> list[tuple[str, str, int]]:
    """(kind, severity, how many) of the alarms nobody has cleared."""
    rows = store.q(
        "SELECT kind, severity, COUNT(*) FROM alarms WHERE cleared IS NULL"
        " GROUP BY kind, severity ORDER BY kind, severity"
    )
    return [(r[0], r[1], int(r[2])) for r in rows]


def envelopes_by_sender(store: SqlStore) -> list[tuple[str, int]]:
    rows = store.q("SELECT sender, COUNT(*) FROM envelopes GROUP BY sender ORDER BY sender")
    return [(r[0], int(r[1])) for r in rows]
