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
  8  integrity findings: stored envelopes, bodies or checkpoints that failed their check at rest
     (station/integrity.py), one row per item, so each raises one alarm, not one per read.
  9  counters: the group-commit writer's figures.
  10 witnesses (store/witness.py): as a witness, the latest checkpoint cosigned per log origin;
     as a channel member, the cosignatures witnesses returned on our checkpoints.
  11 reading: keyset paging of a channel's history by (channel, id) and jumps by date
     (channel, ts); the search index (SQLite FTS5 with the trigram tokenizer; PostgreSQL a
     table with a pg_trgm GIN index when the extension can be created); alarms that resolve:
     who or what cleared one (`cleared_by`), how (`resolution`: resolved by a later event, or
     acknowledged by a person), the note, and the `ref` of the event that settles it.
  12 the generation counter (store/cache.py).
  13 a user's language.
  14 notifications (store/notify.py): settings made through the API, and the one outbox of
     webhook and e-mail deliveries with their retry state (it replaces notice_webhooks, which
     is kept, unused, for its history).
  15 peers an admin removed or whose key it revoked: the row stays (its key verifies history).
  16 identity hand-overs, this station's own and its peers', by (station, seq).
  17 partial indexes on the outbox's undelivered rows, so marking a receipt and choosing the
     next batch cost what is pending or marked, not the whole outbox.
  18 idempotency keys carry when they were first used, so they can be pruned.
  19 search rows waiting for SQLite's FTS5 index: written with each stored body, moved into the
     index in batches (store/reading.py).
  20 envelopes held ahead of their chains, counted per (sender, channel) with their bytes, kept
     with each hold and drop: the hold limits read the whole `held` table for every envelope
     held, so each envelope a peer sent ahead cost O(held) under the store's lock.
  21 evidence found by its sender and kind: a piece is looked up among that sender's of that
     kind (it was compared with every piece kept), and at most EVIDENCE_LIMIT of them are kept.
  22 the relay queue counted per (source, destination) with its bytes, kept with each envelope
     queued and forgotten: a relay bounds each source's share in count and bytes (one source
     could fill a destination's whole queue, with envelopes of any size).

