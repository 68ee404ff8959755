"""The store interface: the routing map of numbers, pipes and trunks.

Two implementations share this contract and one test suite:

* :class:`~router.numbers.redis_store.RedisStore` for fleets: every router instance
  reads the same map, and changes are announced on a pub/sub channel;
* :class:`~router.numbers.embedded.EmbeddedStore` for one box, demos and tests without
  Redis: a SQLite file shared by the router and the command line.

Every failure a caller should handle is a :class:`StoreError`. The router maps
:class:`StoreUnavailable` to ``503 Service Unavailable`` and an unknown number to
``404 Not Found``.

This module also holds the input checks both stores apply before writing, so the two
behave the same on bad input.
"""

from __future__ import annotations

import abc
import base64
import binascii
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

import phonenumbers

from .e164 import InvalidNumber
from .models import Number, NumberStatus, Page, Pipe, Route, Trunk, TrunkType

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "MAX_PAGE_SIZE",
    "AlreadyExists",
    "InvalidInput",
    "InvalidNumber",
    "InvalidPipe",
    "InvalidQuery",
    "InvalidTrunk",
    "NotFound",
    "NumberFilters",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "check_list_query",
    "check_number_fields",
    "check_pipe_fields",
    "check_status",
    "check_trunk_fields",
    "decode_cursor",
    "default_db_path",
    "encode_cursor",
    "match_trunk",
    "open_store",
    "parse_number_ref",
]

DEFAULT_KEY_PREFIX = "sip-router:"

# Listings are for people and scripts, not bulk export: a page larger than this would
# make one Redis round trip (or one SQLite query) hold up lookups for too long.
MAX_PAGE_SIZE = 1000

# A whole day: far beyond any voice-agent call, small enough to catch a value typed in
# milliseconds by mistake.
MAX_CALL_DURATION_S = 86_400

# Same bound as E.164 (ITU-T E.164 §6): references longer than this are not numbers.
_MAX_NUMBER_DIGITS = 15

_CURSOR_VERSION = "n1:"
_REF_SEPARATORS = str.maketrans("", "", "-.() ")
_RUNNER_SCHEMES = frozenset({"ws", "wss"})
_SIP_SCHEMES = ("sip:", "sips:")

_E = TypeVar("_E", NumberStatus, TrunkType)

NumberRef = tuple[Literal["id", "e164"], str]


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or did not answer in time; try again later."""


class NotFound(StoreError):
    """No number, pipe or trunk has this reference."""

    def __init__(self, kind: Literal["number", "pipe", "trunk"], ref: str) -> None:
        super().__init__(f"{kind} {ref!r} not found")
        self.kind = kind
        self.ref = ref


class AlreadyExists(StoreError):
    """The object to create is already there (for numbers: the same E.164)."""

    def __init__(self, kind: Literal["number", "pipe", "trunk"], ref: str) -> None:
        super().__init__(f"{kind} {ref!r} already exists")
        self.kind = kind
        self.ref = ref


class InvalidInput(StoreError, ValueError):
    """A field given to the store has a value it cannot accept; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidPipe(InvalidInput):
    """A pipe field is invalid."""


class InvalidTrunk(InvalidInput):
    """A trunk field is invalid."""


class InvalidQuery(InvalidInput):
    """A listing argument (filter, limit, cursor) is invalid."""


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


