"""The people part of the operator API: login and logout, who am I, users (admin), API tokens
(each user makes their own; an admin lists and revokes), and the audit log (admin or auditor).
Rules live in `station/users.py`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Cookie, Depends, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import Field

from parley.api import offload
from parley.api.actions import PUBLIC, acts
from parley.api.auth import SESSION_COOKIE, Auth, bearer
from parley.api.operator import Strict
from parley.station import users
from parley.station.node import Station
from parley.station.people import PeopleDesk
from parley.station.roles import Action
from parley.station.users import MAX_LABEL, MAX_PASSWORD, ROLES, User

Roles = list[str]


class Login(Strict):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class UserAdd(Strict):
    name: str = Field(min_length=1, max_length=64)
    roles: Roles = Field(default_factory=list, max_length=len(ROLES))
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class UserChange(Strict):
    roles: Roles | None = Field(default=None, max_length=len(ROLES))
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=MAX_PASSWORD)


class PasswordChange(Strict):
    current: str = Field(min_length=1, max_length=MAX_PASSWORD)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class LanguageSet(Strict):
    lang: str | None = Field(default=None, max_length=16)


class TokenAdd(Strict):
    label: str = Field(min_length=1, max_length=MAX_LABEL)


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["people"])
    desk = PeopleDesk(station)

    # Not behind auth.user: this is how a user without a token gets one.
    @r.post("/login", **acts(PUBLIC))
    def login(req: Login, request: Request) -> dict[str, Any]:
        now = station.clock()
        source = request.client.host if request.client else ""
        who = users.authenticate(station, req.name, req.password, now, source)
        token = users.new_session(station, who, now)
        return {"token": token, "user": desk.me(who), "expires": now + users.SESSION_IDLE_MS}

    @r.post("/logout", **acts(Action.ME))
    def logout(
        who: User = Depends(auth.user),
        cred: HTTPAuthorizationCredentials | None = Depends(bearer),
        session: str | None = Cookie(default=None, alias=SESSION_COOKIE),
    ) -> dict[str, Any]:
        token = cred.credentials if cred is not None else session
        ended = bool(token and token.startswith(users.SESSION_PREFIX))
        ended = ended and users.end_session(station, token or "", station.clock())
        return {"user": who.name, "ended": ended}

    @r.get("/me", response_model=dict[str, Any], **acts(Action.ME))
    async def me(who: User = Depends(auth.user)) -> JSONResponse:
        return JSONResponse(await offload.run(desk.me, who))  # see api/operator.py

    @r.post("/me/password", **acts(Action.ME))
    def change_own_password(
        req: PasswordChange, request: Request, who: User = Depends(auth.user)
    ) -> dict[str, Any]:
        """A user sets their own password, proving the current one (under the login limit)."""
        source = request.client.host if request.client else ""
        desk.change_own_password(who, req.current, req.password, source)
        return {"user": who.name, "changed": True}

    @r.put("/me/language", **acts(Action.ME))
    def set_own_language(req: LanguageSet, who: User = Depends(auth.user)) -> dict[str, Any]:
        """A user chooses the language their console shows (null: the station's)."""
        return desk.set_language(who, req.lang)

    @r.get("/users", **acts(Action.USER_MANAGE))
    def list_users(who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        return desk.list_users(who)

    @r.post("/users", **acts(Action.USER_MANAGE))
    def add_user(req: UserAdd, who: User = Depends(auth.user)) -> dict[str, Any]:
        return desk.add_user(who, req.name, req.roles, req.password)

    @r.patch("/users/{name}", **acts(Action.USER_MANAGE))
    def change_user(name: str, req: UserChange, who: User = Depends(auth.user)) -> dict[str, Any]:
        return desk.change_user(who, name, req.roles, req.disabled, req.password)

    # Only the user themselves (station/users.py create_token): not an admin, not the bootstrap.
    @r.post("/users/{name}/tokens", **acts(Action.TOKEN_OWN))
    def add_token(name: str, req: TokenAdd, who: User = Depends(auth.user)) -> dict[str, Any]:
        return desk.add_token(who, name, req.label)

    @r.get("/users/{name}/tokens", **acts(Action.TOKEN_OWN))
    def list_tokens(name: str, who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        return desk.tokens(who, name)

    @r.delete("/users/{name}/tokens/{token_id}", **acts(Action.TOKEN_OWN))
    def revoke_token(name: str, token_id: int, who: User = Depends(auth.user)) -> dict[str, Any]:
        return desk.revoke_token(who, name, token_id)

    @r.get("/audit", **acts(Action.AUDIT_READ))
    def audit(
        limit: int = Query(200, ge=1, le=10_000), who: User = Depends(auth.user)
    ) -> list[dict[str, Any]]:
        return desk.audit(who, limit)

    return r
