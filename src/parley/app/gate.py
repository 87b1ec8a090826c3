"""The one ASGI middleware of a station's app, outermost: what every request passes before a
route sees it, and every answer on its way out.

    1. a browser's request from another origin that would change something: 403 (app/browser.py)
    2. a declared body over its route class's limit: 413, or 400 for a bad Content-Length; a
       streamed body cut at the limit, and all bodies in flight within one budget: 413 / 503
       (api/limits.py)
    3. an exception no handler expected: logged once and answered `internal` with a request id
       (api/failures.py)
    4. the security headers on every answer, refusals and 500s included (app/browser.py)

These were three middlewares around Starlette's and FastAPI's own five (server errors, telemetry,
FastAPI's body limit, exception handlers, the uploads' exit stack), each taking the request and
most wrapping `send` again (issue 14). Of those five only the exception handlers (the JSON error
forms) and the exit stack (it closes uploaded files) do anything for a station: the other three
are done by 2 and 3 already, or have nothing to do (no OpenTelemetry is configured).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.routing import APIRoute
from starlette.applications import Starlette
from starlette.middleware.exceptions import ExceptionMiddleware

from parley.api import limits
from parley.api.failures import REQUEST_ID_HEADER, json_answer, logged
from parley.api.limits import App, Message, Receive, Scope, Send, TooLarge
from parley.app import lean
from parley.app.browser import Origins, with_security_headers
from parley.errors import Code
from parley.station.config import Limits


class Gate:
    def __init__(self, app: App, limits: Limits, public_urls: Iterable[str] = ()) -> None:
        self.app = app
        self.limits = limits
        self.origins = Origins(public_urls)
        self.in_flight = 0  # body bytes received by requests not yet answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                msg["headers"] = with_security_headers(msg.get("headers", []))
            await send(msg)

        why = self.origins.refusal(scope)
        if why is not None:
            await limits.refuse(secured, 403, Code.FORBIDDEN, why)
            return
        cls, limit, refusal = limits.declared(self.limits, scope)
        if refusal is not None:
            await limits.refuse(secured, *refusal, limits.CLOSE)
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
            if msg["type"] == "http.response.start":
                started = True
                msg["headers"] = with_security_headers(msg.get("headers", []))
            await send(msg)

        try:
            await self.app(scope, receive_, send_)
        except Exception as exc:
            if not over:
                error = logged(scope, exc)
                if not started:  # else it can only be cut short; the log has it
                    response = json_answer(error)
                    response.headers[REQUEST_ID_HEADER] = error.request_id
                    await response(scope, receive, secured)
        finally:
            self.in_flight -= seen
        if busy and not started:
            await limits.refuse(
                secured, 503, Code.BUSY, limits.BUSY, (*limits.CLOSE, (b"retry-after", b"5"))
            )
        elif over and not started:
            await limits.refuse(
                secured, 413, Code.OVERSIZED, limits.oversized(cls, limit), limits.CLOSE
            )


class StationApp(FastAPI):
    """FastAPI, but an HTTP request goes straight to the middleware stack (Starlette's own call):
    FastAPI's asks OpenTelemetry on every request whether tracing or metrics are configured,
    which they never are in a station (~8 us of a status read's ~194 here, issue 14)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await Starlette.__call__(self, scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """`router`'s routes, appended to the app's own list as they are (each already has its
    router's prefix, tags and dependencies), rather than `include_router`. FastAPI keeps an
    included router as one entry that matches a request by trying each of its routes, then again
    to pick the one that matched, with its bookkeeping around every try: a request to a route
    of the fourth router spent about a sixth of the event loop's time finding it (issue 14).
    Nothing is included with options (prefix, dependencies, responses), dependency overrides
    are never used, and no router has a lifespan of its own, so the routes need nothing of an
    inclusion."""
    assert not router.on_startup and not router.on_shutdown, "a router's lifespan would be lost"
    for route in router.routes:
        if isinstance(route, APIRoute):
            lean.install(route)  # the plainest routes skip FastAPI's solver (app/lean.py)
    app.router.routes.extend(router.routes)


def install(app: FastAPI, station_limits: Limits, public_urls: Iterable[str] = ()) -> None:
    """Make the gate, the exception handlers (the app's, e.g. ParleyError as its JSON form) and
    FastAPI's exit stack for uploaded files the app's whole middleware stack."""

    def build() -> Any:
        handlers = {k: v for k, v in app.exception_handlers.items() if k not in (500, Exception)}
        inner: Any = ExceptionMiddleware(AsyncExitStackMiddleware(app.router), handlers=handlers)
        for cls, args, kwargs in reversed(app.user_middleware):  # none today
            inner = cls(inner, *args, **kwargs)
        return Gate(inner, station_limits, public_urls)

    app.build_middleware_stack = build  # type: ignore[method-assign]
