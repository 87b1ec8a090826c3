"""People at a station in the database: users, console sessions, API tokens, login attempts.

Secrets never reach these tables: passwords as argon2 hashes, session and API tokens as SHA-256
hashes (a stolen database gives no working credential). Functions take the `SqlStore`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from parley.store.base import SqlStore


@dataclass(frozen=True)
class UserRow:
    name: str
    roles: tuple[str, ...]
    password: str  # argon2 encoded hash
    created: int
    disabled: int | None


@dataclass(frozen=True)
class SessionRow:
    name: str
    created: int
    seen: int
    idle_ms: int
    expires: int


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    label: str
    created: int
    used: int | None
    revoked: int | None


_USER_COLS = "name, roles, password, created, disabled"
_TOKEN_COLS = "id, name, label, created, used, revoked"


def _user(r: tuple[Any, ...]) -> UserRow:
    disabled = int(r[4]) if r[4] is not None else None
    return UserRow(r[0], tuple(json.loads(r[1])), r[2], int(r[3]), disabled)


def _token(r: tuple[Any, ...]) -> TokenRow:
    used = int(r[4]) if r[4] is not None else None
    revoked = int(r[5]) if r[5] is not None else None
    return TokenRow(int(r[0]), r[1], r[2], int(r[3]), used, revoked)


# --- users -----------------------------------------------------------------------------------
def add_user(store: SqlStore, name: str, roles: list[str], password: str, now_ms: int) -> bool:
    """Insert a user; False if the name is taken."""
    with store.tx():
        if store.q("SELECT 1 FROM users WHERE name = ?", name):
            return False
        store.q(
            f"INSERT INTO users ({_USER_COLS}) VALUES (?, ?, ?, ?, NULL)",
            name, json.dumps(sorted(roles)), password, now_ms,
        )  # fmt: skip
    return True


def get_user(store: SqlStore, name: str) -> UserRow | None:
    rows = store.q(f"SELECT {_USER_COLS} FROM users WHERE name = ?", name)
    return _user(rows[0]) if rows else None


def user_lang(store: SqlStore, name: str) -> str | None:
    rows = store.q("SELECT lang FROM users WHERE name = ?", name)
    return str(rows[0][0]) if rows and rows[0][0] else None


def set_user_lang(store: SqlStore, name: str, lang: str | None) -> None:
    with store.tx():
        store.q("UPDATE users SET lang = ? WHERE name = ?", lang, name)


def list_users(store: SqlStore) -> list[UserRow]:
    return [_user(r) for r in store.q(f"SELECT {_USER_COLS} FROM users ORDER BY name")]


def set_roles(store: SqlStore, name: str, roles: list[str]) -> None:
    with store.tx():
        store.credentials_withdrawn()
        store.q("UPDATE users SET roles = ? WHERE name = ?", json.dumps(sorted(roles)), name)


def set_password(store: SqlStore, name: str, password: str) -> None:
    with store.tx():
        store.credentials_withdrawn()
        store.q("UPDATE users SET password = ? WHERE name = ?", password, name)


def set_disabled(store: SqlStore, name: str, disabled: int | None) -> None:
    with store.tx():
        store.credentials_withdrawn()
        store.q("UPDATE users SET disabled = ? WHERE name = ?", disabled, name)


# --- sessions --------------------------------------------------------------------------------
def add_session(
    store: SqlStore, token_hash: bytes, name: str, now_ms: int, idle_ms: int, expires: int
) -> None:
    with store.tx():
        store.q(
            "INSERT INTO sessions (hash, name, created, seen, idle_ms, expires)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            token_hash, name, now_ms, now_ms, idle_ms, expires,
        )  # fmt: skip


def get_session(store: SqlStore, token_hash: bytes) -> SessionRow | None:
    rows = store.q(
        "SELECT name, created, seen, idle_ms, expires FROM sessions WHERE hash = ?", token_hash
    )
    if not rows:
        return None
    r = rows[0]
    return SessionRow(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]))


def touch_session(store: SqlStore, token_hash: bytes, now_ms: int) -> None:
    with store.tx():
        store.q("UPDATE sessions SET seen = ? WHERE hash = ?", now_ms, token_hash)


def delete_session(store: SqlStore, token_hash: bytes) -> bool:
    with store.tx():
        store.credentials_withdrawn()
        found = bool(store.q("SELECT 1 FROM sessions WHERE hash = ?", token_hash))
        store.q("DELETE FROM sessions WHERE hash = ?", token_hash)
    return found


def delete_sessions(store: SqlStore, name: str) -> None:
    with store.tx():
        store.credentials_withdrawn()
        store.q("DELETE FROM sessions WHERE name = ?", name)


def purge_sessions(store: SqlStore, now_ms: int) -> None:
    """Forget sessions that can no longer be used (idle too long or past their end)."""
    with store.tx():
        store.q("DELETE FROM sessions WHERE expires < ? OR seen + idle_ms < ?", now_ms, now_ms)


# --- API tokens ------------------------------------------------------------------------------
def add_token(store: SqlStore, name: str, label: str, token_hash: bytes, now_ms: int) -> int:
    with store.tx():
        store.q(
            "INSERT INTO api_tokens (name, label, hash, created) VALUES (?, ?, ?, ?)",
            name, label, token_hash, now_ms,
        )  # fmt: skip
        rows = store.q("SELECT id FROM api_tokens WHERE hash = ?", token_hash)
    return int(rows[0][0])


def token_by_hash(store: SqlStore, token_hash: bytes) -> TokenRow | None:
    rows = store.q(f"SELECT {_TOKEN_COLS} FROM api_tokens WHERE hash = ?", token_hash)
    return _token(rows[0]) if rows else None


def list_tokens(store: SqlStore, name: str) -> list[TokenRow]:
    rows = store.q(f"SELECT {_TOKEN_COLS} FROM api_tokens WHERE name = ? ORDER BY id", name)
    return [_token(r) for r in rows]


def touch_token(store: SqlStore, token_id: int, now_ms: int) -> None:
    with store.tx():
        store.q("UPDATE api_tokens SET used = ? WHERE id = ?", now_ms, token_id)


def revoke_token(store: SqlStore, name: str, token_id: int, now_ms: int) -> bool:
    """Revoke one of `name`'s tokens; False if it has no such live token."""
    with store.tx():
        store.credentials_withdrawn()
        live = store.q(
            "SELECT 1 FROM api_tokens WHERE id = ? AND name = ? AND revoked IS NULL",
            token_id, name,
        )  # fmt: skip
        store.q(
            "UPDATE api_tokens SET revoked = ? WHERE id = ? AND name = ? AND revoked IS NULL",
            now_ms, token_id, name,
        )  # fmt: skip
    return bool(live)


