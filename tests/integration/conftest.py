"""Store fixtures: the same tests run against the embedded store and Redis.

``backend`` is parametrised over both. Each test gets a store of its own: a SQLite file
in the test's temporary directory, or a Redis key prefix with random characters whose
keys are all deleted afterwards, so tests can share one Redis server.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from router.numbers.embedded import EmbeddedStore
from router.numbers.redis_store import RedisStore
from router.numbers.store import Store

__all__ = ["Backend", "backend", "delete_prefixed_keys", "redis_prefix", "store"]


class Backend:
    """How to open (more) handles on one test's store.

    ``connect()`` opens a new, independent handle (its own SQLite connection or its own
    Redis connection pool), as a second router instance or the command line would.
    It may be called from another thread's event loop; the caller closes the handle.
    """

    def __init__(
        self,
        kind: str,
        *,
        db_path: Path | None = None,
        redis_url: str | None = None,
        prefix: str | None = None,
    ) -> None:
        self.kind = kind
        self.db_path = db_path
        self.redis_url = redis_url
        self.prefix = prefix

    async def connect(self) -> Store:
        """Open a new handle on this test's store."""
        if self.kind == "embedded":
            assert self.db_path is not None
            return await EmbeddedStore.open(self.db_path)
        assert self.redis_url is not None and self.prefix is not None
        return RedisStore.from_url(self.redis_url, key_prefix=self.prefix)


def delete_prefixed_keys(url: str, prefix: str) -> None:
    """Delete every key that starts with ``prefix`` (a test's own keys)."""
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
    prefix = f"test-{secrets.token_hex(6)}:"
    yield prefix
    delete_prefixed_keys(redis_url, prefix)


@pytest.fixture(params=["embedded", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """One test's store, embedded or Redis."""
    if request.param == "embedded":
        return Backend("embedded", db_path=tmp_path / "store" / "router.db")
    # Requested only here, so that embedded tests run even when Redis is down.
    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    return Backend("redis", redis_url=url, prefix=prefix)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    """An open handle on the test's store, closed afterwards."""
    handle = await backend.connect()
    yield handle
    await handle.close()
