"""People at a station as its users manage them: the use-case service behind /users, /me, tokens
and the audit log. Every method takes the acting user and checks the role table first; the
credential rules themselves (own tokens only, no reset of a back-channel representative's
password by others, the password policy) live in station/users.py."""

from __future__ import annotations

import json
import re
from typing import Any

from parley.errors import Code, Forbidden, LocalError
from parley.station import users
from parley.station.node import Station
from parley.station.roles import Action, allowed, authorize
from parley.station.users import User
from parley.store import users as db

LANG = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})?")  # en, ko, en-GB: a BCP 47 prefix


def _user(u: Any) -> dict[str, Any]:
    return {
        "name": u.name,
        "roles": list(u.roles),
        "created": u.created,
        "disabled": u.disabled is not None,
        "disabled_at": u.disabled,
    }


def _token(t: Any) -> dict[str, Any]:
    return {"id": t.id, "label": t.label, "created": t.created, "used": t.used,
            "revoked": t.revoked}  # fmt: skip


class PeopleDesk:
    def __init__(self, station: Station) -> None:
        self.station = station

    def me(self, who: User) -> dict[str, Any]:
        authorize(who, Action.ME)
        return {"name": who.name, "roles": sorted(who.roles), "lang": self.language(who)}

    def language(self, who: User) -> str:
        """The language `who` reads the console in: their own choice, else the station's."""
        return self.chosen_language(who) or self.station.cfg.lang

    def chosen_language(self, who: User) -> str | None:
        """`who`'s own choice of language, if they made one."""
        if who.name in users.RESERVED:
            return None
        return db.user_lang(self.station.store, who.name)

    def set_language(self, who: User, lang: str | None) -> dict[str, Any]:
        """`who` chooses their own language (None: back to the station's). It sticks across
        sessions and browsers. Any signed-in user may choose their own, and only their own."""
        authorize(who, Action.ME)
        if who.name in users.RESERVED:
            raise Forbidden(
                Code.FORBIDDEN,
                "the bootstrap token has no profile: it reads the station's working language",
            )
        if lang is not None and not LANG.fullmatch(lang):
            raise LocalError(
                Code.INVALID_REQUEST, "lang: a language code such as en or ko", field="lang"
            )
        db.set_user_lang(self.station.store, who.name, lang)
        self.station.store.audit(who.name, "user.language", {"lang": lang}, self.station.clock())
        return self.me(who)

    def change_own_password(self, who: User, current: str, new: str, source: str) -> None:
        authorize(who, Action.ME)
        if who.name in users.RESERVED:
            raise Forbidden(Code.FORBIDDEN, "the bootstrap token has no password to change")
        now = self.station.clock()
        users.check_password(new, who.name)
        users.authenticate(self.station, who.name, current, now, source)
        users.set_password(self.station, who.name, new, now, who.name)

    def list_users(self, who: User) -> list[dict[str, Any]]:
        authorize(who, Action.USER_MANAGE)
        return [_user(u) for u in users.list_users(self.station)]

    def add_user(self, who: User, name: str, roles: list[str], password: str) -> dict[str, Any]:
        authorize(who, Action.USER_MANAGE)
        st = self.station
        users.create_user(st, name, roles, password, st.clock(), who.name)
        return _user(users.get_user(st, name))

    def change_user(
        self,
        who: User,
        name: str,
        roles: list[str] | None,
        disabled: bool | None,
        password: str | None,
    ) -> dict[str, Any]:
        authorize(who, Action.USER_MANAGE)
        st = self.station
        # Check every part first, so that a bad one changes nothing.
        users.get_user(st, name)
        users.check_roles(roles or [])
        if password is not None:
            users.check_password_change(st, name, password, who.name)
        now = st.clock()
        if roles is not None:
            users.set_roles(st, name, roles, now, who.name)
        if password is not None:
            users.set_password(st, name, password, now, who.name)
        if disabled is not None:
            users.set_disabled(st, name, disabled, now, who.name)
        return _user(users.get_user(st, name))

    def _self_or_admin(self, who: User, name: str) -> None:
        authorize(who, Action.TOKEN_OWN)
        if who.name != name and not allowed(who, Action.USER_MANAGE):
            raise Forbidden(
                Code.FORBIDDEN, "only that user, or an admin, sees or revokes these tokens"
            )

    def add_token(self, who: User, name: str, label: str) -> dict[str, Any]:
        authorize(who, Action.TOKEN_OWN)
        tid, secret = users.create_token(self.station, name, label, self.station.clock(), who.name)
        return {"id": tid, "user": name, "label": label, "token": secret}

    def tokens(self, who: User, name: str) -> list[dict[str, Any]]:
        self._self_or_admin(who, name)
        return [_token(t) for t in users.list_tokens(self.station, name)]

    def revoke_token(self, who: User, name: str, token_id: int) -> dict[str, Any]:
        self._self_or_admin(who, name)
        users.revoke_token(self.station, name, token_id, self.station.clock(), who.name)
        return {"id": token_id, "user": name, "revoked": True}

    def audit(self, who: User, limit: int) -> list[dict[str, Any]]:
        authorize(who, Action.AUDIT_READ)
        st = self.station
        # Even the audit log keeps a back channel out of sight of those not named on it.
        hidden = {s.channel for s in st.channel_states() if not st.visible(s, who)}
        out = []
        for ts, actor, action, detail in st.store.audit_log(limit):
            d = json.loads(detail)
            if not isinstance(d, dict) or d.get("channel") not in hidden:
                out.append({"ts": ts, "actor": actor, "action": action, "detail": d})
        return out