def revoke_tokens(store: SqlStore, name: str, now_ms: int) -> None:
    with store.tx():
        store.credentials_withdrawn()
        store.q(
            "UPDATE api_tokens SET revoked = ? WHERE name = ? AND revoked IS NULL", now_ms, name
        )


# --- login attempts --------------------------------------------------------------------------
def record_attempt(store: SqlStore, name: str, source: str, ok: bool, now_ms: int) -> int:
    """Record a login attempt; its id (for `settle_attempt`)."""
    with store.tx():
        return store._insert_id(
            store._sql("INSERT INTO login_attempts (ts, name, source, ok) VALUES (?, ?, ?, ?)"),
            (now_ms, name, source, 1 if ok else 0),
        )


def settle_attempt(store: SqlStore, attempt_id: int, ok: bool) -> None:
    """Mark an attempt recorded in advance as what it turned out to be."""
    with store.tx():
        store.q("UPDATE login_attempts SET ok = ? WHERE id = ?", 1 if ok else 0, attempt_id)


def failures(store: SqlStore, name: str, source: str, since_ms: int) -> tuple[list[int], list[int]]:
    """Times of failed logins since `since_ms`, oldest first: (for this name, from this source)."""
    by_name = store.q(
        "SELECT ts FROM login_attempts WHERE name = ? AND ok = 0 AND ts >= ? ORDER BY ts",
        name, since_ms,
    )  # fmt: skip
    by_source = store.q(
        "SELECT ts FROM login_attempts WHERE source = ? AND ok = 0 AND ts >= ? ORDER BY ts",
        source, since_ms,
    )  # fmt: skip
    return [int(r[0]) for r in by_name], [int(r[0]) for r in by_source]


def purge_attempts(store: SqlStore, before_ms: int) -> None:
    with store.tx():
        store.q("DELETE FROM login_attempts WHERE ts < ?", before_ms)
