"""Numbers in SQLite: the routing lookup, creating, listing, attaching and detaching.

A number is a row of ``numbers``, keyed by id and unique by E.164; its pipe and trunk
are foreign keys that SQLite clears when the pipe or trunk is deleted. The lookup is
one indexed query joining the number to its pipe.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

from ..checks import check_owner, parse_number_ref
from ..errors import AlreadyExists, NotFound
from ..listing import NumberFilters, encode_cursor
from ..models import Number, NumberStatus, Page, Route, TrunkType
from ..number_store import check_status
from .core import EmbeddedCore, exists, translate_errors
from .pipes import pipe_from_row

__all__ = ["EmbeddedNumbers"]

_NUMBER_COLUMNS = (
    "number_id, number, status, trunk_type, pipe_id, country, trunk_id, account_id"
)
_NUMBER_FIELDS = 8
_INSERT_NUMBER = (
    f"INSERT INTO numbers ({_NUMBER_COLUMNS}) VALUES ({', '.join('?' * 8)})"
)
_ROUTE_QUERY = (
    "SELECT n.number_id, n.number, n.status, n.trunk_type, n.pipe_id, n.country,"
    " n.trunk_id, n.account_id, p.pipe_id, p.name, p.runner_url, p.max_call_duration_s,"
    " p.account_id FROM numbers AS n LEFT JOIN pipes AS p ON p.pipe_id = n.pipe_id"
    " WHERE n.number = ?"
)


class EmbeddedNumbers(EmbeddedCore):
    """The routing lookup and the number methods of :class:`EmbeddedStore`."""

    async def route(self, e164: str) -> Route | None:
        """Look up a dialed number and its pipe in one query."""
        ref = parse_number_ref(e164)
        if ref is None or ref[0] != "e164":
            return None
        row = self._one(_ROUTE_QUERY, (ref[1],))
        if row is None:
            return None
        pipe_row = row[_NUMBER_FIELDS:]
        pipe = pipe_from_row(pipe_row) if pipe_row[0] is not None else None
        return Route(_number_from_row(row[:_NUMBER_FIELDS]), pipe)

    async def _insert_number(self, number: Number) -> None:
        """Insert a new number, checking its trunk in the same transaction."""
        trunk_id = number.trunk_id
        with self._transaction() as db:
            if trunk_id is not None and not exists(db, "trunks", "trunk_id", trunk_id):
                raise NotFound("trunk", trunk_id)
            try:
                db.execute(_INSERT_NUMBER, _number_to_row(number))
            except sqlite3.IntegrityError:
                raise AlreadyExists("number", number.number) from None

    async def get_number(self, ref: str, *, account_id: str | None = None) -> Number:
        """Return a number by id or E.164; see :meth:`Store.get_number`."""
        with translate_errors():
            number = _select_number(self._conn(), ref)
        check_owner(number.account_id, account_id, "number", ref)
        return number

    async def _list_numbers(
        self, filters: NumberFilters, after: str | None, limit: int
    ) -> Page[Number]:
        """Return one page of numbers in one query; see :meth:`Store.list_numbers`."""
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
            if not exists(db, "pipes", "pipe_id", pipe_id):
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
