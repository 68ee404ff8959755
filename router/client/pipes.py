"""``client.pipes``: Speech Pipes, where calls to their numbers go."""

from __future__ import annotations

from typing import Any

from router.api.models import Pipe, PipeDeleted
from router.client.base import UNSET, Resource, given_fields, segment

__all__ = ["PipesResource"]


class PipesResource(Resource):
    """``client.pipes``: Speech Pipes, where calls to their numbers go."""

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
        path = f"/v1/pipes/{segment(pipe_id)}"
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
        body = given_fields(
            name=name, runner_url=runner_url, max_call_duration_s=max_call_duration_s
        )
        path = f"/v1/pipes/{segment(pipe_id)}"
        return await self._client._get_model(Pipe, "PATCH", path, json=body)

    async def delete(self, pipe_id: str) -> PipeDeleted:
        """Remove a pipe; its numbers are detached (see ``detached_numbers``)."""
        path = f"/v1/pipes/{segment(pipe_id)}"
        return await self._client._get_model(PipeDeleted, "DELETE", path)
