"""Numbers and pipes in every store: the routing lookup, its contract and its rules.

:class:`NumberStore` is the part of :class:`~router.numbers.store.Store` that holds
the routing map proper: numbers, the pipes they are attached to, and the lookup the
router makes on every INVITE. The functions below are the checks both backends apply
before writing a number or a pipe, so the two behave the same on bad input.
"""

from __future__ import annotations

import abc
from urllib.parse import urlsplit

from .e164 import InvalidNumber, validate_e164
from .errors import InvalidPipe
from .listing import NumberFilters, check_list_query
from .models import (
    Number,
    NumberStatus,
    Page,
    Pipe,
    Route,
    TrunkType,
    new_number_id,
    new_pipe_id,
)

__all__ = [
    "MAX_CALL_DURATION_S",
    "NumberStore",
    "check_number_fields",
    "check_pipe_fields",
    "check_status",
    "new_number",
    "new_pipe",
]

# A whole day: far beyond any voice-agent call, small enough to catch a value typed in
# milliseconds by mistake.
MAX_CALL_DURATION_S = 86_400

_RUNNER_SCHEMES = frozenset({"ws", "wss"})


class NumberStore(abc.ABC):
    """Numbers, pipes and the routing lookup; part of the store contract."""

    # -- routing ---------------------------------------------------------------------

    @abc.abstractmethod
    async def route(self, e164: str) -> Route | None:
        """Look up a dialed number: the hot path of every INVITE.

        Returns the number and its pipe (``None`` when not attached), or ``None`` when
        the number is unknown. The number is returned whatever its status.
        """

    # -- numbers ---------------------------------------------------------------------

    async def create_number(
        self,
        number: str,
        *,
        country: str | None = None,
        status: NumberStatus = NumberStatus.ACTIVE,
        trunk_type: TrunkType = TrunkType.UNPOD,
        trunk_id: str | None = None,
        account_id: str | None = None,
    ) -> Number:
        """Add a number, not attached to any pipe.

        Raises:
            InvalidNumber: ``number`` is not valid E.164 (or not of ``country``).
            AlreadyExists: the number is already in the store.
            NotFound: ``trunk_id`` names no trunk.
        """
        new = new_number(
            number,
            country=country,
            status=status,
            trunk_type=trunk_type,
            trunk_id=trunk_id,
            account_id=account_id,
        )
        await self._insert_number(new)
        return new

    @abc.abstractmethod
    async def _insert_number(self, number: Number) -> None:
        """Write a new, checked number.

        Raises:
            AlreadyExists: a number with the same E.164 is in the store.
            NotFound: ``number.trunk_id`` names no trunk; nothing is written then.
        """

    @abc.abstractmethod
    async def get_number(self, ref: str, *, account_id: str | None = None) -> Number:
        """Return the number with this id or E.164.

        With ``account_id``, a number of another account (or of none) is reported as
        not found, so an API caller cannot learn that it exists.

        Raises:
            NotFound: no such number (of that account).
        """

    async def list_numbers(
        self,
        *,
        status: NumberStatus | None = None,
        country: str | None = None,
        trunk_type: TrunkType | None = None,
        pipe_id: str | None = None,
        account_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Number]:
        """Return numbers matching every given filter, ordered by E.164.

        The cursor marks the last number returned, so paging neither repeats nor
        skips numbers that exist throughout, whatever is inserted meanwhile.

        Raises:
            InvalidQuery: a bad filter value, ``limit`` outside 1..MAX_PAGE_SIZE, or a
                cursor this store did not produce.
        """
        filters, after = check_list_query(
            status=status,
            country=country,
            trunk_type=trunk_type,
            pipe_id=pipe_id,
            account_id=account_id,
            limit=limit,
            cursor=cursor,
        )
        return await self._list_numbers(filters, after, limit)

    @abc.abstractmethod
    async def _list_numbers(
        self, filters: NumberFilters, after: str | None, limit: int
    ) -> Page[Number]:
        """Return up to ``limit`` numbers passing ``filters``, after E.164 ``after``.

        The page's cursor is set when more numbers follow.
        """

    @abc.abstractmethod
    async def update_number(
        self, ref: str, *, status: NumberStatus | None = None
    ) -> Number:
        """Change a number's status and return the number. Raises :class:`NotFound`."""

    @abc.abstractmethod
    async def delete_number(self, ref: str) -> None:
        """Remove a number (and detach it). Raises :class:`NotFound`."""

    @abc.abstractmethod
    async def attach(self, ref: str, pipe_id: str) -> Number:
        """Attach a number to a pipe, moving it off any other pipe atomically.

        Raises:
            NotFound: the number or the pipe does not exist; nothing changes then.
        """

    @abc.abstractmethod
    async def detach(self, ref: str) -> Number:
        """Detach a number from its pipe; detaching twice is not an error.

        Raises:
            NotFound: the number does not exist.
        """

    # -- pipes -----------------------------------------------------------------------

    async def create_pipe(
        self,
        *,
        name: str,
        runner_url: str,
        max_call_duration_s: int = 3600,
        account_id: str | None = None,
    ) -> Pipe:
        """Add a pipe. Raises :class:`InvalidPipe` naming the bad field."""
        pipe = new_pipe(
            name=name,
            runner_url=runner_url,
            max_call_duration_s=max_call_duration_s,
            account_id=account_id,
        )
        await self._insert_pipe(pipe)
        return pipe

    @abc.abstractmethod
    async def _insert_pipe(self, pipe: Pipe) -> None:
        """Write a new, checked pipe."""

    @abc.abstractmethod
    async def get_pipe(self, pipe_id: str, *, account_id: str | None = None) -> Pipe:
        """Return a pipe (of ``account_id``, when given). Raises :class:`NotFound`."""

    @abc.abstractmethod
    async def list_pipes(self, *, account_id: str | None = None) -> list[Pipe]:
        """Return all pipes (of one account, when given), ordered by name then id."""

    async def update_pipe(
        self,
        pipe_id: str,
        *,
        name: str | None = None,
        runner_url: str | None = None,
        max_call_duration_s: int | None = None,
    ) -> Pipe:
        """Change the given fields of a pipe and return the pipe.

        Raises:
            NotFound: the pipe does not exist.
            InvalidPipe: naming the bad field.
        """
        check_pipe_fields(
            name=name, runner_url=runner_url, max_call_duration_s=max_call_duration_s
        )
        changes = {
            column: value
            for column, value in (
                ("name", name),
                ("runner_url", runner_url),
                ("max_call_duration_s", max_call_duration_s),
            )
            if value is not None
        }
        return await self._update_pipe(pipe_id, changes)

    @abc.abstractmethod
    async def _update_pipe(self, pipe_id: str, changes: dict[str, str | int]) -> Pipe:
        """Set the checked ``changes`` (field name to value; maybe none) on a pipe.

        Raises:
            NotFound: the pipe does not exist.
        """

    @abc.abstractmethod
    async def delete_pipe(self, pipe_id: str) -> int:
        """Remove a pipe, detaching its numbers; returns how many were detached.

        Raises:
            NotFound: the pipe does not exist.
        """

    @abc.abstractmethod
    async def pipe_numbers(self, pipe_id: str) -> list[str]:
        """Return the E.164 numbers on a pipe, sorted. Raises :class:`NotFound`."""


