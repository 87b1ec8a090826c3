"""One channel's whole history, a page at a time: the use case the console, API and CLI page with.

Rules:
- Same gates as reading (station/channels.py): `channel.read`, then the back-channel gate.
- A page is at most MAX_PAGE messages, oldest first, keyed by envelope id (store/reading.py):
  `before` an id (older), `after` an id (newer), from a date (`at`: from the first message
  signed at or after it), or around one message (`hash`, the page holds it near its middle).
  Without any, the newest page. The answer names the cursors of the neighbouring pages
  (`older`, `newer`; null at either end), so a reader can walk from the first launch notice
  to the last message.
- Checkpoints and cosignatures are bookkeeping (as in the inbox): not on pages.
- Every message is checked against its signed envelope as it is read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from parley.errors import Code, LocalError, NotFound, ParleyError
from parley.protocol.encoding import b64d
from parley.protocol.transcript import CHECKPOINT, COSIGN
from parley.station.node import Message, Station
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.store import reading as db

MAX_PAGE = 500
DEFAULT_PAGE = 100
BOOKKEEPING = (CHECKPOINT, COSIGN)


def parse_when(text: str) -> int:
    """An ISO 8601 date or date-time as Unix ms; a date, or a time without a zone, is UTC."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise LocalError(
            Code.INVALID_REQUEST,
            f"{text[:40]!r} is not a date: write 2026-12-05 or 2026-12-05T09:00+09:00",
            field="date",
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


def page(
    station: Station,
    who: User,
    channel: str,
    *,
    before: int | None = None,
    after: int | None = None,
    at: int | None = None,
    message_hash: str | None = None,
    limit: int = DEFAULT_PAGE,
) -> dict[str, Any]:
    authorize(who, Action.CHANNEL_READ)
    station.guard(channel, who)
    if sum(x is not None for x in (before, after, at, message_hash)) > 1:
        raise LocalError(Code.INVALID_REQUEST, "page by one of before, after, date or hash")
    if not 1 <= limit <= MAX_PAGE:
        raise LocalError(Code.INVALID_REQUEST, f"a page holds 1..{MAX_PAGE} messages")
    store = station.store
    anchor: int | None = None
    if message_hash is not None:
        anchor = _anchor(station, channel, message_hash)
        older = db.page(store, channel, before=anchor + 1, limit=limit // 2 + 1,
                        skip_types=BOOKKEEPING)  # fmt: skip
        rows = older + db.page(
            store, channel, after=anchor, limit=limit - len(older), skip_types=BOOKKEEPING
        )
    elif at is not None:
        first = db.first_at(store, channel, at, BOOKKEEPING)
        if first is None:  # after the last message: the newest page
            rows = db.page(store, channel, limit=limit, skip_types=BOOKKEEPING)
        else:
            rows = db.page(store, channel, after=first - 1, limit=limit, skip_types=BOOKKEEPING)
    else:
        rows = db.page(
            store, channel, before=before, after=after, limit=limit, skip_types=BOOKKEEPING
        )
    msgs = station.shown(station.integrity.check(rows, links=True))
    first_id = rows[0][0].id if rows else None
    last_id = rows[-1][0].id if rows else None
    older_c = first_id if first_id and _more(station, channel, before=first_id) else None
    newer_c = last_id if last_id and _more(station, channel, after=last_id) else None
    if not rows and before is not None:  # nothing older: the way back is the first page
        newer_c = before - 1 if _more(station, channel, after=before - 1) else None
    if not rows and after is not None:
        older_c = after + 1 if _more(station, channel, before=after + 1) else None
    return {
        "channel": channel,
        "messages": msgs,
        "older": older_c,
        "newer": newer_c,
        "anchor": anchor,
        "total": db.count(store, channel),
        "newest": db.newest_id(store, channel),
    }


def page_answer(station: Station, who: User, channel: str, **where: Any) -> bytes:
    """`page_json(page(...))` as JSON, kept while nothing changes (station/answers.py):
    past the same gates, a page is the same for everyone who may read the channel."""
    authorize(who, Action.CHANNEL_READ)
    station.guard(channel, who)
    key = ("history", channel, tuple(sorted(where.items())))
    return station.answers.kept(key, lambda: page_json(page(station, who, channel, **where)))


def newest(station: Station, who: User, channel: str) -> int:
    """The id of the channel's newest envelope (0: none): what a live view compares."""
    authorize(who, Action.CHANNEL_READ)
    station.guard(channel, who)
    return db.newest_id(station.store, channel)


def _more(station: Station, channel: str, **where: int) -> bool:
    return db.exists(station.store, channel, skip_types=BOOKKEEPING, **where)


def _anchor(station: Station, channel: str, h: str) -> int:
    try:
        raw = b64d(h.strip())
    except (ParleyError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise LocalError(
            Code.INVALID_REQUEST, "a message hash is 43 base64url characters", field="hash"
        )
    row = station.store.envelope_by_hash(raw)
    if row is None or row.channel != channel:
        raise NotFound(Code.NOT_FOUND, f"no message {h} on this channel")
    return row.id


def page_json(p: dict[str, Any]) -> dict[str, Any]:
    msgs: list[Message] = p["messages"]
    return p | {"messages": [m.to_json() | {"id": m.extra["id"]} for m in msgs]}
