"""Accounts and API keys in Redis.

An account is the hash ``account:<id>`` with the sorted set of its key ids; a key is
the hash ``api_key:<id>``, found by its secret through ``api_key_hash:<sha256>``,
which revoking the key deletes. Deleting an account and its keys is one script.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..account_store import (
    api_key_lookup_hash,
    check_account_owns_nothing,
    new_account,
    new_api_key,
)
from ..checks import ID_PATTERN
from ..errors import NotFound
from ..models import Account, ApiKey
from .core import RedisCore, decode_hash, flat_fields, pairs

__all__ = ["RedisAccounts"]


class RedisAccounts(RedisCore):
    """The account and API key methods of :class:`RedisStore`."""

    # -- accounts --------------------------------------------------------------------

    async def create_account(self, name: str) -> Account:
        """Add an account; see :meth:`Store.create_account`."""
        account = new_account(name, self._clock)
        fields = flat_fields(dataclasses.asdict(account))
        await self._add_object("account", account.account_id, fields, None)
        return account

    async def get_account(self, account_id: str) -> Account:
        """Return an account; see :meth:`Store.get_account`."""
        return _account_from_hash(await self._hash("account", account_id))

    async def list_accounts(self) -> list[Account]:
        """Return accounts ordered by name then id; see :meth:`Store.list_accounts`."""
        hashes = await self._list_objects("account", None)
        accounts = [_account_from_hash(fields) for fields in hashes if fields]
        return sorted(accounts, key=lambda account: (account.name, account.account_id))

    async def delete_account(self, account_id: str) -> None:
        """Remove an account and its keys in one script; see the interface."""
        if not ID_PATTERN.fullmatch(account_id):
            raise NotFound("account", account_id)
        key = self._key("account:", account_id)
        reply = await self._call("delete_account", [key], [account_id])
        if reply[0] == "missing":
            raise NotFound("account", account_id)
        if reply[0] == "owns":
            numbers, pipes, trunks = (int(count) for count in reply[1:])
            check_account_owns_nothing(
                account_id, numbers=numbers, pipes=pipes, trunks=trunks
            )

    # -- API keys --------------------------------------------------------------------

    async def create_api_key(self, account_id: str) -> tuple[ApiKey, str]:
        """Add an API key; see :meth:`Store.create_api_key`."""
        if not ID_PATTERN.fullmatch(account_id):
            raise NotFound("account", account_id)
        key, secret, secret_hash = new_api_key(account_id, self._clock())
        fields = {**dataclasses.asdict(key), "secret_sha256": secret_hash}
        fields["revoked"] = None  # absent until revoked
        created = await self._call(
            "create_api_key",
            [self._key("account:", account_id)],
            [key.key_id, secret_hash, *flat_fields(fields)],
        )
        if not created:
            raise NotFound("account", account_id)
        return key, secret

    async def authenticate_api_key(self, secret: str) -> ApiKey | None:
        """Find an unrevoked key by its secret's hash in one script call."""
        secret_hash = api_key_lookup_hash(secret)
        if secret_hash is None:
            return None
        reply = await self._call(
            "authenticate", [self._key("api_key_hash:", secret_hash)], []
        )
        if not reply:
            return None
        key = _api_key_from_hash(pairs(reply))
        return None if key.revoked else key

    async def list_api_keys(self, account_id: str) -> list[ApiKey]:
        """Return an account's keys, oldest first; see :meth:`Store.list_api_keys`."""
        if not ID_PATTERN.fullmatch(account_id):
            raise NotFound("account", account_id)
        reply = await self._call(
            "list_api_keys", [self._key("account:", account_id)], []
        )
        if reply is None:
            raise NotFound("account", account_id)
        keys = [_api_key_from_hash(pairs(flat)) for flat in reply if flat]
        return sorted(keys, key=lambda key: (key.created_at, key.key_id))

    async def revoke_api_key(self, key_id: str) -> ApiKey:
        """Revoke a key; see :meth:`Store.revoke_api_key`."""
        if not ID_PATTERN.fullmatch(key_id):
            raise NotFound("api_key", key_id)
        reply = await self._call("revoke_api_key", [self._key("api_key:", key_id)], [])
        if not reply:
            raise NotFound("api_key", key_id)
        return _api_key_from_hash(pairs(reply))


def _account_from_hash(fields: Mapping[str, str]) -> Account:
    return decode_hash(
        "account",
        lambda: Account(
            fields["account_id"], fields["name"], float(fields["created_at"])
        ),
    )


def _api_key_from_hash(fields: Mapping[str, str]) -> ApiKey:
    return decode_hash(
        "API key",
        lambda: ApiKey(
            fields["key_id"],
            fields["account_id"],
            fields["prefix"],
            float(fields["created_at"]),
            fields.get("revoked") == "1",
        ),
    )