def new_number(
    number: str,
    *,
    country: str | None,
    status: NumberStatus | str,
    trunk_type: TrunkType | str,
    trunk_id: str | None,
    account_id: str | None,
) -> Number:
    """Check the fields of a new number; return it with a fresh id, on no pipe.

    Whether ``trunk_id`` names a trunk is for the store to check when it writes.

    Raises:
        InvalidNumber: ``number`` is not valid E.164 (or not of ``country``), or a
            bad status or trunk type.
    """
    e164, number_country = validate_e164(number, country)
    checked_status, checked_type = check_number_fields(status, trunk_type)
    return Number(
        new_number_id(),
        e164,
        checked_status,
        checked_type,
        None,
        number_country,
        trunk_id,
        account_id,
    )


def check_number_fields(
    status: NumberStatus | str, trunk_type: TrunkType | str
) -> tuple[NumberStatus, TrunkType]:
    """Check the enum fields of a new number. Raises :class:`InvalidNumber`."""
    try:
        return NumberStatus(status), TrunkType(trunk_type)
    except ValueError as exc:
        raise InvalidNumber(str(exc)) from None


def check_status(status: NumberStatus | str) -> NumberStatus:
    """Check a status for :meth:`Store.update_number`. Raises :class:`InvalidNumber`."""
    try:
        return NumberStatus(status)
    except ValueError as exc:
        raise InvalidNumber(str(exc)) from None


def new_pipe(
    *, name: str, runner_url: str, max_call_duration_s: int, account_id: str | None
) -> Pipe:
    """Check the fields of a new pipe; return it with a fresh id.

    Raises:
        InvalidPipe: naming the first bad field.
    """
    check_pipe_fields(
        name=name, runner_url=runner_url, max_call_duration_s=max_call_duration_s
    )
    return Pipe(new_pipe_id(), name, runner_url, max_call_duration_s, account_id)


def check_pipe_fields(
    *,
    name: str | None,
    runner_url: str | None,
    max_call_duration_s: int | None,
) -> None:
    """Check the pipe fields that are not ``None``. Raises :class:`InvalidPipe`."""
    if name is not None and not name.strip():
        raise InvalidPipe("name", "must not be empty")
    if runner_url is not None:
        _check_runner_url(runner_url)
    if max_call_duration_s is not None:
        duration = max_call_duration_s
        if isinstance(duration, bool) or not isinstance(duration, int):
            raise InvalidPipe(
                "max_call_duration_s", "must be an integer number of seconds"
            )
        if not 1 <= duration <= MAX_CALL_DURATION_S:
            raise InvalidPipe(
                "max_call_duration_s", f"must be 1 to {MAX_CALL_DURATION_S}"
            )


def _check_runner_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        has_host = bool(parts.hostname)
    except ValueError:
        raise InvalidPipe("runner_url", f"{url!r} is not a URL") from None
    if parts.scheme not in _RUNNER_SCHEMES or not has_host:
        raise InvalidPipe("runner_url", f"{url!r} is not a ws:// or wss:// URL")
