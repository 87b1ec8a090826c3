"""Request body limits, by route class, enforced before a body is read (ASGI middleware).

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


class BodyLimit:
    """ASGI middleware: refuse request bodies over their route class's limit with 413."""

    def __init__(self, app: App, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        self.in_flight = 0  # body bytes received by requests not yet answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        cls = route_class(scope.get("path", ""), headers)
        limit = limit_for(self.limits, cls)
        for k, v in headers:
            if k == b"content-length":
                if not v.isdigit():
                    await _refuse(send, 400, Code.MALFORMED, "Content-Length is not a number")
                    return
                if int(v) > limit:
                    await _refuse(send, 413, Code.OVERSIZED, _message(cls, limit))
                    return
        seen = 0
        over = busy = started = False

        async def receive_() -> Message:
            nonlocal seen, over, busy
            msg = await receive()
            if msg["type"] == "http.request":
                n = len(msg.get("body", b""))
                if seen + n > limit:
                    over = True
                    raise TooLarge
                if self.in_flight + n > self.limits.bodies_in_flight_bytes:
                    over = busy = True
                    raise TooLarge
                seen += n
                self.in_flight += n
            return msg

        async def send_(msg: Message) -> None:
            nonlocal started
            if over:
                return  # whatever the app answers to TooLarge (a 400 or 500) is replaced
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, receive_, send_)
        except TooLarge:
            pass
        except Exception:
            if not over:
                raise
        finally:
            self.in_flight -= seen
        if busy and not started:
            await _refuse(
                send, 503, Code.BUSY,
                "the station is receiving as many request bodies as it may; try again shortly",
                ((b"retry-after", b"5"),),
            )  # fmt: skip
        elif over and not started:
            await _refuse(send, 413, Code.OVERSIZED, _message(cls, limit))


def _message(cls: str, limit: int) -> str:
    return f"the request body exceeds {limit} bytes, the limit for {cls} requests"


async def _refuse(
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
                (b"connection", b"close"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
