"""Listing numbers and call records: checked filters, page size and cursors.

Both stores check listing arguments here, so they refuse the same queries, and page
with the same cursors. A cursor is opaque to callers: URL-safe base64 of a version tag
and the last item of the page (an E.164 number, or a call's sort key: the order
call records are listed in).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from .checks import enum_or_none, parse_number_ref
from .errors import InvalidQuery
from .models import CallRecord, Number, NumberStatus, TrunkType

__all__ = [
    "MAX_PAGE_SIZE",
    "CallFilters",
    "NumberFilters",
    "call_sort_key",
    "check_call_query",
    "check_list_query",
    "decode_call_cursor",
    "decode_cursor",
    "encode_call_cursor",
    "encode_cursor",
]

# Listings are for people and scripts, not bulk export: a page larger than this would
# make one Redis round trip (or one SQLite query) hold up lookups for too long.
MAX_PAGE_SIZE = 1000

# Call records sort by start time in microseconds, zero-padded to this many digits
# (enough for 9999-12-31, the latest start time a record may have), so that text order
# is time order.
_SORT_KEY_DIGITS = 18

# What call_sort_key returns: the start time, then the call id.
_CALL_SORT_KEY = re.compile(rf"\d{{{_SORT_KEY_DIGITS}}}:[A-Za-z0-9_-]{{1,64}}")

_CURSOR_VERSION = "n1:"
_CALL_CURSOR_VERSION = "c1:"


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberFilters:
    """The checked filters of one :meth:`Store.list_numbers` call; None means any."""

    status: NumberStatus | None
    country: str | None
    trunk_type: TrunkType | None
    pipe_id: str | None
    account_id: str | None

    def matches(self, number: Number) -> bool:
        """Return whether ``number`` passes every filter that is set."""
        return (
            (self.status is None or number.status == self.status)
            and (self.country is None or number.country == self.country)
            and (self.trunk_type is None or number.trunk_type == self.trunk_type)
            and (self.pipe_id is None or number.pipe_id == self.pipe_id)
            and (self.account_id is None or number.account_id == self.account_id)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFilters:
    """The checked filters of one :meth:`Store.list_calls` call.

    ``cutoff`` is the end time before which an ended call has expired: a record a
    backend has not pruned yet must not be shown either.
    """

    account_id: str | None
    active: bool | None
    cutoff: float

    def matches(self, record: CallRecord) -> bool:
        """Return whether ``record`` is visible and passes every filter that is set."""
        return (
            (self.account_id is None or record.account_id == self.account_id)
            and (self.active is None or record.active == self.active)
            and not (record.ended_at is not None and record.ended_at < self.cutoff)
        )


def check_list_query(
    *,
    status: NumberStatus | str | None,
    country: str | None,
    trunk_type: TrunkType | str | None,
    pipe_id: str | None,
    account_id: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[NumberFilters, str | None]:
    """Check :meth:`Store.list_numbers` arguments; return filters and start point."""
    _check_limit(limit)
    filters = NumberFilters(
        status=enum_or_none(NumberStatus, status, InvalidQuery, "status"),
        country=country.upper() if country else None,
        trunk_type=enum_or_none(TrunkType, trunk_type, InvalidQuery, "trunk_type"),
        pipe_id=pipe_id,
        account_id=account_id,
    )
    after = decode_cursor(cursor) if cursor else None
    return filters, after


def check_call_query(
    *,
    account_id: str | None,
    active: bool | None,
    limit: int,
    cursor: str | None,
    cutoff: float,
) -> tuple[CallFilters, str | None]:
    """Check :meth:`Store.list_calls` arguments; return filters and start point."""
    _check_limit(limit)
    if active is not None and not isinstance(active, bool):
        raise InvalidQuery("active", "must be true, false or absent")
    filters = CallFilters(account_id=account_id, active=active, cutoff=cutoff)
    return filters, decode_call_cursor(cursor) if cursor else None


def _check_limit(limit: int) -> None:
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 1 <= limit <= MAX_PAGE_SIZE
    ):
        raise InvalidQuery("limit", f"must be an integer from 1 to {MAX_PAGE_SIZE}")


def encode_cursor(last_number: str) -> str:
    """Return the opaque cursor that continues a listing after ``last_number``."""
    return _encode(_CURSOR_VERSION, last_number)


def decode_cursor(cursor: str) -> str:
    """Return the number a cursor continues after. Raises :class:`InvalidQuery`."""
    number = _decode(_CURSOR_VERSION, cursor)
    if parse_number_ref(number) != ("e164", number):
        raise InvalidQuery("cursor", "not a cursor from this listing")
    return number


def encode_call_cursor(sort_key: str) -> str:
    """Return the cursor that continues a call listing after ``sort_key``."""
    return _encode(_CALL_CURSOR_VERSION, sort_key)


def decode_call_cursor(cursor: str) -> str:
    """Return the sort key a call cursor continues after. Raises InvalidQuery."""
    sort_key = _decode(_CALL_CURSOR_VERSION, cursor)
    if not _CALL_SORT_KEY.fullmatch(sort_key):
        raise InvalidQuery("cursor", "not a cursor from this listing")
    return sort_key


def _encode(version: str, last: str) -> str:
    raw = (version + last).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(version: str, cursor: str) -> str:
    """Return what a cursor of ``version`` holds. Raises :class:`InvalidQuery`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (UnicodeError, binascii.Error, ValueError, TypeError, AttributeError):
        raise InvalidQuery("cursor", "not a cursor from this listing") from None
    last = raw.removeprefix(version)
    if last == raw:
        raise InvalidQuery("cursor", "not a cursor from this listing")
    return last


def call_sort_key(record: CallRecord) -> str:
    """Return the text whose order is newest-last listing order: start time, call id.

    Microseconds, zero-padded, so that comparing the text compares the times; both
    stores sort and page by it, so they list ties the same way.
    """
    micros = round(record.started_at * 1_000_000)
    return f"{micros:0{_SORT_KEY_DIGITS}d}:{record.call_id}"
