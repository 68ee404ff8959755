"""AsyncClient: the admin API from Python, with typed answers and typed errors.

::

    async with AsyncClient(api_key=key, base_url="http://127.0.0.1:8080") as client:
        pipe = await client.pipes.create(name="support", runner_url="wss://…")
        async for number in client.numbers.iter(status="active"):
            ...
        await client.numbers.attach("+14155550100", pipe.pipe_id)

Every method returns pydantic models from :mod:`router.api.models` (``Number``,
``Pipe``, ``Trunk``, …) and raises an :class:`APIError` subclass for an error answer:
:class:`AuthenticationError` (401), :class:`PermissionDeniedError` (403),
:class:`NotFoundError` (404), :class:`ConflictError` (409), :class:`ValidationError`
(422, with ``field``), :class:`ServiceUnavailableError` (503), and
:class:`APIConnectionError` when the router cannot be reached at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from router.api.models import (
    Account,
    AccountCreated,
    ApiKey,
    ApiKeyCreated,
    Call,
    CallList,
    ImportResult,
    Number,
    NumberList,
    Pipe,
    PipeDeleted,
    Trunk,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "UNSET",
    "APIConnectionError",
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "ConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "ServiceUnavailableError",
    "ValidationError",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8080"

# Admin calls take milliseconds; an import of thousands of rows takes seconds. Ten
# seconds separates a slow router from a dead one without cutting an import short.
DEFAULT_TIMEOUT_S = 10.0
IMPORT_TIMEOUT_S = 120.0

# As large as the API allows: iterating fetches as few pages as possible.
ITER_PAGE_SIZE = 1000

_M = TypeVar("_M", bound=BaseModel)


class _Unset:
    """The type of :data:`UNSET`: "leave this field as it is" in updates."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


# -- errors ---------------------------------------------------------------------------


class APIError(Exception):
    """An error answer from the admin API: HTTP ``status``, stable ``code``, message."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None
    ) -> None:
        super().__init__(f"{message} ({status} {code})")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class AuthenticationError(APIError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIError):
    """403: this key may not do that (operator-only routes, unpod trunks)."""


class NotFoundError(APIError):
    """404: no such resource, or one that belongs to another account."""


class ConflictError(APIError):
    """409: the number exists already, or the account still owns things."""


class ValidationError(APIError):
    """422: a field has a value the API refuses; ``field`` names it."""


class ServiceUnavailableError(APIError):
    """503: the router's store is unavailable; try again later."""


class APIConnectionError(APIError):
    """The router could not be reached, or did not answer in time (status 0)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "connection_error", message)


_ERRORS_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    503: ServiceUnavailableError,
}


def _error_from(response: httpx.Response) -> APIError:
    """Return the typed error for an error answer, whatever its body."""
    code, message, field = "error", response.reason_phrase or "error", None
    try:
        detail = response.json()["error"]
        code, message = str(detail["code"]), str(detail["message"])
        field = detail.get("field")
    except (ValueError, KeyError, TypeError):
        pass  # not our JSON (a proxy's page, say): keep the HTTP reason
    error_type = _ERRORS_BY_STATUS.get(response.status_code, APIError)
    return error_type(response.status_code, code, message, field)


# -- client ---------------------------------------------------------------------------


class AsyncClient:
    """A connection to the admin API with one API key (or the operator token).

    Use it as an async context manager, or call :meth:`aclose` when done. Resources
    are attributes: ``numbers``, ``pipes``, ``trunks``, ``accounts`` (with
    ``accounts.keys``) and ``calls``.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Prepare the client; no connection is opened until the first call.

        Args:
            api_key: an account's ``sk_…`` key or the operator token.
            base_url: where the router's admin API listens.
            timeout: seconds to wait for each answer.
            transport: an httpx transport to use instead of the network (tests).
        """
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )
        self.numbers = NumbersResource(self)
        self.pipes = PipesResource(self)
        self.trunks = TrunksResource(self)
        self.accounts = AccountsResource(self)
        self.calls = CallsResource(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON answer (None for 204).

        Raises:
            APIError: the typed subclass for the answer's status.
            APIConnectionError: the router could not be reached or timed out.
        """
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = await self._http.request(
                method,
                path,
                params=query,
                json=json,
                content=content,
                headers=headers,
                **extra,
            )
        except httpx.HTTPError as exc:
            raise APIConnectionError(f"{self._http.base_url}: {exc}") from exc
        if response.is_error:
            raise _error_from(response)
        return None if response.status_code == 204 else response.json()

    async def _get_model(
        self, model: type[_M], method: str, path: str, **kwargs: Any
    ) -> _M:
        return model.model_validate(await self.request(method, path, **kwargs))

    async def _get_list(self, model: type[_M], path: str, **kwargs: Any) -> list[_M]:
        answer = await self.request("GET", path, **kwargs)
        return [model.model_validate(item) for item in answer["data"]]


