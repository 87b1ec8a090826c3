"""The operator API's own description, for signed-in people only, and only when switched on.

Off by default (`"api_docs": false` in station.json): then /docs, /redoc and /openapi.json do not
exist. The route table is a map of the station's attack surface and Swagger UI is a large script;
a station that does not need them in a browser should not serve either. Switched on:
- GET /openapi.json needs the same credentials as the API (a Bearer token, or the console session);
- GET /docs is Swagger UI for a signed-in console user (anyone else is sent to the console's sign-in
  page). Its assets come from the installed `swagger-ui-bundle` package, served by the station
  under /docs/assets/ to signed-in users too; nothing is loaded from elsewhere, so the station's
  Content-Security-Policy holds. The page carries the session's CSRF token, which its script
  (/docs/init.js) sends as X-CSRF-Token, so "Try it out" works for requests that change things.
- there is no /redoc: ReDoc ships in no package to serve it from.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from parley.api.actions import SCHEMES
from parley.api.auth import CSRF_HEADER, SESSION_COOKIE, Auth
from parley.errors import Code, NotFound
from parley.station import users
from parley.station.node import Station
from parley.station.users import User

ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")

_INIT_JS = """"use strict";
window.onload = function () {
  var csrf = document.querySelector('meta[name="parley-csrf"]').getAttribute("content");
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
    requestInterceptor: function (req) {
      req.headers["CSRF_HEADER"] = csrf;
      return req;
    },
  });
};
""".replace("CSRF_HEADER", CSRF_HEADER)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="parley-csrf" content="{csrf}">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
<script src="/docs/init.js"></script></body></html>
"""


def _assets_dir() -> Path:
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


def router(app: FastAPI, station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    def signed_in(request: Request) -> str | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token or len(token) > 256:
            return None
        return token if users.session_user(station, token, station.clock()) else None

    def to_login() -> Response:
        return RedirectResponse("/console/login", status_code=303)

    @r.get("/openapi.json")
    def openapi(who: User = Depends(auth.user)) -> dict[str, Any]:
        spec = app.openapi()
        spec.setdefault("components", {})["securitySchemes"] = SCHEMES  # api/actions.py
        return spec

    @r.get("/docs")
    def docs(request: Request) -> Response:
        token = signed_in(request)
        if token is None:
            return to_login()
        page = _PAGE.format(title=escape(app.title), csrf=users.csrf_token(token))
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @r.get("/docs/init.js")
    def init(request: Request) -> Response:
        if signed_in(request) is None:
            return to_login()
        return Response(_INIT_JS, media_type="text/javascript")

    @r.get("/docs/assets/{name}")
    def asset(name: str, request: Request) -> Response:
        if signed_in(request) is None:
            return to_login()
        if name not in ASSETS:
            raise NotFound(Code.NOT_FOUND, f"no asset {name}")
        return FileResponse(_assets_dir() / name)

    return r
