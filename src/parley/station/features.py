"""The features a station runs on top of the core, each installed the same way.

A feature module has `install(station)`, which may add observers (called inside the transaction
that stores a body, sent or received) and scheduled tasks (called by `Station.tick(now)` about once
a second by the running station, and directly by tests with a controlled clock).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from parley.station import checkpoints, idempotency, notices, notify, search, vigil, witnessing
from parley.station import talks as talks_feature
from parley.station.node import Station

FEATURES: list[ModuleType] = [
    notify,
    notices,
    talks_feature,
    vigil,
    checkpoints,
    search,
    witnessing,
    idempotency,
]


def install(station: Station, features: list[ModuleType] | None = None) -> Station:
    for feature in FEATURES if features is None else features:
        install_one: Callable[[Station], None] = feature.install
        install_one(station)
    return station
