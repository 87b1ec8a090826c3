"""Who is calling the operator API: a FastAPI dependency that turns credentials into a User.

Every operator route depends on `auth.user`, or on `auth.sender` if it takes an Idempotency-Key
(the caller and the key in one dependency); what that user may do is the role table's answer,
checked by the use-case service the route calls (station/roles.py).
Accepted credentials, in this order:
- `Authorization: Bearer <DIR/api.token>`: the bootstrap token, acting as the BOOTSTRAP user;
- `Authorization: Bearer pt_…`: a user's named API token (`parley user token`);
- `Authorization: Bearer ps_…`: a session from `POST /api/v1/login`;
- the `parley_session` cookie: a console session, so that a signed-in browser can read the API.
A Bearer credential that is not valid is refused outright, whatever cookie comes with it.

Cross-site request forgery: a browser sends the cookie on its own, also with a request that a page
of another origin makes it send (another port of the same host is "same-site", and SameSite=Strict
lets the cookie through). So the cookie alone authenticates only safe methods (GET, HEAD,
OPTIONS), whose answers such a page cannot read; a request that changes something (POST, PUT,
PATCH, DELETE) with the cookie also needs the session's CSRF token (`users.csrf_token`, the one the
console puts in its forms) in the X-CSRF-Token header. A page of another origin can neither read
that token nor send a custom header without a CORS preflight, which the station never grants. The
Origin check (app/browser.py) refuses such requests before they get here too; each defence holds
without the other. Bearer credentials need neither: a browser never adds them by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from parley.api import offload, retries
from parley.errors import Code, Forbidden, Unauthorized
from parley.protocol import crypto
from parley.station import users
from parley.station.node import Station
from parley.station.users import BOOTSTRAP, User

SESSION_COOKIE = "parley_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(auto_error=False)


def credentials(authorization: str | None) -> HTTPAuthorizationCredentials | None:
    """An `Authorization: Bearer` header's credentials, exactly as `bearer` reads them."""
    if not authorization:
        return None
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if not scheme or not secret or scheme.lower() != "bearer":
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=secret)


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sends, and the Idempotency-Key they sent it with ("" for none; api/retries.py)."""

    user: User
    key: str


class Auth:
    def __init__(self, station: Station, token: str) -> None:
        self.station = station
        self.token = token

    async def sender(self, request: Request) -> Sender:
        """`user`, then the request's Idempotency-Key: the caller is known before the header is
        looked at, as on every route."""
        who = await self.user(request)
        return Sender(who, await retries.idempotency_key(request))

    async def user(self, request: Request) -> User:
        # The credentials are read here from the request, not by two sub-dependencies (HTTPBearer
        # and a Cookie parameter) that FastAPI would resolve on every request (issue 14).
        cred = credentials(request.headers.get("authorization"))
        session = request.cookies.get(SESSION_COOKIE) or None
        # A credential proven a moment ago is answered here, on the event loop, from memory
        # (station/users.py `known_user`); anything else is looked up on a worker thread, as a
        # store read may wait for another thread's commit.
        now, store = self.station.clock(), self.station.store
        known = None
        if cred is not None:
            if crypto.equal(cred.credentials, self.token):
                return BOOTSTRAP
            known = users.known_user(store, cred.credentials, now)
        elif session and request.method in SAFE_METHODS:
            known = users.known_user(store, session, now, sessions_only=True)
        if known is not None:
            return known
        return await offload.run(self.lookup, request, cred, session)

    def lookup(
        self,
        request: Request,
        cred: HTTPAuthorizationCredentials | None,
        session: str | None,
    ) -> User:
        now = self.station.clock()
        if cred is not None:
            secret = cred.credentials
            if crypto.equal(secret, self.token):
                return BOOTSTRAP
            found = None
            if secret.startswith(users.TOKEN_PREFIX):
                found = users.token_user(self.station.store, secret, now)
            elif secret.startswith(users.SESSION_PREFIX):
                found = users.session_user(self.station.store, secret, now)
            if found is None:
                raise Unauthorized(
                    Code.UNAUTHORIZED,
                    "this token is unknown, revoked or expired, or its user is disabled",
                )
            return found
        if session:
            if request.method not in SAFE_METHODS:
                sent = request.headers.get(CSRF_HEADER, "")
                if not crypto.equal(sent, users.csrf_token(session)):
                    raise Forbidden(
                        Code.FORBIDDEN,
                        f"a request that changes something with the console's session cookie "
                        f"needs the session's {CSRF_HEADER} header; programs send "
                        "Authorization: Bearer instead",
                    )
            found = users.session_user(self.station.store, session, now)
            if found is None:
                raise Unauthorized(Code.UNAUTHORIZED, "the session has ended; log in again")
            return found
        raise Unauthorized(
            Code.UNAUTHORIZED, "a valid API token (Bearer) or console session is required"
        )
