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

from router.client.accounts import AccountsResource, ApiKeysResource
from router.client.base import UNSET
from router.client.calls import CallsResource
from router.client.core import DEFAULT_BASE_URL, DEFAULT_TIMEOUT_S, AsyncClient
from router.client.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
    ValidationError,
)
from router.client.numbers import IMPORT_TIMEOUT_S, NumbersResource
from router.client.pipes import PipesResource
from router.client.trunks import TrunksResource

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT_S",
    "IMPORT_TIMEOUT_S",
    "ITER_PAGE_SIZE",
    "UNSET",
    "APIConnectionError",
    "APIError",
    "AccountsResource",
    "ApiKeysResource",
    "AsyncClient",
    "AuthenticationError",
    "CallsResource",
    "ConflictError",
    "NotFoundError",
    "NumbersResource",
    "PermissionDeniedError",
    "PipesResource",
    "ServiceUnavailableError",
    "TrunksResource",
    "ValidationError",
]

# As large as the API allows: iterating fetches as few pages as possible. The resources'
# ``iter`` methods read it from here at call time, so changing it takes effect.
ITER_PAGE_SIZE = 1000
