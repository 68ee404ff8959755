"""The connection every part of the Redis store shares, and how it talks to Redis.

:class:`RedisCore` holds the client, the key base and the registered scripts, and
turns every Redis failure into a :class:`~router.numbers.errors.StoreError`:
connection failures, timeouts and a server that cannot serve right now become
:class:`~router.numbers.errors.StoreUnavailable` (the router answers 503 and the
carrier fails over), never a hang. The parts of the store (numbers, pipes, trunks,
accounts, calls) build on it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, Self, TypeVar, cast

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..call_store import DEFAULT_CALL_RETENTION_S
from ..checks import ID_PATTERN
from ..errors import NotFound, StoreError, StoreUnavailable
from ..factory import DEFAULT_KEY_PREFIX
from ..store import Store
from .keys import check_one_slot, invalidation_channel, key_base
from .scripts import LUA_PRELUDE, SCRIPTS

__all__ = [
    "COMMAND_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "FILTERED_SCAN_BATCH",
    "RedisCore",
    "decode_hash",
    "flat_fields",
    "pairs",
    "translate_errors",
]

T = TypeVar("T")

# A carrier retransmits an unanswered INVITE after T1 = 500 ms and gives up after
# 64*T1 (RFC 3261 §17.1.1.2). A lookup that has not answered within a second is better
# turned into a 503 so the carrier tries another route while it still can.
CONNECT_TIMEOUT_S = 1.0
COMMAND_TIMEOUT_S = 1.0

# One immediate retry replaces a pooled connection that died with a server restart;
# more retries (redis-py's default is 10, with backoff) would only delay the 503.
_RETRIES = 1

# When several filters are combined, the smallest index is scanned and the others are
# checked per item; a larger batch saves round trips when few items match.
FILTERED_SCAN_BATCH = 200

# Replies that mean "the server cannot serve writes or scripts right now" rather than
# "your command is wrong": a replica after failover, a long script, a resharding.
_UNAVAILABLE_REPLIES = (
    "READONLY",
    "BUSY",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "LOADING",
)


class RedisCore(Store):
    """The client, keys and scripts of a Redis store; the parts add the methods."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        call_retention_s: float = DEFAULT_CALL_RETENTION_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Use ``client``, which must decode responses (``decode_responses=True``).

        Raises:
            ValueError: ``key_prefix`` would not keep every key in one hash slot, or
                ``call_retention_s`` is not a positive number.
        """
        super().__init__(call_retention_s=call_retention_s, clock=clock)
        self._redis = client
        self._closed = False
        self.key_prefix = key_prefix
        self.base = key_base(key_prefix)
        self.channel = invalidation_channel(key_prefix)
        check_one_slot(key_prefix, self.base)
        self._scripts = {
            name: client.register_script(LUA_PRELUDE + body)
            for name, body in SCRIPTS.items()
        }

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        command_timeout: float = COMMAND_TIMEOUT_S,
        call_retention_s: float = DEFAULT_CALL_RETENTION_S,
        clock: Callable[[], float] = time.time,
    ) -> Self:
        """Create a store for the Redis at ``url`` (``redis://``, ``rediss://``, ``unix://``).

        No connection is made until the first call.
        """
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=connect_timeout,
            socket_timeout=command_timeout,
            retry=Retry(NoBackoff(), _RETRIES),
        )
        return cls(
            client,
            key_prefix=key_prefix,
            call_retention_s=call_retention_s,
            clock=clock,
        )

    # -- lifecycle -------------------------------------------------------------------

    async def ping(self) -> None:
        """Check that Redis answers. Raises :class:`StoreUnavailable`."""
        with translate_errors():
            await self._client().ping()

    async def close(self) -> None:
        """Close the connection pool; later calls raise :class:`StoreUnavailable`."""
        self._closed = True
        await self._redis.aclose()

    # -- for the parts of the store --------------------------------------------------

    def _key(self, kind: str, ident: str) -> str:
        return f"{self.base}{kind}{ident}"

    def _client(self) -> aioredis.Redis:
        # redis-py reconnects a closed client on its next command; a closed store
        # must fail instead, as the embedded one does.
        if self._closed:
            raise StoreUnavailable("the Redis store is closed")
        return self._redis

    async def _call(
        self, script: str, keys: Sequence[str], args: Sequence[str | int]
    ) -> Any:
        """Run one of the Lua scripts with the key base and channel prepended."""
        self._client()  # a closed store fails before the script reconnects
        with translate_errors():
            return await self._scripts[script](
                keys=keys, args=[self.base, self.channel, *args]
            )

    async def _hash(
        self, kind: Literal["pipe", "trunk", "account", "api_key", "call"], ident: str
    ) -> dict[str, str]:
        if not ID_PATTERN.fullmatch(ident):
            raise NotFound(kind, ident)
        with translate_errors():
            fields = cast(
                "dict[str, str]",
                await self._client().hgetall(self._key(kind + ":", ident)),
            )
        if not fields:
            raise NotFound(kind, ident)
        return fields

    async def _add_object(
        self, kind: str, ident: str, fields: list[str], account_id: str | None
    ) -> None:
        """Write an object's hash and its id indexes in one MULTI transaction."""
        with translate_errors():
            async with self._client().pipeline(transaction=True) as pipe:
                self._queue_add_object(pipe, kind, ident, fields, account_id)
                await pipe.execute()

    def _queue_add_object(
        self,
        pipe: aioredis.client.Pipeline,
        kind: str,
        ident: str,
        fields: list[str],
        account_id: str | None,
    ) -> None:
        """Queue the writes of an object's hash and its id indexes on ``pipe``."""
        pipe.hset(self._key(kind + ":", ident), items=fields)
        pipe.zadd(self._key(kind + "s", ""), {ident: 0})
        if account_id is not None:
            pipe.zadd(self._key(kind + "s:account:", account_id), {ident: 0})

    async def _list_objects(
        self, kind: str, account_id: str | None
    ) -> list[dict[str, str]]:
        index = self._key(
            kind + "s", "" if account_id is None else ":account:" + account_id
        )
        reply = await self._call("list_objects", [index], [kind + ":"])
        return [pairs(flat) for flat in reply]

    async def _smallest(self, indexes: list[str], everything: str) -> str:
        """Return the index with the fewest members; ``everything`` when none is set."""
        if not indexes:
            return everything
        if len(indexes) == 1:
            return indexes[0]
        with translate_errors():
            async with self._client().pipeline(transaction=False) as pipe:
                for index in indexes:
                    pipe.zcard(index)
                sizes = await pipe.execute()
        return min(zip(sizes, indexes, strict=True))[1]

    async def _scan_index(
        self,
        script: str,
        index: str,
        start: str,
        wanted: int,
        batch: int,
        pick: Callable[[str, dict[str, str]], T | None],
    ) -> list[T]:
        """Collect up to ``wanted`` items from a sorted-set index, a batch per call.

        ``script`` returns ``{member, hash}`` pairs from ``start`` on; ``pick`` turns
        one into an item, or ``None`` to skip it. A member whose hash has gone since
        the index was read is skipped without asking ``pick``.
        """
        found: list[T] = []
        while len(found) < wanted:
            reply = await self._call(script, [index], [start, batch])
            for member, flat in reply:
                fields = pairs(flat)
                item = pick(member, fields) if fields else None
                if item is not None:
                    found.append(item)
            if len(reply) < batch:
                break
            start = "(" + reply[-1][0]
        return found[:wanted]


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn an unreachable, slow or not-serving Redis into StoreUnavailable."""
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise StoreUnavailable(f"Redis: {exc}") from exc
    except redis_errors.ResponseError as exc:
        if str(exc).startswith(_UNAVAILABLE_REPLIES):
            raise StoreUnavailable(f"Redis: {exc}") from exc
        raise StoreError(f"Redis: {exc}") from exc
    except OSError as exc:
        raise StoreUnavailable(f"Redis: {exc}") from exc


def pairs(flat: Sequence[str]) -> dict[str, str]:
    """Turn a flat HGETALL reply from a script into a dict."""
    items = iter(flat)
    return dict(zip(items, items, strict=True))


def flat_fields(fields: Mapping[str, object | None]) -> list[str]:
    """Return field/value pairs for HSET, leaving out fields that are None."""
    flat: list[str] = []
    for name, value in fields.items():
        if value is not None:
            flat += [name, str(value)]
    return flat


def decode_hash(kind: str, build: Callable[[], T]) -> T:
    """Return ``build()``; a field missing or malformed in it is a StoreError.

    Raises:
        StoreError: naming the kind of record, when Redis holds a broken one.
    """
    try:
        return build()
    except (KeyError, ValueError) as exc:
        raise StoreError(f"malformed {kind} record in Redis: {exc!r}") from None