A statement may be `Only(dialect, sql)`: run on that backend only (`SqlStore.dialect`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Only:
    """A statement for one backend: "sqlite" or "postgres"."""

    dialect: str
    sql: str


MIGRATIONS: list[tuple[int, str, list[str | Only]]] = [
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
    (
        3,
        "paths: relay queue, pull cursors, bundles",
        [
            # Per-peer routing: deliver through the relay station `via` (always, or only while
            # the direct link is down when fallback = 1). No row: push directly.
            """CREATE TABLE routes (
                peer TEXT PRIMARY KEY, via TEXT NOT NULL, fallback INTEGER NOT NULL,
                updated BIGINT NOT NULL)""",
            # Envelopes this station relays for others: opaque bytes, deleted once answered.
            """CREATE TABLE relay_queue (
                id INTEGER PRIMARY KEY AUTOINCREMENT, src TEXT NOT NULL, dest TEXT NOT NULL,
                hash BLOB NOT NULL, raw BLOB NOT NULL, received BIGINT NOT NULL,
                UNIQUE (dest, hash))""",
            "CREATE INDEX relay_queue_dest ON relay_queue (dest, id)",
            # The destination's newest receipt per chain, kept for the sender to collect.
            """CREATE TABLE relay_receipts (
                channel TEXT NOT NULL, of_station TEXT NOT NULL, by_station TEXT NOT NULL,
                seq BIGINT NOT NULL, raw BLOB NOT NULL, received BIGINT NOT NULL,
                PRIMARY KEY (channel, of_station, by_station))""",
            """CREATE TABLE pull_cursors (
                peer TEXT PRIMARY KEY, last_pull BIGINT NOT NULL, served BIGINT NOT NULL)""",
            """CREATE TABLE bundles (
                id INTEGER PRIMARY KEY AUTOINCREMENT, direction TEXT NOT NULL,
                peer TEXT NOT NULL, digest BLOB NOT NULL, created BIGINT NOT NULL,
                envelopes INTEGER NOT NULL, receipts INTEGER NOT NULL, at BIGINT NOT NULL,
                outcome TEXT NOT NULL)""",
        ],
    ),
    (
        4,
        "transcripts: checkpoints and cosignatures",
        [
            # store/checkpoints.py: signed tree heads over one sender's chain (ours and the
            # other members' that matched our own view), and the cosignatures that matched it.
            """CREATE TABLE checkpoints (
                channel TEXT NOT NULL, sender TEXT NOT NULL, size BIGINT NOT NULL,
                root BLOB NOT NULL, seq BIGINT NOT NULL, note TEXT NOT NULL,
                ts BIGINT NOT NULL, PRIMARY KEY (channel, sender, size))""",
            """CREATE TABLE cosignatures (
                channel TEXT NOT NULL, sender TEXT NOT NULL, size BIGINT NOT NULL,
                cosigner TEXT NOT NULL, line TEXT NOT NULL, signed BIGINT NOT NULL,
                seq BIGINT NOT NULL, PRIMARY KEY (channel, sender, size, cosigner))""",
        ],
    ),
    (
        5,
        "notices: acknowledgements, deadlines, escalations, check-call schedules",
        [
            # vigil (station/vigil.py): link health, check calls
            """CREATE TABLE link_health (
                peer TEXT PRIMARY KEY, state TEXT NOT NULL, since BIGINT NOT NULL,
                reason TEXT NOT NULL)""",
            """CREATE TABLE link_events (
                id INTEGER PRIMARY KEY AUTOINCREMENT, peer TEXT NOT NULL, at_ms BIGINT NOT NULL,
                old TEXT NOT NULL, new TEXT NOT NULL, reason TEXT NOT NULL)""",
            "CREATE INDEX link_events_at ON link_events (at_ms)",
            """CREATE TABLE checkcall_schedules (
                channel TEXT PRIMARY KEY, times TEXT NOT NULL, tz TEXT NOT NULL,
                weekdays TEXT NOT NULL, answer_within_ms BIGINT NOT NULL, holidays TEXT NOT NULL,
                covered BIGINT NOT NULL, updated BIGINT NOT NULL, updated_by TEXT NOT NULL)""",
            """CREATE TABLE checkcalls (
                channel TEXT NOT NULL, caller TEXT NOT NULL, call_id TEXT NOT NULL,
                due_ms BIGINT NOT NULL, answer_by_ms BIGINT NOT NULL, ref TEXT NOT NULL,
                ts BIGINT NOT NULL, PRIMARY KEY (channel, caller, call_id))""",
            "CREATE INDEX checkcalls_due ON checkcalls (caller, answer_by_ms)",
            """CREATE TABLE checkcall_answers (
                channel TEXT NOT NULL, caller TEXT NOT NULL, call_id TEXT NOT NULL,
                answerer TEXT NOT NULL, by_name TEXT, ts BIGINT, ref TEXT, missed_alarmed BIGINT,
                PRIMARY KEY (channel, caller, call_id, answerer))""",
            # notices (station/notices.py, store/notices.py): notices, acks, deadlines, escalation
            """CREATE TABLE notices (
                hash TEXT PRIMARY KEY, channel TEXT NOT NULL, sender TEXT NOT NULL,
                seq BIGINT NOT NULL, ts BIGINT NOT NULL, form TEXT NOT NULL,
                version INTEGER NOT NULL, lang TEXT NOT NULL, deadline_ms BIGINT NOT NULL,
                late INTEGER NOT NULL)""",
            "CREATE INDEX notices_channel ON notices (channel, ts)",
            """CREATE TABLE notice_acks (
                hash TEXT PRIMARY KEY, channel TEXT NOT NULL, ref TEXT NOT NULL,
                station TEXT NOT NULL, seq BIGINT NOT NULL, ts BIGINT NOT NULL,
                answer TEXT NOT NULL, answer_text TEXT NOT NULL, by_name TEXT NOT NULL)""",
            "CREATE INDEX notice_acks_ref ON notice_acks (ref, station, ts)",
            """CREATE TABLE notice_deadlines (
                ref TEXT NOT NULL, answerer TEXT NOT NULL, channel TEXT NOT NULL,
                sender TEXT NOT NULL, deadline_ms BIGINT NOT NULL, answered_ts BIGINT,
                PRIMARY KEY (ref, answerer))""",
            "CREATE INDEX notice_deadlines_open ON notice_deadlines (answered_ts, deadline_ms)",
            """CREATE TABLE notice_escalations (
                ref TEXT NOT NULL, answerer TEXT NOT NULL, level INTEGER NOT NULL,
                action TEXT NOT NULL, fired_ms BIGINT NOT NULL,
                PRIMARY KEY (ref, answerer, level))""",
            """CREATE TABLE notice_webhooks (
                id INTEGER PRIMARY KEY AUTOINCREMENT, ref TEXT NOT NULL, answerer TEXT NOT NULL,
                level INTEGER NOT NULL, url TEXT NOT NULL, payload TEXT NOT NULL,
                attempts INTEGER NOT NULL, next_ms BIGINT NOT NULL, state TEXT NOT NULL,
                last_error TEXT, updated BIGINT NOT NULL)""",
            "CREATE INDEX notice_webhooks_due ON notice_webhooks (state, next_ms)",
        ],
    ),
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
    (
        8,
        "integrity findings",
        [
            # kind: 'envelope' (seq = the envelope's) or 'checkpoint' (seq = the tree size).
            # found_by: 'read' (a reader's check) or 'selfaudit' (the background pass).
            """CREATE TABLE integrity_findings (
                kind TEXT NOT NULL, channel TEXT NOT NULL, sender TEXT NOT NULL,
                seq BIGINT NOT NULL, problem TEXT NOT NULL, found_by TEXT NOT NULL,
                detected BIGINT NOT NULL, PRIMARY KEY (kind, channel, sender, seq))""",
        ],
    ),
    (
        9,
        "counters: the group-commit writer's figures, kept in the store for every worker",
        [
            "CREATE TABLE counters (name TEXT PRIMARY KEY, n BIGINT NOT NULL)",
            "INSERT INTO counters (name, n) VALUES ('writer.groups', 0)",
            "INSERT INTO counters (name, n) VALUES ('writer.sends', 0)",
        ],
    ),
    (
        10,
        "witnesses",
        [
            """CREATE TABLE witness_state (
                origin TEXT PRIMARY KEY, size BIGINT NOT NULL, root BLOB NOT NULL,
                note TEXT NOT NULL, updated BIGINT NOT NULL)""",
            """CREATE TABLE witness_cosignatures (
                channel TEXT NOT NULL, sender TEXT NOT NULL, size BIGINT NOT NULL,
                witness TEXT NOT NULL, line TEXT NOT NULL, signed BIGINT NOT NULL,
                received BIGINT NOT NULL, PRIMARY KEY (channel, sender, size, witness))""",
        ],
    ),
    (
        11,
        "reading: history paging, search index, alarms that resolve",
        [
            "CREATE INDEX envelopes_channel_id ON envelopes (channel, id)",
            "CREATE INDEX envelopes_channel_ts ON envelopes (channel, ts)",
            # The search index holds one row per envelope (by its id): the text a person may
            # look for (station/search.py decides which), never the only copy of anything.
            Only(
                "sqlite",
                "CREATE VIRTUAL TABLE search_index USING fts5("
                "text, channel UNINDEXED, tokenize = 'trigram')",
            ),
            Only(
                "postgres",
                """CREATE TABLE search_index (
                    rowid BIGINT PRIMARY KEY, channel TEXT NOT NULL, text TEXT NOT NULL)""",
            ),
            # pg_trgm is a trusted extension (PostgreSQL 13+); where it cannot be created the
            # search still works, by scanning.
            Only(
                "postgres",
                """DO $$ BEGIN
                    CREATE EXTENSION IF NOT EXISTS pg_trgm;
                EXCEPTION WHEN OTHERS THEN
                    RAISE NOTICE 'pg_trgm unavailable: search scans';
                END $$""",
            ),
            Only(
                "postgres",
                """DO $$ BEGIN
                    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
                        EXECUTE 'CREATE INDEX search_index_trgm ON search_index'
                                ' USING gin (text gin_trgm_ops)';
                    END IF;
                END $$""",
            ),
            Only("postgres", "CREATE INDEX search_index_channel ON search_index (channel, rowid)"),
            "ALTER TABLE alarms ADD COLUMN cleared_by TEXT",
            "ALTER TABLE alarms ADD COLUMN resolution TEXT",
            "ALTER TABLE alarms ADD COLUMN note TEXT",
            "ALTER TABLE alarms ADD COLUMN ref TEXT",
            "CREATE INDEX alarms_open ON alarms (cleared, kind, ref)",
        ],
    ),
    (
        12,
        "generation: bumped by every transaction that stores envelopes (store/cache.py)",
        ["INSERT INTO counters (name, n) VALUES ('generation', 0)"],
    ),
    (
        13,
        "a user's language: the console follows it; empty, the station's working language",
        ["ALTER TABLE users ADD COLUMN lang TEXT"],
    ),
    (
        14,
        "notifications: settings an admin made through the API, and one outbox for webhooks and"
        " e-mail",
        [
            """CREATE TABLE notify_settings (
                name TEXT PRIMARY KEY, value TEXT NOT NULL, updated BIGINT NOT NULL,
                updated_by TEXT NOT NULL)""",
            """CREATE TABLE notify_outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT, alarm_id BIGINT, kind TEXT NOT NULL,
                target TEXT NOT NULL, channel TEXT, payload TEXT NOT NULL,
                coalesced BIGINT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,
                next_ms BIGINT NOT NULL, created BIGINT NOT NULL, updated BIGINT NOT NULL,
                last_error TEXT)""",
            "CREATE INDEX notify_outbox_due ON notify_outbox (state, next_ms)",
            "CREATE INDEX notify_outbox_recent ON notify_outbox (target, kind, created)",
        ],
    ),
    (
        15,
        "peers removed or revoked by an admin (station/keys.py): kept, for what they signed",
        [
            "ALTER TABLE peers ADD COLUMN removed BIGINT",
            "ALTER TABLE peers ADD COLUMN revoked BIGINT",
        ],
    ),
    (
        16,
        "identity hand-overs (protocol/handover.py): ours and our peers', in order",
        [
            """CREATE TABLE handovers (
                station TEXT NOT NULL, seq BIGINT NOT NULL, record TEXT NOT NULL,
                received BIGINT NOT NULL, PRIMARY KEY (station, seq))""",
        ],
    ),
    (
        17,
        "the outbox's undelivered rows indexed on their own (issue 14: catch-up slowed as it went)",
        [
            # A receipt marks `seq <= n AND delivered IS NULL`: through the primary key that
            # walked every delivered row of the chain again, so a 100,000 backlog cost O(n^2).
            "CREATE INDEX outbox_undelivered ON outbox (channel, peer, seq, prio, envelope_id)"
            " WHERE delivered IS NULL",
            # `pending`'s per-channel precedence read the whole outbox, delivered rows included.
            "CREATE INDEX outbox_waiting ON outbox (peer, channel, prio) WHERE delivered IS NULL",
        ],
    ),
    (
        18,
        "idempotency keys carry when they were first used, so they can be pruned"
        " (station/idempotency.py); keys from before are pruned first",
        [
            "ALTER TABLE idempotency ADD COLUMN created BIGINT NOT NULL DEFAULT 0",
            "CREATE INDEX idempotency_created ON idempotency (created)",
        ],
    ),
    (
        19,
        "search rows waiting for the FTS5 index (SQLite): FTS5 writes a segment at every commit"
        " that indexed anything, ~80 us of CPU however few rows (issue 14)",
        [
            Only(
                "sqlite",
                """CREATE TABLE search_pending (
                    id INTEGER PRIMARY KEY, text TEXT NOT NULL, channel TEXT NOT NULL)""",
            ),
        ],
    ),
    (
        20,
        "held envelopes counted per sender and channel (count, bytes), kept with each hold and"
        " drop: the limits read the whole held table for every envelope held",
        [
            """CREATE TABLE held_usage (
                sender TEXT NOT NULL, channel TEXT NOT NULL, n BIGINT NOT NULL,
                bytes BIGINT NOT NULL, PRIMARY KEY (sender, channel))""",
            "INSERT INTO held_usage (sender, channel, n, bytes)"
            " SELECT sender, channel, COUNT(*), SUM(LENGTH(raw)) FROM held"
            " GROUP BY sender, channel",
        ],
    ),
    (
        21,
        "evidence found by sender and kind: each piece was compared with every piece kept, and"
        " a hostile peer could add pieces without end (now at most EVIDENCE_LIMIT per sender and"
        " kind)",
        ["CREATE INDEX evidence_source ON evidence (sender, kind, channel, seq)"],
    ),
    (
        22,
        "the relay queue counted per source and destination (count, bytes), kept with each"
        " envelope queued and forgotten: each source's share is bounded in count and bytes",
        [
            """CREATE TABLE relay_usage (
                src TEXT NOT NULL, dest TEXT NOT NULL, n BIGINT NOT NULL, bytes BIGINT NOT NULL,
                PRIMARY KEY (src, dest))""",
            "INSERT INTO relay_usage (src, dest, n, bytes)"
            " SELECT src, dest, COUNT(*), SUM(LENGTH(raw)) FROM relay_queue GROUP BY src, dest",
        ],
    ),
    (
        23,
        "one idempotency key for a batch of sends, naming its first seq and how many followed"
        " (a row per message was a tenth of a batch's statements); rows from before name one",
        ["ALTER TABLE idempotency ADD COLUMN n BIGINT NOT NULL DEFAULT 1"],
    ),
    (
        24,
        "an idempotency key keeps the digest of the request it came with (domain/retries.py):"
        " the same key with another request is refused; keys from before name no request",
        ["ALTER TABLE idempotency ADD COLUMN request TEXT NOT NULL DEFAULT ''"],
    ),
]

LATEST = MIGRATIONS[-1][0]