class Store(abc.ABC):
    """The routing map. Every method is a coroutine; none caches.

    Numbers are referred to by id (``num_...``) or by E.164 number, with or without
    the ``+``. Methods raise :class:`StoreUnavailable` when the backend cannot be
    reached, and the other :class:`StoreError` subclasses as documented.
    """

    # -- routing ---------------------------------------------------------------------

    @abc.abstractmethod
    async def route(self, e164: str) -> Route | None:
        """Look up a dialed number: the hot path of every INVITE.

        Returns the number and its pipe (``None`` when not attached), or ``None`` when
        the number is unknown. The number is returned whatever its status.
        """

    # -- numbers ---------------------------------------------------------------------

    @abc.abstractmethod
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

    @abc.abstractmethod
    async def get_number(self, ref: str) -> Number:
        """Return the number with this id or E.164. Raises :class:`NotFound`."""

    @abc.abstractmethod
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

    @abc.abstractmethod
    async def create_pipe(
        self,
        *,
        name: str,
        runner_url: str,
        max_call_duration_s: int = 3600,
        account_id: str | None = None,
    ) -> Pipe:
        """Add a pipe. Raises :class:`InvalidPipe` naming the bad field."""

    @abc.abstractmethod
    async def get_pipe(self, pipe_id: str) -> Pipe:
        """Return a pipe. Raises :class:`NotFound`."""

    @abc.abstractmethod
    async def list_pipes(self, *, account_id: str | None = None) -> list[Pipe]:
        """Return all pipes (of one account, when given), ordered by name then id."""

    @abc.abstractmethod
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

    @abc.abstractmethod
    async def delete_pipe(self, pipe_id: str) -> int:
        """Remove a pipe, detaching its numbers; returns how many were detached.

        Raises:
            NotFound: the pipe does not exist.
        """

    @abc.abstractmethod
    async def pipe_numbers(self, pipe_id: str) -> list[str]:
        """Return the E.164 numbers on a pipe, sorted. Raises :class:`NotFound`."""

    # -- trunks ----------------------------------------------------------------------

    @abc.abstractmethod
    async def create_trunk(
        self,
        *,
        name: str,
        kind: TrunkType = TrunkType.BYO,
        allowed_addresses: Iterable[str] = (),
        default_country: str | None = None,
        termination_uri: str | None = None,
        account_id: str | None = None,
    ) -> Trunk:
        """Add a trunk. Raises :class:`InvalidTrunk` naming the bad field."""

    @abc.abstractmethod
    async def get_trunk(self, trunk_id: str) -> Trunk:
        """Return a trunk. Raises :class:`NotFound`."""

    @abc.abstractmethod
    async def list_trunks(self, *, account_id: str | None = None) -> list[Trunk]:
        """Return all trunks (of one account, when given), ordered by name then id."""

    @abc.abstractmethod
    async def delete_trunk(self, trunk_id: str) -> None:
        """Remove a trunk; its numbers stay, with no trunk. Raises :class:`NotFound`."""

    @abc.abstractmethod
    async def find_trunk_for_address(self, ip: str) -> Trunk | None:
        """Return the trunk whose allowed addresses hold ``ip`` most specifically.

        The longest matching prefix wins (a /32 beats a /24); between equal prefixes,
        the smallest trunk id, so the answer is stable. ``None`` when no trunk allows
        the address or ``ip`` is not an IP address.
        """

    # -- lifecycle -------------------------------------------------------------------

    @abc.abstractmethod
    async def ping(self) -> None:
        """Check that the backend answers. Raises :class:`StoreUnavailable`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""


def default_db_path() -> Path:
    """Return where the embedded store lives when no path is configured."""
    import platformdirs

    return Path(platformdirs.user_data_dir("sip-router")) / "router.db"


async def open_store(
    *,
    redis_url: str | None,
    db_path: str | None,
    key_prefix: str = DEFAULT_KEY_PREFIX,
) -> Store:
    """Open the store the configuration asks for.

    Redis when ``redis_url`` is set; otherwise the embedded SQLite store at ``db_path``
    (default :func:`default_db_path`), created with its parent directories.
    """
    # Imported here: each backend module imports this one, and a router on SQLite
    # should not need the Redis client loaded.
    if redis_url:
        from .redis_store import RedisStore

        return RedisStore.from_url(redis_url, key_prefix=key_prefix)

    from .embedded import EmbeddedStore

    path = Path(db_path) if db_path else default_db_path()
    return await EmbeddedStore.open(path)


# -- shared input checks ---------------------------------------------------------------


def parse_number_ref(ref: str) -> NumberRef | None:
    """Classify a number reference: ``("id", "num_...")`` or ``("e164", "+...")``.

    E.164 references may leave out the ``+`` and carry visual separators. Returns
    ``None`` when ``ref`` can be neither (the caller reports it as not found).
    """
    if ref.startswith("num_"):
        return ("id", ref)
    digits = ref.strip().translate(_REF_SEPARATORS).removeprefix("+")
    if not digits.isascii() or not digits.isdigit() or len(digits) > _MAX_NUMBER_DIGITS:
        return None
    return ("e164", "+" + digits)


def encode_cursor(last_number: str) -> str:
    """Return the opaque cursor that continues a listing after ``last_number``."""
    raw = (_CURSOR_VERSION + last_number).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """Return the number a cursor continues after. Raises :class:`InvalidQuery`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (UnicodeError, binascii.Error, ValueError):
        raise InvalidQuery("cursor", "not a cursor from this listing") from None
    number = raw.removeprefix(_CURSOR_VERSION)
    if number == raw or parse_number_ref(number) != ("e164", number):
        raise InvalidQuery("cursor", "not a cursor from this listing")
    return number


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
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 1 <= limit <= MAX_PAGE_SIZE
    ):
        raise InvalidQuery("limit", f"must be an integer from 1 to {MAX_PAGE_SIZE}")
    filters = NumberFilters(
        status=_enum_or_none(NumberStatus, status, InvalidQuery, "status"),
        country=country.upper() if country else None,
        trunk_type=_enum_or_none(TrunkType, trunk_type, InvalidQuery, "trunk_type"),
        pipe_id=pipe_id,
        account_id=account_id,
    )
    after = decode_cursor(cursor) if cursor else None
    return filters, after


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


