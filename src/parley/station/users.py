"""People at a station: who they are, what their roles let them do, how they prove who they are.

Roles (DESIGN.md glossary): operator (duty operator: sends, acknowledges, answers check calls),
representative (may be named on back channels), translator, facilitator, auditor (reads and
verifies transcripts), admin (peers, users, channels, schedules). A back channel is readable only
by the users its proposal names for this station, whatever their roles: admins included.

Credentials, and the rules they follow:
- passwords are stored as argon2id hashes (argon2-cffi's RFC 9106 defaults), never in clear;
- a console session (`ps_…`) ends after SESSION_IDLE_MS without use, and at the latest after
  SESSION_MAX_MS; a named API token (`pt_…`) lives until revoked. The database holds only the
  SHA-256 of either, so a copy of it gives no working credential;
- login is refused for LOCKOUT_MS once a user name or a source address has collected
  MAX_FAILURES failures within FAILURE_WINDOW_MS; refused attempts are not checked against the
  password, so a locked-out guesser learns nothing. The limit holds under concurrency: each
  attempt reserves its place as a failure in the same write transaction that counts the earlier
  ones (write transactions are serialized on SQLite and on PostgreSQL), and only then is the
  password checked; a right password turns its reservation into a success. So however many
  guesses arrive at once, at most MAX_FAILURES of them reach the password check;
- a password must pass the policy (station/passwords.py: length and zxcvbn strength, not built on
  the user's name) wherever it is set;
- credentials that can read a back channel stay with the person named on it: an API token is made
  only by its own user (`create_token` with actor == name), never by an admin or the bootstrap
  token for someone else; and nobody but the user may set the password of a user named on a back
  channel (`set_password` refuses it), since whoever sets a password can sign in as that user.
  An admin may still disable such a user and revoke their tokens: that takes access away and
  gives nobody any;
- disabling a user ends their sessions and revokes their tokens: re-enabling restores no old
  credential. A password change ends the user's sessions.
- a proven token or session is remembered for at most REMEMBER_MS (and never past its idle or
  end limit), so requests need not look it up each time; revoking, logging out, disabling, and
  any password or role change forget every remembered credential at once, in every worker.
Every change and every login (successful, failed, refused) goes to the audit log.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import cache
from typing import Protocol, cast

from parley.errors import Code, Conflict, Forbidden, LocalError, NotFound, Unauthorized
from parley.protocol import crypto
from parley.protocol.crypto import sha256
from parley.station import passwords
from parley.station.roles import ROLES as ROLES  # the one list of roles
from parley.store import users as db
from parley.store.base import SqlStore


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        return role in self.roles


# The holder of the station's bootstrap token (DIR/api.token): set-up and duty work, but no
# back channel unless a proposal names "admin" as a representative.
BOOTSTRAP = User("admin", frozenset({"admin", "operator"}))

# "admin" is the bootstrap token's holder and "station" the actor of automatic work in the audit
# log: a person with either name could pass for them, on back channels and in the audit log.
RESERVED = frozenset({BOOTSTRAP.name, "station"})
NAME = re.compile(r"[a-z][a-z0-9._-]{0,63}")
MIN_PASSWORD, MAX_PASSWORD = passwords.MIN_LENGTH, passwords.MAX_LENGTH
MAX_LABEL = 100

SESSION_IDLE_MS = 8 * 3600_000
SESSION_MAX_MS = 24 * 3600_000
# Recording "last used" on every request would be a durable write per API call; a minute of
# imprecision in the idle timeout is harmless.
TOUCH_MS = 60_000
# A token or session proven is remembered this long (store/base.py `keep_credential`), so that every
# request does not look it up again. Revoking, logging out, disabling, a password or role change
# forget every remembered one at once (`credentials_withdrawn`); expiry is checked on each use.
REMEMBER_MS = 5_000

MAX_FAILURES = 5
FAILURE_WINDOW_MS = 15 * 60_000
LOCKOUT_MS = 15 * 60_000

SESSION_PREFIX, TOKEN_PREFIX = "ps_", "pt_"
_CSRF_CONTEXT = b"parley console csrf v1"


class RateLimited(Unauthorized):
    """Too many failed logins: no credential is checked until the lockout ends."""

    status = 429


class HasStore(Protocol):
    store: SqlStore


class HasBackChannels(HasStore, Protocol):
    def named_on_backchannel(self, name: str) -> bool:
        """Whether any back channel's proposal names user `name` for this station."""
        ...


