"""The store interface: the routing map of numbers, pipes and trunks, and around it
accounts, API keys and call records.

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

Secrets: an API key's secret is stored only as its SHA-256, and a trunk's password is
kept apart from the trunk and read only by :meth:`Store.trunk_credentials`, so neither
can leave the store by accident in a listing, a log line or an error message.
"""

from __future__ import annotations

import abc
import base64
import binascii
import dataclasses
import hashlib
import ipaddress
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import phonenumbers

from .e164 import InvalidNumber
from .models import (
    Account,
    ApiKey,
    CallEndedBy,
    CallRecord,
    Number,
    NumberStatus,
    Page,
    Pipe,
    Route,
    Trunk,
    TrunkType,
)

__all__ = [
    "API_KEY_PREFIX",
    "DEFAULT_CALL_RETENTION_S",
    "DEFAULT_KEY_PREFIX",
    "MAX_PAGE_SIZE",
    "AlreadyExists",
    "CallFilters",
    "Conflict",
    "InvalidAccount",
    "InvalidCall",
    "InvalidInput",
    "InvalidNumber",
    "InvalidPipe",
    "InvalidQuery",
    "InvalidTrunk",
    "NotFound",
    "NumberFilters",
    "ObjectKind",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TrunkUpdate",
    "api_key_lookup_hash",
    "call_sort_key",
    "check_account_name",
    "check_account_owns_nothing",
    "check_call_query",
    "check_call_record",
    "check_call_retention",
    "check_list_query",
    "check_number_fields",
    "check_owner",
    "check_pipe_fields",
    "check_status",
    "check_trunk_credentials",
    "check_trunk_fields",
    "check_trunk_kind",
    "decode_call_cursor",
    "decode_cursor",
    "default_db_path",
    "encode_call_cursor",
    "encode_cursor",
    "match_trunk",
    "new_api_key_secret",
    "open_store",
    "parse_number_ref",
    "strip_runner_url",
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

# Ended calls are kept a week: long enough to look into last week's complaint, short
# enough that call records (which name callers) are not kept indefinitely.
DEFAULT_CALL_RETENTION_S = 7 * 24 * 3600

# API key secrets: "sk_" then 24 random bytes (192 bits) as 32 URL-safe characters.
# With that much entropy a plain SHA-256 cannot be reversed by guessing, so keys are
# found by their hash in one lookup; a slow password hash would cost every request.
API_KEY_PREFIX = "sk_"
_API_KEY_RANDOM_BYTES = 24
_API_KEY_LENGTH = len(API_KEY_PREFIX) + 32
# What a listing shows of a secret: the "sk_" and 7 characters (42 bits): enough to
# tell keys apart, far too little to guess the other 150 bits.
_API_KEY_DISPLAY_CHARS = 10

# Digest user names end up in SIP headers (RFC 3261 §22.4) and passwords in hashes of
# them; no carrier issues credentials anywhere near this long.
_MAX_CREDENTIAL_LENGTH = 256

# 9999-12-31T23:59:59Z, the last second a datetime can show: later "times" are typos.
_MAX_TIMESTAMP = 253_402_300_799.0
# Call records sort by start time in microseconds, zero-padded to this many digits
# (enough for _MAX_TIMESTAMP), so that text order is time order.
_SORT_KEY_DIGITS = 18

# RFC 3261 §7.2: a status code is three digits, 1xx to 6xx.
_MIN_STATUS, _MAX_STATUS = 100, 699

# Ids the stores generate, and the router's call ids, use only these characters; an id
# with any other (":" in particular) could alias another key in Redis.
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")

_CURSOR_VERSION = "n1:"
_CALL_CURSOR_VERSION = "c1:"
_CALL_SORT_KEY = re.compile(rf"\d{{{_SORT_KEY_DIGITS}}}:[A-Za-z0-9_-]{{1,64}}")
_REF_SEPARATORS = str.maketrans("", "", "-.() ")
_RUNNER_SCHEMES = frozenset({"ws", "wss"})
_SIP_SCHEMES = ("sip:", "sips:")

_E = TypeVar("_E", NumberStatus, TrunkType, CallEndedBy)

NumberRef = tuple[Literal["id", "e164"], str]

ObjectKind = Literal["number", "pipe", "trunk", "account", "api_key", "call"]


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or did not answer in time; try again later."""


class NotFound(StoreError):
    """No object of this kind has this reference."""

    def __init__(self, kind: ObjectKind, ref: str) -> None:
        super().__init__(f"{kind} {ref!r} not found")
        self.kind = kind
        self.ref = ref


class AlreadyExists(StoreError):
    """The object to create is already there (for numbers: the same E.164)."""

    def __init__(self, kind: Literal["number", "pipe", "trunk"], ref: str) -> None:
        super().__init__(f"{kind} {ref!r} already exists")
        self.kind = kind
        self.ref = ref


class Conflict(StoreError):
    """The change would leave the store inconsistent: an account that still owns things.

    ``reason`` says what stands in the way; nothing was changed.
    """

    def __init__(self, kind: ObjectKind, ref: str, reason: str) -> None:
        super().__init__(f"{kind} {ref!r}: {reason}")
        self.kind = kind
        self.ref = ref
        self.reason = reason


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


class InvalidAccount(InvalidInput):
    """An account field is invalid."""


class InvalidCall(InvalidInput):
    """A call record field is invalid."""


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


class Store(abc.ABC):
    """The routing map, accounts, API keys and call records; nothing is cached.

    Every method is a coroutine. Numbers are referred to by id (``num_...``) or by
    E.164 number, with or without the ``+``. Methods raise :class:`StoreUnavailable`
    when the backend cannot be reached, and the other :class:`StoreError` subclasses as
    documented.

    Ended call records are kept for ``call_retention_s`` seconds after they end, then
    disappear; ``clock`` gives the current Unix time (tests replace it).
    """

    def __init__(
        self,
        *,
        call_retention_s: float = DEFAULT_CALL_RETENTION_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Set the retention of ended calls. Raises :class:`InvalidInput`."""
        self.call_retention_s = check_call_retention(call_retention_s)
        self._clock = clock

    def _call_cutoff(self) -> float:
        """Return the end time before which an ended call has expired."""
        return self._clock() - self.call_retention_s

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
    async def get_number(self, ref: str, *, account_id: str | None = None) -> Number:
        """Return the number with this id or E.164.

        With ``account_id``, a number of another account (or of none) is reported as
        not found, so an API caller cannot learn that it exists.

        Raises:
            NotFound: no such number (of that account).
        """

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
    async def get_pipe(self, pipe_id: str, *, account_id: str | None = None) -> Pipe:
        """Return a pipe (of ``account_id``, when given). Raises :class:`NotFound`."""

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
        username: str | None = None,
        password: str | None = None,
        register: bool = False,
    ) -> Trunk:
        """Add a trunk; with ``username`` and ``password``, it has digest credentials.

        The returned trunk carries the user name, never the password. On Redis, the
        new trunk is announced on the invalidation channel as ``trunk:<id>``.

        Raises:
            InvalidTrunk: naming the bad field; a user name without a password (or the
                reverse) names the missing one; ``register`` needs a termination URI.
        """

    @abc.abstractmethod
    async def get_trunk(self, trunk_id: str, *, account_id: str | None = None) -> Trunk:
        """Return a trunk (of ``account_id``, when given). Raises :class:`NotFound`."""

    @abc.abstractmethod
    async def list_trunks(
        self, *, account_id: str | None = None, kind: TrunkType | None = None
    ) -> list[Trunk]:
        """Return trunks of the given account and kind, ordered by name then id.

        Raises:
            InvalidQuery: ``kind`` is not a trunk type.
        """

    @abc.abstractmethod
    async def update_trunk(
        self,
        trunk_id: str,
        *,
        name: str | None = None,
        allowed_addresses: Iterable[str] | None = None,
        default_country: str | None = None,
        termination_uri: str | None = None,
        username: str | None = None,
        password: str | None = None,
        register: bool | None = None,
    ) -> Trunk:
        """Change the given fields of a trunk and return the trunk.

        ``None`` leaves a field as it is; an empty string clears ``default_country``,
        ``termination_uri``, ``username`` or ``password``. The password alone may be
        changed when the trunk has a user name, and clearing both removes the
        credentials. The change is checked as a whole and announced as ``trunk:<id>``.

        Raises:
            NotFound: the trunk does not exist.
            InvalidTrunk: naming the bad field; nothing changes then.
        """

    @abc.abstractmethod
    async def trunk_credentials(self, trunk_id: str) -> tuple[str, str] | None:
        """Return the trunk's ``(username, password)``, or ``None`` when it has none.

        The only way to read a password back: for digest authentication and
        registration, never for display.

        Raises:
            NotFound: the trunk does not exist.
        """

    @abc.abstractmethod
    async def delete_trunk(self, trunk_id: str) -> None:
        """Remove a trunk and its credentials; its numbers stay, with no trunk.

        Raises:
            NotFound: the trunk does not exist.
        """

    @abc.abstractmethod
    async def find_trunk_for_address(self, ip: str) -> Trunk | None:
        """Return the trunk whose allowed addresses hold ``ip`` most specifically.

        The longest matching prefix wins (a /32 beats a /24); between equal prefixes,
        the smallest trunk id, so the answer is stable. ``None`` when no trunk allows
        the address or ``ip`` is not an IP address.
        """

    # -- accounts --------------------------------------------------------------------

    @abc.abstractmethod
    async def create_account(self, name: str) -> Account:
        """Add an account. Raises :class:`InvalidAccount` when ``name`` is empty."""

    @abc.abstractmethod
    async def get_account(self, account_id: str) -> Account:
        """Return an account. Raises :class:`NotFound`."""

    @abc.abstractmethod
    async def list_accounts(self) -> list[Account]:
        """Return every account, ordered by name then id."""

    @abc.abstractmethod
    async def delete_account(self, account_id: str) -> None:
        """Remove an account and its API keys.

        Raises:
            NotFound: the account does not exist.
            Conflict: the account still owns numbers, pipes or trunks; nothing changes.
        """

    # -- API keys --------------------------------------------------------------------

    @abc.abstractmethod
    async def create_api_key(self, account_id: str) -> tuple[ApiKey, str]:
        """Add an API key to an account; return the key and its secret.

        The secret (``sk_`` and 32 URL-safe characters) is returned this once: the
        store keeps only its SHA-256.

        Raises:
            NotFound: the account does not exist.
        """

    @abc.abstractmethod
    async def authenticate_api_key(self, secret: str) -> ApiKey | None:
        """Return the key whose secret this is, or ``None`` when unknown or revoked.

        One lookup by the secret's hash; anything that is not shaped like a secret
        returns ``None`` without a lookup.
        """

    @abc.abstractmethod
    async def list_api_keys(self, account_id: str) -> list[ApiKey]:
        """Return an account's keys, revoked ones included, oldest first.

        Raises:
            NotFound: the account does not exist.
        """

    @abc.abstractmethod
    async def revoke_api_key(self, key_id: str) -> ApiKey:
        """Revoke a key for good and return it; revoking twice is not an error.

        Raises:
            NotFound: the key does not exist.
        """

    # -- call records ----------------------------------------------------------------

    @abc.abstractmethod
    async def save_call(self, record: CallRecord) -> None:
        """Insert or replace the record with ``record.call_id``.

        The runner URL is stored without query string, fragment or user info. An ended
        record is removed ``call_retention_s`` after its ``ended_at``; writing also
        removes records that have expired meanwhile.

        Raises:
            InvalidCall: naming the bad field.
        """

    @abc.abstractmethod
    async def get_call(
        self, call_id: str, *, account_id: str | None = None
    ) -> CallRecord:
        """Return a call record (of ``account_id``, when given).

        Raises:
            NotFound: no such record, or it has expired.
        """

    @abc.abstractmethod
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

    @abc.abstractmethod
    async def end_stale_calls(self, instance: str, reason: str) -> int:
        """Mark every active call of ``instance`` as ended now by the router.

        Called when an instance starts: calls its previous run left active died with
        it. Returns how many records were ended.
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
    call_retention_s: float = DEFAULT_CALL_RETENTION_S,
) -> Store:
    """Open the store the configuration asks for.

    Redis when ``redis_url`` is set; otherwise the embedded SQLite store at ``db_path``
    (default :func:`default_db_path`), created with its parent directories.
    """
    # Imported here: each backend module imports this one, and a router on SQLite
    # should not need the Redis client loaded.
    if redis_url:
        from .redis_store import RedisStore

        return RedisStore.from_url(
            redis_url, key_prefix=key_prefix, call_retention_s=call_retention_s
        )

    from .embedded import EmbeddedStore

    path = Path(db_path) if db_path else default_db_path()
    return await EmbeddedStore.open(path, call_retention_s=call_retention_s)


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
    _check_limit(limit)
    filters = NumberFilters(
        status=_enum_or_none(NumberStatus, status, InvalidQuery, "status"),
        country=country.upper() if country else None,
        trunk_type=_enum_or_none(TrunkType, trunk_type, InvalidQuery, "trunk_type"),
        pipe_id=pipe_id,
        account_id=account_id,
    )
    after = decode_cursor(cursor) if cursor else None
    return filters, after


def _check_limit(limit: int) -> None:
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 1 <= limit <= MAX_PAGE_SIZE
    ):
        raise InvalidQuery("limit", f"must be an integer from 1 to {MAX_PAGE_SIZE}")


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
    username: str | None = None,
    register: bool = False,
) -> Trunk:
    """Check trunk fields; return them canonical in a Trunk with an empty id.

    ``username`` is only copied: check it with :func:`check_trunk_credentials`.

    Raises:
        InvalidTrunk: naming the first bad field.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidTrunk("name", "must not be empty")
    trunk_kind = _to_enum(TrunkType, kind, InvalidTrunk, "kind")
    if isinstance(allowed_addresses, str):
        raise InvalidTrunk("allowed_addresses", "must be a list of addresses")
    addresses = tuple(_canonical_network(address) for address in allowed_addresses)
    country = default_country.upper() if default_country else None
    if country is not None and country not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidTrunk(
            "default_country", f"{default_country!r} is not a country code"
        )
    if termination_uri is not None and not termination_uri.startswith(_SIP_SCHEMES):
        raise InvalidTrunk("termination_uri", f"{termination_uri!r} is not a sip: URI")
    _check_register(register, termination_uri)
    return Trunk(
        "",
        name,
        trunk_kind,
        addresses,
        country,
        termination_uri,
        None,
        username,
        register,
    )


