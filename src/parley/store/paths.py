"""Queries for the paths other than direct push: routes, the relay queue, pull cursors, bundles.

Tables (schema migration 3): `routes`, `relay_queue`, `relay_receipts`, `pull_cursors`,
`bundles`. A relay keeps only opaque envelope bytes and the destination's signed receipts: it is
not a member of the channels it carries, so nothing here is ever decrypted.
"""

from __future__ import annotations

from dataclasses import dataclass

from parley.store.base import SqlStore


@dataclass(frozen=True)
class Route:
    peer: str
    via: str
    fallback: bool  # True: relay only while the direct link is down
    updated: int


@dataclass(frozen=True)
class RelayItem:
    id: int
    src: str
    hash: bytes
    raw: bytes


# --- routes --------------------------------------------------------------------------------------
def route(store: SqlStore, peer: str) -> Route | None:
    rows = store.q("SELECT peer, via, fallback, updated FROM routes WHERE peer = ?", peer)
    return Route(rows[0][0], rows[0][1], bool(rows[0][2]), int(rows[0][3])) if rows else None


def routes(store: SqlStore) -> list[Route]:
    rows = store.q("SELECT peer, via, fallback, updated FROM routes ORDER BY peer")
    return [Route(r[0], r[1], bool(r[2]), int(r[3])) for r in rows]


def set_route(store: SqlStore, peer: str, via: str, fallback: bool, now_ms: int) -> None:
    with store.tx():
        store.q("DELETE FROM routes WHERE peer = ?", peer)
        store.q(
            "INSERT INTO routes (peer, via, fallback, updated) VALUES (?, ?, ?, ?)",
            peer, via, int(fallback), now_ms,
        )  # fmt: skip


def clear_route(store: SqlStore, peer: str) -> bool:
    with store.tx():
        found = bool(store.q("SELECT 1 FROM routes WHERE peer = ?", peer))
        store.q("DELETE FROM routes WHERE peer = ?", peer)
    return found


# --- relay queue ---------------------------------------------------------------------------------
def relay_add(store: SqlStore, src: str, dest: str, h: bytes, raw: bytes, now_ms: int) -> bool:
    """Queue `raw` for `dest`; False if that envelope is already queued for it. The count and
    bytes per (src, dest) are kept beside the queue (`relay_usage`), in the same transaction."""
    with store.tx():
        if store.q("SELECT 1 FROM relay_queue WHERE dest = ? AND hash = ?", dest, h):
            return False
        store.q(
            "INSERT INTO relay_queue (src, dest, hash, raw, received) VALUES (?, ?, ?, ?, ?)",
            src, dest, h, raw, now_ms,
        )  # fmt: skip
        store.q(
            "INSERT INTO relay_usage (src, dest, n, bytes) VALUES (?, ?, 1, ?)"
            " ON CONFLICT (src, dest) DO UPDATE"
            " SET n = relay_usage.n + 1, bytes = relay_usage.bytes + excluded.bytes",
            src, dest, len(raw),
        )  # fmt: skip
    return True


def relay_count(store: SqlStore, dest: str) -> int:
    """Envelopes queued for `dest`, from every source."""
    return int(store.q("SELECT COALESCE(SUM(n), 0) FROM relay_usage WHERE dest = ?", dest)[0][0])


def relay_usage(store: SqlStore, src: str, dest: str) -> tuple[int, int]:
    """(count, bytes) queued by `src` for `dest`."""
    rows = store.q("SELECT n, bytes FROM relay_usage WHERE src = ? AND dest = ?", src, dest)
    return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)


def relay_pending(store: SqlStore, dest: str, limit: int) -> list[RelayItem]:
    """Queued envelopes for `dest`, in the order they arrived (so each chain stays in order)."""
    rows = store.q(
        "SELECT id, src, hash, raw FROM relay_queue WHERE dest = ? ORDER BY id LIMIT ?",
        dest, limit,
    )  # fmt: skip
    return [RelayItem(int(r[0]), r[1], bytes(r[2]), bytes(r[3])) for r in rows]


def relay_dests(store: SqlStore) -> list[str]:
    return [r[0] for r in store.q("SELECT DISTINCT dest FROM relay_usage WHERE n > 0")]


