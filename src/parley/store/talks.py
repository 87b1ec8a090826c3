"""Reads for talks, road maps and translations: a channel's records of some body types.

Nothing is stored beside the transcript for these features (station/talks.py folds these records
each time), so this module only reads envelopes and bodies the station already holds.
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.store.base import _ENV_COLS, BodyRow, EnvelopeRow, SqlStore, _env

_COLS = ", ".join("e." + c for c in _ENV_COLS.split(", "))


def records(
    store: SqlStore, channel: str, types: Sequence[str]
) -> list[tuple[EnvelopeRow, BodyRow]]:
    """Envelopes of `channel` whose body type is one of `types`, with their stored bodies
    (unchecked: the station checks them), stored order."""
    if not types:
        return []
    marks = ", ".join("?" for _ in types)
    rows = store.q(
        f"SELECT {_COLS}, b.body, b.salt, b.type"
        # Start from the (indexed) body types: these records are few beside the channel's text.
        f" FROM bodies b CROSS JOIN envelopes e"
        f" WHERE e.hash = b.hash AND b.type IN ({marks}) AND e.channel = ? ORDER BY e.id",
        *types,
        channel,
    )
    return [(_env(r[:9]), BodyRow(str(r[9]), bytes(r[10]), str(r[11]))) for r in rows]
