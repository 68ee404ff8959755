"""Trunks in SQLite: a row of ``trunks``, its password apart in ``trunk_secrets``.

No query of ``trunks`` can return a password; only
:meth:`EmbeddedTrunks.trunk_credentials` joins the two tables.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..checks import check_owner
from ..errors import NotFound
from ..models import Trunk, TrunkType
from ..trunk_store import TrunkUpdate, check_trunk_kind
from .core import EmbeddedCore

__all__ = ["EmbeddedTrunks"]

_TRUNK_COLUMNS = (
    "trunk_id, name, kind, allowed_addresses, default_country, termination_uri,"
    " account_id, username, register"
)
_UPDATE_TRUNK = (
    "UPDATE trunks SET name = ?, kind = ?, allowed_addresses = ?, default_country = ?,"
    " termination_uri = ?, account_id = ?, username = ?, register = ?"
    " WHERE trunk_id = ?"
)


class EmbeddedTrunks(EmbeddedCore):
    """The trunk methods of :class:`EmbeddedStore`."""

    async def _insert_trunk(
        self, trunk: Trunk, credentials: tuple[str, str] | None
    ) -> None:
        """Insert a new trunk and its password in one transaction."""
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO trunks ({_TRUNK_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _trunk_to_row(trunk),
            )
            _write_password(db, trunk.trunk_id, credentials)

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

    async def _update_trunk(self, trunk_id: str, update: TrunkUpdate) -> Trunk:
        """Change fields of a trunk atomically; see :meth:`Store.update_trunk`."""
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
