"""Pipes in SQLite: a row of ``pipes``; deleting one detaches its numbers in the same
transaction.
"""

from __future__ import annotations

from typing import Any

from ..checks import check_owner
from ..errors import NotFound
from ..models import Pipe
from .core import EmbeddedCore, exists, translate_errors

__all__ = ["EmbeddedPipes", "pipe_from_row"]

_PIPE_COLUMNS = "pipe_id, name, runner_url, max_call_duration_s, account_id"


class EmbeddedPipes(EmbeddedCore):
    """The pipe methods of :class:`EmbeddedStore`."""

    async def _insert_pipe(self, pipe: Pipe) -> None:
        """Insert a new pipe."""
        self._run(
            f"INSERT INTO pipes ({_PIPE_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (
                pipe.pipe_id,
                pipe.name,
                pipe.runner_url,
                pipe.max_call_duration_s,
                pipe.account_id,
            ),
        )

    async def get_pipe(self, pipe_id: str, *, account_id: str | None = None) -> Pipe:
        """Return a pipe; see :meth:`Store.get_pipe`."""
        row = self._one(
            f"SELECT {_PIPE_COLUMNS} FROM pipes WHERE pipe_id = ?", (pipe_id,)
        )
        if row is None:
            raise NotFound("pipe", pipe_id)
        pipe = pipe_from_row(row)
        check_owner(pipe.account_id, account_id, "pipe", pipe_id)
        return pipe

    async def list_pipes(self, *, account_id: str | None = None) -> list[Pipe]:
        """Return pipes ordered by name then id; see :meth:`Store.list_pipes`."""
        where, params = _account_condition(account_id)
        query = f"SELECT {_PIPE_COLUMNS} FROM pipes {where} ORDER BY name, pipe_id"
        return [pipe_from_row(row) for row in self._all(query, params)]

    async def _update_pipe(self, pipe_id: str, changes: dict[str, str | int]) -> Pipe:
        """Change fields of a pipe in one statement; see :meth:`Store.update_pipe`."""
        if not changes:
            return await self.get_pipe(pipe_id)
        # The column names are the store's own (see NumberStore.update_pipe).
        assignments = ", ".join(f"{column} = ?" for column in changes)
        row = self._one(
            f"UPDATE pipes SET {assignments} WHERE pipe_id = ?"
            f" RETURNING {_PIPE_COLUMNS}",
            (*changes.values(), pipe_id),
        )
        if row is None:
            raise NotFound("pipe", pipe_id)
        return pipe_from_row(row)

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
        with translate_errors():
            db = self._conn()
            if not exists(db, "pipes", "pipe_id", pipe_id):
                raise NotFound("pipe", pipe_id)
            rows = db.execute(
                "SELECT number FROM numbers WHERE pipe_id = ? ORDER BY number",
                (pipe_id,),
            ).fetchall()
        return [row[0] for row in rows]


def pipe_from_row(row: tuple[Any, ...]) -> Pipe:
    """Return the pipe of a row in ``_PIPE_COLUMNS`` order."""
    pipe_id, name, runner_url, max_call_duration_s, account_id = row
    return Pipe(pipe_id, name, runner_url, int(max_call_duration_s), account_id)


def _account_condition(account_id: str | None) -> tuple[str, tuple[str, ...]]:
    if account_id is None:
        return "", ()
    return "WHERE account_id = ?", (account_id,)