def _check_register(register: bool, termination_uri: str | None) -> None:
    if not isinstance(register, bool):
        raise InvalidTrunk("register", "must be true or false")
    if register and termination_uri is None:
        # RFC 3261 §10.2: a REGISTER goes to a registrar; the trunk must name one.
        raise InvalidTrunk("register", "needs a termination_uri to register at")


def check_trunk_kind(kind: TrunkType | str | None) -> TrunkType | None:
    """Check the ``kind`` filter of :meth:`Store.list_trunks`. Raises InvalidQuery."""
    return _enum_or_none(TrunkType, kind, InvalidQuery, "kind")


def check_trunk_credentials(
    username: str | None, password: str | None
) -> tuple[str, str] | None:
    """Check digest credentials: both or neither. Returns them, or ``None``.

    Error messages never repeat the password.

    Raises:
        InvalidTrunk: naming the missing or bad field.
    """
    if username is None and password is None:
        return None
    if password is None:
        raise InvalidTrunk("password", "is required with a username")
    if username is None:
        raise InvalidTrunk("username", "is required with a password")
    for field, value in (("username", username), ("password", password)):
        _check_credential(field, value)
    return username, password


def _check_credential(field: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidTrunk(field, "must be a non-empty string")
    if len(value) > _MAX_CREDENTIAL_LENGTH:
        raise InvalidTrunk(
            field, f"must be at most {_MAX_CREDENTIAL_LENGTH} characters"
        )
    # A CR or LF would end the Authorization header it is written into
    # (RFC 3261 §7.3.1), letting the value inject headers of its own.
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise InvalidTrunk(field, "must not contain control characters")


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkUpdate:
    """The arguments of one :meth:`Store.update_trunk` call, applied by both stores.

    ``None`` keeps a field; an empty string clears an optional text field.
    """

    name: str | None = None
    allowed_addresses: Iterable[str] | None = None
    default_country: str | None = None
    termination_uri: str | None = None
    username: str | None = None
    password: str | None = None
    register: bool | None = None

    def apply(
        self, trunk: Trunk, password: str | None
    ) -> tuple[Trunk, tuple[str, str] | None]:
        """Return the updated trunk and credentials, checked as a whole.

        ``password`` is the trunk's current password (``None`` when it has none).

        Raises:
            InvalidTrunk: naming the first bad field.
        """
        username = _updated(self.username, trunk.username)
        credentials = check_trunk_credentials(
            username, _updated(self.password, password)
        )
        checked = check_trunk_fields(
            name=trunk.name if self.name is None else self.name,
            kind=trunk.kind,
            allowed_addresses=(
                trunk.allowed_addresses
                if self.allowed_addresses is None
                else self.allowed_addresses
            ),
            default_country=_updated(self.default_country, trunk.default_country),
            termination_uri=_updated(self.termination_uri, trunk.termination_uri),
            username=username,
            register=trunk.register if self.register is None else self.register,
        )
        updated = dataclasses.replace(
            checked, trunk_id=trunk.trunk_id, account_id=trunk.account_id
        )
        return updated, credentials


def _updated(new: str | None, old: str | None) -> str | None:
    """Apply one optional text field of an update: None keeps, "" clears."""
    if new is None:
        return old
    return new or None


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


def check_account_name(name: str) -> str:
    """Check an account name. Raises :class:`InvalidAccount`."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidAccount("name", "must not be empty")
    return name


def check_account_owns_nothing(
    account_id: str, *, numbers: int, pipes: int, trunks: int
) -> None:
    """Refuse to delete an account that owns anything. Raises :class:`Conflict`."""
    if numbers or pipes or trunks:
        owned = f"{numbers} number(s), {pipes} pipe(s) and {trunks} trunk(s)"
        raise Conflict("account", account_id, f"still owns {owned}")


def check_owner(
    owner: str | None, account_id: str | None, kind: ObjectKind, ref: str
) -> None:
    """Report an object of another account as not found, when scoped to ``account_id``.

    Raises:
        NotFound: ``account_id`` is set and is not ``owner``.
    """
    if account_id is not None and owner != account_id:
        raise NotFound(kind, ref)


def new_api_key_secret() -> tuple[str, str, str]:
    """Return a fresh API key secret, its SHA-256 (hex) and its display prefix."""
    secret = API_KEY_PREFIX + secrets.token_urlsafe(_API_KEY_RANDOM_BYTES)
    return secret, _sha256(secret), secret[:_API_KEY_DISPLAY_CHARS]


def api_key_lookup_hash(secret: object) -> str | None:
    """Return the SHA-256 a secret is stored under, or ``None`` if it cannot be one."""
    if (
        not isinstance(secret, str)
        or len(secret) != _API_KEY_LENGTH
        or not secret.startswith(API_KEY_PREFIX)
        or not _ID_PATTERN.fullmatch(secret)
    ):
        return None
    return _sha256(secret)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


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
    if not isinstance(record.call_id, str) or not _ID_PATTERN.fullmatch(record.call_id):
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
    ended_by = _enum_or_none(CallEndedBy, record.ended_by, InvalidCall, "ended_by")
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


def call_sort_key(record: CallRecord) -> str:
    """Return the text whose order is newest-last listing order: start time, call id.

    Microseconds, zero-padded, so that comparing the text compares the times; both
    stores sort and page by it, so they list ties the same way.
    """
    micros = round(record.started_at * 1_000_000)
    return f"{micros:0{_SORT_KEY_DIGITS}d}:{record.call_id}"


def encode_call_cursor(sort_key: str) -> str:
    """Return the cursor that continues a call listing after ``sort_key``."""
    raw = (_CALL_CURSOR_VERSION + sort_key).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_call_cursor(cursor: str) -> str:
    """Return the sort key a call cursor continues after. Raises InvalidQuery."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (UnicodeError, binascii.Error, ValueError, TypeError, AttributeError):
        raise InvalidQuery("cursor", "not a cursor from this listing") from None
    sort_key = raw.removeprefix(_CALL_CURSOR_VERSION)
    if sort_key == raw or not _CALL_SORT_KEY.fullmatch(sort_key):
        raise InvalidQuery("cursor", "not a cursor from this listing")
    return sort_key


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
