"""Fixtures for the admin API tests: a store, a live server on loopback, and clients.

``store`` is parametrised over the embedded store (a SQLite file in the test's
temporary directory) and Redis (a random key prefix whose keys are deleted
afterwards). ``api`` serves :func:`router.api.app.create_app` with uvicorn on a free
127.0.0.1 port in the test's own event loop, exactly as the router does.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from router.api.app import create_app
from router.api.server import ApiServer
from router.client import AsyncClient
from router.numbers.embedded import EmbeddedStore
from router.numbers.redis_store import RedisStore
from router.numbers.store import Store

__all__ = [
    "LOOPBACK",
    "OPERATOR_TOKEN",
    "Api",
    "Tenant",
    "acme",
    "api",
    "globex",
    "operator",
    "store",
]

LOOPBACK = "127.0.0.1"
OPERATOR_TOKEN = "op_" + secrets.token_urlsafe(24)


@dataclass
class Api:
    """A live admin API: where it listens and the store behind it."""

    base_url: str
    store: Store
    server: ApiServer

    def client(self, api_key: str) -> AsyncClient:
        """Return a client with ``api_key`` (the caller closes it)."""
        return AsyncClient(api_key=api_key, base_url=self.base_url)


@dataclass
class Tenant:
    """An account made through the API, with its key and a client using it."""

    account_id: str
    api_key: str
    client: AsyncClient


def _delete_prefixed_keys(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted after the test."""
    prefix = f"test-api-{secrets.token_hex(6)}:"
    yield prefix
    _delete_prefixed_keys(redis_url, prefix)


@pytest.fixture(params=["embedded", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The test's own store, embedded or Redis, closed afterwards."""
    handle: Store
    if request.param == "embedded":
        handle = await EmbeddedStore.open(tmp_path / "store" / "router.db")
    else:
        # Requested only here, so that embedded tests run even when Redis is down.
        url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_prefix")
        handle = RedisStore.from_url(url, key_prefix=prefix)
    yield handle
    await handle.close()


async def start_api(store: Store, operator_token: str | None = OPERATOR_TOKEN) -> Api:
    """Serve the API over ``store`` on a free loopback port."""
    server = ApiServer(create_app(store, operator_token=operator_token))
    await server.start(LOOPBACK, 0)
    return Api(f"http://{LOOPBACK}:{server.port}", store, server)


@pytest.fixture
async def api(store: Store) -> AsyncIterator[Api]:
    """The admin API, live on loopback, over the test's store."""
    live = await start_api(store)
    yield live
    await live.server.stop()


@pytest.fixture
async def operator(api: Api) -> AsyncIterator[AsyncClient]:
    """A client with the operator token."""
    async with api.client(OPERATOR_TOKEN) as client:
        yield client


async def _tenant(operator: AsyncClient, api: Api, name: str) -> Tenant:
    account = await operator.accounts.create(name=name)
    client = api.client(account.api_key)
    return Tenant(account.account_id, account.api_key, client)


@pytest.fixture
async def acme(operator: AsyncClient, api: Api) -> AsyncIterator[Tenant]:
    """An account and a client with its key."""
    tenant = await _tenant(operator, api, "acme")
    yield tenant
    await tenant.client.aclose()


@pytest.fixture
async def globex(operator: AsyncClient, api: Api) -> AsyncIterator[Tenant]:
    """A second account, to check that accounts cannot see each other."""
    tenant = await _tenant(operator, api, "globex")
    yield tenant
    await tenant.client.aclose()
