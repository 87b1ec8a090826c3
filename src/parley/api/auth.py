"""Who is calling the operator API: a FastAPI dependency that turns credentials into a User.

Every operator route depends on `auth.user`; a route that needs a role adds `auth.role("admin")`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from parley.errors import Code, Forbidden, Unauthorized
from parley.station.node import Station
from parley.station.users import BOOTSTRAP, User

_bearer = HTTPBearer(auto_error=False)


class Auth:
    def __init__(self, station: Station, token: str) -> None:
        self.station = station
        self.token = token

    def user(self, cred: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> User:
        if cred is not None and hmac.compare_digest(cred.credentials, self.token):
            return BOOTSTRAP
        raise Unauthorized(Code.UNAUTHORIZED, "a valid API token is required (Bearer)")

    def role(self, role: str) -> Callable[..., User]:
        def need(user: User = Depends(self.user)) -> User:
            if not user.has(role):
                raise Forbidden(Code.FORBIDDEN, f"this needs the {role} role")
            return user

        return need
