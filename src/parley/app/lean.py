"""A lean handler for the plainest routes: what FastAPI's own handler does for them, without
solving a dependency graph per request (issue 14).

For a route whose endpoint is a coroutine that answers a Response and takes nothing but path
and query parameters, the request, at most one JSON body model and dependencies that each take
only the request (`Auth.user`, `Auth.sender`), FastAPI's request handler still reads the content
type with an email parser, builds the query parameters and cookies it will not use, and walks
the dependency graph with its caches and exit stacks: about a quarter of a send's time on the
event loop with 16 clients (`bench/synapse.py`), and the event loop's CPU per `/me` 148-161 us
against 109-122 us lean (in process, three alternating runs). `handler(route)` gives such a
route a handler that does the same steps directly:

- A request whose parameters FastAPI's own function finds wrong, whose body cannot be read, or
  whose body is not plainly JSON (`Content-Type: application/json`, bytes that decode, a value
  the body model accepts) is handed to FastAPI's handler as it is, before any dependency runs:
  every error answer (a bad parameter, a missing, malformed or invalid body, another content
  type) is FastAPI's own, word for word.
- Otherwise each dependency is awaited in the order the endpoint declares them, then the
  endpoint is called with them, the parameters and the validated body. A dependency or
  the endpoint that raises does so exactly as under FastAPI: the exception handlers answer.

Any route of another shape keeps FastAPI's handler. `install(route)` gives a route its lean
handler if it can have one (app/gate.py `add_routes`, for every route); tests/test_lean_routes.py
checks that the busiest routes are lean and that every lean route answers as FastAPI does.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any
from weakref import WeakSet

from fastapi import params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_typed_return_annotation, request_params_to_args
from fastapi.routing import APIRoute, request_response
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]
JSON_TYPE = "application/json"
# The ASGI apps `install` made (a route is not hashable: its app, a function, is).
_made: WeakSet[Callable[..., Any]] = WeakSet()


def install(route: APIRoute) -> bool:
    """Give `route` a lean handler if its shape allows (module rules); whether it did."""
    if getattr(route, "max_body_size", None) is not None:
        return False  # FastAPI wraps such a route's app in a body limit: keep its own
    lean = handler(route, route.get_route_handler())
    if lean is None:
        return False
    route.app = request_response(lean)
    _made.add(route.app)
    return True


def is_lean(route: APIRoute) -> bool:
    return route.app in _made


def _nothing_but_params_and_the_request(d: Dependant) -> bool:
    """`d` takes no headers, cookies, websocket, connection, response, background tasks or
    security scopes: whatever else it takes, the lean handler gives as FastAPI would."""
    return not (
        d.header_params
        or d.cookie_params
        or d.websocket_param_name is not None
        or d.http_connection_param_name is not None
        or d.response_param_name is not None
        or d.background_tasks_param_name is not None
        or d.security_scopes_param_name is not None
    )


def _takes_only_the_request(d: Dependant) -> bool:
    return (
        d.call is not None
        and inspect.iscoroutinefunction(d.call)
        and d.request_param_name is not None
        and _nothing_but_params_and_the_request(d)
        and not (d.path_params or d.query_params or d.body_params or d.dependencies)
        and len(inspect.signature(d.call).parameters) == 1
    )


def _answers_a_response(endpoint: Callable[..., Any]) -> bool:
    try:
        answer = get_typed_return_annotation(endpoint)  # as FastAPI reads it
    except (NameError, TypeError):
        return False
    return isinstance(answer, type) and issubclass(answer, Response)


def handler(route: APIRoute, fastapi_handler: Handler) -> Handler | None:
    """A lean handler for `route` if its shape is plain enough (module rules), else None.
    `fastapi_handler`: FastAPI's own, which takes every request that is not plainly right.
    FastAPI's dependency overrides are not consulted: the station sets none (app/gate.py)."""
    d = route.dependant
    if (
        d.call is not route.endpoint
        or not inspect.iscoroutinefunction(route.endpoint)
        or not _answers_a_response(route.endpoint)
        or not _nothing_but_params_and_the_request(d)
        or len(d.body_params) > 1
        or not all(_takes_only_the_request(s) for s in d.dependencies)
        or any(s.name is None for s in d.dependencies)
    ):
        return None
    body = route.body_field if d.body_params else None
    if d.body_params and (
        body is None
        or isinstance(body.field_info, params.Form)
        or route._embed_body_fields  # as FastAPI's handler reads it
    ):
        return None
    endpoint = route.endpoint
    path_params, query_params = d.path_params, d.query_params
    deps = [(str(s.name), s.call) for s in d.dependencies if s.call is not None]
    request_name = d.request_param_name

    async def lean(request: Request) -> Response:
        values, errors = request_params_to_args(path_params, request.path_params)
        if query_params:
            found, more = request_params_to_args(query_params, request.query_params)
            values.update(found)
            errors += more
        if errors:
            return await fastapi_handler(request)
        if request_name is not None:
            values[request_name] = request
        if body is not None:
            try:
                raw = await request.body()
            except Exception:  # a client gone, a body over the gate's limit (app/gate.py)
                return await fastapi_handler(request)  # which answers it as FastAPI does
            if not raw or request.headers.get("content-type") != JSON_TYPE:
                return await fastapi_handler(request)
            try:
                decoded = json.loads(raw)
            except ValueError:
                return await fastapi_handler(request)
            value, wrong = body.validate(decoded, {}, loc=("body",))
            if wrong:
                return await fastapi_handler(request)
            values[body.name] = value
        for name, call in deps:
            values[name] = await call(request)
        answer: Response = await endpoint(**values)
        return answer

    return lean
