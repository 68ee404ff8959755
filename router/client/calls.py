"""``client.calls``: live and recent calls, newest first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from router.api.models import Call, CallList
from router.client.base import Resource, follow_cursors, segment

__all__ = ["CallsResource"]


class CallsResource(Resource):
    """``client.calls``: live and recent calls."""

    async def list(
        self,
        *,
        active: bool | None = None,
        account_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[Call]:
        """Return one page of calls, newest first (see :meth:`iter`)."""
        page = await self.page(
            active=active, account_id=account_id, limit=limit, cursor=cursor
        )
        return page.data

    async def page(self, *, limit: int = 100, **filters: Any) -> CallList:
        """Return one page with its ``next_cursor`` (``None`` on the last page)."""
        params = {**filters, "limit": limit}
        return await self._client._get_model(
            CallList, "GET", "/v1/calls", params=params
        )

    def iter(
        self, *, active: bool | None = None, account_id: str | None = None
    ) -> AsyncIterator[Call]:
        """Yield every matching call, newest first, fetching pages as needed."""
        return follow_cursors(self.page, active=active, account_id=account_id)

    async def get(self, call_id: str) -> Call:
        """Return one call."""
        path = f"/v1/calls/{segment(call_id)}"
        return await self._client._get_model(Call, "GET", path)
