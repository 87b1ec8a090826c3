"""The operator console: server-rendered pages mounted at /console on the station's own app.

Rules:
- Pages call the Station in-process (the console runs in the API's process), never HTTP to
  itself, and check what the operator API checks: `station.guard` for a channel, roles for admin.
- Templates are Jinja2 with autoescaping on for everything; nothing is marked safe, so any text
  from a peer or a user (a message containing <script>) shows as text.
- Every page needs a signed-in user (session.py); every POST checks the CSRF token first and
  answers 303 to a page (post/redirect/get), so a reload never sends twice.
- Live parts of a page (`data-live`) are HTML fragments fetched every 2 s by static/live.js; a
  fragment answers 401 when the session has ended, and the page then reloads into sign-in.
- Each page area is a module in `parley.web.pages` with `routes(console) -> APIRouter`; PAGES
  lists them, and NAV the links of the top bar. A feature adds its page with one line in each.
- No script or style comes from elsewhere, and no inline one: the Content-Security-Policy that
  app/browser.py sends with every response of the station says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.api.auth import SESSION_COOKIE
from parley.api.failures import CatchAll
from parley.domain.forms import timefmt
from parley.errors import Code, Internal, LoginRequired, ParleyError
from parley.station import users
from parley.station.node import Station
from parley.station.people import PeopleDesk
from parley.web import i18n, session
from parley.web.charts import LinkHistory

HERE = Path(__file__).parent
PREFIX = "/console"
LIVE_MS = 2000

# (path under /console, catalogue key, role needed or None); the order of the top bar.
NAV: list[tuple[str, str, str | None]] = [
    ("/", "nav.dashboard", None),
    ("/channels", "nav.channels", None),
    ("/crises", "nav.crises", None),
    ("/search", "nav.search", None),
    ("/alarms", "nav.alarms", None),
    ("/admin", "nav.admin", "admin"),
]

# Pages of one channel beside its messages: (path under /console/channels/{id}/, catalogue key).
CHANNEL_LINKS: list[tuple[str, str]] = [("talks", "talks.title"), ("transcript", "tr.title")]

# Confirmations a page may show after a POST (`Console.back(path, ok=…)`).
NOTICES = {
    "compose.sent", "notice.sent", "notice.acked", "checkcall.answered", "talks.propose_ok",
    "talks.done", "transcript.checkpointed", "crisis.opened", "crisis.moved", "msg.translated",
    "msg.machine_drafted",
    "admin.added", "admin.proposed", "admin.user_added", "admin.user_changed", "sched.saved",
    "sched.removed", "checkcall.called", "alarm.acked", "admin.removed", "admin.revoked",
    "notify.saved", "notify.routed",
    "admin.rotated",
}  # fmt: skip


class Console:
    def __init__(self, station: Station) -> None:
        self.station = station
        self.links = LinkHistory()
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            prefix=PREFIX, live_ms=LIVE_MS, langs=i18n.LANG_NAMES, channel_links=CHANNEL_LINKS
        )

    # --- who is asking ---------------------------------------------------------------------------
    def lang_of(self, request: Request, own: str | None = None) -> str:
        return i18n.choose(
            request.query_params.get("lang"),
            own,
            request.cookies.get(i18n.LANG_COOKIE),
            self.station.cfg.lang,
        )

    def viewer(self, request: Request) -> session.Viewer:
        """Dependency of every page: the signed-in person, or LoginRequired. A language picked
        with ?lang= while signed in becomes the user's own (PeopleDesk.set_language)."""
        found = session.signed_in(self.station, request)
        if found is None:
            raise LoginRequired(expired=SESSION_COOKIE in request.cookies)
        user, token = found
        people = PeopleDesk(self.station)
        picked = request.query_params.get("lang")
        own = people.chosen_language(user)
        if picked in i18n.LANGS and picked != own and user.name not in users.RESERVED:
            own = people.set_language(user, picked)["lang"]
        lang = self.lang_of(request, own)
        return session.Viewer(user, token, session.csrf_for(token), lang, i18n.Words(lang))

    async def poster(self, request: Request) -> session.Viewer:
        """Dependency of every POST: the CSRF token is checked before the session is used."""
        token = request.cookies.get(SESSION_COOKIE)
        await session.check_csrf(request, token)
        return self.viewer(request)

    @staticmethod
    async def form(request: Request) -> dict[str, str]:
        """Dependency: a POST's text fields by name (last value wins), for forms whose fields
        are not known in advance (a notice's fields come from its form)."""
        form = await request.form()
        return {k: v[:100_000] for k, v in form.items() if isinstance(v, str)}

    # --- answering -------------------------------------------------------------------------------
    def page(
        self, request: Request, template: str, v: session.Viewer | None, /, status: int = 200,
        lang: str | None = None, **ctx: Any,
    ) -> HTMLResponse:  # fmt: skip
        lang = v.lang if v else (lang or self.lang_of(request))
        words = v.words if v else i18n.Words(lang)
        html = self.env.get_template(template).render(
            _=words, lang=lang, v=v, station=self.station, now=self.station.clock(),
            path=request.url.path, nav=self.nav(v), when=lambda ms: _when(ms, lang),
            duration=lambda ms: timefmt.duration(ms, lang), notice=_notice(request, words),
            **ctx,
        )  # fmt: skip
        resp = HTMLResponse(html, status_code=status)
        q = request.query_params.get("lang")
        if q in i18n.LANGS:
            resp.set_cookie(i18n.LANG_COOKIE, q, max_age=365 * 86400, path=PREFIX,
                            samesite="strict", httponly=True)  # fmt: skip
        return resp

    def fragment(self, template: str, v: session.Viewer, /, **ctx: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(
            _=v.words, lang=v.lang, v=v, station=self.station, now=self.station.clock(),
            when=lambda ms: _when(ms, v.lang), duration=lambda ms: timefmt.duration(ms, v.lang),
            **ctx,
        )  # fmt: skip
        return HTMLResponse(html)

    def nav(self, v: session.Viewer | None) -> list[tuple[str, str]]:
        if v is None:
            return []
        return [(PREFIX + p if p != "/" else PREFIX + "/", key)
                for p, key, role in NAV if role is None or v.has(role)]  # fmt: skip

    @staticmethod
    def back(path: str, ok: str = "", seq: int | None = None) -> RedirectResponse:
        """303 to a console page after a POST, with an optional message to show there."""
        assert not ok or ok in NOTICES, ok
        query = urlencode({k: v for k, v in (("ok", ok), ("seq", seq)) if v})
        sep = "&" if "?" in path else "?"
        return RedirectResponse(PREFIX + path + (sep + query if query else ""), status_code=303)


def _notice(request: Request, words: i18n.Words) -> str | None:
    """The confirmation named by `?ok=`: only catalogue keys in NOTICES, with a number at most,
    so a crafted link cannot make the console say something of the sender's choosing."""
    key = request.query_params.get("ok", "")
    if key not in NOTICES:
        return None
    seq = request.query_params.get("seq", "")
    return words(key, seq=int(seq) if seq.isdigit() and len(seq) < 16 else "?")


def _when(ms: int | None, lang: str) -> str:
    return timefmt.when(int(ms), lang) if ms else "—"


class NoStore:
    """ASGI middleware: `Cache-Control: no-store` on every console answer but its static files,
    unless the answer set its own. (The security headers come from app/gate.py, for every
    answer of the station.) A plain ASGI wrapper, not Starlette's BaseHTTPMiddleware, which ran
    each page in a task of its own behind a stream (issue 14)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(PREFIX + "/static"):
            await self.app(scope, receive, send)
            return

        async def send_(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                headers = list(msg.get("headers", []))
                if all(bytes(k).lower() != b"cache-control" for k, _ in headers):
                    msg["headers"] = [*headers, (b"cache-control", b"no-store")]
            await send(msg)

        await self.app(scope, receive, send_)


def mount(app: FastAPI, station: Station, pages: Sequence[ModuleType]) -> Console:
    """Add the console to the station's app: /console/…, with / redirecting to it."""
    console = Console(station)
    station.scheduled.append(console.links.sample)
    sub = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    sub.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for page in pages:
        sub.include_router(page.routes(console))

    sub.add_middleware(NoStore)

    @sub.exception_handler(LoginRequired)
    async def login(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("x-parley-live"):
            return Response(status_code=401)
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = f"{PREFIX}/login?next={quote(nxt)}" + ("&expired=1" if exc.expired else "")
        resp = RedirectResponse(target, status_code=303)
        if exc.expired:
            session.clear_session_cookie(resp)
        return resp

    @sub.exception_handler(ParleyError)
    async def error(request: Request, exc: ParleyError) -> Response:
        return _error_page(console, request, exc.status, exc.message, exc.code)

    @sub.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error_page(console, request, exc.status_code, str(exc.detail), None)

    async def internal(request: Request, exc: Internal) -> Response:
        return _error_page(console, request, exc.status, exc.message, exc.code)

    # Inside the console's own app, whose Starlette error layer would otherwise answer first.
    sub.add_middleware(CatchAll, render=internal)
    app.mount(PREFIX, sub)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    return console


def _error_page(
    console: Console, request: Request, status: int, message: str, code: Code | None
) -> Response:
    if request.headers.get("x-parley-live"):
        return Response(status_code=status)
    try:
        v: session.Viewer | None = console.viewer(request)
    except LoginRequired:
        v = None
    key = {403: "error.forbidden", 404: "error.not_found"}.get(status, "")
    if code is Code.FORBIDDEN and "CSRF" in message:
        key = "error.csrf"
    return console.page(
        request, "error.html", v, status=status, key=key, message=message,
        code=str(code) if code else str(status),
    )  # fmt: skip
