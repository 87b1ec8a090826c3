"""Each operator API route names the action it performs (`x-parley-action` in OpenAPI).

The name is documentation and a test hook, not the check: the station service the route calls
authorizes the acting user against the role table (station/roles.py). A test enumerates every
route from the app's OpenAPI document and fails for a route without an action, or whose action
does not refuse a role the table refuses.

    @r.post("/channels/{channel}/suspend", **acts(Action.CHANNEL_SUSPEND))
"""

from __future__ import annotations

from typing import Any

from parley.station.roles import Action

KEY = "x-parley-action"
PUBLIC = "public"  # login: no credential yet; the route limits itself


def acts(action: Action | str) -> dict[str, Any]:
    return {"openapi_extra": {KEY: str(action)}}
