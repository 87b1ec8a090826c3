"""Signing in and out of the console."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from parley.errors import ParleyError
from parley.station import users
from parley.web import session
from parley.web.console import PREFIX, Console
from parley.web.i18n import Words


def _next(target: str) -> str:
    """Only a console path: a sign-in never redirects off this station's console."""
    if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX + "/"


def routes(c: Console) -> APIRouter:
    r = APIRouter()

    @r.get("/login")
    def login_page(request: Request, next: str = "", expired: int = 0) -> Response:
        if session.signed_in(c.station, request) is not None:
            return RedirectResponse(_next(next), status_code=303)
        secret, new = session.login_secret(request)
        lang = c.lang_of(request)
        resp = c.page(
            request, "login.html", None, lang=lang, csrf=session.csrf_for(secret), next=next,
            name="", error=Words(lang)("login.expired") if expired else None,
        )  # fmt: skip
        if new:
            session.set_login_cookie(resp, request, secret)
        return resp

    @r.post("/login")
    async def login(request: Request) -> Response:
        secret = request.cookies.get(session.LOGIN_COOKIE)
        await session.check_csrf(request, secret)
        form = await request.form()
        name, password = str(form.get("name", ""))[:200], str(form.get("password", ""))[:1024]
        target = _next(str(form.get("next", "")))
        source = request.client.host if request.client else ""
        try:
            _, token, max_age = session.sign_in(c.station, name, password, source)
        except ParleyError as exc:
            lang = c.lang_of(request)
            locked = isinstance(exc, users.RateLimited)
            assert secret is not None
            return c.page(
                request, "login.html", None, status=exc.status, lang=lang,
                csrf=session.csrf_for(secret), next=target, name=name,
                error=Words(lang)("login.locked" if locked else "login.failed"),
            )  # fmt: skip
        resp = RedirectResponse(target, status_code=303)
        session.set_session_cookie(resp, request, token, max_age)
        resp.delete_cookie(session.LOGIN_COOKIE, path=PREFIX)
        return resp

    @r.post("/logout")
    def logout(v: session.Viewer = Depends(c.poster)) -> Response:
        session.sign_out(c.station, v.session)
        resp = RedirectResponse(PREFIX + "/login", status_code=303)
        session.clear_session_cookie(resp)
        return resp

    return r