def _store(where: SqlStore | HasStore) -> SqlStore:
    return where if isinstance(where, SqlStore) else where.store


def _user(row: db.UserRow) -> User:
    return User(row.name, frozenset(row.roles))


def token_hash(token: str) -> bytes:
    return sha256(token.encode())


# --- checks ----------------------------------------------------------------------------------
def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise LocalError(
            Code.INVALID_REQUEST,
            "a user name is 1..64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter",
        )
    if name in RESERVED:
        raise LocalError(Code.INVALID_REQUEST, f"the user name {name!r} is reserved")
    return name


def check_roles(roles: list[str]) -> list[str]:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise LocalError(
            Code.INVALID_REQUEST,
            f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}",
        )
    return sorted(set(roles))


def check_password(password: str, name: str = "") -> str:
    """`password` if the policy accepts it for user `name`; WeakPassword (weak_password) if not."""
    return passwords.check(password, name)


def _verify(encoded: str, password: str) -> bool:
    return crypto.verify_password(encoded, password)


@cache
def _decoy() -> str:
    """A hash to verify against for unknown names, so they take as long as known ones."""
    return crypto.hash_password(crypto.token(16))


# --- users -----------------------------------------------------------------------------------
def create_user(
    where: SqlStore | HasStore,
    name: str,
    roles: list[str],
    password: str,
    now_ms: int,
    actor: str,
) -> User:
    store = _store(where)
    check_name(name)
    roles = check_roles(roles)
    encoded = crypto.hash_password(check_password(password, name))
    with store.tx():
        if not db.add_user(store, name, roles, encoded, now_ms):
            raise Conflict(Code.CONFLICT, f"a user named {name!r} exists already")
        store.audit(actor, "user.add", {"user": name, "roles": roles}, now_ms)
    return User(name, frozenset(roles))


def list_users(where: SqlStore | HasStore) -> list[db.UserRow]:
    return db.list_users(_store(where))


def get_user(where: SqlStore | HasStore, name: str) -> db.UserRow:
    row = db.get_user(_store(where), name)
    if row is None:
        raise NotFound(Code.NOT_FOUND, f"no user named {name!r}; see `parley user list`")
    return row


def set_roles(
    where: SqlStore | HasStore, name: str, roles: list[str], now_ms: int, actor: str
) -> User:
    store = _store(where)
    roles = check_roles(roles)
    with store.tx():
        was = get_user(store, name).roles
        db.set_roles(store, name, roles)
        store.audit(actor, "user.roles", {"user": name, "roles": roles, "was": list(was)}, now_ms)
    return User(name, frozenset(roles))


def check_password_change(where: SqlStore | HasStore, name: str, password: str, actor: str) -> None:
    """Whether `actor` may give user `name` this password: Forbidden for someone else's password
    while that user is named on a back channel (a bare store, which cannot tell, refuses any
    other's); WeakPassword for a password the policy refuses; NotFound for an unknown user."""
    get_user(where, name)
    if actor != name:
        named = where.named_on_backchannel(name) if hasattr(where, "named_on_backchannel") else True
        if named:
            raise Forbidden(
                Code.FORBIDDEN,
                f"{name} is named on a back channel: only {name} may change their password, "
                "since whoever sets it can sign in as them. Disable the user instead if needed",
            )
    check_password(password, name)


def set_password(
    where: SqlStore | HasStore | HasBackChannels, name: str, password: str, now_ms: int, actor: str
) -> None:
    """Give `name` a new password (their sessions end). See `check_password_change`."""
    store = _store(where)
    check_password_change(where, name, password, actor)
    encoded = crypto.hash_password(password)
    with store.tx():
        get_user(store, name)
        db.set_password(store, name, encoded)
        db.delete_sessions(store, name)
        store.audit(actor, "user.password", {"user": name}, now_ms)


def set_disabled(
    where: SqlStore | HasStore, name: str, disabled: bool, now_ms: int, actor: str
) -> None:
    store = _store(where)
    with store.tx():
        row = get_user(store, name)
        if disabled == (row.disabled is not None):
            return
        db.set_disabled(store, name, now_ms if disabled else None)
        if disabled:
            db.delete_sessions(store, name)
            db.revoke_tokens(store, name, now_ms)
        store.audit(actor, "user.disable" if disabled else "user.enable", {"user": name}, now_ms)


