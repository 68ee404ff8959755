"""Numbers in Redis: the routing lookup, creating, listing, attaching and detaching.

A number is the hash ``number:<e164>`` with ``number_id:<id>`` pointing at it, listed
in one sorted set per filter a listing can use. Every change runs as one script that
also publishes the number on the invalidation channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..checks import ID_PATTERN, check_owner, parse_number_ref
from ..errors import AlreadyExists, NotFound
from ..listing import NumberFilters, encode_cursor
from ..models import Number, NumberStatus, Page, Route, TrunkType
from ..number_store import check_status
from .core import FILTERED_SCAN_BATCH, RedisCore, decode_hash, flat_fields, pairs
from .pipes import pipe_from_hash

__all__ = ["RedisNumbers", "number_from_hash", "number_to_hash"]


class RedisNumbers(RedisCore):
    """The routing lookup and the number methods of :class:`RedisStore`."""

    async def route(self, e164: str) -> Route | None:
        """Look up a number and its pipe in one script call."""
        ref = parse_number_ref(e164)
        if ref is None or ref[0] != "e164":
            return None
        reply = await self._call("route", [self._key("number:", ref[1])], [])
        if not reply:
            return None
        number = number_from_hash(pairs(reply[0]))
        pipe_hash = pairs(reply[1]) if len(reply) > 1 else {}
        return Route(number, pipe_from_hash(pipe_hash) if pipe_hash else None)

    async def _insert_number(self, number: Number) -> None:
        """Write a new number in one script; see :meth:`Store.create_number`."""
        trunk_id = number.trunk_id
        if trunk_id is not None and not ID_PATTERN.fullmatch(trunk_id):
            raise NotFound("trunk", trunk_id)
        key = self._key("number:", number.number)
        reply = await self._call(
            "create_number",
            [key],
            [number.number, number.number_id, *number_to_hash(number)],
        )
        if reply == "exists":
            raise AlreadyExists("number", number.number)
        if reply == "no_trunk":
            raise NotFound("trunk", str(trunk_id))

    async def get_number(self, ref: str, *, account_id: str | None = None) -> Number:
        """Return a number by id or E.164; see :meth:`Store.get_number`."""
        reply = await self._number_call("get_number", ref)
        number = number_from_hash(pairs(reply))
        check_owner(number.account_id, account_id, "number", ref)
        return number

    async def _list_numbers(
        self, filters: NumberFilters, after: str | None, limit: int
    ) -> Page[Number]:
        """Return one page of numbers; see :meth:`Store.list_numbers`.

        The smallest index among the filters is read in E.164 order, and numbers
        failing the other filters are skipped.
        """
        indexes = self._number_indexes(filters)
        index = await self._smallest(indexes, self._key("numbers", ""))
        batch = limit + 1 if len(indexes) <= 1 else max(limit + 1, FILTERED_SCAN_BATCH)
        # One number more than asked tells whether there is a next page.
        found = await self._scan_numbers(index, filters, after, limit + 1, batch)
        next_cursor = (
            encode_cursor(found[limit - 1].number) if len(found) > limit else None
        )
        return Page(found[:limit], next_cursor)

    async def update_number(
        self, ref: str, *, status: NumberStatus | None = None
    ) -> Number:
        """Change a number's status; see :meth:`Store.update_number`."""
        if status is None:
            return await self.get_number(ref)
        new_status = check_status(status)
        reply = await self._number_call("update_status", ref, new_status.value)
        return number_from_hash(pairs(reply))

    async def delete_number(self, ref: str) -> None:
        """Remove a number; see :meth:`Store.delete_number`."""
        await self._number_call("delete_number", ref)

    async def attach(self, ref: str, pipe_id: str) -> Number:
        """Attach a number to a pipe in one script; see :meth:`Store.attach`."""
        if not ID_PATTERN.fullmatch(pipe_id):
            await self.get_number(ref)  # an unknown number is reported first
            raise NotFound("pipe", pipe_id)
        reply = await self._number_call("attach", ref, pipe_id)
        if reply[0] == "no_pipe":
            raise NotFound("pipe", pipe_id)
        return number_from_hash(pairs(reply[1]))

    async def detach(self, ref: str) -> Number:
        """Detach a number from its pipe; see :meth:`Store.detach`."""
        reply = await self._number_call("detach", ref)
        return number_from_hash(pairs(reply))

    async def _number_call(self, script: str, ref: str, *args: str) -> Any:
        """Run a script on the number ``ref``; raise NotFound when it is unknown."""
        parsed = parse_number_ref(ref)
        if parsed is None or (
            parsed[0] == "id" and not ID_PATTERN.fullmatch(parsed[1])
        ):
            raise NotFound("number", ref)
        kind, key = parsed
        routing_key = self._key("number_id:" if kind == "id" else "number:", key)
        reply = await self._call(script, [routing_key], [key, *args])
        # Every number script answers {}, 0 or {'no_number'} for an unknown number.
        if not reply or reply == ["no_number"]:
            raise NotFound("number", ref)
        return reply

    def _number_indexes(self, filters: NumberFilters) -> list[str]:
        """Return the index sorted set of every filter that is set."""
        indexes = [
            self._key(f"numbers:{name}:", str(value))
            for name, value in (
                ("status", filters.status),
                ("country", filters.country),
                ("trunk_type", filters.trunk_type),
                ("account", filters.account_id),
            )
            if value is not None
        ]
        if filters.pipe_id is not None:
            indexes.append(self._key("pipe:", filters.pipe_id + ":numbers"))
        return indexes

    async def _scan_numbers(
        self,
        index: str,
        filters: NumberFilters,
        after: str | None,
        wanted: int,
        batch: int,
    ) -> list[Number]:
        """Collect up to ``wanted`` matching numbers from ``index`` after ``after``."""

        def pick(_e164: str, fields: dict[str, str]) -> Number | None:
            # A number changed since the index was read may no longer match.
            number = number_from_hash(fields)
            return number if filters.matches(number) else None

        start = "(" + after if after else "-"
        return await self._scan_index("scan_numbers", index, start, wanted, batch, pick)


def number_to_hash(number: Number) -> list[str]:
    """Return the field/value pairs of a number's hash."""
    return flat_fields(
        {
            "number_id": number.number_id,
            "number": number.number,
            "status": number.status.value,
            "trunk_type": number.trunk_type.value,
            "pipe_id": number.pipe_id,
            "country": number.country,
            "trunk_id": number.trunk_id,
            "account_id": number.account_id,
        }
    )


def number_from_hash(fields: Mapping[str, str]) -> Number:
    """Return the number a hash holds. Raises StoreError for a broken one."""
    return decode_hash(
        "number",
        lambda: Number(
            fields["number_id"],
            fields["number"],
            NumberStatus(fields["status"]),
            TrunkType(fields["trunk_type"]),
            fields.get("pipe_id"),
            fields["country"],
            fields.get("trunk_id"),
            fields.get("account_id"),
        ),
    )
