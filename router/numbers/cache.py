"""Per-instance cache of routing lookups, invalidated over Redis pub/sub.

Every router instance sharing one Redis caches ``route(e164)`` results
(unknown numbers included) and trunk lookups by source address. The stores
publish on ``<prefix>invalidate`` whenever routing changes: the E.164 of a
number, or ``trunk:<id>`` for a trunk. Pub/sub delivers at most once, so:

* the whole cache is flushed every time the subscription (re)connects;
* while the subscription is down, lookups bypass the cache;
* entries also expire after :data:`ENTRY_TTL`, a safety net against a message
  lost on a connection that never noticed it broke.

The embedded store needs none of this: :class:`EmbeddedCachedLookup` keeps
its answers while SQLite says the file has not changed (a pragma read, a third
of the cost of the lookups it saves), so every committed change is seen by the
next lookup, whoever made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Generic, TypeVar

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from router.numbers.models import Route, Trunk
from router.numbers.store import Store

if TYPE_CHECKING:
    from router.numbers.embedded import EmbeddedStore

__all__ = [
    "ENTRY_TTL",
    "MAX_ENTRIES",
    "CachedLookup",
    "DirectLookup",
    "EmbeddedCachedLookup",
    "Lookup",
]

log = structlog.get_logger("router.cache")

# Bounded so a scan of random numbers cannot grow memory without limit; 100k
# entries of a few hundred bytes each is tens of MB at most.
MAX_ENTRIES = 100_000
ENTRY_TTL = 60.0
RECONNECT_DELAY = 1.0
# redis-py pings an idle subscription this often, so a dead link is noticed.
HEALTH_CHECK_S = 15

K = TypeVar("K")
V = TypeVar("V")


class Lookup:
    """The two lookups on the INVITE path."""

    async def route(self, e164: str) -> Route | None:
        """The number and its pipe, or None for an unknown number."""
        raise NotImplementedError

    async def trunk_for_address(self, ip: str) -> Trunk | None:
        """The trunk whose allowed addresses contain ``ip``."""
        raise NotImplementedError

    async def start(self) -> None:
        """Begin whatever background work the lookup needs."""

    async def close(self) -> None:
        """Stop background work."""


class DirectLookup(Lookup):
    """Every lookup goes to the store (the embedded store is fast and local)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def route(self, e164: str) -> Route | None:
        return await self.store.route(e164)

    async def trunk_for_address(self, ip: str) -> Trunk | None:
        return await self.store.find_trunk_for_address(ip)


class EmbeddedCachedLookup(Lookup):
    """Lookups on the embedded store, kept until the store's file changes.

    Every lookup first reads :meth:`EmbeddedStore.data_generation`; when it
    differs from the one the cached answers were read at, they are all
    dropped. Call records written by this router change it too, which at
    most costs a refill per record batch.
    """

    def __init__(self, store: EmbeddedStore) -> None:
        self.store = store
        self.routes: _LruTtl[str, Route | None] = _LruTtl(MAX_ENTRIES, ENTRY_TTL)
        self.trunks: _LruTtl[str, Trunk | None] = _LruTtl(MAX_ENTRIES, ENTRY_TTL)
        self.hits = 0
        self.misses = 0
        self._generation: tuple[int, int] | None = None

    async def route(self, e164: str) -> Route | None:
        self._check_generation()
        found, route = self.routes.get(e164)
        if found:
            self.hits += 1
            return route
        self.misses += 1
        route = await self.store.route(e164)
        self.routes.put(e164, route)
        return route

    async def trunk_for_address(self, ip: str) -> Trunk | None:
        self._check_generation()
        found, trunk = self.trunks.get(ip)
        if found:
            return trunk
        trunk = await self.store.find_trunk_for_address(ip)
        self.trunks.put(ip, trunk)
        return trunk

    def _check_generation(self) -> None:
        generation = self.store.data_generation()
        if generation != self._generation:
            self.routes.clear()
            self.trunks.clear()
            self._generation = generation


class _LruTtl(Generic[K, V]):
    """A bounded mapping whose entries expire."""

    def __init__(self, max_entries: int, ttl: float) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        entry = self._data.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        self._data.move_to_end(key)
        return True, entry[1]

    def put(self, key: K, value: V) -> None:
        self._data[key] = (time.monotonic() + self.ttl, value)
        self._data.move_to_end(key)
        if len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class CachedLookup(Lookup):
    """Lookups cached in memory and dropped on invalidation messages."""

    def __init__(
        self,
        store: Store,
        redis_url: str,
        channel: str,
        client_name: str = "sip-router-cache",
    ) -> None:
        self.store = store
        self.redis_url = redis_url
        self.channel = channel
        self.routes: _LruTtl[str, Route | None] = _LruTtl(MAX_ENTRIES, ENTRY_TTL)
        self.trunks: _LruTtl[str, Trunk | None] = _LruTtl(MAX_ENTRIES, ENTRY_TTL)
        self.live = False
        self.subscriber: object | None = (
            None  # the subscribed connection, for operators
        )
        self.hits = 0
        self.misses = 0
        self.invalidations = 0
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        """Subscribe; wait briefly for the first subscription."""
        self._task = asyncio.get_running_loop().create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 2.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def route(self, e164: str) -> Route | None:
        if self.live:
            found, route = self.routes.get(e164)
            if found:
                self.hits += 1
                return route
        self.misses += 1
        route = await self.store.route(e164)
        if self.live:
            self.routes.put(e164, route)
        return route

    async def trunk_for_address(self, ip: str) -> Trunk | None:
        if self.live:
            found, trunk = self.trunks.get(ip)
            if found:
                return trunk
        trunk = await self.store.find_trunk_for_address(ip)
        if self.live:
            self.trunks.put(ip, trunk)
        return trunk

    def invalidate(self, message: str) -> None:
        """Drop what a message names: a number, a trunk, or everything."""
        self.invalidations += 1
        if message.startswith("trunk:") or message == "*":
            # Trunk address ranges can overlap: forget every source address.
            self.trunks.clear()
            if message == "*":
                self.routes.clear()
            return
        self.routes.pop(message)

    def flush(self) -> None:
        """Forget everything (after a reconnect, when messages may be lost)."""
        self.routes.clear()
        self.trunks.clear()

    async def _listen(self) -> None:
        while True:
            client = aioredis.Redis.from_url(
                self.redis_url,
                decode_responses=True,
                health_check_interval=HEALTH_CHECK_S,
            )
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                # redis-py reconnects and resubscribes a dropped subscription by
                # itself; messages sent meanwhile are lost, so flush then too.
                assert pubsub.connection is not None
                pubsub.connection.register_connect_callback(self._resubscribed)
                self.subscriber = pubsub.connection
                self.flush()
                self.live = True
                self._subscribed.set()
                log.info("cache_subscribed", channel=self.channel)
                await self._read(pubsub)
            except (RedisError, OSError) as error:
                log.warning("cache_subscription_lost", error=str(error))
            finally:
                self.live = False
                self.flush()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    await client.aclose()
            await asyncio.sleep(RECONNECT_DELAY)

    def _resubscribed(self, connection: object) -> None:
        log.info("cache_resubscribed", channel=self.channel)
        self.flush()

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                self.invalidate(str(message["data"]))
