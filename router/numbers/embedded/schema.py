"""The SQLite schema of the embedded store, its migrations, and opening the file.

The schema carries its version in ``schema_version``; opening a file brings it up to
:data:`SCHEMA_VERSION` one migration at a time, in one transaction, so a file is never
left half upgraded. A file written by a newer version is refused.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import StoreError

__all__ = ["BUSY_TIMEOUT_MS", "MIGRATIONS", "SCHEMA_VERSION", "connect", "migrate"]

# How long a writer waits for another process's write lock before giving up with
# StoreUnavailable. Our transactions take well under a millisecond; two seconds
# covers a slow disk and still fails well inside a carrier's INVITE timeout
# (Timer B = 64*T1 = 32 s, RFC 3261 §17.1.1.2).
# Limitation: that wait happens on the event loop (calls run inline, see the package
# docstring). Our own transactions last well under a millisecond, so it matters only
# when some other tool holds the write lock for long; lookups are not affected.
BUSY_TIMEOUT_MS = 2_000

# Each entry upgrades the schema by one version; SCHEMA_VERSION is how many there are.
# Statements are listed one by one (not as a script) so that a whole upgrade runs in
# one transaction: sqlite3's executescript() would commit first.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE pipes (
            pipe_id             TEXT PRIMARY KEY,
            name                TEXT NOT NULL,
            runner_url          TEXT NOT NULL,
            max_call_duration_s INTEGER NOT NULL,
            account_id          TEXT
        )""",
        "CREATE INDEX pipes_by_account ON pipes (account_id)",
        """CREATE TABLE trunks (
            trunk_id          TEXT PRIMARY KEY,
            name              TEXT NOT NULL,
            kind              TEXT NOT NULL CHECK (kind IN ('unpod', 'byo')),
            allowed_addresses TEXT NOT NULL,  -- JSON array of addresses and prefixes
            default_country   TEXT,
            termination_uri   TEXT,
            account_id        TEXT
        )""",
        """CREATE TABLE numbers (
            number_id  TEXT PRIMARY KEY,
            number     TEXT NOT NULL UNIQUE,  -- E.164 with '+': the routing key
            status     TEXT NOT NULL
                       CHECK (status IN ('active', 'inactive', 'pending')),
            trunk_type TEXT NOT NULL CHECK (trunk_type IN ('unpod', 'byo')),
            pipe_id    TEXT REFERENCES pipes (pipe_id) ON DELETE SET NULL,
            country    TEXT NOT NULL,
            trunk_id   TEXT REFERENCES trunks (trunk_id) ON DELETE SET NULL,
            account_id TEXT
        )""",
        "CREATE INDEX numbers_by_pipe ON numbers (pipe_id, number)",
        "CREATE INDEX numbers_by_trunk ON numbers (trunk_id)",
        "CREATE INDEX numbers_by_account ON numbers (account_id, number)",
    ),
    (
        "ALTER TABLE trunks ADD COLUMN username TEXT",
        "ALTER TABLE trunks ADD COLUMN register INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX trunks_by_account ON trunks (account_id)",
        # Apart from trunks, so that no query of trunks can return a password.
        """CREATE TABLE trunk_secrets (
            trunk_id TEXT PRIMARY KEY REFERENCES trunks (trunk_id) ON DELETE CASCADE,
            password TEXT NOT NULL
        )""",
        """CREATE TABLE accounts (
            account_id TEXT PRIMARY KEY,
            name       TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE api_keys (
            key_id        TEXT PRIMARY KEY,
            account_id    TEXT NOT NULL
                          REFERENCES accounts (account_id) ON DELETE CASCADE,
            prefix        TEXT NOT NULL,
            secret_sha256 TEXT NOT NULL UNIQUE,  -- the secret itself is never stored
            created_at    REAL NOT NULL,
            revoked       INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX api_keys_by_account ON api_keys (account_id, created_at)",
        # No foreign keys: a record outlives the number, pipe or trunk it names.
        """CREATE TABLE calls (
            call_id      TEXT PRIMARY KEY,
            sort_key     TEXT NOT NULL,  -- start time and call id: listing order
            account_id   TEXT,
            number       TEXT NOT NULL,
            number_id    TEXT,
            pipe_id      TEXT,
            runner_url   TEXT,
            caller       TEXT NOT NULL,
            sip_call_id  TEXT NOT NULL,
            trunk_id     TEXT,
            started_at   REAL NOT NULL,
            answered_at  REAL,
            ended_at     REAL,
            final_status INTEGER,
            ended_by     TEXT CHECK (ended_by IN ('caller', 'runner', 'router')),
            end_reason   TEXT,
            instance     TEXT
        )""",
        "CREATE INDEX calls_by_time ON calls (sort_key)",
        "CREATE INDEX calls_by_account ON calls (account_id, sort_key)",
        "CREATE INDEX calls_active ON calls (sort_key) WHERE ended_at IS NULL",
        "CREATE INDEX calls_active_by_instance ON calls (instance)"
        " WHERE ended_at IS NULL",
        "CREATE INDEX calls_by_end ON calls (ended_at) WHERE ended_at IS NOT NULL",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """Open the file at ``path`` (creating it) as every connection of the store needs.

    Raises:
        sqlite3.Error: the file cannot be opened or is not a database.
    """
    # isolation_level=None: autocommit, so every lookup sees the latest committed
    # write of any process; explicit transactions use BEGIN IMMEDIATE.
    connection = sqlite3.connect(
        path,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=True,
    )
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # WAL lets readers (the router) run while a writer (the command line) commits.
    connection.execute("PRAGMA journal_mode = WAL")
    # In WAL mode, NORMAL cannot corrupt the file; a power cut may lose the last
    # commits, which an operator can repeat. It saves an fsync per write.
    connection.execute("PRAGMA synchronous = NORMAL")
    # Foreign keys are off by default in SQLite and must be enabled per connection.
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


def migrate(db: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION, one migration at a time, atomically."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
        )
        row = db.execute("SELECT version FROM schema_version").fetchone()
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the database has schema version {version}; this version of "
                f"sip-router reads up to {SCHEMA_VERSION}: upgrade sip-router"
            )
        for migration in MIGRATIONS[version:]:
            for statement in migration:
                db.execute(statement)
        if row is None:
            db.execute(
                "INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,)
            )
        else:
            db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
