"""The connection every part of the embedded store shares, and how it runs statements.

:class:`EmbeddedCore` opens the SQLite file, runs single statements in autocommit
mode and read-check-write sequences in ``BEGIN IMMEDIATE`` transactions, and turns
SQLite failures (locked, unreadable, not a database) into
:class:`~router.numbers.errors.StoreUnavailable`. The parts of the store (numbers,
pipes, trunks, accounts, calls) build on it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

from ..call_store import DEFAULT_CALL_RETENTION_S, check_call_retention
from ..errors import StoreUnavailable
from ..store import Store
from .schema import connect, migrate

__all__ = [
    "EmbeddedCore",
    "count_owned",
    "exists",
    "immediate_transaction",
    "translate_errors",
]


class EmbeddedCore(Store):
    """The SQLite connection of an embedded store; the parts add the methods."""

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

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        call_retention_s: float = DEFAULT_CALL_RETENTION_S,
        clock: Callable[[], float] = time.time,
    ) -> Self:
        """Open the store at ``path``, creating the file and its directories if needed.

        Raises:
            StoreUnavailable: the file cannot be opened or locked.
            StoreError: the file was written by a newer version of the schema.
            InvalidInput: ``call_retention_s`` is not a positive number.
        """
        check_call_retention(call_retention_s)  # before any file is created
        path = Path(path)
        with translate_errors():
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = connect(path)
            try:
                migrate(connection)
                return cls(
                    connection, path, call_retention_s=call_retention_s, clock=clock
                )
            except BaseException:
                connection.close()
                raise

    # -- lifecycle -------------------------------------------------------------------

    async def ping(self) -> None:
        """Check that the file can still be read."""
        self._one("SELECT version FROM schema_version", ())

    async def close(self) -> None:
        """Close the connection; later calls raise :class:`StoreUnavailable`."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def data_generation(self) -> tuple[int, int]:
        """A value that changes whenever the file's contents may have changed.

        SQLite's ``data_version`` changes when another connection (the command line,
        another router) commits; ``total_changes`` counts this connection's own
        writes. A cache of lookups is good while the pair stays the same.

        Raises:
            StoreUnavailable: the file cannot be read.
        """
        with translate_errors():
            db = self._conn()
            version: int = db.execute("PRAGMA data_version").fetchone()[0]
            return version, db.total_changes

    # -- for the parts of the store --------------------------------------------------

    def _one(self, query: str, params: Sequence[object]) -> tuple[Any, ...] | None:
        with translate_errors():
            row: tuple[Any, ...] | None = self._conn().execute(query, params).fetchone()
        return row

    def _all(self, query: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        with translate_errors():
            return self._conn().execute(query, params).fetchall()

    def _run(self, query: str, params: Sequence[object]) -> int:
        """Execute a statement and return how many rows it changed."""
        with translate_errors():
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
        with translate_errors(), immediate_transaction(self._conn()) as db:
            yield db


@contextlib.contextmanager
def immediate_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in ``BEGIN IMMEDIATE`` … ``COMMIT``; roll back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn SQLite failures (locked, unreadable, not a database) into an outage."""
    try:
        yield
    except sqlite3.IntegrityError:
        raise  # a bug in our checks, not an outage: let it surface as it is
    except sqlite3.DatabaseError as exc:
        raise StoreUnavailable(f"embedded store: {exc}") from exc
    except OSError as exc:
        raise StoreUnavailable(f"embedded store: {exc}") from exc


def exists(db: sqlite3.Connection, table: str, column: str, value: str) -> bool:
    """Return whether ``table`` has a row whose ``column`` is ``value``."""
    query = f"SELECT 1 FROM {table} WHERE {column} = ?"
    return db.execute(query, (value,)).fetchone() is not None


def count_owned(db: sqlite3.Connection, table: str, account_id: str) -> int:
    """Return how many rows of ``table`` the account owns."""
    query = f"SELECT count(*) FROM {table} WHERE account_id = ?"
    count: int = db.execute(query, (account_id,)).fetchone()[0]
    return count