def _query_value(value: Any) -> Any:
    # httpx writes True as "True"; the API reads JSON-style booleans.
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _segment(ref: str) -> str:
    """Quote one path segment; ``+`` stays, so E.164 references read naturally."""
    return quote(ref, safe="+")


def _fields(**fields: Any) -> dict[str, Any]:
    """Return the fields that were given (not :data:`UNSET`)."""
    return {name: value for name, value in fields.items() if value is not UNSET}


# -- resources ------------------------------------------------------------------------


class NumbersResource:
    """``client.numbers``: list, create, attach, detach, import."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(
        self,
        *,
        status: str | None = None,
        country: str | None = None,
        trunk_type: str | None = None,
        pipe_id: str | None = None,
        account_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[Number]:
        """Return one page of numbers matching every filter given (see :meth:`iter`)."""
        page = await self.page(
            status=status,
            country=country,
            trunk_type=trunk_type,
            pipe_id=pipe_id,
            account_id=account_id,
            limit=limit,
            cursor=cursor,
        )
        return page.data

    async def page(self, *, limit: int = 100, **filters: Any) -> NumberList:
        """Return one page with its ``next_cursor`` (``None`` on the last page)."""
        params = {**filters, "limit": limit}
        return await self._client._get_model(
            NumberList, "GET", "/v1/numbers", params=params
        )

    async def iter(
        self,
        *,
        status: str | None = None,
        country: str | None = None,
        trunk_type: str | None = None,
        pipe_id: str | None = None,
        account_id: str | None = None,
    ) -> AsyncIterator[Number]:
        """Yield every matching number, fetching pages as needed."""
        cursor: str | None = None
        while True:
            page = await self.page(
                status=status,
                country=country,
                trunk_type=trunk_type,
                pipe_id=pipe_id,
                account_id=account_id,
                limit=ITER_PAGE_SIZE,
                cursor=cursor,
            )
            for number in page.data:
                yield number
            cursor = page.next_cursor
            if cursor is None:
                return

    async def create(
        self,
        *,
        number: str,
        country: str | None = None,
        status: str = "active",
        trunk_type: str | None = None,
        trunk_id: str | None = None,
        account_id: str | None = None,
    ) -> Number:
        """Add a number; ``trunk_type`` defaults to the trunk's kind, else unpod."""
        body = {
            "number": number,
            "country": country,
            "status": status,
            "trunk_type": trunk_type,
            "trunk_id": trunk_id,
            "account_id": account_id,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return await self._client._get_model(Number, "POST", "/v1/numbers", json=body)

    async def get(self, ref: str) -> Number:
        """Return a number by number_id or E.164."""
        return await self._client._get_model(
            Number, "GET", f"/v1/numbers/{_segment(ref)}"
        )

    async def update(self, ref: str, *, status: str) -> Number:
        """Change a number's status (active, inactive, pending)."""
        path = f"/v1/numbers/{_segment(ref)}"
        return await self._client._get_model(
            Number, "PATCH", path, json={"status": status}
        )

    async def delete(self, ref: str) -> None:
        """Remove a number."""
        await self._client.request("DELETE", f"/v1/numbers/{_segment(ref)}")

    async def attach(self, ref: str, pipe_id: str) -> Number:
        """Attach a number to a pipe, moving it off any other pipe."""
        path = f"/v1/numbers/{_segment(ref)}/attach"
        return await self._client._get_model(
            Number, "POST", path, json={"pipe_id": pipe_id}
        )

    async def detach(self, ref: str) -> Number:
        """Detach a number from its pipe."""
        path = f"/v1/numbers/{_segment(ref)}/detach"
        return await self._client._get_model(Number, "POST", path)

    async def import_csv(self, data: str | bytes) -> ImportResult:
        """Import numbers from CSV text with a header row; see ImportResult.errors."""
        content = data.encode() if isinstance(data, str) else data
        return await self._client._get_model(
            ImportResult,
            "POST",
            "/v1/numbers/import",
            content=content,
            headers={"Content-Type": "text/csv"},
            timeout=IMPORT_TIMEOUT_S,
        )

    async def import_rows(self, rows: Sequence[Mapping[str, Any]]) -> ImportResult:
        """Import numbers from dicts shaped like :meth:`create`'s arguments."""
        return await self._client._get_model(
            ImportResult,
            "POST",
            "/v1/numbers/import",
            json=list(rows),
            timeout=IMPORT_TIMEOUT_S,
        )


class PipesResource:
    """``client.pipes``: Speech Pipes, where calls to their numbers go."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        *,
        name: str,
        runner_url: str,
        max_call_duration_s: int = 3600,
        account_id: str | None = None,
    ) -> Pipe:
        """Add a pipe whose runner is at ``runner_url`` (ws:// or wss://)."""
        body: dict[str, Any] = {
            "name": name,
            "runner_url": runner_url,
            "max_call_duration_s": max_call_duration_s,
        }
        if account_id is not None:
            body["account_id"] = account_id
        return await self._client._get_model(Pipe, "POST", "/v1/pipes", json=body)

    async def list(self, *, account_id: str | None = None) -> list[Pipe]:
        """Return the pipes this key sees, ordered by name."""
        params = {"account_id": account_id}
        return await self._client._get_list(Pipe, "/v1/pipes", params=params)

    async def get(self, pipe_id: str) -> Pipe:
        """Return one pipe."""
        path = f"/v1/pipes/{_segment(pipe_id)}"
        return await self._client._get_model(Pipe, "GET", path)

    async def update(
        self,
        pipe_id: str,
        *,
        name: str = UNSET,
        runner_url: str = UNSET,
        max_call_duration_s: int = UNSET,
    ) -> Pipe:
        """Change the given fields of a pipe."""
        body = _fields(
            name=name, runner_url=runner_url, max_call_duration_s=max_call_duration_s
        )
        path = f"/v1/pipes/{_segment(pipe_id)}"
        return await self._client._get_model(Pipe, "PATCH", path, json=body)

    async def delete(self, pipe_id: str) -> PipeDeleted:
        """Remove a pipe; its numbers are detached (see ``detached_numbers``)."""
        path = f"/v1/pipes/{_segment(pipe_id)}"
        return await self._client._get_model(PipeDeleted, "DELETE", path)


class TrunksResource:
    """``client.trunks``: the carriers (or PBXs) allowed to send calls."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        *,
        name: str,
        kind: str = "byo",
        allowed_addresses: Sequence[str] = (),
        default_country: str | None = None,
        termination_uri: str | None = None,
        username: str | None = None,
        password: str | None = None,
        register: bool = False,
        account_id: str | None = None,
    ) -> Trunk:
        """Add a trunk; ``password`` is write-only (``has_credentials`` says it is set)."""
        body = {
            "name": name,
            "kind": kind,
            "allowed_addresses": list(allowed_addresses),
            "default_country": default_country,
            "termination_uri": termination_uri,
            "username": username,
            "password": password,
            "register": register,
            "account_id": account_id,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return await self._client._get_model(Trunk, "POST", "/v1/trunks", json=body)

    async def list(
        self, *, kind: str | None = None, account_id: str | None = None
    ) -> list[Trunk]:
        """Return the trunks this key sees, ordered by name."""
        params = {"kind": kind, "account_id": account_id}
        return await self._client._get_list(Trunk, "/v1/trunks", params=params)

    async def get(self, trunk_id: str) -> Trunk:
        """Return one trunk (never its password)."""
        path = f"/v1/trunks/{_segment(trunk_id)}"
        return await self._client._get_model(Trunk, "GET", path)

    async def update(
        self,
        trunk_id: str,
        *,
        name: str = UNSET,
        allowed_addresses: Sequence[str] = UNSET,
        default_country: str | None = UNSET,
        termination_uri: str | None = UNSET,
        username: str | None = UNSET,
        password: str | None = UNSET,
        register: bool = UNSET,
    ) -> Trunk:
        """Change the given fields; ``None`` clears an optional one.

        Clearing both ``username`` and ``password`` removes the credentials.
        """
        body = _fields(
            name=name,
            allowed_addresses=allowed_addresses,
            default_country=default_country,
            termination_uri=termination_uri,
            username=username,
            password=password,
            register=register,
        )
        if "allowed_addresses" in body:
            body["allowed_addresses"] = list(body["allowed_addresses"])
        path = f"/v1/trunks/{_segment(trunk_id)}"
        return await self._client._get_model(Trunk, "PATCH", path, json=body)

    async def delete(self, trunk_id: str) -> None:
        """Remove a trunk; its numbers stay, without a trunk."""
        await self._client.request("DELETE", f"/v1/trunks/{_segment(trunk_id)}")


class ApiKeysResource:
    """``client.accounts.keys``: an account's API keys (operator only)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(self, account_id: str) -> ApiKeyCreated:
        """Add a key; its secret (``api_key``) is in this answer only."""
        path = f"/v1/accounts/{_segment(account_id)}/keys"
        return await self._client._get_model(ApiKeyCreated, "POST", path)

    async def list(self, account_id: str) -> list[ApiKey]:
        """Return the account's keys, revoked ones included, without secrets."""
        path = f"/v1/accounts/{_segment(account_id)}/keys"
        return await self._client._get_list(ApiKey, path)

    async def revoke(self, account_id: str, key_id: str) -> None:
        """Revoke a key: it stops working at once."""
        path = f"/v1/accounts/{_segment(account_id)}/keys/{_segment(key_id)}"
        await self._client.request("DELETE", path)


class AccountsResource:
    """``client.accounts``: customer accounts (operator only)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self.keys = ApiKeysResource(client)

    async def create(self, *, name: str) -> AccountCreated:
        """Add an account; its first key's secret (``api_key``) is shown this once."""
        return await self._client._get_model(
            AccountCreated, "POST", "/v1/accounts", json={"name": name}
        )

    async def list(self) -> list[Account]:
        """Return every account."""
        return await self._client._get_list(Account, "/v1/accounts")

    async def get(self, account_id: str) -> Account:
        """Return one account."""
        path = f"/v1/accounts/{_segment(account_id)}"
        return await self._client._get_model(Account, "GET", path)

    async def delete(self, account_id: str) -> None:
        """Remove an account (ConflictError while it owns numbers, pipes or trunks)."""
        await self._client.request("DELETE", f"/v1/accounts/{_segment(account_id)}")


class CallsResource:
    """``client.calls``: live and recent calls."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(
        self,
        *,
        active: bool | None = None,
        account_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[Call]:
        """Return one page of calls, newest first (see :meth:`iter`)."""
        page = await self.page(
            active=active, account_id=account_id, limit=limit, cursor=cursor
        )
        return page.data

    async def page(self, *, limit: int = 100, **filters: Any) -> CallList:
        """Return one page with its ``next_cursor`` (``None`` on the last page)."""
        params = {**filters, "limit": limit}
        return await self._client._get_model(
            CallList, "GET", "/v1/calls", params=params
        )

    async def iter(
        self, *, active: bool | None = None, account_id: str | None = None
    ) -> AsyncIterator[Call]:
        """Yield every matching call, newest first, fetching pages as needed."""
        cursor: str | None = None
        while True:
            page = await self.page(
                active=active,
                account_id=account_id,
                limit=ITER_PAGE_SIZE,
                cursor=cursor,
            )
            for call in page.data:
                yield call
            cursor = page.next_cursor
            if cursor is None:
                return

    async def get(self, call_id: str) -> Call:
        """Return one call."""
        path = f"/v1/calls/{_segment(call_id)}"
        return await self._client._get_model(Call, "GET", path)
