"""Search over what a user may read, and the index behind it (a feature: `install`).

Rules:
- Every stored body (sent or received) is indexed inside the transaction that stores it (an
  observer, whose rows are written together just before the commit), with the text
  domain/search.py picks. On SQLite that row waits in a plain table and is moved into the FTS5
  index in batches, at each tick and before every search, so a search finds every body stored
  before it (FTS5 writes a segment at every commit that indexed anything: ~80 us of CPU per
  send at one send per commit, issue 14). A station that stored bodies before the index
  existed indexes them in the background, BACKFILL_BATCH per tick, each checked against its
  signed envelope first (station/integrity.py), until a tick finds fewer than a batch.
- A search passes the same gates as reading: the `channel.read` action, then only the channels
  the user may see (a back channel only for its named representatives); one channel that the
  user may not see answers `forbidden`, as reading it does.
- Results are envelopes, checked as they are read like every message shown; the index decides
  only which ones match, so an index edited on disk can hide or add a result but never change
  a word that is shown.
- Bounded: the query (domain/search.py), at most MAX_RESULTS per page, newest first, paged by the
  envelope id (`before`).
"""

from __future__ import annotations

from typing import Any

from parley.domain import search as domain
from parley.protocol.encoding import b64d
from parley.station.node import Accepted, Message, Station
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.store import reading as db

MAX_RESULTS = 100
BACKFILL_BATCH = 500
PENDING_BATCH = 2000  # waiting rows moved into the index per transaction
_BACKFILL = "search.backfill_after"  # meta: the last envelope id the backfill looked at
_DONE = "done"


def observe(station: Station, acc: Accepted) -> None:
    # At the end of the transaction, with the rest of its batch: see SqlStore.before_commit.
    store, h, text = station.store, b64d(acc.hash), domain.text_of(acc.body)
    if text:
        store.before_commit(lambda: db.index(store, h, acc.channel, text))


def backfill(station: Station, now_ms: int) -> None:
    """Scheduled: index one batch of bodies stored before the index existed."""
    mark = station.store.get_meta(_BACKFILL)
    if mark == _DONE:
        return
    rows = db.unindexed(station.store, int(mark or 0), BACKFILL_BATCH)
    # Fewer than a batch is the end: what is stored from now on the observer indexes as it is
    # stored. Bodies without text are never indexed, so waiting for a tick that finds none
    # kept a busy station checking and committing its new checkpoints every tick (issue 14).
    done = len(rows) < BACKFILL_BATCH
    with station.store.tx():
        for c in station.integrity.check(rows):
            if c.ok:
                db.index(station.store, c.row.hash, c.row.channel, domain.text_of(c.body))
        station.store.set_meta(_BACKFILL, _DONE if done else str(rows[-1][0].id))


def index_waiting(station: Station, now_ms: int) -> None:
    """Scheduled: move one batch of waiting rows into the index (store/reading.py). Not
    waiting for the disk: the rows stay waiting until a commit of the move is durable."""
    if db.waiting(station.store):
        with station.store.soft_tx():
            db.index_pending(station.store, PENDING_BATCH)


def _index_all_waiting(station: Station) -> None:
    """Before a search: everything stored before it into the index. Bounded: a body stored
    meanwhile came after the search began."""
    for _ in range(db.waiting(station.store) // PENDING_BATCH + 1):
        with station.store.soft_tx():
            if db.index_pending(station.store, PENDING_BATCH) < PENDING_BATCH:
                return


def install(station: Station) -> None:
    station.observers.append(observe)
    station.scheduled.append(backfill)
    station.scheduled.append(index_waiting)


def search(
    station: Station,
    who: User,
    query: str,
    channel: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """Messages and notices `who` may read holding every word of `query`, newest first."""
    authorize(who, Action.CHANNEL_READ)
    terms = domain.terms(query)
    if channel is not None:
        station.guard(channel, who)
        channels = [channel]
    else:
        channels = sorted(s.channel for s in station.channel_states(who))
    limit = max(1, min(limit, MAX_RESULTS))
    _index_all_waiting(station)
    rows = db.search(station.store, channels, terms, before=before, limit=limit)
    found = station.shown(station.integrity.check(rows, links=True))
    return {
        "query": query,
        "results": [result_json(m) for m in found],
        "before": found[-1].extra["id"] if len(rows) == limit and found else None,
    }


def result_json(m: Message) -> dict[str, Any]:
    return m.to_json() | {"id": m.extra["id"]}
