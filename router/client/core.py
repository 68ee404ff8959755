"""AsyncClient: one connection to the admin API, sending requests and typing errors."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from router.client.accounts import AccountsResource
from router.client.calls import CallsResource
from router.client.errors import APIConnectionError, error_from
from router.client.numbers import NumbersResource
from router.client.pipes import PipesResource
from router.client.trunks import TrunksResource

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TIMEOUT_S", "AsyncClient"]

DEFAULT_BASE_URL = "http://127.0.0.1:8080"

# Admin calls take milliseconds; ten seconds separates a slow router from a dead one.
# (Imports, which take seconds, have their own IMPORT_TIMEOUT_S.)
DEFAULT_TIMEOUT_S = 10.0

_M = TypeVar("_M", bound=BaseModel)


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
            raise error_from(response)
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
