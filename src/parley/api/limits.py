"""Request body limits, by route class, enforced before a body is read (by app/gate.py).

    class       routes                                                  default (Limits)
    anonymous   any request with no credential at all; /api/v1/login,   16 KiB
                /console/login, /witness/… (always)
    upload      POST /api/v1/bundles/import, console transcript upload  64 MiB
    peer        /peer/…                                                 16 MiB
    console     /console/…                                              256 KiB
    operator    every other route (the operator API)                    8 MiB

A declared Content-Length over the limit is refused at once; a body without one (chunked) is
counted as it streams and cut at the limit. Either way the answer is 413 with the JSON error
`{"code": "oversized", …}` and `Connection: close`, so the rest of the body is never read. The
limit applies to what the client sends; what a route then accepts may be smaller (its own
checks stay). A credential only chooses the class: it is checked later, by the route.

Because of that, the bodies of all requests still being answered count against one budget per
process (`bodies_in_flight_bytes`, 256 MiB): a request whose body would pass it is answered 503
`busy` (with Retry-After) and closed, so many clients with made-up credentials together cannot
make the station hold more than the budget either.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from parley.errors import Code
from parley.protocol.request import HEADER
from parley.station.config import Limits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

LOGIN_PATHS = frozenset({"/api/v1/login", "/console/login"})
SESSION_COOKIE = b"parley_session"  # the console's (web/session.py); only its presence counts here


def _is_upload(path: str) -> bool:
    return path == "/api/v1/bundles/import" or (
        path.startswith("/console/channels/") and path.endswith("/transcript/upload")
    )


def _has_credential(headers: list[tuple[bytes, bytes]]) -> bool:
    auth = HEADER.lower().encode()
    for k, v in headers:
        if k in (b"authorization", auth):
            return True
        if k == b"cookie" and SESSION_COOKIE + b"=" in v:
            return True
    return False


def route_class(path: str, headers: list[tuple[bytes, bytes]]) -> str:
    # The witness API authenticates nothing but checkpoints: a credential must not raise its limit.
    if path in LOGIN_PATHS or path.startswith("/witness/") or not _has_credential(headers):
        return "anonymous"
    if _is_upload(path):
        return "upload"
    if path.startswith("/peer/"):
        return "peer"
    if path.startswith("/console/") or path == "/console":
        return "console"
    return "operator"


def limit_for(limits: Limits, cls: str) -> int:
    return int(getattr(limits, f"{cls}_body_bytes"))


class TooLarge(Exception):
    """Raised into the app from `receive` once a streamed body passes its limit."""


def declared(limits: Limits, scope: Scope) -> tuple[str, int, tuple[int, Code, str] | None]:
    """The request's route class and body limit, and the refusal (status, code, message) its
    declared Content-Length earns before anything is read, if any."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    cls = route_class(scope.get("path", ""), headers)
    limit = limit_for(limits, cls)
    for k, v in headers:
        if k == b"content-length":
            if not v.isdigit():
                return cls, limit, (400, Code.MALFORMED, "Content-Length is not a number")
            if int(v) > limit:
                return cls, limit, (413, Code.OVERSIZED, oversized(cls, limit))
    return cls, limit, None


def oversized(cls: str, limit: int) -> str:
    return f"the request body exceeds {limit} bytes, the limit for {cls} requests"


CLOSE = ((b"connection", b"close"),)  # the rest of a refused body is never read
BUSY = "the station is receiving as many request bodies as it may; try again shortly"


async def refuse(
    send: Send, status: int, code: Code, message: str, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = json.dumps({"code": str(code), "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
