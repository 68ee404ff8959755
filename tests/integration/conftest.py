"""Store fixtures: the same tests run against the embedded store and Redis.

``backend`` is parametrised over both. Each test gets a store of its own: a SQLite file
in the test's temporary directory, or a Redis key prefix with random characters whose
keys are all deleted afterwards, so tests can share one Redis server.

``router_env`` (and ``make_router_env``, for other settings) runs a whole router on
127.0.0.1 for call-flow tests: a free SIP port, a small RTP range, an embedded store
and the echo runner, with one number attached to a pipe on that runner.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from router.app import Router
from router.numbers.embedded import EmbeddedStore
from router.numbers.models import NumberStatus
from router.numbers.redis_store import RedisStore
from router.numbers.store import Store
from router.runner.echo import EchoRunner, serve_echo_runner
from router.server import SipRouter
from router.settings import Settings
from tests.integration.sipua import wait_until

__all__ = [
    "Backend",
    "RouterEnv",
    "backend",
    "delete_prefixed_keys",
    "make_router_env",
    "redis_prefix",
    "router_env",
    "store",
]


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


# -- a running router for call-flow tests ---------------------------------------------

# Each router gets RTP ports of its own from a random block well away from the
# default range, so tests running side by side rarely contend; the pool skips
# ports another process holds anyway.
RTP_BLOCK_PORTS = 40
RTP_BLOCKS_START = 30_000
RTP_BLOCKS_END = 60_000


@dataclass
class RouterEnv:
    """A router on 127.0.0.1, its embedded store and an echo runner, for one test.

    ``number`` is attached to a pipe whose runner is the echo runner with no
    test hooks; :meth:`add_number` makes more numbers with other runner URLs.
    """

    router: Router
    store: EmbeddedStore
    runner: EchoRunner
    number: str = "+14155550100"
    _next_number: int = 101

    @property
    def sip(self) -> SipRouter:
        """The router's SIP side."""
        assert self.router.sip is not None
        return self.router.sip

    @property
    def address(self) -> tuple[str, int]:
        """Where the router takes SIP, over UDP and TCP."""
        return ("127.0.0.1", self.sip.port)

    def runner_url(self, query: str = "") -> str:
        """The echo runner's URL with test hooks (``ready_delay=2``, ...)."""
        return f"ws://127.0.0.1:{self.runner.port}/" + (f"?{query}" if query else "")

    async def add_number(
        self,
        query: str = "",
        *,
        runner_url: str | None = None,
        status: NumberStatus = NumberStatus.ACTIVE,
        attach: bool = True,
    ) -> str:
        """Create a number on a pipe of its own and return its E.164 form."""
        e164 = f"+1415555{self._next_number:04d}"
        self._next_number += 1
        number = await self.store.create_number(e164, country="US", status=status)
        if attach:
            pipe = await self.store.create_pipe(
                name=f"pipe-{e164}", runner_url=runner_url or self.runner_url(query)
            )
            await self.store.attach(number.number_id, pipe.pipe_id)
        return e164

    def is_idle(self) -> bool:
        """No call, no RTP port and no runner stream left."""
        return (
            self.sip.active_calls == 0
            and self.sip.port_pool.in_use == 0
            and self.runner.sessions == 0
        )

    def describe(self) -> str:
        """What is still held, for a failure message."""
        return (
            f"calls={self.sip.active_calls} ports={self.sip.port_pool.in_use} "
            f"runner={self.runner.sessions}"
        )

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until every call has released its port and runner stream."""
        await wait_until(self.is_idle, timeout, what=self.describe)


RouterEnvFactory = Callable[..., Awaitable[RouterEnv]]

# With SIP port 0 the router binds UDP on a free port, then TCP on the same
# number, which a client connection elsewhere on the machine may hold.
ROUTER_START_ATTEMPTS = 5


async def start_router(settings: Settings, store: EmbeddedStore) -> Router:
    """Start a router on a free SIP port, trying again when TCP finds it taken."""
    for _attempt in range(ROUTER_START_ATTEMPTS - 1):
        router = Router(settings, store=store)
        try:
            await router.start()
        except OSError:
            await router.stop()
            continue
        return router
    router = Router(settings, store=store)
    await router.start()
    return router


@pytest.fixture
async def make_router_env(tmp_path: Path) -> AsyncIterator[RouterEnvFactory]:
    """Start routers with settings overrides (``rtp_timeout=1.0`` ...); stop them after."""
    started: list[tuple[Router, EmbeddedStore, EchoRunner]] = []

    async def start(**overrides: Any) -> RouterEnv:
        runner = await serve_echo_runner("127.0.0.1", 0)
        store = await EmbeddedStore.open(tmp_path / f"router-{len(started)}.db")
        low = random.randrange(RTP_BLOCKS_START, RTP_BLOCKS_END, 2)
        values: dict[str, Any] = {
            "bind": "127.0.0.1",
            "rtp_ports": f"{low}-{low + RTP_BLOCK_PORTS - 1}",
            "http_port": 0,
            "ringing_timeout": 5.0,
            # Loopback sources are the carrier here; the edge has tests of its own.
            "allow_unlisted_sources": True,
            "default_country": "US",
            **overrides,
        }
        # Settings insists on a real port; 0 (any free port) is set after validation.
        settings = Settings(**values).model_copy(update={"sip_port": 0})
        router = await start_router(settings, store)
        started.append((router, store, runner))
        env = RouterEnv(router, store, runner)
        pipe = await store.create_pipe(name="pipe-A", runner_url=env.runner_url())
        number = await store.create_number(env.number, country="US")
        await store.attach(number.number_id, pipe.pipe_id)
        return env

    yield start
    for router, store, runner in reversed(started):
        await router.stop()
        await runner.close()
        await store.close()


@pytest.fixture
async def router_env(make_router_env: RouterEnvFactory) -> RouterEnv:
    """A router with default test settings."""
    return await make_router_env()
