"""Numbers, pipes and trunks: the routing map as plain immutable values.

A *number* is an E.164 telephone number that callers dial. A *pipe* is where calls to a
number go: the WebSocket URL of the runner that talks to the caller. A *trunk* is a
carrier (or a customer's own PBX) allowed to send us calls. The store maps
number -> pipe; :class:`Route` is the answer to one lookup.

Around the map: an *account* owns numbers, pipes and trunks and reaches the admin API
with *API keys*; a *call record* says what happened to one inbound call.

The classes are frozen dataclasses without validation in ``__init__``: they are built on
every routing lookup, so they stay cheap. The stores validate input before anything is
written (see :mod:`router.numbers.store`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

__all__ = [
    "Account",
    "ApiKey",
    "CallEndedBy",
    "CallRecord",
    "Number",
    "NumberStatus",
    "Page",
    "Pipe",
    "Route",
    "Trunk",
    "TrunkType",
    "new_account_id",
    "new_key_id",
    "new_number_id",
    "new_pipe_id",
    "new_trunk_id",
]

T = TypeVar("T")

# 16 random bytes are 128 bits, as many as a UUID4 carries: collisions are not a
# practical concern. token_urlsafe encodes them as 22 URL-safe characters.
ID_RANDOM_BYTES = 16


class NumberStatus(StrEnum):
    """Whether a number takes calls."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    PENDING = "pending"


class TrunkType(StrEnum):
    """Who provides the carrier connection for a number or trunk.

    ``UNPOD`` numbers arrive over carriers we operate; ``BYO`` ("bring your own")
    numbers arrive from a customer's carrier or PBX.
    """

    UNPOD = "unpod"
    BYO = "byo"


@dataclass(frozen=True, slots=True)
class Number:
    """A dialable number and where it is attached.

    ``number`` is E.164 with the leading ``+``; ``country`` is the ISO 3166-1 alpha-2
    code of the number (not of the account). ``pipe_id`` is ``None`` while the number
    is not attached to a pipe.
    """

    number_id: str
    number: str
    status: NumberStatus
    trunk_type: TrunkType
    pipe_id: str | None
    country: str
    trunk_id: str | None = None
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class Pipe:
    """Where calls to the pipe's numbers go: a runner reached over WebSocket."""

    pipe_id: str
    name: str
    runner_url: str
    max_call_duration_s: int = 3600
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class Trunk:
    """A source of calls: a carrier or PBX that may send us INVITEs.

    ``allowed_addresses`` holds IP addresses and CIDR prefixes (IPv4 and IPv6) in
    canonical form. ``default_country`` turns national-format dialed numbers from this
    trunk into E.164. ``termination_uri`` is the trunk's SIP URI for registration and
    outbound use. ``username`` is the digest user name when the trunk has credentials;
    ``register`` asks the router to register at ``termination_uri``.

    The password is deliberately not a field: a trunk is listed, logged and returned by
    the admin API, and the password must never travel with it. Only
    :meth:`~router.numbers.store.Store.trunk_credentials` reads it.
    """

    trunk_id: str
    name: str
    kind: TrunkType
    allowed_addresses: tuple[str, ...] = ()
    default_country: str | None = None
    termination_uri: str | None = None
    account_id: str | None = None
    username: str | None = None
    register: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    """The result of one routing lookup: the number and its pipe, if attached.

    The number is returned whatever its status; deciding what an inactive or pending
    number means for a call is the caller's job.
    """

    number: Number
    pipe: Pipe | None


@dataclass(frozen=True, slots=True)
class Account:
    """A customer: the owner of numbers, pipes, trunks and API keys."""

    account_id: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key of an account, without its secret.

    The secret is shown once, when the key is created; the store keeps only its
    SHA-256. ``prefix`` is the secret's first characters, enough for a person to tell
    keys apart in a listing and useless to an attacker.
    """

    key_id: str
    account_id: str
    prefix: str
    created_at: float
    revoked: bool = False


class CallEndedBy(StrEnum):
    """Which side ended a call."""

    CALLER = "caller"  # BYE or CANCEL from the carrier
    RUNNER = "runner"  # the runner closed its WebSocket
    ROUTER = "router"  # a timeout, a limit, a failure, or a restart of the router


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What happened to one inbound call, kept for a retention period after it ends.

    ``call_id`` is the router's own id of the call (what the runner sees as
    ``callSid``); ``sip_call_id`` is the carrier's Call-ID. Times are Unix seconds.
    ``final_status`` is the final SIP status we answered the INVITE with (``200`` once
    answered). ``instance`` names the router instance that handled the call, so that a
    restarted instance can close the records its predecessor left open.

    ``runner_url`` never carries a query string, fragment or user info: those often hold
    tokens, and the stores strip them before writing.
    """

    call_id: str
    account_id: str | None
    number: str
    number_id: str | None
    pipe_id: str | None
    runner_url: str | None
    caller: str
    sip_call_id: str
    trunk_id: str | None
    started_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    final_status: int | None = None
    ended_by: CallEndedBy | None = None
    end_reason: str | None = None
    instance: str | None = None

    @property
    def active(self) -> bool:
        """Whether the call is still going on (it has not ended)."""
        return self.ended_at is None


# Not slotted: typing sets __orig_class__ on instances built as Page[T](...), which a
# slotted frozen dataclass cannot take.
@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_cursor`` back to get the next page.

    ``next_cursor`` is ``None`` on the last page.
    """

    items: list[T]
    next_cursor: str | None


def _new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_urlsafe(ID_RANDOM_BYTES)}"


def new_account_id() -> str:
    """Return a fresh random account id: ``acct_`` and 22 URL-safe characters."""
    return _new_id("acct")


def new_key_id() -> str:
    """Return a fresh random API key id, ``key_`` followed by 22 URL-safe characters."""
    return _new_id("key")


def new_number_id() -> str:
    """Return a fresh random number id, ``num_`` followed by 22 URL-safe characters."""
    return _new_id("num")


def new_pipe_id() -> str:
    """Return a fresh random pipe id, ``pipe_`` followed by 22 URL-safe characters."""
    return _new_id("pipe")


def new_trunk_id() -> str:
    """Return a fresh random trunk id, ``trunk_`` followed by 22 URL-safe characters."""
    return _new_id("trunk")
