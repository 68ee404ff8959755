"""Call records in SQLite: rows of ``calls``, listed newest first by their sort key.

Expired records are deleted by a write at most once a minute; reads hide them
meanwhile.

Batches of records (:meth:`EmbeddedCalls.save_calls`, the router's recorder) are
written by a thread with a connection of its own: a batch commits in a millisecond
or two, but now and then SQLite checkpoints its write-ahead log inside that commit,
which takes ten milliseconds and more; on the event loop that stalled the
signalling of every call in progress.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..listing import CallFilters, call_sort_key, encode_call_cursor
from ..models import CallEndedBy, CallRecord, Page
from .core import EmbeddedCore, immediate_transaction, translate_errors
from .schema import connect

__all__ = ["PRUNE_INTERVAL_S", "EmbeddedCalls"]

# Expired call records are deleted by a write at most this often: the delete scans an
# index, and records expire over days, so deleting them a minute late costs nothing.
# Reads hide expired records meanwhile.
PRUNE_INTERVAL_S = 60.0

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


class EmbeddedCalls(EmbeddedCore):
    """The call record methods of :class:`EmbeddedStore`."""

    # When the next write may prune; each store starts with a prune due.
    _next_prune_at = float("-inf")

    async def _save_call(self, record: CallRecord) -> None:
        """Insert or replace a call record, pruning in the same transaction."""
        with self._transaction() as db:
            db.execute(_SAVE_CALL, (*_call_to_row(record), call_sort_key(record)))
            self._prune_calls(db)

    # The thread that writes batches of records; started by the first batch.
    _record_writer: _RecordWriter | None = None

    async def _save_calls(self, records: Sequence[CallRecord]) -> None:
        """Insert or replace records in one transaction, in the writer thread."""
        rows = [(*_call_to_row(record), call_sort_key(record)) for record in records]
        self._conn()  # a closed store raises StoreUnavailable, as for any call
        if self._record_writer is None:
            self._record_writer = _RecordWriter(self.path)
        await self._record_writer.write(rows, self._prune_calls)

    async def close(self) -> None:
        """Stop the record writer thread, then close the connection."""
        writer, self._record_writer = self._record_writer, None
        if writer is not None:
            await writer.close()
        await super().close()

    async def get_call(
        self, call_id: str, *, account_id: str | None = None
    ) -> CallRecord:
        """Return a call record; see :meth:`Store.get_call`."""
        query = f"SELECT {_CALL_COLUMNS} FROM calls WHERE call_id = ?"
        row = self._one(query, (call_id,))
        record = None if row is None else _call_from_row(row)
        return self._visible_call(record, call_id, account_id)

    async def _list_calls(
        self, filters: CallFilters, after: str | None, limit: int
    ) -> Page[CallRecord]:
        """Return one page of call records, newest first, in one query."""
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


class _RecordWriter:
    """One thread and its own connection, writing batches of call records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="call-records")
        # Opened and used in the writer thread only (sqlite3 checks that).
        self._db: sqlite3.Connection | None = None

    async def write(
        self, rows: list[tuple[Any, ...]], prune: Callable[[sqlite3.Connection], None]
    ) -> None:
        """Write ``rows`` in one transaction, then ``prune`` in it; wait for the commit.

        Raises:
            StoreUnavailable: the file could not be written.
        """
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._write, rows, prune)

    async def close(self) -> None:
        """Close the connection and let the thread end (after a write in progress)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._close)
        self._pool.shutdown(wait=False)

    def _write(
        self, rows: list[tuple[Any, ...]], prune: Callable[[sqlite3.Connection], None]
    ) -> None:
        with translate_errors():
            if self._db is None:
                self._db = connect(self.path)
            with immediate_transaction(self._db) as db:
                db.executemany(_SAVE_CALL, rows)
                prune(db)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


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
