"""Call records in SQLite: rows of ``calls``, listed newest first by their sort key.

Expired records are deleted by a write at most once a minute; reads hide them
meanwhile.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ..listing import CallFilters, call_sort_key, encode_call_cursor
from ..models import CallEndedBy, CallRecord, Page
from .core import EmbeddedCore

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

    async def _save_calls(self, records: Sequence[CallRecord]) -> None:
        """Insert or replace records in one transaction: one commit for the batch."""
        rows = [(*_call_to_row(record), call_sort_key(record)) for record in records]
        with self._transaction() as db:
            db.executemany(_SAVE_CALL, rows)
            self._prune_calls(db)

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
