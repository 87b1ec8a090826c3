"""Reads for talks, road maps and translations: a channel's records of some body types.

Nothing is stored beside the transcript for these features (station/talks.py folds these records
each time), so this module only reads envelopes and bodies the station already holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from parley.store.base import _ENV_COLS, EnvelopeRow, SqlStore, _env

_COLS = ", ".join("e." + c for c in _ENV_COLS.split(", "))


def records(
    store: SqlStore, channel: str, types: Sequence[str]
) -> list[tuple[EnvelopeRow, dict[str, Any]]]:
    """Envelopes of `channel` whose body type is one of `types`, with their bodies, stored order."""
    if not types:
        return []
    marks = ", ".join("?" for _ in types)
    rows = store.q(
        f"SELECT {_COLS}, b.body"
        # Start from the (indexed) body types: these records are few beside the channel's text.
        f" FROM bodies b CROSS JOIN envelopes e"
        f" WHERE e.hash = b.hash AND b.type IN ({marks}) AND e.channel = ? ORDER BY e.id",
        *types,
        channel,
    )
    return [(_env(r[:9]), json.loads(r[9])) for r in rows]
