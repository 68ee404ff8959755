"""Per-instance route caches on one Redis: invalidated on change, flushed on reconnect."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from router.numbers.cache import CachedLookup
from router.numbers.models import Route
from router.numbers.redis_store import RedisStore

from .conftest import delete_prefixed_keys


@pytest.fixture
async def two_instances(
    redis_url: str,
) -> AsyncIterator[tuple[RedisStore, CachedLookup, CachedLookup]]:
    prefix = f"test-cache-{secrets.token_hex(4)}:"
    admin = RedisStore.from_url(redis_url, key_prefix=prefix)
    first = CachedLookup(
        RedisStore.from_url(redis_url, key_prefix=prefix), redis_url, admin.channel
    )
    second = CachedLookup(
        RedisStore.from_url(redis_url, key_prefix=prefix), redis_url, admin.channel
    )
    await first.start()
    await second.start()
    try:
        yield admin, first, second
    finally:
        for lookup in (first, second):
            await lookup.close()
            await lookup.store.close()
        await admin.close()
        delete_prefixed_keys(redis_url, prefix)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 3.0
) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


def pipe_of(route: Route | None) -> str | None:
    return route.number.pipe_id if route is not None else None


async def test_attach_on_one_instance_reaches_the_other_instances_cache(
    two_instances: tuple[RedisStore, CachedLookup, CachedLookup],
) -> None:
    admin, first, second = two_instances
    pipe_a = await admin.create_pipe(name="a", runner_url="ws://127.0.0.1:1/")
    pipe_b = await admin.create_pipe(name="b", runner_url="ws://127.0.0.1:2/")
    number = await admin.create_number("+14155550100")
    await admin.attach(number.number_id, pipe_a.pipe_id)

    assert pipe_of(await second.route("+14155550100")) == pipe_a.pipe_id
    assert pipe_of(await second.route("+14155550100")) == pipe_a.pipe_id
    assert second.hits >= 1  # the second lookup came from memory

    await first.store.attach(number.number_id, pipe_b.pipe_id)

    async def moved() -> bool:
        return pipe_of(await second.route("+14155550100")) == pipe_b.pipe_id

    assert await eventually(moved)


async def test_unknown_number_cached_until_created(
    two_instances: tuple[RedisStore, CachedLookup, CachedLookup],
) -> None:
    admin, _, second = two_instances
    assert await second.route("+14155550123") is None
    await admin.create_number("+14155550123")

    async def known() -> bool:
        return await second.route("+14155550123") is not None

    assert await eventually(known)


async def test_cache_is_flushed_and_bypassed_when_subscription_drops(
    redis_url: str, two_instances: tuple[RedisStore, CachedLookup, CachedLookup]
) -> None:
    admin, _, second = two_instances
    pipe_a = await admin.create_pipe(name="a", runner_url="ws://127.0.0.1:1/")
    number = await admin.create_number("+14155550100")
    await second.route("+14155550100")
    assert len(second.routes) == 1

    # Kill only this lookup's subscriber connection, as a network fault would;
    # the lookup must flush, then resubscribe by itself.
    writer = second.subscriber._writer  # type: ignore[union-attr]
    host, port = writer.get_extra_info("sockname")[:2]
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert (
            await client.client_kill_filter(_type="pubsub", addr=f"{host}:{port}") == 1
        )
    finally:
        await client.aclose()

    async def flushed() -> bool:
        return len(second.routes) == 0

    assert await eventually(flushed)
    await admin.attach(number.number_id, pipe_a.pipe_id)

    async def fresh() -> bool:
        return pipe_of(await second.route("+14155550100")) == pipe_a.pipe_id

    assert await eventually(fresh)
