"""``client.numbers``: phone numbers, their pipes, and bulk import."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from router.api.models import ImportResult, Number, NumberList
from router.client.base import Resource, follow_cursors, non_null_fields, segment

__all__ = ["IMPORT_TIMEOUT_S", "NumbersResource"]

# An import of thousands of rows takes seconds, not the milliseconds of other calls.
IMPORT_TIMEOUT_S = 120.0


class NumbersResource(Resource):
    """``client.numbers``: list, create, attach, detach, import."""

    async def list(
        self,
        *,
        status: str | None = None,
        country: str | None = None,
        trunk_type: str | None = None,
        pipe_id: str | None = None,
        account_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[Number]:
        """Return one page of numbers matching every filter given (see :meth:`iter`)."""
        page = await self.page(
            status=status,
            country=country,
            trunk_type=trunk_type,
            pipe_id=pipe_id,
            account_id=account_id,
            limit=limit,
            cursor=cursor,
        )
        return page.data

    async def page(self, *, limit: int = 100, **filters: Any) -> NumberList:
        """Return one page with its ``next_cursor`` (``None`` on the last page)."""
        params = {**filters, "limit": limit}
        return await self._client._get_model(
            NumberList, "GET", "/v1/numbers", params=params
        )

    def iter(
        self,
        *,
        status: str | None = None,
        country: str | None = None,
        trunk_type: str | None = None,
        pipe_id: str | None = None,
        account_id: str | None = None,
    ) -> AsyncIterator[Number]:
        """Yield every matching number, fetching pages as needed."""
        return follow_cursors(
            self.page,
            status=status,
            country=country,
            trunk_type=trunk_type,
            pipe_id=pipe_id,
            account_id=account_id,
        )

    async def create(
        self,
        *,
        number: str,
        country: str | None = None,
        status: str = "active",
        trunk_type: str | None = None,
        trunk_id: str | None = None,
        account_id: str | None = None,
    ) -> Number:
        """Add a number; ``trunk_type`` defaults to the trunk's kind, else unpod."""
        body = non_null_fields(
            number=number,
            country=country,
            status=status,
            trunk_type=trunk_type,
            trunk_id=trunk_id,
            account_id=account_id,
        )
        return await self._client._get_model(Number, "POST", "/v1/numbers", json=body)

    async def get(self, ref: str) -> Number:
        """Return a number by number_id or E.164."""
        return await self._client._get_model(
            Number, "GET", f"/v1/numbers/{segment(ref)}"
        )

    async def update(self, ref: str, *, status: str) -> Number:
        """Change a number's status (active, inactive, pending)."""
        path = f"/v1/numbers/{segment(ref)}"
        return await self._client._get_model(
            Number, "PATCH", path, json={"status": status}
        )

    async def delete(self, ref: str) -> None:
        """Remove a number."""
        await self._client.request("DELETE", f"/v1/numbers/{segment(ref)}")

    async def attach(self, ref: str, pipe_id: str) -> Number:
        """Attach a number to a pipe, moving it off any other pipe."""
        path = f"/v1/numbers/{segment(ref)}/attach"
        return await self._client._get_model(
            Number, "POST", path, json={"pipe_id": pipe_id}
        )

    async def detach(self, ref: str) -> Number:
        """Detach a number from its pipe."""
        path = f"/v1/numbers/{segment(ref)}/detach"
        return await self._client._get_model(Number, "POST", path)

    async def import_csv(self, data: str | bytes) -> ImportResult:
        """Import numbers from CSV text with a header row; see ImportResult.errors."""
        content = data.encode() if isinstance(data, str) else data
        return await self._client._get_model(
            ImportResult,
            "POST",
            "/v1/numbers/import",
            content=content,
            headers={"Content-Type": "text/csv"},
            timeout=IMPORT_TIMEOUT_S,
        )

    async def import_rows(self, rows: Sequence[Mapping[str, Any]]) -> ImportResult:
        """Import numbers from dicts shaped like :meth:`create`'s arguments."""
        return await self._client._get_model(
            ImportResult,
            "POST",
            "/v1/numbers/import",
            json=list(rows),
            timeout=IMPORT_TIMEOUT_S,
        )