def check_trunk_fields(
    *,
    name: str,
    kind: TrunkType | str,
    allowed_addresses: Iterable[str],
    default_country: str | None,
    termination_uri: str | None,
) -> Trunk:
    """Check new trunk fields; return them canonical in a Trunk with an empty id.

    Raises:
        InvalidTrunk: naming the first bad field.
    """
    if not name.strip():
        raise InvalidTrunk("name", "must not be empty")
    trunk_kind = _to_enum(TrunkType, kind, InvalidTrunk, "kind")
    addresses = tuple(_canonical_network(address) for address in allowed_addresses)
    country = default_country.upper() if default_country else None
    if country is not None and country not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidTrunk(
            "default_country", f"{default_country!r} is not a country code"
        )
    if termination_uri is not None and not termination_uri.startswith(_SIP_SCHEMES):
        raise InvalidTrunk("termination_uri", f"{termination_uri!r} is not a sip: URI")
    return Trunk("", name, trunk_kind, addresses, country, termination_uri)


def _canonical_network(address: str) -> str:
    if not isinstance(address, str):
        raise InvalidTrunk("allowed_addresses", f"{address!r} is not a string")
    try:
        network = ipaddress.ip_network(address.strip())
    except ValueError as exc:
        raise InvalidTrunk("allowed_addresses", str(exc)) from None
    # A single host is written as a bare address; a prefix keeps its length.
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def match_trunk(trunks: Iterable[Trunk], ip: str) -> Trunk | None:
    """Return the trunk whose allowed addresses hold ``ip`` with the longest prefix."""
    address = _parse_source_address(ip)
    if address is None:
        return None
    candidates: list[tuple[int, str, Trunk]] = []
    for trunk in trunks:
        prefix = _longest_match(trunk.allowed_addresses, address)
        if prefix >= 0:
            candidates.append((-prefix, trunk.trunk_id, trunk))
    if not candidates:
        return None
    # Longest prefix first; the smallest trunk id breaks ties so the answer is stable.
    return min(candidates, key=lambda candidate: candidate[:2])[2]


def _parse_source_address(
    ip: str,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d (RFC 4291 §2.5.5.2);
    # allowlists are written with plain IPv4 addresses.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _longest_match(
    networks: Iterable[str], address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> int:
    longest = -1
    for text in networks:
        try:
            network = ipaddress.ip_network(text)
        except ValueError:
            continue  # written by an older version with laxer checks: ignore it
        if network.version == address.version and address in network:
            longest = max(longest, network.prefixlen)
    return longest


def _enum_or_none(
    enum: type[_E], value: _E | str | None, error: type[InvalidInput], field: str
) -> _E | None:
    return None if value is None else _to_enum(enum, value, error, field)


def _to_enum(
    enum: type[_E], value: _E | str, error: type[InvalidInput], field: str
) -> _E:
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise error(field, f"{value!r} is not one of {choices}") from None
