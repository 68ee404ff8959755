"""Trunks in Redis: the hash ``trunk:<id>``, its password apart in ``trunk:<id>:secret``.

Every change of a trunk is announced on the invalidation channel as ``trunk:<id>``,
in the same transaction, so routers drop their cached trunk list.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import cast

from redis import exceptions as redis_errors

from ..checks import ID_PATTERN, check_owner
from ..errors import NotFound, StoreUnavailable
from ..models import Trunk, TrunkType
from ..trunk_store import TrunkUpdate, check_trunk_kind
from .core import RedisCore, decode_hash, flat_fields, translate_errors

__all__ = ["RedisTrunks", "trunk_from_hash", "trunk_to_hash"]

# update_trunk reads, checks and writes under WATCH; a concurrent change of the same
# trunk makes it start over. Each round lets at least one writer through, so this many
# attempts see every update through a race of that many admins on one trunk.
_WATCH_ATTEMPTS = 10


class RedisTrunks(RedisCore):
    """The trunk methods of :class:`RedisStore`."""

    async def _insert_trunk(
        self, trunk: Trunk, credentials: tuple[str, str] | None
    ) -> None:
        """Write a new trunk, its password and the announcement in one transaction."""
        key = self._key("trunk:", trunk.trunk_id)
        with translate_errors():
            async with self._client().pipeline(transaction=True) as pipe:
                self._queue_add_object(
                    pipe,
                    "trunk",
                    trunk.trunk_id,
                    trunk_to_hash(trunk),
                    trunk.account_id,
                )
                if credentials is not None:
                    pipe.set(key + ":secret", credentials[1])
                pipe.publish(self.channel, "trunk:" + trunk.trunk_id)
                await pipe.execute()

    async def get_trunk(self, trunk_id: str, *, account_id: str | None = None) -> Trunk:
        """Return a trunk; see :meth:`Store.get_trunk`."""
        trunk = trunk_from_hash(await self._hash("trunk", trunk_id))
        check_owner(trunk.account_id, account_id, "trunk", trunk_id)
        return trunk

    async def list_trunks(
        self, *, account_id: str | None = None, kind: TrunkType | None = None
    ) -> list[Trunk]:
        """Return trunks ordered by name then id; see :meth:`Store.list_trunks`."""
        checked_kind = check_trunk_kind(kind)
        hashes = await self._list_objects("trunk", account_id)
        trunks = [trunk_from_hash(fields) for fields in hashes if fields]
        if checked_kind is not None:
            trunks = [trunk for trunk in trunks if trunk.kind is checked_kind]
        return sorted(trunks, key=lambda trunk: (trunk.name, trunk.trunk_id))

    async def _update_trunk(self, trunk_id: str, update: TrunkUpdate) -> Trunk:
        """Change fields of a trunk; see :meth:`Store.update_trunk`.

        Read, checked and written under WATCH, so a concurrent change of the trunk is
        never overwritten with values checked against an older version.
        """
        if update.allowed_addresses is not None:
            # A tuple: each attempt below reads the addresses again.
            addresses = tuple(update.allowed_addresses)
            update = dataclasses.replace(update, allowed_addresses=addresses)
        if not ID_PATTERN.fullmatch(trunk_id):
            raise NotFound("trunk", trunk_id)
        for _attempt in range(_WATCH_ATTEMPTS):
            trunk = await self._try_update_trunk(trunk_id, update)
            if trunk is not None:
                return trunk
        raise StoreUnavailable(f"trunk {trunk_id!r} kept changing during the update")

    async def trunk_credentials(self, trunk_id: str) -> tuple[str, str] | None:
        """Return a trunk's credentials; see :meth:`Store.trunk_credentials`."""
        if not ID_PATTERN.fullmatch(trunk_id):
            raise NotFound("trunk", trunk_id)
        key = self._key("trunk:", trunk_id)
        with translate_errors():
            async with self._client().pipeline(transaction=True) as pipe:
                pipe.exists(key)
                pipe.hget(key, "username")
                pipe.get(key + ":secret")
                exists, username, password = await pipe.execute()
        if not exists:
            raise NotFound("trunk", trunk_id)
        if username is None or password is None:
            return None
        return str(username), str(password)

    async def delete_trunk(self, trunk_id: str) -> None:
        """Remove a trunk and its credentials; its numbers stay, without a trunk id."""
        if not ID_PATTERN.fullmatch(trunk_id):
            raise NotFound("trunk", trunk_id)
        key = self._key("trunk:", trunk_id)
        if not await self._call("delete_trunk", [key], [trunk_id]):
            raise NotFound("trunk", trunk_id)

    async def _try_update_trunk(
        self, trunk_id: str, update: TrunkUpdate
    ) -> Trunk | None:
        """Apply ``update`` once under WATCH; None when the trunk changed meanwhile."""
        key = self._key("trunk:", trunk_id)
        with translate_errors():
            async with self._client().pipeline(transaction=True) as pipe:
                await pipe.watch(key, key + ":secret")
                fields = cast("dict[str, str]", await pipe.hgetall(key))
                if not fields:
                    raise NotFound("trunk", trunk_id)
                password = cast("str | None", await pipe.get(key + ":secret"))
                trunk, credentials = update.apply(trunk_from_hash(fields), password)
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.delete(key)
                pipe.hset(key, items=trunk_to_hash(trunk))
                if credentials is None:
                    pipe.delete(key + ":secret")
                else:
                    pipe.set(key + ":secret", credentials[1])
                pipe.publish(self.channel, "trunk:" + trunk_id)
                try:
                    await pipe.execute()
                except redis_errors.WatchError:
                    return None
        return trunk


def trunk_to_hash(trunk: Trunk) -> list[str]:
    """Return the field/value pairs of a trunk's hash (never its password)."""
    return flat_fields(
        {
            "trunk_id": trunk.trunk_id,
            "name": trunk.name,
            "kind": trunk.kind.value,
            "allowed_addresses": json.dumps(list(trunk.allowed_addresses)),
            "default_country": trunk.default_country,
            "termination_uri": trunk.termination_uri,
            "account_id": trunk.account_id,
            "username": trunk.username,
            "register": "1" if trunk.register else None,
        }
    )


def trunk_from_hash(fields: Mapping[str, str]) -> Trunk:
    """Return the trunk a hash holds. Raises StoreError for a broken one."""
    return decode_hash(
        "trunk",
        lambda: Trunk(
            fields["trunk_id"],
            fields["name"],
            TrunkType(fields["kind"]),
            tuple(json.loads(fields["allowed_addresses"])),
            fields.get("default_country"),
            fields.get("termination_uri"),
            fields.get("account_id"),
            fields.get("username"),
            fields.get("register") == "1",
        ),
    )
