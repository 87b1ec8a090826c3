"""The people part of the operator API: login and logout, who am I, users (admin), API tokens
(each user makes their own; an admin lists and revokes), and the audit log (admin or auditor).
Rules live in `station/users.py`."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Cookie, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import Field

from parley.api.auth import SESSION_COOKIE, Auth, bearer
from parley.api.operator import Strict
from parley.errors import Code, Forbidden
from parley.station import users
from parley.station.node import Station
from parley.station.users import MAX_LABEL, MAX_PASSWORD, ROLES, User
from parley.store.users import TokenRow, UserRow

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


class TokenAdd(Strict):
    label: str = Field(min_length=1, max_length=MAX_LABEL)


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["people"])
    admin = auth.role("admin")

    # Not behind auth.user: this is how a user without a token gets one.
    @r.post("/login")
    def login(req: Login, request: Request) -> dict[str, Any]:
        now = station.clock()
        source = request.client.host if request.client else ""
        who = users.authenticate(station, req.name, req.password, now, source)
        token = users.new_session(station, who, now)
        return {"token": token, "user": _me(who), "expires": now + users.SESSION_IDLE_MS}

    @r.post("/logout")
    def logout(
        who: User = Depends(auth.user),
        cred: HTTPAuthorizationCredentials | None = Depends(bearer),
        session: str | None = Cookie(default=None, alias=SESSION_COOKIE),
    ) -> dict[str, Any]:
        token = cred.credentials if cred is not None else session
        ended = bool(token and token.startswith(users.SESSION_PREFIX))
        ended = ended and users.end_session(station, token or "", station.clock())
        return {"user": who.name, "ended": ended}

    @r.get("/me")
    def me(who: User = Depends(auth.user)) -> dict[str, Any]:
        return _me(who)

    @r.post("/me/password")
    def change_own_password(
        req: PasswordChange, request: Request, who: User = Depends(auth.user)
    ) -> dict[str, Any]:
        """A user sets their own password, proving the current one (under the login limit)."""
        if who.name in users.RESERVED:
            raise Forbidden(Code.FORBIDDEN, "the bootstrap token has no password to change")
        now = station.clock()
        source = request.client.host if request.client else ""
        users.check_password(req.password, who.name)
        users.authenticate(station, who.name, req.current, now, source)
        users.set_password(station, who.name, req.password, now, who.name)
        return {"user": who.name, "changed": True}

    @r.get("/users")
    def list_users(who: User = Depends(admin)) -> list[dict[str, Any]]:
        return [_user(u) for u in users.list_users(station)]

    @r.post("/users")
    def add_user(req: UserAdd, who: User = Depends(admin)) -> dict[str, Any]:
        users.create_user(station, req.name, req.roles, req.password, station.clock(), who.name)
        return _user(users.get_user(station, req.name))

    @r.patch("/users/{name}")
    def change_user(name: str, req: UserChange, who: User = Depends(admin)) -> dict[str, Any]:
        # Check every part first, so that a bad one changes nothing.
        users.get_user(station, name)
        users.check_roles(req.roles or [])
        if req.password is not None:
            users.check_password_change(station, name, req.password, who.name)
        now = station.clock()
        if req.roles is not None:
            users.set_roles(station, name, req.roles, now, who.name)
        if req.password is not None:
            users.set_password(station, name, req.password, now, who.name)
        if req.disabled is not None:
            users.set_disabled(station, name, req.disabled, now, who.name)
        return _user(users.get_user(station, name))

    def self_or_admin(name: str, who: User = Depends(auth.user)) -> User:
        if who.name != name and not who.has("admin"):
            raise Forbidden(Code.FORBIDDEN, "this needs the admin role, or to be that user")
        return who

    # Only the user themselves (station/users.py create_token): not an admin, not the bootstrap.
    @r.post("/users/{name}/tokens")
    def add_token(name: str, req: TokenAdd, who: User = Depends(auth.user)) -> dict[str, Any]:
        tid, secret = users.create_token(station, name, req.label, station.clock(), who.name)
        return {"id": tid, "user": name, "label": req.label, "token": secret}

    @r.get("/users/{name}/tokens")
    def list_tokens(name: str, who: User = Depends(self_or_admin)) -> list[dict[str, Any]]:
        return [_token(t) for t in users.list_tokens(station, name)]

    @r.delete("/users/{name}/tokens/{token_id}")
    def revoke_token(
        name: str, token_id: int, who: User = Depends(self_or_admin)
    ) -> dict[str, Any]:
        users.revoke_token(station, name, token_id, station.clock(), who.name)
        return {"id": token_id, "user": name, "revoked": True}

    @r.get("/audit")
    def audit(
        limit: int = Query(200, ge=1, le=10_000),
        who: User = Depends(auth.role("admin", "auditor")),
    ) -> list[dict[str, Any]]:
        # Even the audit log keeps a back channel out of sight of those not named on it.
        hidden = {s.channel for s in station.channel_states() if not station.visible(s, who)}
        out = []
        for ts, actor, action, detail in station.store.audit_log(limit):
            d = json.loads(detail)
            if d.get("channel") not in hidden:
                out.append({"ts": ts, "actor": actor, "action": action, "detail": d})
        return out

    return r


def _me(u: User) -> dict[str, Any]:
    return {"name": u.name, "roles": sorted(u.roles)}


def _user(u: UserRow) -> dict[str, Any]:
    return {
        "name": u.name,
        "roles": list(u.roles),
        "created": u.created,
        "disabled": u.disabled is not None,
        "disabled_at": u.disabled,
    }


def _token(t: TokenRow) -> dict[str, Any]:
    return {"id": t.id, "label": t.label, "created": t.created, "used": t.used,
            "revoked": t.revoked}  # fmt: skip
