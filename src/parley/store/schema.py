"""The database schema as an ordered list of migrations, shared by every backend.

Each entry is (version, description, statements). A station refuses to open a database whose
version is newer than the code (schema_too_new) and applies missing migrations in order at start.
Statements use the SQL subset both SQLite and PostgreSQL accept; BLOB is mapped to BYTEA and
INTEGER PRIMARY KEY AUTOINCREMENT to BIGSERIAL by the PostgreSQL backend.

Log:
  1  the station core: keys, peers, channels, envelopes, plaintext bodies, outbox, receipts,
     evidence, alarms, idempotency keys, link state, audit log.
  2-6 slots of the features (people, paths, transcripts, notices, talks).
  7  envelopes held ahead of their predecessors (and FLASH bodies shown early).
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "station core",
        [
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            """CREATE TABLE prekeys (
                kid TEXT PRIMARY KEY, public BLOB NOT NULL, secret BLOB,
                not_before BIGINT NOT NULL, not_after BIGINT NOT NULL, record TEXT NOT NULL,
                retired_at BIGINT)""",
            """CREATE TABLE peers (
                station TEXT PRIMARY KEY, name TEXT NOT NULL, lang TEXT NOT NULL,
                identity BLOB NOT NULL, addresses TEXT NOT NULL, prekeys TEXT NOT NULL,
                added BIGINT NOT NULL)""",
            """CREATE TABLE channels (
                channel TEXT PRIMARY KEY, created BIGINT NOT NULL)""",
            """CREATE TABLE envelopes (
                id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL,
                sender TEXT NOT NULL, seq BIGINT NOT NULL, hash BLOB NOT NULL UNIQUE,
                raw BLOB NOT NULL, ts BIGINT NOT NULL, prec TEXT NOT NULL,
                stored BIGINT NOT NULL, UNIQUE (channel, sender, seq))""",
            """CREATE TABLE bodies (
                hash BLOB PRIMARY KEY, type TEXT NOT NULL, body TEXT NOT NULL,
                salt BLOB NOT NULL)""",
            """CREATE TABLE outbox (
                channel TEXT NOT NULL, seq BIGINT NOT NULL, peer TEXT NOT NULL,
                envelope_id BIGINT NOT NULL, prio INTEGER NOT NULL, delivered BIGINT,
                PRIMARY KEY (channel, peer, seq))""",
            "CREATE INDEX outbox_pending ON outbox (peer, delivered, prio, envelope_id)",
            "CREATE INDEX bodies_type ON bodies (type)",
            """CREATE TABLE receipts (
                channel TEXT NOT NULL, of_station TEXT NOT NULL, by_station TEXT NOT NULL,
                seq BIGINT NOT NULL, hash BLOB NOT NULL, ts BIGINT NOT NULL, raw BLOB NOT NULL,
                PRIMARY KEY (channel, of_station, by_station, seq))""",
            """CREATE TABLE evidence (
                id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL,
                sender TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL,
                raw BLOB NOT NULL, held_hash BLOB, detected BIGINT NOT NULL)""",
            """CREATE TABLE alarms (
                id INTEGER PRIMARY KEY AUTOINCREMENT, ts BIGINT NOT NULL, kind TEXT NOT NULL,
                severity TEXT NOT NULL, subject TEXT NOT NULL, message TEXT NOT NULL,
                cleared BIGINT)""",
            """CREATE TABLE idempotency (
                key TEXT PRIMARY KEY, channel TEXT NOT NULL, seq BIGINT NOT NULL)""",
            """CREATE TABLE links (
                peer TEXT PRIMARY KEY, state TEXT NOT NULL, since BIGINT NOT NULL,
                last_ok BIGINT, last_error TEXT, failures INTEGER NOT NULL, rtt_ms INTEGER)""",
            """CREATE TABLE audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT, ts BIGINT NOT NULL, actor TEXT NOT NULL,
                action TEXT NOT NULL, detail TEXT NOT NULL)""",
        ],
    ),
    (
        2,
        "people: users, sessions, API tokens, login attempts",
        [
            """CREATE TABLE users (
                name TEXT PRIMARY KEY, roles TEXT NOT NULL, password TEXT NOT NULL,
                created BIGINT NOT NULL, disabled BIGINT)""",
            """CREATE TABLE sessions (
                hash BLOB PRIMARY KEY, name TEXT NOT NULL, created BIGINT NOT NULL,
                seen BIGINT NOT NULL, idle_ms BIGINT NOT NULL, expires BIGINT NOT NULL)""",
            "CREATE INDEX sessions_name ON sessions (name)",
            """CREATE TABLE api_tokens (
                id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, label TEXT NOT NULL,
                hash BLOB NOT NULL UNIQUE, created BIGINT NOT NULL, used BIGINT, revoked BIGINT)""",
            """CREATE TABLE login_attempts (
                id INTEGER PRIMARY KEY AUTOINCREMENT, ts BIGINT NOT NULL, name TEXT NOT NULL,
                source TEXT NOT NULL, ok INTEGER NOT NULL)""",
            "CREATE INDEX login_attempts_name ON login_attempts (name, ts)",
            "CREATE INDEX login_attempts_source ON login_attempts (source, ts)",
        ],
    ),
    (3, "paths: relay queue, pull cursors, bundles", []),
    (4, "transcripts: checkpoints and cosignatures", []),
    (5, "notices: acknowledgements, deadlines, escalations, check-call schedules", []),
    (6, "talks and translation", []),
    (
        7,
        "held: envelopes that arrived ahead of their predecessors",
        [
            """CREATE TABLE held (
                channel TEXT NOT NULL, sender TEXT NOT NULL, seq BIGINT NOT NULL,
                hash BLOB NOT NULL, raw BLOB NOT NULL, prec TEXT NOT NULL,
                early_body TEXT, received BIGINT NOT NULL,
                PRIMARY KEY (channel, sender, seq))""",
        ],
    ),
]

LATEST = MIGRATIONS[-1][0]
