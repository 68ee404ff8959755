"""Call records in Redis: saved, listed newest first, expired by Redis itself.

A record is the hash ``call:<id>``, indexed by its sort key in ``calls``,
``calls:active`` and ``calls:account:<id>``. An ended record gets an expiry, and
each write of a record prunes the indexes of those that expired
(:mod:`.call_scripts`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import cast

from ..listing import CallFilters, call_sort_key, encode_call_cursor
from ..models import CallEndedBy, CallRecord, Page
from .core import (
    FILTERED_SCAN_BATCH,
    RedisCore,
    decode_hash,
    flat_fields,
    translate_errors,
)

__all__ = ["RedisCalls"]

# Each write of a call record removes at most this many expired records, so a write
# never holds Redis for long. A call writes its record two or three times, so pruning
# outpaces any rate at which calls end and a backlog (after a retention change, say)
# drains within a few hundred calls.
_PRUNE_BATCH = 100


class RedisCalls(RedisCore):
    """The call record methods of :class:`RedisStore`."""

    async def _save_call(self, record: CallRecord) -> None:
        """Replace a call record and prune expired ones in one script."""
        await self._call("save_call", *self._save_call_params(record))

    async def _save_calls(self, records: Sequence[CallRecord]) -> None:
        """Replace several call records in one round trip (a pipeline of scripts).

        Each record is still written by its own script, atomically; the pipeline
        only saves the round trips, which dominate when the recorder flushes a
        batch of short calls.
        """
        self._client()  # a closed store fails before the pipeline reconnects
        script = self._scripts["save_call"]
        with translate_errors():
            async with self._client().pipeline(transaction=False) as pipe:
                for record in records:
                    keys, args = self._save_call_params(record)
                    await script(
                        keys=keys, args=[self.base, self.channel, *args], client=pipe
                    )
                await pipe.execute()

    def _save_call_params(
        self, record: CallRecord
    ) -> tuple[list[str], list[str | int]]:
        """The keys and arguments of the ``save_call`` script for ``record``."""
        ended_at = record.ended_at
        expire_at = "" if ended_at is None else self._expiry(ended_at)
        args: list[str | int] = [
            repr(self._call_cutoff()),
            _PRUNE_BATCH,
            expire_at,
            *_call_to_hash(record),
        ]
        return [self._key("call:", record.call_id)], args

    async def get_call(
        self, call_id: str, *, account_id: str | None = None
    ) -> CallRecord:
        """Return a call record; see :meth:`Store.get_call`."""
        record = _call_from_hash(await self._hash("call", call_id))
        return self._visible_call(record, call_id, account_id)

    async def _list_calls(
        self, filters: CallFilters, after: str | None, limit: int
    ) -> Page[CallRecord]:
        """Return one page of call records, newest first; see the interface.

        The smaller of the account's and the active calls' index is read, and records
        failing the other filters (or expired, not yet pruned) are skipped.
        """
        indexes = []
        if filters.account_id is not None:
            indexes.append(self._key("calls:account:", filters.account_id))
        if filters.active:
            indexes.append(self._key("calls:active", ""))
        index = await self._smallest(indexes, self._key("calls", ""))
        # The index read holds only matching records unless another filter is set
        # (ended calls have no index of their own in listing order).
        exact = len(indexes) <= 1 and filters.active is not False
        batch = limit + 1 if exact else max(limit + 1, FILTERED_SCAN_BATCH)
        # One record more than asked tells whether there is a next page.
        found = await self._scan_calls(index, filters, after, limit + 1, batch)
        more = len(found) > limit
        next_cursor = encode_call_cursor(found[limit - 1][0]) if more else None
        return Page([record for _, record in found[:limit]], next_cursor)

    async def end_stale_calls(self, instance: str, reason: str) -> int:
        """End the active calls of ``instance`` in one script; see the interface."""
        now = self._clock()
        ended = await self._call(
            "end_stale_calls",
            [self._key("calls:active", "")],
            [instance, repr(now), CallEndedBy.ROUTER.value, reason, self._expiry(now)],
        )
        return int(ended)

    def _expiry(self, ended_at: float) -> int:
        """Return when a record that ended at ``ended_at`` expires, in Unix seconds."""
        return math.ceil(ended_at + self.call_retention_s)

    async def _scan_calls(
        self,
        index: str,
        filters: CallFilters,
        after: str | None,
        wanted: int,
        batch: int,
    ) -> list[tuple[str, CallRecord]]:
        """Collect up to ``wanted`` matching records and their sort keys."""

        def pick(
            sort_key: str, fields: dict[str, str]
        ) -> tuple[str, CallRecord] | None:
            # A record expired (not yet pruned) or filtered out is skipped.
            record = _call_from_hash(fields)
            return (sort_key, record) if filters.matches(record) else None

        start = "(" + after if after else "+"
        return await self._scan_index("scan_calls", index, start, wanted, batch, pick)


def _call_to_hash(record: CallRecord) -> list[str]:
    fields: dict[str, object | None] = {
        field.name: getattr(record, field.name) for field in dataclasses.fields(record)
    }
    fields["ended_by"] = None if record.ended_by is None else record.ended_by.value
    for name in ("started_at", "answered_at", "ended_at"):
        value = fields[name]
        # repr() of a float reads back as the same float.
        fields[name] = None if value is None else repr(float(cast(float, value)))
    fields["sort_key"] = call_sort_key(record)
    return flat_fields(fields)


def _call_from_hash(fields: Mapping[str, str]) -> CallRecord:
    return decode_hash(
        "call",
        lambda: CallRecord(
            fields["call_id"],
            fields.get("account_id"),
            fields["number"],
            fields.get("number_id"),
            fields.get("pipe_id"),
            fields.get("runner_url"),
            fields["caller"],
            fields["sip_call_id"],
            fields.get("trunk_id"),
            float(fields["started_at"]),
            _float_or_none(fields.get("answered_at")),
            _float_or_none(fields.get("ended_at")),
            _int_or_none(fields.get("final_status")),
            _ended_by_or_none(fields.get("ended_by")),
            fields.get("end_reason"),
            fields.get("instance"),
        ),
    )


def _float_or_none(text: str | None) -> float | None:
    return None if text is None else float(text)


def _int_or_none(text: str | None) -> int | None:
    return None if text is None else int(text)


def _ended_by_or_none(text: str | None) -> CallEndedBy | None:
    return None if text is None else CallEndedBy(text)
