"""Accounts and API keys in SQLite: rows of ``accounts`` and ``api_keys``.

A key is found by the SHA-256 of its secret (a unique column); deleting an account
deletes its keys with it (foreign key ON DELETE CASCADE).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..account_store import (
    api_key_lookup_hash,
    check_account_owns_nothing,
    new_account,
    new_api_key,
)
from ..errors import NotFound
from ..models import Account, ApiKey
from .core import EmbeddedCore, count_owned, exists, translate_errors

__all__ = ["EmbeddedAccounts"]

_ACCOUNT_COLUMNS = "account_id, name, created_at"
_API_KEY_COLUMNS = "key_id, account_id, prefix, created_at, revoked"


class EmbeddedAccounts(EmbeddedCore):
    """The account and API key methods of :class:`EmbeddedStore`."""

    # -- accounts --------------------------------------------------------------------

    async def create_account(self, name: str) -> Account:
        """Add an account; see :meth:`Store.create_account`."""
        account = new_account(name, self._clock)
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
            if not exists(db, "accounts", "account_id", account_id):
                raise NotFound("account", account_id)
            check_account_owns_nothing(
                account_id,
                numbers=count_owned(db, "numbers", account_id),
                pipes=count_owned(db, "pipes", account_id),
                trunks=count_owned(db, "trunks", account_id),
            )
            # Its API keys go with it (foreign key ON DELETE CASCADE).
            db.execute("DELETE FROM accounts WHERE account_id = ?", (account_id,))

    # -- API keys --------------------------------------------------------------------

    async def create_api_key(self, account_id: str) -> tuple[ApiKey, str]:
        """Add an API key; see :meth:`Store.create_api_key`."""
        key, secret, secret_hash = new_api_key(account_id, self._clock())
        with self._transaction() as db:
            if not exists(db, "accounts", "account_id", account_id):
                raise NotFound("account", account_id)
            db.execute(
                "INSERT INTO api_keys"
                " (key_id, account_id, prefix, secret_sha256, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (key.key_id, account_id, key.prefix, secret_hash, key.created_at),
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
        with translate_errors():
            db = self._conn()
            if not exists(db, "accounts", "account_id", account_id):
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


def _api_key_from_row(row: tuple[Any, ...]) -> ApiKey:
    key_id, account_id, prefix, created_at, revoked = row
    return ApiKey(key_id, account_id, prefix, created_at, bool(revoked))
