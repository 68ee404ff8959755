"""Call records in every store: their contract, their checks and their listing order.

:class:`CallStore` is the part of :class:`~router.numbers.store.Store` that keeps
what happened to each inbound call. Ended records are kept ``call_retention_s``
seconds, then disappear. The functions below are the checks both backends apply
before writing a record, and the sort key both list and page by.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

from .checks import ID_PATTERN, enum_or_none
from .errors import InvalidCall, InvalidInput, NotFound
from .listing import CallFilters, check_call_query
from .models import CallEndedBy, CallRecord, Page

__all__ = [
    "DEFAULT_CALL_RETENTION_S",
    "CallStore",
    "check_call_record",
    "check_call_retention",
    "strip_runner_url",
]

# Ended calls are kept a week: long enough to look into last week's complaint, short
# enough that call records (which name callers) are not kept indefinitely.
DEFAULT_CALL_RETENTION_S = 7 * 24 * 3600

# 9999-12-31T23:59:59Z, the last second a datetime can show: later "times" are typos.
# The sort key of listings has room for it (see router.numbers.listing).
_MAX_TIMESTAMP = 253_402_300_799.0

# RFC 3261 §7.2: a status code is three digits, 1xx to 6xx.
_MIN_STATUS, _MAX_STATUS = 100, 699


class CallStore(abc.ABC):
    """Call records, kept while a call runs and for a while after it ended.

    ``call_retention_s`` and the ``_clock`` giving the current Unix time are set by
    :class:`~router.numbers.store.Store`.
    """

    call_retention_s: float
    _clock: Callable[[], float]

    async def save_call(self, record: CallRecord) -> None:
        """Insert or replace the record with ``record.call_id``.

        The runner URL is stored without query string, fragment or user info. An ended
        record is removed ``call_retention_s`` after its ``ended_at``; writing also
        removes records that have expired meanwhile.

        Raises:
            InvalidCall: naming the bad field.
        """
        await self._save_call(check_call_record(record))

    @abc.abstractmethod
    async def _save_call(self, record: CallRecord) -> None:
        """Insert or replace a checked record, and remove expired ones."""

    async def save_calls(
        self, records: Sequence[CallRecord]
    ) -> list[tuple[CallRecord, InvalidCall]]:
        """Insert or replace several records, in one write where the backend can.

        Each record is checked as :meth:`save_call` checks it; one that fails is
        not written and comes back with its error, the others are written.

        Raises:
            StoreError: the store could not write the batch (the embedded store
                then wrote none of it).
        """
        checked: list[CallRecord] = []
        invalid: list[tuple[CallRecord, InvalidCall]] = []
        for record in records:
            try:
                checked.append(check_call_record(record))
            except InvalidCall as error:
                invalid.append((record, error))
        if checked:
            await self._save_calls(checked)
        return invalid

    async def _save_calls(self, records: Sequence[CallRecord]) -> None:
        """Write checked records; backends that can batch do it in one write."""
        for record in records:
            await self._save_call(record)

    @abc.abstractmethod
    async def get_call(
        self, call_id: str, *, account_id: str | None = None
    ) -> CallRecord:
        """Return a call record (of ``account_id``, when given).

        Raises:
            NotFound: no such record, or it has expired.
        """

    async def list_calls(
        self,
        *,
        account_id: str | None = None,
        active: bool | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[CallRecord]:
        """Return call records, newest first (by start time, then call id).

        ``active=True`` lists calls that have not ended, ``False`` those that have.
        The cursor marks the last record returned, so paging neither repeats nor skips
        a record that exists throughout, whatever starts meanwhile.

        Raises:
            InvalidQuery: ``limit`` outside 1..MAX_PAGE_SIZE, a bad ``active``, or a
                cursor this listing did not produce.
        """
        filters, after = check_call_query(
            account_id=account_id,
            active=active,
            limit=limit,
            cursor=cursor,
            cutoff=self._call_cutoff(),
        )
        return await self._list_calls(filters, after, limit)

    @abc.abstractmethod
    async def _list_calls(
        self, filters: CallFilters, after: str | None, limit: int
    ) -> Page[CallRecord]:
        """Return up to ``limit`` records passing ``filters``, older than ``after``.

        ``after`` is a sort key; the page's cursor is set when more records follow.
        """

    @abc.abstractmethod
    async def end_stale_calls(self, instance: str, reason: str) -> int:
        """Mark every active call of ``instance`` as ended now by the router.

        Called when an instance starts: calls its previous run left active died with
        it. Returns how many records were ended.
        """

    def _call_cutoff(self) -> float:
        """Return the end time before which an ended call has expired."""
        return self._clock() - self.call_retention_s

    def _visible_call(
        self, record: CallRecord | None, call_id: str, account_id: str | None
    ) -> CallRecord:
        """Return ``record`` if it exists, has not expired and is of ``account_id``.

        Raises:
            NotFound: otherwise, as if there were no such record.
        """
        filters = CallFilters(
            account_id=account_id, active=None, cutoff=self._call_cutoff()
        )
        if record is None or not filters.matches(record):
            raise NotFound("call", call_id)
        return record


def check_call_retention(seconds: float) -> float:
    """Check a retention period for ended calls. Raises :class:`InvalidInput`."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        raise InvalidInput("call_retention_s", "must be a positive number of seconds")
    return float(seconds)


def check_call_record(record: CallRecord) -> CallRecord:
    """Check a call record; return it with the runner URL stripped of secrets.

    Raises:
        InvalidCall: naming the first bad field.
    """
    if not isinstance(record.call_id, str) or not ID_PATTERN.fullmatch(record.call_id):
        raise InvalidCall("call_id", "must be 1 to 64 letters, digits, '_' or '-'")
    if record.account_id is not None and (
        not isinstance(record.account_id, str) or not record.account_id
    ):
        raise InvalidCall("account_id", "must be a non-empty string or None")
    for field in ("number", "caller", "sip_call_id"):
        if not isinstance(getattr(record, field), str):
            raise InvalidCall(field, "must be a string")
    _check_call_times(record)
    status = record.final_status
    if status is not None and (
        isinstance(status, bool)
        or not isinstance(status, int)
        or not _MIN_STATUS <= status <= _MAX_STATUS
    ):
        raise InvalidCall("final_status", "must be a SIP status code, 100 to 699")
    ended_by = enum_or_none(CallEndedBy, record.ended_by, InvalidCall, "ended_by")
    runner_url = strip_runner_url(record.runner_url)
    return dataclasses.replace(record, runner_url=runner_url, ended_by=ended_by)


def _check_call_times(record: CallRecord) -> None:
    for field in ("started_at", "answered_at", "ended_at"):
        value = getattr(record, field)
        if value is None and field != "started_at":
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= _MAX_TIMESTAMP
        ):
            raise InvalidCall(field, "must be a Unix time in seconds")
    if record.ended_at is not None and record.ended_at < record.started_at:
        raise InvalidCall("ended_at", "is before started_at")


# Every record written is checked, and its runner URL is one of a few pipes'.
@functools.lru_cache(maxsize=256)
def strip_runner_url(url: str | None) -> str | None:
    """Return a runner URL without user info, query string or fragment.

    Runners are often reached with a token in the query string (or in user info); a
    call record keeps where the call went, not how to get in.

    Raises:
        InvalidCall: ``url`` is not a URL with a host (the URL is not repeated).
    """
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except (ValueError, TypeError, AttributeError):
        raise InvalidCall("runner_url", "is not a URL") from None
    if not parts.scheme or not host:
        raise InvalidCall("runner_url", "is not a URL with a host")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
