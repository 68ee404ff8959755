"""Request and response schemas of the admin API (pydantic), shared with the client.

Request schemas forbid unknown fields, so a typo is a 422 naming the field rather
than a silently ignored setting. Response schemas ignore unknown fields, so an older
:class:`~router.client.AsyncClient` keeps working against a newer router.

This module imports pydantic only: the client uses it without FastAPI installed.
"""

from __future__ import annotations

import ipaddress
import warnings
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = [
    "Account",
    "AccountCreate",
    "AccountCreated",
    "ApiKey",
    "ApiKeyCreated",
    "AttachRequest",
    "Call",
    "CallList",
    "ErrorDetail",
    "ErrorResponse",
    "ImportResult",
    "ImportRowError",
    "Number",
    "NumberCreate",
    "NumberImportRow",
    "NumberList",
    "NumberUpdate",
    "Pipe",
    "PipeCreate",
    "PipeDeleted",
    "PipeUpdate",
    "Status",
    "Trunk",
    "TrunkCreate",
    "TrunkKind",
    "TrunkUpdate",
    "listing",
]

# The same bounds as the store (router.numbers.store): a page is for people and
# scripts, not bulk export.
MAX_PAGE_SIZE = 1000

# Below ten seconds no agent can even greet the caller: such a value is a mistake
# (milliseconds typed as seconds, say). A day is far beyond any voice-agent call.
MIN_CALL_DURATION_S = 10
MAX_CALL_DURATION_S = 86_400

# Names are for people; 200 characters fits any sensible label and bounds storage.
MAX_NAME_LENGTH = 200

# RFC 3986 has no limit, but browsers and proxies commonly cap URLs near 2 KiB.
MAX_URL_LENGTH = 2048

# A trunk lists its carrier's signalling addresses: even large carriers publish a few
# dozen prefixes. The bound keeps one trunk's allowlist check cheap per INVITE.
MAX_ALLOWED_ADDRESSES = 256

# SIP digest user names and passwords (RFC 3261 §22.4) are short secrets.
MAX_CREDENTIAL_LENGTH = 256

Status = Literal["active", "inactive", "pending"]
TrunkKind = Literal["unpod", "byo"]
CountryCode = Annotated[
    str,
    Field(
        min_length=2,
        max_length=2,
        pattern="^[A-Za-z]{2}$",
        description="ISO 3166-1 alpha-2 code",
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
Ref = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
Credential = Annotated[str, Field(min_length=1, max_length=MAX_CREDENTIAL_LENGTH)]
RunnerUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="ws:// or wss:// URL of the runner",
        examples=["wss://agents.example.com/stream"],
    ),
]
CallDuration = Annotated[int, Field(ge=MIN_CALL_DURATION_S, le=MAX_CALL_DURATION_S)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", from_attributes=True)


# -- errors ------------------------------------------------------------------------


class ErrorDetail(_Response):
    """What went wrong: a stable ``code``, a human ``message``, and for 422 the field."""

    code: str
    message: str
    field: str | None = None


class ErrorResponse(_Response):
    """The body of every error answer."""

    error: ErrorDetail


# -- numbers -----------------------------------------------------------------------


class Number(_Response):
    """A phone number and the pipe it is attached to (``pipe_id`` None if none)."""

    number_id: str
    number: str = Field(description="E.164 with the leading +")
    status: Status
    trunk_type: TrunkKind
    pipe_id: str | None = None
    country: str
    trunk_id: str | None = None
    account_id: str | None = None


class NumberList(_Response):
    """One page of numbers; pass ``next_cursor`` back as ``cursor`` for the next."""

    data: list[Number]
    next_cursor: str | None = None


class NumberCreate(_Request):
    """A number to add. The country is derived from the number when omitted."""

    number: str = Field(min_length=1, max_length=32, examples=["+14155550100"])
    country: CountryCode | None = None
    status: Status = "active"
    trunk_type: TrunkKind | None = Field(
        None, description="default: the trunk's kind when trunk_id is given, else unpod"
    )
    trunk_id: Ref | None = None
    account_id: Ref | None = Field(None, description="operator only")


class NumberImportRow(NumberCreate):
    """One row of an import: a number to create, then attach when ``pipe_id`` is set."""

    pipe_id: Ref | None = None


class NumberUpdate(_Request):
    """The fields of a number that can change."""

    status: Status


class AttachRequest(_Request):
    """The pipe to attach a number to."""

    pipe_id: Ref


class ImportRowError(_Response):
    """Why one row of an import stored nothing; ``row`` counts data rows from 1."""

    row: int
    field: str | None = None
    message: str


class ImportResult(_Response):
    """The numbers an import created and the rows it refused."""

    created: list[Number]
    errors: list[ImportRowError]


# -- pipes -------------------------------------------------------------------------


def _check_runner_url(url: str | None) -> str | None:
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        has_host = bool(parts.hostname)
    except ValueError:
        raise ValueError("not a URL") from None
    if parts.scheme not in ("ws", "wss") or not has_host:
        raise ValueError("must be a ws:// or wss:// URL with a host")
    return url


class PipeCreate(_Request):
    """A pipe to add: where calls to its numbers are bridged."""

    name: Name
    runner_url: RunnerUrl
    max_call_duration_s: CallDuration = 3600
    account_id: Ref | None = Field(None, description="operator only")

    _runner_url = field_validator("runner_url")(_check_runner_url)


class PipeUpdate(_Request):
    """The pipe fields to change; omitted fields stay as they are."""

    name: Name | None = None
    runner_url: RunnerUrl | None = None
    max_call_duration_s: CallDuration | None = None

    _runner_url = field_validator("runner_url")(_check_runner_url)


class Pipe(_Response):
    """A Speech Pipe: calls to its numbers go to its runner."""

    pipe_id: str
    name: str
    runner_url: str
    max_call_duration_s: int
    account_id: str | None = None


class PipeDeleted(_Response):
    """The answer to deleting a pipe: how many numbers it left detached."""

    pipe_id: str
    deleted: Literal[True] = True
    detached_numbers: int


# -- trunks ------------------------------------------------------------------------


def _check_addresses(addresses: list[str] | None) -> list[str] | None:
    if addresses is None:
        return None
    for address in addresses:
        try:
            ipaddress.ip_network(address.strip())
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    return addresses


def _check_sip_uri(uri: str | None) -> str | None:
    if uri is not None and not uri.startswith(("sip:", "sips:")):
        raise ValueError("must be a sip: or sips: URI")
    return uri


Addresses = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64)]],
    Field(
        max_length=MAX_ALLOWED_ADDRESSES,
        description="IP addresses and CIDR prefixes allowed to send calls",
        examples=[["198.51.100.0/24"]],
    ),
]
SipUri = Annotated[str, Field(min_length=4, max_length=MAX_URL_LENGTH)]


