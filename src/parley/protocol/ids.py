"""Station ids (docs/protocol.md §3.1): what every other identity module builds on.

A station's id is `st` + the first 15 bytes of SHA-256("parley/station-id/v1" || key),
lowercase base32, where the key is its **first** Ed25519 identity key (hand-overs, §3.6, keep
the id). Kept apart from identity.py so that hand-overs and invitations can both use it.
"""

from __future__ import annotations

import base64
import re

from parley.protocol import crypto

_STATION_ID = re.compile(r"st[a-z2-7]{24}")


def station_id(identity_public: bytes) -> str:
    digest = crypto.sha256(b"parley/station-id/v1" + identity_public)[:15]
    return "st" + base64.b32encode(digest).decode("ascii").lower()


def is_station_id(text: object) -> bool:
    """The syntax of a station id (`st` + 24 of [a-z2-7]); whether it derives from a given key
    is a separate question (`station_id`)."""
    return isinstance(text, str) and _STATION_ID.fullmatch(text) is not None
