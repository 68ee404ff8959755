"""The embedded store: the routing map, accounts and call records in one SQLite file.

For a single box, the demo, and tests without Redis. Several processes share the file:
the command line writes while a running router reads, and the router sees each change
on its next lookup because nothing is cached here and every statement outside an
explicit transaction runs in autocommit mode.

Why the calls run inline on the event loop rather than in a thread: a lookup is one
indexed query of about ten microseconds on a local file, cheaper than the hop to a
worker thread and back. In WAL mode readers never wait for a writer, so the hot path
(:meth:`EmbeddedStore.route`) cannot block on the command line. Writes take the file's
write lock with ``BEGIN IMMEDIATE``; they wait only while another process holds it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .e164 import validate_e164
from .models import (
    Account,
    ApiKey,
    CallEndedBy,
    CallRecord,
    Number,
    NumberStatus,
    Page,
    Pipe,
    Route,
    Trunk,
    TrunkType,
    new_account_id,
    new_key_id,
    new_number_id,
    new_pipe_id,
    new_trunk_id,
)
from .store import (
    DEFAULT_CALL_RETENTION_S,
    AlreadyExists,
    CallFilters,
    NotFound,
    NumberFilters,
    Store,
    StoreError,
    StoreUnavailable,
    TrunkUpdate,
    api_key_lookup_hash,
    call_sort_key,
    check_account_name,
    check_account_owns_nothing,
    check_call_query,
    check_call_record,
    check_call_retention,
    check_list_query,
    check_number_fields,
    check_owner,
    check_pipe_fields,
    check_status,
    check_trunk_credentials,
    check_trunk_fields,
    check_trunk_kind,
    encode_call_cursor,
    encode_cursor,
    match_trunk,
    new_api_key_secret,
    parse_number_ref,
)

__all__ = ["BUSY_TIMEOUT_MS", "PRUNE_INTERVAL_S", "SCHEMA_VERSION", "EmbeddedStore"]

# How long a writer waits for another process's write lock before giving up with
# StoreUnavailable. Our transactions take well under a millisecond; two seconds
# covers a slow disk and still fails well inside a carrier's INVITE timeout
# (Timer B = 64*T1 = 32 s, RFC 3261 §17.1.1.2).
# Limitation: that wait happens on the event loop (calls run inline, see above). Our
# own transactions last well under a millisecond, so it matters only when some other
# tool holds the write lock for long; lookups are not affected.
BUSY_TIMEOUT_MS = 2_000

# Expired call records are deleted by a write at most this often: the delete scans an
# index, and records expire over days, so deleting them a minute late costs nothing.
# Reads hide expired records meanwhile.
PRUNE_INTERVAL_S = 60.0

# Each entry upgrades the schema by one version; SCHEMA_VERSION is how many there are.
# Statements are listed one by one (not as a script) so that a whole upgrade runs in
# one transaction: sqlite3's executescript() would commit first.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
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
SCHEMA_VERSION = len(_MIGRATIONS)

_NUMBER_COLUMNS = (
    "number_id, number, status, trunk_type, pipe_id, country, trunk_id, account_id"
)
_PIPE_COLUMNS = "pipe_id, name, runner_url, max_call_duration_s, account_id"
_TRUNK_COLUMNS = (
    "trunk_id, name, kind, allowed_addresses, default_country, termination_uri,"
    " account_id, username, register"
)
_UPDATE_TRUNK = (
    "UPDATE trunks SET name = ?, kind = ?, allowed_addresses = ?, default_country = ?,"
    " termination_uri = ?, account_id = ?, username = ?, register = ?"
    " WHERE trunk_id = ?"
)
_ACCOUNT_COLUMNS = "account_id, name, created_at"
_API_KEY_COLUMNS = "key_id, account_id, prefix, created_at, revoked"
_CALL_COLUMNS = (
    "call_id, account_id, number, number_id, pipe_id, runner_url, caller, sip_call_id,"
    " trunk_id, started_at, answered_at, ended_at, final_status, ended_by, end_reason,"
    " instance"
)
_CALL_FIELDS = 16
_SAVE_CALL = (
    f"INSERT OR REPLACE INTO calls ({_CALL_COLUMNS}, sort_key)"
    f" VALUES ({', '.join('?' * (_CALL_FIELDS + 1))})"
)
_ROUTE_QUERY = (
    "SELECT n.number_id, n.number, n.status, n.trunk_type, n.pipe_id, n.country,"
    " n.trunk_id, n.account_id, p.pipe_id, p.name, p.runner_url, p.max_call_duration_s,"
    " p.account_id FROM numbers AS n LEFT JOIN pipes AS p ON p.pipe_id = n.pipe_id"
    " WHERE n.number = ?"
)
_NUMBER_FIELDS = 8
_INSERT_NUMBER = (
    f"INSERT INTO numbers ({_NUMBER_COLUMNS}) VALUES ({', '.join('?' * 8)})"
)


class EmbeddedStore(Store):
    """The routing map in a SQLite file; see the module docstring for concurrency."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: Path,
        *,
        call_retention_s: float = DEFAULT_CALL_RETENTION_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Wrap an open connection; use :meth:`open` to create one."""
        super().__init__(call_retention_s=call_retention_s, clock=clock)
        self._db: sqlite3.Connection | None = connection
        self.path = path
        self._next_prune_at = float("-inf")

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        call_retention_s: float = DEFAULT_CALL_RETENTION_S,
        clock: Callable[[], float] = time.time,
    ) -> EmbeddedStore:
        """Open the store at ``path``, creating the file and its directories if needed.

        Raises:
            StoreUnavailable: the file cannot be opened or locked.
            StoreError: the file was written by a newer version of the schema.
            InvalidInput: ``call_retention_s`` is not a positive number.
        """
        check_call_retention(call_retention_s)  # before any file is created
        path = Path(path)
        with _translate_errors():
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = _connect(path)
            try:
                _migrate(connection)
                return cls(
                    connection, path, call_retention_s=call_retention_s, clock=clock
                )
            except BaseException:
                connection.close()
                raise

    # -- routing ---------------------------------------------------------------------

    async def route(self, e164: str) -> Route | None:
        """Look up a dialed number and its pipe in one query."""
        ref = parse_number_ref(e164)
        if ref is None or ref[0] != "e164":
            return None
        row = self._one(_ROUTE_QUERY, (ref[1],))
        if row is None:
            return None
        pipe_row = row[_NUMBER_FIELDS:]
        pipe = _pipe_from_row(pipe_row) if pipe_row[0] is not None else None
        return Route(_number_from_row(row[:_NUMBER_FIELDS]), pipe)

    # -- numbers ---------------------------------------------------------------------

    async def create_number(
        self,
        number: str,
        *,
        country: str | None = None,
        status: NumberStatus = NumberStatus.ACTIVE,
        trunk_type: TrunkType = TrunkType.UNPOD,
        trunk_id: str | None = None,
        account_id: str | None = None,
    ) -> Number:
        """Add a number; see :meth:`Store.create_number`."""
        e164, number_country = validate_e164(number, country)
        checked_status, checked_type = check_number_fields(status, trunk_type)
        new = Number(
            new_number_id(),
            e164,
            checked_status,
            checked_type,
            None,
            number_country,
            trunk_id,
            account_id,
        )
        with self._transaction() as db:
            if trunk_id is not None and not _exists(db, "trunks", "trunk_id", trunk_id):
                raise NotFound("trunk", trunk_id)
            try:
                db.execute(_INSERT_NUMBER, _number_to_row(new))
            except sqlite3.IntegrityError:
                raise AlreadyExists("number", e164) from None
        return new

    async def get_number(self, ref: str, *, account_id: str | None = None) -> Number:
        """Return a number by id or E.164; see :meth:`Store.get_number`."""
        with _translate_errors():
            number = _select_number(self._conn(), ref)
        check_owner(number.account_id, account_id, "number", ref)
        return number

    async def list_numbers(
        self,
        *,
        status: NumberStatus | None = None,
        country: str | None = None,
        trunk_type: TrunkType | None = None,
        pipe_id: str | None = None,
        account_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Number]:
        """Return one page of numbers; see :meth:`Store.list_numbers`."""
        filters, after = check_list_query(
            status=status,
            country=country,
            trunk_type=trunk_type,
            pipe_id=pipe_id,
            account_id=account_id,
            limit=limit,
            cursor=cursor,
        )
        where, params = _number_conditions(filters, after)
        # One row more than asked tells whether there is a next page without a
        # second query.
        query = f"SELECT {_NUMBER_COLUMNS} FROM numbers {where} ORDER BY number LIMIT ?"
        rows = self._all(query, (*params, limit + 1))
        numbers = [_number_from_row(row) for row in rows[:limit]]
        next_cursor = encode_cursor(numbers[-1].number) if len(rows) > limit else None
        return Page(numbers, next_cursor)

    async def update_number(
        self, ref: str, *, status: NumberStatus | None = None
    ) -> Number:
        """Change a number's status; see :meth:`Store.update_number`."""
        if status is None:
            return await self.get_number(ref)
        new_status = check_status(status)
        column, key = _number_key(ref)
        row = self._one(
            f"UPDATE numbers SET status = ? WHERE {column} = ?"
            f" RETURNING {_NUMBER_COLUMNS}",
            (new_status.value, key),
        )
        if row is None:
            raise NotFound("number", ref)
        return _number_from_row(row)

    async def delete_number(self, ref: str) -> None:
        """Remove a number; see :meth:`Store.delete_number`."""
        column, key = _number_key(ref)
        if self._run(f"DELETE FROM numbers WHERE {column} = ?", (key,)) == 0:
            raise NotFound("number", ref)

    async def attach(self, ref: str, pipe_id: str) -> Number:
        """Attach a number to a pipe in one transaction; see :meth:`Store.attach`."""
        with self._transaction() as db:
            number = _select_number(db, ref)
            if not _exists(db, "pipes", "pipe_id", pipe_id):
                raise NotFound("pipe", pipe_id)
            db.execute(
                "UPDATE numbers SET pipe_id = ? WHERE number_id = ?",
                (pipe_id, number.number_id),
            )
        return dataclasses.replace(number, pipe_id=pipe_id)

    async def detach(self, ref: str) -> Number:
        """Detach a number from its pipe; see :meth:`Store.detach`."""
        column, key = _number_key(ref)
        row = self._one(
            f"UPDATE numbers SET pipe_id = NULL WHERE {column} = ?"
            f" RETURNING {_NUMBER_COLUMNS}",
            (key,),
        )
        if row is None:
            raise NotFound("number", ref)
        return _number_from_row(row)

    # -- pipes -----------------------------------------------------------------------

    async def create_pipe(
        self,
        *,
        name: str,
        runner_url: str,
        max_call_duration_s: int = 3600,
        account_id: str | None = None,
    ) -> Pipe:
        """Add a pipe; see :meth:`Store.create_pipe`."""
        check_pipe_fields(
            name=name, runner_url=runner_url, max_call_duration_s=max_call_duration_s
        )
        pipe = Pipe(new_pipe_id(), name, runner_url, max_call_duration_s, account_id)
        self._run(
            f"INSERT INTO pipes ({_PIPE_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (pipe.pipe_id, name, runner_url, max_call_duration_s, account_id),
        )
        return pipe

    async def get_pipe(self, pipe_id: str, *, account_id: str | None = None) -> Pipe:
        """Return a pipe; see :meth:`Store.get_pipe`."""
        row = self._one(
            f"SELECT {_PIPE_COLUMNS} FROM pipes WHERE pipe_id = ?", (pipe_id,)
        )
        if row is None:
            raise NotFound("pipe", pipe_id)
        pipe = _pipe_from_row(row)
        check_owner(pipe.account_id, account_id, "pipe", pipe_id)
        return pipe

    async def list_pipes(self, *, account_id: str | None = None) -> list[Pipe]:
        """Return pipes ordered by name then id; see :meth:`Store.list_pipes`."""
        where, params = _account_condition(account_id)
        query = f"SELECT {_PIPE_COLUMNS} FROM pipes {where} ORDER BY name, pipe_id"
        return [_pipe_from_row(row) for row in self._all(query, params)]

    async def update_pipe(
        self,
        pipe_id: str,
        *,
        name: str | None = None,
        runner_url: str | None = None,
        max_call_duration_s: int | None = None,
    ) -> Pipe:
        """Change fields of a pipe; see :meth:`Store.update_pipe`."""
        check_pipe_fields(
            name=name, runner_url=runner_url, max_call_duration_s=max_call_duration_s
        )
        changes = {
            column: value
            for column, value in (
                ("name", name),
                ("runner_url", runner_url),
                ("max_call_duration_s", max_call_duration_s),
            )
            if value is not None
        }
        if not changes:
            return await self.get_pipe(pipe_id)
        assignments = ", ".join(f"{column} = ?" for column in changes)
        row = self._one(
            f"UPDATE pipes SET {assignments} WHERE pipe_id = ?"
            f" RETURNING {_PIPE_COLUMNS}",
            (*changes.values(), pipe_id),
        )
        if row is None:
            raise NotFound("pipe", pipe_id)
        return _pipe_from_row(row)

    async def delete_pipe(self, pipe_id: str) -> int:
        """Remove a pipe and detach its numbers; see :meth:`Store.delete_pipe`."""
        with self._transaction() as db:
            detach = "UPDATE numbers SET pipe_id = NULL WHERE pipe_id = ?"
            detached = db.execute(detach, (pipe_id,)).rowcount
            deleted = db.execute("DELETE FROM pipes WHERE pipe_id = ?", (pipe_id,))
            if deleted.rowcount == 0:
                raise NotFound("pipe", pipe_id)
        return detached

    async def pipe_numbers(self, pipe_id: str) -> list[str]:
        """Return the numbers on a pipe; see :meth:`Store.pipe_numbers`."""
        with _translate_errors():
            db = self._conn()
            if not _exists(db, "pipes", "pipe_id", pipe_id):
                raise NotFound("pipe", pipe_id)
            rows = db.execute(
                "SELECT number FROM numbers WHERE pipe_id = ? ORDER BY number",
                (pipe_id,),
            ).fetchall()
        return [row[0] for row in rows]

    # -- trunks ----------------------------------------------------------------------

    async def create_trunk(
        self,
        *,
        name: str,
        kind: TrunkType = TrunkType.BYO,
        allowed_addresses: Iterable[str] = (),
        default_country: str | None = None,
        termination_uri: str | None = None,
        account_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        register: bool = False,
    ) -> Trunk:
        """Add a trunk and its credentials; see :meth:`Store.create_trunk`."""
        credentials = check_trunk_credentials(username, password)
        checked = check_trunk_fields(
            name=name,
            kind=kind,
            allowed_addresses=allowed_addresses,
            default_country=default_country,
            termination_uri=termination_uri,
            username=username,
            register=register,
        )
        trunk = dataclasses.replace(
            checked, trunk_id=new_trunk_id(), account_id=account_id
        )
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO trunks ({_TRUNK_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _trunk_to_row(trunk),
            )
            _write_password(db, trunk.trunk_id, credentials)
        return trunk

    async def get_trunk(self, trunk_id: str, *, account_id: str | None = None) -> Trunk:
        """Return a trunk; see :meth:`Store.get_trunk`."""
        query = f"SELECT {_TRUNK_COLUMNS} FROM trunks WHERE trunk_id = ?"
        row = self._one(query, (trunk_id,))
        if row is None:
            raise NotFound("trunk", trunk_id)
        trunk = _trunk_from_row(row)
        check_owner(trunk.account_id, account_id, "trunk", trunk_id)
        return trunk

    async def list_trunks(
        self, *, account_id: str | None = None, kind: TrunkType | None = None
    ) -> list[Trunk]:
        """Return trunks ordered by name then id; see :meth:`Store.list_trunks`."""
        checked_kind = check_trunk_kind(kind)
        conditions = [
            (column, value)
            for column, value in (("account_id", account_id), ("kind", checked_kind))
            if value is not None
        ]
        where = " AND ".join(f"{column} = ?" for column, _ in conditions)
        query = (
            f"SELECT {_TRUNK_COLUMNS} FROM trunks"
            f"{' WHERE ' + where if where else ''} ORDER BY name, trunk_id"
        )
        rows = self._all(query, [str(value) for _, value in conditions])
        return [_trunk_from_row(row) for row in rows]

    async def update_trunk(
        self,
        trunk_id: str,
        *,
        name: str | None = None,
        allowed_addresses: Iterable[str] | None = None,
        default_country: str | None = None,
        termination_uri: str | None = None,
        username: str | None = None,
        password: str | None = None,
        register: bool | None = None,
    ) -> Trunk:
        """Change fields of a trunk atomically; see :meth:`Store.update_trunk`."""
        update = TrunkUpdate(
            name=name,
            allowed_addresses=allowed_addresses,
            default_country=default_country,
            termination_uri=termination_uri,
            username=username,
            password=password,
            register=register,
        )
        with self._transaction() as db:
            query = f"SELECT {_TRUNK_COLUMNS} FROM trunks WHERE trunk_id = ?"
            row = db.execute(query, (trunk_id,)).fetchone()
            if row is None:
                raise NotFound("trunk", trunk_id)
            trunk, credentials = update.apply(
                _trunk_from_row(row), _read_password(db, trunk_id)
            )
            # An UPDATE, not a REPLACE: replacing the row would fire the foreign key
            # actions of a delete, taking the trunk off its numbers.
            db.execute(_UPDATE_TRUNK, (*_trunk_to_row(trunk)[1:], trunk_id))
            _write_password(db, trunk_id, credentials)
        return trunk

    async def trunk_credentials(self, trunk_id: str) -> tuple[str, str] | None:
        """Return a trunk's credentials; see :meth:`Store.trunk_credentials`."""
        row = self._one(
            "SELECT t.username, s.password FROM trunks AS t"
            " LEFT JOIN trunk_secrets AS s ON s.trunk_id = t.trunk_id"
            " WHERE t.trunk_id = ?",
            (trunk_id,),
        )
        if row is None:
            raise NotFound("trunk", trunk_id)
        username, password = row
        if username is None or password is None:
            return None
        return username, password

    async def delete_trunk(self, trunk_id: str) -> None:
        """Remove a trunk; its numbers lose their trunk_id (foreign key SET NULL)."""
        if self._run("DELETE FROM trunks WHERE trunk_id = ?", (trunk_id,)) == 0:
            raise NotFound("trunk", trunk_id)

    async def find_trunk_for_address(self, ip: str) -> Trunk | None:
        """Return the most specific trunk for a source address; see the interface."""
        return match_trunk(await self.list_trunks(), ip)

    # -- accounts --------------------------------------------------------------------

    async def create_account(self, name: str) -> Account:
        """Add an account; see :meth:`Store.create_account`."""
        account = Account(new_account_id(), check_account_name(name), self._clock())
        self._run(
            f"INSERT INTO accounts ({_ACCOUNT_COLUMNS}) VALUES (?, ?, ?)",
            dataclasses.astuple(account),
        )
        return account

    async def get_account(self, account_id: str) -> Account:
        """Return an account; see :meth:`Store.get_account`."""
        query = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE account_id = ?"
        row = self._one(query, (account_id,))
        if row is None:
            raise NotFound("account", account_id)
        return Account(*row)

    async def list_accounts(self) -> list[Account]:
        """Return accounts ordered by name then id; see :meth:`Store.list_accounts`."""
        query = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY name, account_id"
        return [Account(*row) for row in self._all(query, ())]

    async def delete_account(self, account_id: str) -> None:
        """Remove an account and its keys; see :meth:`Store.delete_account`."""
        with self._transaction() as db:
            if not _exists(db, "accounts", "account_id", account_id):
                raise NotFound("account", account_id)
            check_account_owns_nothing(
                account_id,
                numbers=_count(db, "numbers", account_id),
                pipes=_count(db, "pipes", account_id),
                trunks=_count(db, "trunks", account_id),
            )
            # Its API keys go with it (foreign key ON DELETE CASCADE).
            db.execute("DELETE FROM accounts WHERE account_id = ?", (account_id,))

    # -- API keys --------------------------------------------------------------------

    async def create_api_key(self, account_id: str) -> tuple[ApiKey, str]:
        """Add an API key; see :meth:`Store.create_api_key`."""
        secret, secret_hash, prefix = new_api_key_secret()
        key = ApiKey(new_key_id(), account_id, prefix, self._clock())
        with self._transaction() as db:
            if not _exists(db, "accounts", "account_id", account_id):
                raise NotFound("account", account_id)
            db.execute(
                "INSERT INTO api_keys"
                " (key_id, account_id, prefix, secret_sha256, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (key.key_id, account_id, prefix, secret_hash, key.created_at),
            )
        return key, secret

    async def authenticate_api_key(self, secret: str) -> ApiKey | None:
        """Find an unrevoked key by its secret's hash; see the interface."""
        secret_hash = api_key_lookup_hash(secret)
        if secret_hash is None:
            return None
        row = self._one(
            f"SELECT {_API_KEY_COLUMNS} FROM api_keys"
            " WHERE secret_sha256 = ? AND revoked = 0",
            (secret_hash,),
        )
        return None if row is None else _api_key_from_row(row)

    async def list_api_keys(self, account_id: str) -> list[ApiKey]:
        """Return an account's keys, oldest first; see :meth:`Store.list_api_keys`."""
        with _translate_errors():
            db = self._conn()
            if not _exists(db, "accounts", "account_id", account_id):
                raise NotFound("account", account_id)
            rows = db.execute(
                f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE account_id = ?"
                " ORDER BY created_at, key_id",
                (account_id,),
            ).fetchall()
        return [_api_key_from_row(row) for row in rows]

    async def revoke_api_key(self, key_id: str) -> ApiKey:
        """Revoke a key; see :meth:`Store.revoke_api_key`."""
        row = self._one(
            "UPDATE api_keys SET revoked = 1 WHERE key_id = ?"
            f" RETURNING {_API_KEY_COLUMNS}",
            (key_id,),
        )
        if row is None:
            raise NotFound("api_key", key_id)
        return _api_key_from_row(row)

    # -- call records ----------------------------------------------------------------

    async def save_call(self, record: CallRecord) -> None:
        """Insert or replace a call record; see :meth:`Store.save_call`."""
        checked = check_call_record(record)
        with self._transaction() as db:
            db.execute(_SAVE_CALL, (*_call_to_row(checked), call_sort_key(checked)))
            self._prune_calls(db)

    async def get_call(
        self, call_id: str, *, account_id: str | None = None
    ) -> CallRecord:
        """Return a call record; see :meth:`Store.get_call`."""
        query = f"SELECT {_CALL_COLUMNS} FROM calls WHERE call_id = ?"
        row = self._one(query, (call_id,))
        filters = CallFilters(
            account_id=account_id, active=None, cutoff=self._call_cutoff()
        )
        if row is None or not filters.matches(record := _call_from_row(row)):
            raise NotFound("call", call_id)
        return record

    async def list_calls(
        self,
        *,
        account_id: str | None = None,
        active: bool | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[CallRecord]:
        """Return one page of call records, newest first; see the interface."""
        filters, after = check_call_query(
            account_id=account_id,
            active=active,
            limit=limit,
            cursor=cursor,
            cutoff=self._call_cutoff(),
        )
        where, params = _call_conditions(filters, after)
        query = (
            f"SELECT {_CALL_COLUMNS}, sort_key FROM calls WHERE {where}"
            " ORDER BY sort_key DESC LIMIT ?"
        )
        rows = self._all(query, (*params, limit + 1))
        records = [_call_from_row(row[:_CALL_FIELDS]) for row in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_call_cursor(rows[limit - 1][-1]) if more else None
        return Page(records, next_cursor)

    async def end_stale_calls(self, instance: str, reason: str) -> int:
        """End the active calls of ``instance``; see :meth:`Store.end_stale_calls`."""
        with self._transaction() as db:
            ended = db.execute(
                "UPDATE calls SET ended_at = ?, ended_by = ?, end_reason = ?"
                " WHERE instance = ? AND ended_at IS NULL",
                (self._clock(), CallEndedBy.ROUTER.value, reason, instance),
            ).rowcount
            self._prune_calls(db)
        return ended

    def _prune_calls(self, db: sqlite3.Connection) -> None:
        """Delete expired call records, at most once per PRUNE_INTERVAL_S."""
        now = self._clock()
        if now < self._next_prune_at:
            return
        cutoff = now - self.call_retention_s
        db.execute("DELETE FROM calls WHERE ended_at < ?", (cutoff,))
        self._next_prune_at = now + PRUNE_INTERVAL_S

    # -- lifecycle -------------------------------------------------------------------

    async def ping(self) -> None:
        """Check that the file can still be read."""
        self._one("SELECT version FROM schema_version", ())

    async def close(self) -> None:
        """Close the connection; later calls raise :class:`StoreUnavailable`."""
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- internals -------------------------------------------------------------------

    def _one(self, query: str, params: Sequence[object]) -> tuple[Any, ...] | None:
        with _translate_errors():
            row: tuple[Any, ...] | None = self._conn().execute(query, params).fetchone()
        return row

    def _all(self, query: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        with _translate_errors():
            return self._conn().execute(query, params).fetchall()

    def _run(self, query: str, params: Sequence[object]) -> int:
        """Execute a statement and return how many rows it changed."""
        with _translate_errors():
            return self._conn().execute(query, params).rowcount

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("the embedded store is closed")
        return self._db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in a write transaction, taken at its start.

        BEGIN IMMEDIATE takes the write lock before the first read, so a
        read-check-write sequence (attach: number exists, pipe exists, update) cannot
        interleave with another process's write.
        """
        with _translate_errors():
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


@contextlib.contextmanager
def _translate_errors() -> Iterator[None]:
    """Turn SQLite failures (locked, unreadable, not a database) into an outage."""
    try:
        yield
    except sqlite3.IntegrityError:
        raise  # a bug in our checks, not an outage: let it surface as it is
    except sqlite3.DatabaseError as exc:
        raise StoreUnavailable(f"embedded store: {exc}") from exc
    except OSError as exc:
        raise StoreUnavailable(f"embedded store: {exc}") from exc


def _connect(path: Path) -> sqlite3.Connection:
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


def _migrate(db: sqlite3.Connection) -> None:
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
        for migration in _MIGRATIONS[version:]:
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


def _number_key(ref: str) -> tuple[str, str]:
    """Return the column and value that select the number ``ref``."""
    parsed = parse_number_ref(ref)
    if parsed is None:
        raise NotFound("number", ref)
    kind, key = parsed
    return ("number_id" if kind == "id" else "number"), key


def _select_number(db: sqlite3.Connection, ref: str) -> Number:
    column, key = _number_key(ref)
    row = db.execute(
        f"SELECT {_NUMBER_COLUMNS} FROM numbers WHERE {column} = ?", (key,)
    ).fetchone()
    if row is None:
        raise NotFound("number", ref)
    return _number_from_row(row)


def _exists(db: sqlite3.Connection, table: str, column: str, value: str) -> bool:
    query = f"SELECT 1 FROM {table} WHERE {column} = ?"
    return db.execute(query, (value,)).fetchone() is not None


def _count(db: sqlite3.Connection, table: str, account_id: str) -> int:
    query = f"SELECT count(*) FROM {table} WHERE account_id = ?"
    count: int = db.execute(query, (account_id,)).fetchone()[0]
    return count


def _read_password(db: sqlite3.Connection, trunk_id: str) -> str | None:
    query = "SELECT password FROM trunk_secrets WHERE trunk_id = ?"
    row = db.execute(query, (trunk_id,)).fetchone()
    return None if row is None else str(row[0])


def _write_password(
    db: sqlite3.Connection, trunk_id: str, credentials: tuple[str, str] | None
) -> None:
    """Store the trunk's password (its user name is a trunk column), or remove it."""
    if credentials is None:
        db.execute("DELETE FROM trunk_secrets WHERE trunk_id = ?", (trunk_id,))
        return
    db.execute(
        "REPLACE INTO trunk_secrets (trunk_id, password) VALUES (?, ?)",
        (trunk_id, credentials[1]),
    )


def _call_conditions(filters: CallFilters, after: str | None) -> tuple[str, list[Any]]:
    # Ended records past retention that the last prune left are hidden here.
    conditions = ["(ended_at IS NULL OR ended_at >= ?)"]
    params: list[Any] = [filters.cutoff]
    if filters.account_id is not None:
        conditions.append("account_id = ?")
        params.append(filters.account_id)
    if filters.active is not None:
        conditions.append("ended_at IS NULL" if filters.active else "ended_at NOT NULL")
    if after is not None:
        conditions.append("sort_key < ?")
        params.append(after)
    return " AND ".join(conditions), params


def _number_conditions(
    filters: NumberFilters, after: str | None
) -> tuple[str, list[str]]:
    conditions: list[str] = []
    params: list[str] = []
    for column, value in (
        ("status", filters.status),
        ("country", filters.country),
        ("trunk_type", filters.trunk_type),
        ("pipe_id", filters.pipe_id),
        ("account_id", filters.account_id),
    ):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(str(value))
    if after is not None:
        conditions.append("number > ?")
        params.append(after)
    where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
    return where, params


def _account_condition(account_id: str | None) -> tuple[str, tuple[str, ...]]:
    if account_id is None:
        return "", ()
    return "WHERE account_id = ?", (account_id,)


def _number_from_row(row: tuple[Any, ...]) -> Number:
    number_id, number, status, trunk_type, pipe_id, country, trunk_id, account_id = row
    return Number(
        number_id,
        number,
        NumberStatus(status),
        TrunkType(trunk_type),
        pipe_id,
        country,
        trunk_id,
        account_id,
    )


def _number_to_row(number: Number) -> tuple[str | None, ...]:
    return (
        number.number_id,
        number.number,
        number.status.value,
        number.trunk_type.value,
        number.pipe_id,
        number.country,
        number.trunk_id,
        number.account_id,
    )


def _pipe_from_row(row: tuple[Any, ...]) -> Pipe:
    pipe_id, name, runner_url, max_call_duration_s, account_id = row
    return Pipe(pipe_id, name, runner_url, int(max_call_duration_s), account_id)


def _trunk_from_row(row: tuple[Any, ...]) -> Trunk:
    (
        trunk_id,
        name,
        kind,
        addresses,
        default_country,
        termination_uri,
        account_id,
        username,
        register,
    ) = row
    return Trunk(
        trunk_id,
        name,
        TrunkType(kind),
        tuple(json.loads(addresses)),
        default_country,
        termination_uri,
        account_id,
        username,
        bool(register),
    )


def _trunk_to_row(trunk: Trunk) -> tuple[str | int | None, ...]:
    return (
        trunk.trunk_id,
        trunk.name,
        trunk.kind.value,
        json.dumps(list(trunk.allowed_addresses)),
        trunk.default_country,
        trunk.termination_uri,
        trunk.account_id,
        trunk.username,
        int(trunk.register),
    )


def _api_key_from_row(row: tuple[Any, ...]) -> ApiKey:
    key_id, account_id, prefix, created_at, revoked = row
    return ApiKey(key_id, account_id, prefix, created_at, bool(revoked))


def _call_to_row(record: CallRecord) -> tuple[Any, ...]:
    """Return the record's columns in _CALL_COLUMNS order."""
    return (
        record.call_id,
        record.account_id,
        record.number,
        record.number_id,
        record.pipe_id,
        record.runner_url,
        record.caller,
        record.sip_call_id,
        record.trunk_id,
        record.started_at,
        record.answered_at,
        record.ended_at,
        record.final_status,
        None if record.ended_by is None else record.ended_by.value,
        record.end_reason,
        record.instance,
    )


def _call_from_row(row: tuple[Any, ...]) -> CallRecord:
    (
        call_id,
        account_id,
        number,
        number_id,
        pipe_id,
        runner_url,
        caller,
        sip_call_id,
        trunk_id,
        started_at,
        answered_at,
        ended_at,
        final_status,
        ended_by,
        end_reason,
        instance,
    ) = row
    return CallRecord(
        call_id,
        account_id,
        number,
        number_id,
        pipe_id,
        runner_url,
        caller,
        sip_call_id,
        trunk_id,
        started_at,
        answered_at,
        ended_at,
        final_status,
        None if ended_by is None else CallEndedBy(ended_by),
        end_reason,
        instance,
    )