def relay_remove(store: SqlStore, ids: list[int]) -> None:
    with store.tx():
        for i in ids:
            row = store.q("SELECT src, dest, LENGTH(raw) FROM relay_queue WHERE id = ?", i)
            if not row:
                continue
            store.q("DELETE FROM relay_queue WHERE id = ?", i)
            store.q(
                "UPDATE relay_usage SET n = n - 1, bytes = bytes - ? WHERE src = ? AND dest = ?",
                int(row[0][2]), row[0][0], row[0][1],
            )  # fmt: skip


def relay_keep_receipt(
    store: SqlStore, channel: str, of: str, by: str, seq: int, raw: bytes, now_ms: int
) -> None:
    """Keep `by`'s receipt of `of`'s chain for `of` to collect; a receipt for a higher seq
    covers the lower ones, so only the newest is kept."""
    with store.tx():
        rows = store.q(
            "SELECT seq FROM relay_receipts WHERE channel = ? AND of_station = ?"
            " AND by_station = ?",
            channel, of, by,
        )  # fmt: skip
        if rows and int(rows[0][0]) >= seq:
            return
        store.q(
            "DELETE FROM relay_receipts WHERE channel = ? AND of_station = ? AND by_station = ?",
            channel, of, by,
        )  # fmt: skip
        store.q(
            "INSERT INTO relay_receipts (channel, of_station, by_station, seq, raw, received)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            channel, of, by, seq, raw, now_ms,
        )  # fmt: skip


def relay_receipts_for(store: SqlStore, of: str, limit: int) -> list[bytes]:
    rows = store.q(
        "SELECT raw FROM relay_receipts WHERE of_station = ? ORDER BY received DESC LIMIT ?",
        of, limit,
    )  # fmt: skip
    return [bytes(r[0]) for r in rows]


# --- pull ----------------------------------------------------------------------------------------
def note_pull(store: SqlStore, peer: str, served: int, now_ms: int) -> None:
    """Record that `peer` pulled (and how many envelopes it has been handed in all)."""
    with store.tx():
        rows = store.q("SELECT served FROM pull_cursors WHERE peer = ?", peer)
        total = (int(rows[0][0]) if rows else 0) + served
        store.q("DELETE FROM pull_cursors WHERE peer = ?", peer)
        store.q(
            "INSERT INTO pull_cursors (peer, last_pull, served) VALUES (?, ?, ?)",
            peer, now_ms, total,
        )  # fmt: skip


def pull_cursor(store: SqlStore, peer: str) -> tuple[int, int] | None:
    """(last pull time, envelopes served in all) for a peer that pulls from us."""
    rows = store.q("SELECT last_pull, served FROM pull_cursors WHERE peer = ?", peer)
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def chains_of(store: SqlStore, sender: str) -> list[str]:
    """Channels on which we hold at least one envelope of `sender`'s chain."""
    # Channel by channel through the (channel, sender, seq) index: a DISTINCT over envelopes
    # by sender read the whole table (no index starts with sender) on every pull a peer made.
    rows = store.q(
        "SELECT c.channel FROM channels c WHERE EXISTS (SELECT 1 FROM envelopes e"
        " WHERE e.channel = c.channel AND e.sender = ?) ORDER BY c.channel",
        sender,
    )
    return [r[0] for r in rows]


# --- bundles -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BundleLog:
    direction: str  # export | import
    peer: str
    digest: bytes
    created: int
    envelopes: int
    receipts: int
    at: int
    outcome: str


def log_bundle(store: SqlStore, b: BundleLog) -> None:
    with store.tx():
        store.q(
            "INSERT INTO bundles (direction, peer, digest, created, envelopes, receipts, at,"
            " outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            b.direction, b.peer, b.digest, b.created, b.envelopes, b.receipts, b.at, b.outcome,
        )  # fmt: skip


def bundle_log(store: SqlStore, limit: int = 100) -> list[BundleLog]:
    rows = store.q(
        "SELECT direction, peer, digest, created, envelopes, receipts, at, outcome FROM bundles"
        " ORDER BY id DESC LIMIT ?",
        limit,
    )
    return [
        BundleLog(r[0], r[1], bytes(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]), r[7])
        for r in rows
    ]
