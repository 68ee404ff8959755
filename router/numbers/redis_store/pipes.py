"""Pipes in Redis: the hash ``pipe:<id>`` and the sorted set of its numbers.

Changing or deleting a pipe runs as one script that publishes each of its numbers on
the invalidation channel, since each of their routes changed.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..checks import ID_PATTERN, check_owner
from ..errors import NotFound
from ..models import Pipe
from .core import RedisCore, decode_hash, flat_fields, pairs, translate_errors

__all__ = ["RedisPipes", "pipe_from_hash", "pipe_to_hash"]


class RedisPipes(RedisCore):
    """The pipe methods of :class:`RedisStore`."""

    async def _insert_pipe(self, pipe: Pipe) -> None:
        """Write a new pipe and its indexes in one transaction."""
        await self._add_object(
            "pipe", pipe.pipe_id, pipe_to_hash(pipe), pipe.account_id
        )

    async def get_pipe(self, pipe_id: str, *, account_id: str | None = None) -> Pipe:
        """Return a pipe; see :meth:`Store.get_pipe`."""
        pipe = pipe_from_hash(await self._hash("pipe", pipe_id))
        check_owner(pipe.account_id, account_id, "pipe", pipe_id)
        return pipe

    async def list_pipes(self, *, account_id: str | None = None) -> list[Pipe]:
        """Return pipes ordered by name then id; see :meth:`Store.list_pipes`."""
        hashes = await self._list_objects("pipe", account_id)
        pipes = [pipe_from_hash(fields) for fields in hashes if fields]
        return sorted(pipes, key=lambda pipe: (pipe.name, pipe.pipe_id))

    async def _update_pipe(self, pipe_id: str, changes: dict[str, str | int]) -> Pipe:
        """Change fields of a pipe in one script; see :meth:`Store.update_pipe`."""
        if not ID_PATTERN.fullmatch(pipe_id):
            raise NotFound("pipe", pipe_id)
        reply = await self._call(
            "update_pipe", [self._key("pipe:", pipe_id)], flat_fields(changes)
        )
        if not reply:
            raise NotFound("pipe", pipe_id)
        return pipe_from_hash(pairs(reply))

    async def delete_pipe(self, pipe_id: str) -> int:
        """Remove a pipe and detach its numbers; see :meth:`Store.delete_pipe`."""
        if not ID_PATTERN.fullmatch(pipe_id):
            raise NotFound("pipe", pipe_id)
        detached = await self._call(
            "delete_pipe", [self._key("pipe:", pipe_id)], [pipe_id]
        )
        if detached < 0:
            raise NotFound("pipe", pipe_id)
        return int(detached)

    async def pipe_numbers(self, pipe_id: str) -> list[str]:
        """Return the numbers on a pipe; see :meth:`Store.pipe_numbers`."""
        if not ID_PATTERN.fullmatch(pipe_id):
            raise NotFound("pipe", pipe_id)
        key = self._key("pipe:", pipe_id)
        with translate_errors():
            async with self._client().pipeline(transaction=True) as pipe:
                pipe.exists(key)
                pipe.zrange(key + ":numbers", 0, -1)
                exists, numbers = await pipe.execute()
        if not exists:
            raise NotFound("pipe", pipe_id)
        return list(numbers)


def pipe_to_hash(pipe: Pipe) -> list[str]:
    """Return the field/value pairs of a pipe's hash."""
    return flat_fields(
        {
            "pipe_id": pipe.pipe_id,
            "name": pipe.name,
            "runner_url": pipe.runner_url,
            "max_call_duration_s": pipe.max_call_duration_s,
            "account_id": pipe.account_id,
        }
    )


def pipe_from_hash(fields: Mapping[str, str]) -> Pipe:
    """Return the pipe a hash holds. Raises StoreError for a broken one."""
    return decode_hash(
        "pipe",
        lambda: Pipe(
            fields["pipe_id"],
            fields["name"],
            fields["runner_url"],
            int(fields["max_call_duration_s"]),
            fields.get("account_id"),
        ),
    )