# --- login -----------------------------------------------------------------------------------
def _locked_until(times: list[int]) -> int:
    """The end of the latest lockout these failure times (oldest first) caused; 0 if none."""
    end = 0
    for i in range(MAX_FAILURES - 1, len(times)):
        if times[i] - times[i - MAX_FAILURES + 1] < FAILURE_WINDOW_MS:
            end = max(end, times[i] + LOCKOUT_MS)
    return end


def authenticate(
    where: SqlStore | HasStore, name: str, password: str, now_ms: int, source: str
) -> User:
    """The user with this name and password, or Unauthorized (RateLimited when locked out)."""
    store = _store(where)
    name, source = name[:64], source[:128]
    # Count the earlier failures and reserve this attempt's place among them in one write
    # transaction, so concurrent guesses cannot all read "4 failures" and all go on to the
    # password check. The reservation counts as a failure until the password proves it wrong.
    with store.tx():
        by_name, by_source = db.failures(
            store, name, source, now_ms - FAILURE_WINDOW_MS - LOCKOUT_MS
        )
        until = max(_locked_until(by_name), _locked_until(by_source))
        if until > now_ms:
            store.audit(name, "login.refused", {"source": source, "until": until}, now_ms)
            attempt = None
        else:
            attempt = db.record_attempt(store, name, source, False, now_ms)
    if attempt is None:
        minutes = -(-(until - now_ms) // 60_000)
        raise RateLimited(
            Code.RATE_LIMITED,
            f"too many failed logins for this user or from this address; "
            f"try again in {minutes} minute(s)",
            retry_after_s=-(-(until - now_ms) // 1000),
        )
    row = db.get_user(store, name) if NAME.fullmatch(name) else None
    good = _verify(row.password if row else _decoy(), password)
    if row is not None and good and row.disabled is None:
        # Hashes made under older parameters are upgraded while the password is at hand.
        rehash = (
            crypto.hash_password(password) if crypto.password_needs_rehash(row.password) else None
        )
        with store.tx():
            db.settle_attempt(store, attempt, True)
            if rehash is not None:
                db.set_password(store, name, rehash)
            store.audit(name, "login", {"source": source}, now_ms)
            db.purge_attempts(store, now_ms - 24 * 3600_000)
        return _user(row)
    reason = "unknown user" if row is None else "disabled" if good else "wrong password"
    with store.tx():  # the reservation stays: it is this failure
        store.audit(name, "login.failed", {"source": source, "reason": reason}, now_ms)
    if reason == "disabled":
        raise Unauthorized(Code.UNAUTHORIZED, "this account is disabled; ask an admin")
    raise Unauthorized(Code.UNAUTHORIZED, "wrong user name or password")


# --- console sessions ------------------------------------------------------------------------
def new_session(
    where: SqlStore | HasStore, user: User, now_ms: int, ttl_ms: int = SESSION_IDLE_MS
) -> str:
    """A new session token for `user`, valid until unused for `ttl_ms` (and at most a day)."""
    store = _store(where)
    token = SESSION_PREFIX + crypto.token(32)
    with store.tx():
        db.purge_sessions(store, now_ms)
        db.add_session(
            store, token_hash(token), user.name, now_ms, ttl_ms,
            now_ms + max(SESSION_MAX_MS, ttl_ms),
        )  # fmt: skip
    return token


def known_user(
    where: SqlStore | HasStore, token: str, now_ms: int, sessions_only: bool = False
) -> User | None:
    """The user of an API token or session proven a moment ago (see REMEMBER_MS), without
    waiting for the store; None if it is not remembered so (then ask `token_user` or
    `session_user`)."""
    kind = {TOKEN_PREFIX: b"t", SESSION_PREFIX: b"s"}.get(token[:3])
    if kind is None or (sessions_only and kind != b"s"):
        return None
    return cast(User | None, _store(where).credential(kind + token_hash(token), now_ms, False))


def session_user(where: SqlStore | HasStore, token: str, now_ms: int) -> User | None:
    """The active user of a live session; None for an unknown, expired or ended one."""
    store = _store(where)
    h = token_hash(token)
    key = b"s" + h
    known = store.credential(key, now_ms)
    if known is not None:
        return cast(User, known)
    version = store.credentials_version()
    s = db.get_session(store, h)
    if s is None:
        return None
    if now_ms > s.seen + s.idle_ms or now_ms > s.expires:
        db.delete_session(store, h)
        return None
    row = db.get_user(store, s.name)
    if row is None or row.disabled is not None:
        return None
    if now_ms - s.seen >= TOUCH_MS:
        db.touch_session(store, h, now_ms)
    user = _user(row)
    # The idle limit counts from `seen`, which a remembered session does not move: it is
    # looked up (and touched) again after REMEMBER_MS at most.
    until = min(now_ms + REMEMBER_MS, s.seen + s.idle_ms, s.expires)
    store.keep_credential(key, user, until, version)
    return user


def csrf_token(session: str) -> str:
    """The CSRF token that goes with a session: an HMAC of the session token, so it needs no
    storage and a page that cannot read the session cookie cannot compute it. The console puts
    it in every form; the operator API wants it in X-CSRF-Token when a browser sends the
    session cookie on a request that changes something."""
    return crypto.hmac_sha256(session.encode(), _CSRF_CONTEXT).hex()[:43]


def end_session(where: SqlStore | HasStore, token: str, now_ms: int | None = None) -> bool:
    """Log out: the session token stops working. False if it was not a live session."""
    store = _store(where)
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    h = token_hash(token)
    with store.tx():
        s = db.get_session(store, h)
        if s is None:
            return False
        db.delete_session(store, h)
        store.audit(s.name, "logout", {}, now_ms)
    return True


# --- API tokens ------------------------------------------------------------------------------
def create_token(
    where: SqlStore | HasStore, name: str, label: str, now_ms: int, actor: str
) -> tuple[int, str]:
    """A new API token for `name`: (id, secret). The secret is shown once and never stored.
    Only `name` themselves may make one (actor == name): a token made by anyone else would let
    them act as `name`, on back channels too."""
    store = _store(where)
    if actor in RESERVED:
        raise Forbidden(
            Code.FORBIDDEN,
            "the bootstrap token makes no API tokens; each user makes their own",
        )
    if actor != name:
        raise Forbidden(
            Code.FORBIDDEN,
            f"only {name} may make an API token for {name}: they sign in and make it themselves "
            "(`parley user token NAME` asks for their password)",
        )
    if not 1 <= len(label) <= MAX_LABEL:
        raise LocalError(Code.INVALID_REQUEST, f"a token label is 1..{MAX_LABEL} characters")
    token = TOKEN_PREFIX + crypto.token(32)
    with store.tx():
        if get_user(store, name).disabled is not None:
            raise Conflict(Code.CONFLICT, f"{name} is disabled; enable the user first")
        tid = db.add_token(store, name, label, token_hash(token), now_ms)
        store.audit(actor, "token.create", {"user": name, "id": tid, "label": label}, now_ms)
    return tid, token


def list_tokens(where: SqlStore | HasStore, name: str) -> list[db.TokenRow]:
    store = _store(where)
    get_user(store, name)
    return db.list_tokens(store, name)


def revoke_token(
    where: SqlStore | HasStore, name: str, token_id: int, now_ms: int, actor: str
) -> None:
    store = _store(where)
    with store.tx():
        if not db.revoke_token(store, name, token_id, now_ms):
            raise NotFound(Code.NOT_FOUND, f"{name} has no live token {token_id}")
        store.audit(actor, "token.revoke", {"user": name, "id": token_id}, now_ms)


def token_user(where: SqlStore | HasStore, token: str, now_ms: int) -> User | None:
    """The active user an API token belongs to; None for an unknown or revoked token."""
    store = _store(where)
    h = token_hash(token)
    key = b"t" + h
    known = store.credential(key, now_ms)
    if known is not None:
        return cast(User, known)
    version = store.credentials_version()
    t = db.token_by_hash(store, h)
    if t is None or t.revoked is not None:
        return None
    row = db.get_user(store, t.name)
    if row is None or row.disabled is not None:
        return None
    if t.used is None or now_ms - t.used >= TOUCH_MS:
        db.touch_token(store, t.id, now_ms)
    user = _user(row)
    store.keep_credential(key, user, now_ms + REMEMBER_MS, version)
    return user
