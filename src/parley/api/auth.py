"""Who is calling the operator API: a FastAPI dependency that turns credentials into a User.

Every operator route depends on `auth.user`; a route that needs a role adds `auth.role("admin")`.
Accepted credentials, in this order:
- `Authorization: Bearer <DIR/api.token>`: the bootstrap token, acting as the BOOTSTRAP user;
- `Authorization: Bearer pt_…`: a user's named API token (`parley user token`);
- `Authorization: Bearer ps_…`: a session from `POST /api/v1/login`;
- the `parley_session` cookie: a console session.
A Bearer credential that is not valid is refused outright, whatever cookie comes with it.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Cookie, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from parley.errors import Code, Forbidden, Unauthorized
from parley.station import users
from parley.station.node import Station
from parley.station.users import BOOTSTRAP, User

SESSION_COOKIE = "parley_session"

bearer = HTTPBearer(auto_error=False)


class Auth:
    def __init__(self, station: Station, token: str) -> None:
        self.station = station
        self.token = token

    def user(
        self,
        cred: HTTPAuthorizationCredentials | None = Depends(bearer),
        session: str | None = Cookie(default=None, alias=SESSION_COOKIE),
    ) -> User:
        now = self.station.clock()
        if cred is not None:
            secret = cred.credentials
            if hmac.compare_digest(secret.encode(), self.token.encode()):
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
            found = users.session_user(self.station.store, session, now)
            if found is None:
                raise Unauthorized(Code.UNAUTHORIZED, "the session has ended; log in again")
            return found
        raise Unauthorized(
            Code.UNAUTHORIZED, "a valid API token (Bearer) or console session is required"
        )

    def role(self, *roles: str) -> Callable[..., User]:
        """A dependency for routes that need one of `roles`."""

        def need(user: User = Depends(self.user)) -> User:
            if not any(user.has(r) for r in roles):
                raise Forbidden(Code.FORBIDDEN, f"this needs the {' or '.join(roles)} role")
            return user

        return need
