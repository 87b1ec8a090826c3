"""Each operator API route names the action it performs (`x-parley-action` in OpenAPI).

The name is documentation and a test hook, not the check: the station service the route calls
authorizes the acting user against the role table (station/roles.py). A test enumerates every
route from the app's OpenAPI document and fails for a route without an action, or whose action
does not refuse a role the table refuses.

    @r.post("/channels/{channel}/suspend", **acts(Action.CHANNEL_SUSPEND))
"""

from __future__ import annotations

from typing import Any

from parley.api import retries
from parley.api.auth import SESSION_COOKIE
from parley.station.roles import Action

KEY = "x-parley-action"
PUBLIC = "public"  # login: no credential yet; the route limits itself


# How every route but the public ones authenticates (api/auth.py), for the OpenAPI document:
# the credentials are read by `Auth.user` itself, not by FastAPI's security dependencies that
# would otherwise describe them (issue 14), so each route says so here (api/docs.py).
SCHEMES: dict[str, Any] = {
    "HTTPBearer": {"type": "http", "scheme": "bearer"},
    "ConsoleSession": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
}
SECURITY: list[dict[str, list[str]]] = [{name: []} for name in SCHEMES]


def acts(action: Action | str, keyed: bool = False) -> dict[str, Any]:
    """`keyed`: the route takes an Idempotency-Key, read by `Auth.sender` itself (so FastAPI
    does not describe it either)."""
    extra: dict[str, Any] = {KEY: str(action)}
    if action != PUBLIC:
        extra["security"] = SECURITY
    if keyed:
        extra["parameters"] = [retries.PARAMETER]
    return {"openapi_extra": extra}
