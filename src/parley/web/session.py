"""Console sign-in: the session cookie, the per-session CSRF token, and who is looking.

Rules:
- The session is the users module's (station/users.py): `authenticate` checks a password,
  `new_session` issues a token, `session_user` turns a token back into a User or None (expired,
  ended, disabled). The console keeps no session state of its own.
- The cookie `parley_session` is HttpOnly, SameSite=Strict, Path=/ (the operator API accepts it
  too), Secure when the console is reached over https, with a Max-Age of the session's life.
- CSRF: every form carries `csrf`, an HMAC of the session token, so it is per session, needs no
  storage and cannot be computed by a page that cannot read the cookie. Every POST is checked
  (`check_csrf`) before anything else happens; a missing or wrong token is 403. The sign-in form,
  which has no session yet, uses the same scheme with a short-lived random `parley_login` cookie.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response

from parley.api.auth import SESSION_COOKIE
from parley.errors import Code, Forbidden
from parley.protocol import crypto
from parley.station import users
from parley.station.node import Station
from parley.station.users import User
from parley.web.i18n import Words

LOGIN_COOKIE = "parley_login"
LOGIN_COOKIE_S = 3600


@dataclass(frozen=True)
class Viewer:
    """The person looking at a page: who, in which language, with which form token."""

    user: User
    session: str
    csrf: str
    lang: str
    words: Words

    def has(self, role: str) -> bool:
        return self.user.has(role)


def csrf_for(secret: str) -> str:
    return users.csrf_token(secret)


def csrf_ok(secret: str | None, token: object) -> bool:
    if not secret or not isinstance(token, str) or not token:
        return False
    return crypto.equal(csrf_for(secret), token)


async def check_csrf(request: Request, secret: str | None) -> None:
    """Refuse a POST whose form lacks the token belonging to `secret` (the session or login
    cookie). Reads the form once; FastAPI's Form parameters reuse the parsed copy."""
    form = await request.form()
    if not csrf_ok(secret, form.get("csrf")):
        raise Forbidden(Code.FORBIDDEN, "missing or wrong CSRF token")


def signed_in(station: Station, request: Request) -> tuple[User, str] | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 256:
        return None
    user = users.session_user(station, token, station.clock())
    return (user, token) if user is not None else None


def sign_in(station: Station, name: str, password: str, source: str) -> tuple[User, str, int]:
    """(user, session token, cookie lifetime in seconds). Unauthorized if the credentials fail,
    RateLimited while locked out. The session also ends when unused for its idle time."""
    now = station.clock()
    user = users.authenticate(station, name, password, now, source)
    return user, users.new_session(station, user, now), users.SESSION_MAX_MS // 1000


def sign_out(station: Station, token: str) -> None:
    users.end_session(station, token, station.clock())


def set_session_cookie(response: Response, request: Request, token: str, max_age_s: int) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age_s, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


def login_secret(request: Request) -> tuple[str, bool]:
    """The pre-session secret of the sign-in form: (secret, newly made)."""
    have = request.cookies.get(LOGIN_COOKIE)
    if have and 16 <= len(have) <= 64:
        return have, False
    return crypto.token(24), True


def set_login_cookie(response: Response, request: Request, secret: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE, secret, max_age=LOGIN_COOKIE_S, path="/console", httponly=True,
        samesite="strict", secure=request.url.scheme == "https",
    )  # fmt: skip
