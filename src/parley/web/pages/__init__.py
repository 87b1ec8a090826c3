"""Console page areas; each module has `routes(console) -> APIRouter`. Add a feature's page here
(and its top-bar link in console.NAV)."""

from __future__ import annotations

from types import ModuleType

from parley.web.pages import (
    admin,
    auth,
    channels,
    crises,
    dashboard,
    finding,
    notices,
    notify,
    schedules,
    talks,
    transcripts,
)

PAGES: list[ModuleType] = [
    auth,
    dashboard,
    finding,
    channels,
    notices,
    talks,
    transcripts,
    crises,
    admin,
    schedules,
    notify,
]
