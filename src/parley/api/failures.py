"""The answer to what no handler expected: the app's gate (app/gate.py) and the console's own
ASGI middleware (`CatchAll`) answer alike.

An exception that escapes every route and handler is logged once, with its traceback, under a
new request id (`parley.api` logger, field `request_id`), and answered 500 with the JSON error
`{"code": "internal", "message": …, "details": {"request_id": …}}` and an `X-Request-Id`
header, so the caller can quote the id and the operator find the cause; nothing about the cause
is sent. A mounted application (the console) installs its own, which may render the answer as a
page. If the response had already started, it can only be cut short; the log still has it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley.api.limits import App, Message, Receive, Scope, Send
from parley.errors import Internal
from parley.protocol import crypto

log = logging.getLogger("parley.api")

REQUEST_ID_HEADER = "X-Request-Id"

Render = Callable[[Request, Internal], Awaitable[Response]]


def logged(scope: Scope, exc: BaseException) -> Internal:
    """The failure logged with its traceback under a new request id: the error to answer."""
    error = Internal(crypto.token_hex(8))
    # The path without its query: a query may carry what logs must not keep.
    log.error(
        "unexpected error answering %s %s", scope.get("method", ""), scope.get("path", ""),
        exc_info=exc, extra={"request_id": error.request_id},
    )  # fmt: skip
    return error


def json_answer(error: Internal) -> Response:
    return JSONResponse(error.to_json(), status_code=error.status)


class CatchAll:
    def __init__(self, app: App, render: Render | None = None) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            error = logged(scope, exc)
            if started:
                return
            response = json_answer(error)
            if self.render is not None:
                try:
                    response = await self.render(Request(scope), error)
                except Exception:
                    log.exception(
                        "the error page failed too", extra={"request_id": error.request_id}
                    )
            response.headers[REQUEST_ID_HEADER] = error.request_id
            await response(scope, receive, send)
