"""What reading and finding need from the store: keyset pages of a channel's history, jumps by
date and by hash, and the search index.

Rules:
- A page is keyed by (channel, envelope id), the stored order, never by an offset: paging stays
  as cheap at the start of a long history as at its end (index `envelopes_channel_id`).
- The search index has one row per envelope (`rowid` = the envelope's id) holding the text a
  person may look for; station/search.py decides that text and writes the row in the transaction
  that stores the body. Results are envelope ids only: what is shown is read (and checked) from
  the envelopes and bodies, never from the index.
- Matching is by substring, case-insensitive: SQLite FTS5's trigram tokenizer for terms of three
  characters or more (Korean words of two syllables too short for a trigram are matched by LIKE,
  which the trigram table also answers), PostgreSQL ILIKE (a pg_trgm GIN index where installed).
Queries use the SQL subset SQLite and PostgreSQL share (see base.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from parley.store.base import _ENV_COLS, BodyRow, EnvelopeRow, SqlStore, _body, _env

_COLS = ", ".join("e." + c for c in _ENV_COLS.split(", "))
Row = tuple[EnvelopeRow, BodyRow | None]


def _rows(raw: list[tuple[Any, ...]]) -> list[Row]:
    return [(_env(r[:9]), _body(r[9:])) for r in raw]


def _skip(skip_types: Sequence[str]) -> str:
    # A LEFT JOIN: an envelope without a body (none yet) is not bookkeeping and stays.
    if not skip_types:
        return ""
    return f" AND (b.type IS NULL OR b.type NOT IN ({', '.join('?' * len(skip_types))}))"


def page(
    store: SqlStore,
    channel: str,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 100,
    skip_types: Sequence[str] = (),
) -> list[Row]:
    """Up to `limit` envelopes of `channel` with their bodies, oldest first: those right after
    id `after`, else those right before id `before`, else the newest."""
    base = (
        f"SELECT {_COLS}, b.body, b.salt, b.type FROM envelopes e"
        " LEFT JOIN bodies b ON b.hash = e.hash WHERE e.channel = ?"
    )
    skip = _skip(skip_types)
    if after is not None:
        rows = store.q(
            f"{base} AND e.id > ?{skip} ORDER BY e.id LIMIT ?", channel, after, *skip_types, limit
        )
        return _rows(rows)
    if before is not None:
        rows = store.q(
            f"{base} AND e.id < ?{skip} ORDER BY e.id DESC LIMIT ?",
            channel, before, *skip_types, limit,
        )  # fmt: skip
    else:
        rows = store.q(f"{base}{skip} ORDER BY e.id DESC LIMIT ?", channel, *skip_types, limit)
    return list(reversed(_rows(rows)))


def exists(
    store: SqlStore, channel: str, *, before: int | None = None, after: int | None = None,
    skip_types: Sequence[str] = (),
) -> bool:  # fmt: skip
    """Whether a page before id `before` (or after id `after`) would hold anything."""
    if before is not None:
        cond, at = "e.id < ?", before
    elif after is not None:
        cond, at = "e.id > ?", after
    else:
        raise ValueError("before or after")
    rows = store.q(
        "SELECT 1 FROM envelopes e LEFT JOIN bodies b ON b.hash = e.hash"
        f" WHERE e.channel = ? AND {cond}{_skip(skip_types)} LIMIT 1",
        channel, at, *skip_types,
    )  # fmt: skip
    return bool(rows)


def first_at(store: SqlStore, channel: str, ts: int, skip_types: Sequence[str] = ()) -> int | None:
    """The id of the channel's first envelope signed at or after `ts` (by its timestamp: stored
    order can differ, e.g. for envelopes that crossed), or None."""
    rows = store.q(
        "SELECT e.id FROM envelopes e LEFT JOIN bodies b ON b.hash = e.hash"
        f" WHERE e.channel = ? AND e.ts >= ?{_skip(skip_types)} ORDER BY e.ts, e.id LIMIT 1",
        channel, ts, *skip_types,
    )  # fmt: skip
    return int(rows[0][0]) if rows else None


def newest_id(store: SqlStore, channel: str) -> int:
    rows = store.q("SELECT MAX(id) FROM envelopes WHERE channel = ?", channel)
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def count(store: SqlStore, channel: str) -> int:
    return int(store.q("SELECT COUNT(*) FROM envelopes WHERE channel = ?", channel)[0][0])


# --- the search index ------------------------------------------------------------------------


def index(store: SqlStore, envelope_hash: bytes, channel: str, text: str) -> None:
    """Index `text` for the stored envelope `envelope_hash` (the caller's transaction); nothing
    if no envelope has that hash. On SQLite the row waits in `search_pending` until
    `index_pending` moves it into the FTS5 index: FTS5 writes a new segment at every commit
    that indexed anything, so indexing each send's body in its own transaction cost ~80 us of
    CPU per commit, and moving rows in batches costs a few us a row (issue 14)."""
    if not text:
        return
    # One statement: on SQLite into a plain table. SQLite fills a virtual table from a SELECT
    # through a temporary table of its own: for one row 3.5-4 times the CPU of a SELECT and an
    # INSERT, for a batch (`index_pending`) less than a row at a time (4.4 against 6.8 us a row
    # for 100, 5.6 against 8.6 for 2,000).
    table = "search_pending (id," if store.dialect == "sqlite" else "search_index (rowid,"
    store.q(
        f"INSERT INTO {table} text, channel) SELECT id, ?, ? FROM envelopes WHERE hash = ?",
        text, channel, envelope_hash,
    )  # fmt: skip


def waiting(store: SqlStore) -> int:
    """How many rows wait for `index_pending` (always 0 on PostgreSQL)."""
    if store.dialect != "sqlite":
        return 0
    return int(store.q("SELECT COUNT(*) FROM search_pending")[0][0])


def index_pending(store: SqlStore, limit: int) -> int:
    """Move at most `limit` waiting rows (the oldest) into the index, in the caller's
    transaction; how many moved (0 on PostgreSQL, which indexes each row as it is written)."""
    if store.dialect != "sqlite":
        return 0
    with store.tx():
        last = store.q(
            "SELECT MAX(id) FROM (SELECT id FROM search_pending ORDER BY id LIMIT ?)", limit
        )[0][0]
        if last is None:
            return 0
        store.q(
            "INSERT INTO search_index (rowid, text, channel)"
            " SELECT id, text, channel FROM search_pending WHERE id <= ? ORDER BY id",
            last,
        )
        return store.changed("DELETE FROM search_pending WHERE id <= ?", last)


def unindexed(store: SqlStore, after_id: int, limit: int) -> list[Row]:
    """Stored envelopes with a body after id `after_id` (oldest first) that have no index row,
    waiting or written: what a station that stored them before the index existed still has to
    index."""
    waiting = (
        " AND NOT EXISTS (SELECT 1 FROM search_pending p WHERE p.id = e.id)"
        if store.dialect == "sqlite"
        else ""
    )
    rows = store.q(
        f"SELECT {_COLS}, b.body, b.salt, b.type FROM envelopes e"
        " JOIN bodies b ON b.hash = e.hash WHERE e.id > ?"
        f" AND NOT EXISTS (SELECT 1 FROM search_index s WHERE s.rowid = e.id){waiting}"
        " ORDER BY e.id LIMIT ?",
        after_id, limit,
    )  # fmt: skip
    return _rows(rows)


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search(
    store: SqlStore,
    channels: Sequence[str],
    terms: Sequence[str],
    *,
    before: int | None = None,
    limit: int = 50,
) -> list[Row]:
    """Envelopes on `channels` whose indexed text holds every one of `terms` (case-insensitive
    substrings), newest first, at most `limit`, older than id `before` if given."""
    if not channels or not terms:
        return []
    where = [f"s.channel IN ({', '.join('?' * len(channels))})"]
    params: list[object] = list(channels)
    if store.dialect == "sqlite":
        long = [t for t in terms if len(t) >= 3]
        if long:
            # One FTS5 query: each term a phrase (a run of trigrams: a substring), all ANDed.
            where.append("s.text MATCH ?")
            params.append(" AND ".join('"' + t.replace('"', '""') + '"' for t in long))
        for t in terms:
            if len(t) < 3:
                where.append("s.text LIKE ? ESCAPE '\\'")
                params.append(_like(t))
        table = "search_index s"
    else:
        for t in terms:
            where.append("s.text ILIKE ? ESCAPE '\\'")
            params.append(_like(t))
        table = "search_index s"
    if before is not None:
        where.append("s.rowid < ?")
        params.append(before)
    ids = store.q(
        f"SELECT s.rowid FROM {table} WHERE {' AND '.join(where)} ORDER BY s.rowid DESC LIMIT ?",
        *params, limit,
    )  # fmt: skip
    return by_ids(store, [int(r[0]) for r in ids])


def by_ids(store: SqlStore, ids: Sequence[int]) -> list[Row]:
    """The envelopes of `ids` with their bodies, in the order of `ids`."""
    if not ids:
        return []
    rows = store.q(
        f"SELECT {_COLS}, b.body, b.salt, b.type FROM envelopes e"
        f" LEFT JOIN bodies b ON b.hash = e.hash WHERE e.id IN ({', '.join('?' * len(ids))})",
        *ids,
    )
    found = {r[0].id: r for r in _rows(rows)}
    return [found[i] for i in ids if i in found]