# pydantic warns that a field named "register" shadows BaseModel.register (the ABC
# method, unused on these models). The field name is the API's, so the warning is
# silenced for these three classes only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", 'Field name "register"', UserWarning)

    class TrunkCreate(_Request):
        """A carrier trunk to add. ``password`` is write-only: it is never returned."""

        name: Name
        kind: TrunkKind = "byo"
        termination_uri: SipUri | None = None
        username: Credential | None = None
        password: SecretStr | None = Field(None, max_length=MAX_CREDENTIAL_LENGTH)
        allowed_addresses: Addresses = Field(default_factory=list)
        default_country: CountryCode | None = None
        register: bool = False
        account_id: Ref | None = Field(None, description="operator only")

        _addresses = field_validator("allowed_addresses")(_check_addresses)
        _uri = field_validator("termination_uri")(_check_sip_uri)

    class TrunkUpdate(_Request):
        """The trunk fields to change; omitted fields stay as they are."""

        name: Name | None = None
        termination_uri: SipUri | None = None
        username: Credential | None = None
        password: SecretStr | None = Field(None, max_length=MAX_CREDENTIAL_LENGTH)
        allowed_addresses: Addresses | None = None
        default_country: CountryCode | None = None
        register: bool | None = None

        _addresses = field_validator("allowed_addresses")(_check_addresses)
        _uri = field_validator("termination_uri")(_check_sip_uri)

    class Trunk(_Response):
        """A carrier trunk; its password is never shown, only whether one is set."""

        trunk_id: str
        name: str
        kind: TrunkKind
        allowed_addresses: list[str]
        default_country: str | None = None
        termination_uri: str | None = None
        account_id: str | None = None
        username: str | None = None
        register: bool = False
        has_credentials: bool = False


# -- accounts ----------------------------------------------------------------------


class AccountCreate(_Request):
    """An account to add."""

    name: Name


class Account(_Response):
    """A customer account."""

    account_id: str
    name: str
    created_at: datetime


class AccountCreated(Account):
    """A new account with its first API key, shown this once."""

    api_key: str = Field(description="sk_… secret; shown only in this response")


class ApiKey(_Response):
    """An API key's public facts: never its secret."""

    key_id: str
    account_id: str
    prefix: str = Field(
        description="the first characters of the secret, to recognise it"
    )
    created_at: datetime
    revoked: bool = False


class ApiKeyCreated(ApiKey):
    """A new API key with its secret, shown this once."""

    api_key: str = Field(description="sk_… secret; shown only in this response")


# -- calls -------------------------------------------------------------------------


class Call(_Response):
    """One inbound call, live or ended."""

    call_id: str
    account_id: str | None = None
    number: str
    number_id: str | None = None
    pipe_id: str | None = None
    runner_url: str | None = None
    caller: str | None = None
    sip_call_id: str | None = None
    trunk_id: str | None = None
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    final_status: int | None = Field(None, description="SIP status of the final answer")
    ended_by: Literal["caller", "runner", "router"] | None = None
    end_reason: str | None = None
    instance: str | None = None
    active: bool = False


class CallList(_Response):
    """One page of calls, newest first; pass ``next_cursor`` back for the next."""

    data: list[Call]
    next_cursor: str | None = None


def listing(items: list[Any]) -> dict[str, list[Any]]:
    """Return the envelope of an unpaged listing: ``{"data": [...]}``."""
    return {"data": items}
