"""``client.trunks``: the carriers (or PBXs) allowed to send calls."""

from __future__ import annotations

from collections.abc import Sequence

from router.api.models import Trunk
from router.client.base import UNSET, Resource, given_fields, non_null_fields, segment

__all__ = ["TrunksResource"]


class TrunksResource(Resource):
    """``client.trunks``: the carriers (or PBXs) allowed to send calls."""

    async def create(
        self,
        *,
        name: str,
        kind: str = "byo",
        allowed_addresses: Sequence[str] = (),
        default_country: str | None = None,
        termination_uri: str | None = None,
        username: str | None = None,
        password: str | None = None,
        register: bool = False,
        account_id: str | None = None,
    ) -> Trunk:
        """Add a trunk; ``password`` is write-only (``has_credentials`` says it is set)."""
        body = non_null_fields(
            name=name,
            kind=kind,
            allowed_addresses=list(allowed_addresses),
            default_country=default_country,
            termination_uri=termination_uri,
            username=username,
            password=password,
            register=register,
            account_id=account_id,
        )
        return await self._client._get_model(Trunk, "POST", "/v1/trunks", json=body)

    async def list(
        self, *, kind: str | None = None, account_id: str | None = None
    ) -> list[Trunk]:
        """Return the trunks this key sees, ordered by name."""
        params = {"kind": kind, "account_id": account_id}
        return await self._client._get_list(Trunk, "/v1/trunks", params=params)

    async def get(self, trunk_id: str) -> Trunk:
        """Return one trunk (never its password)."""
        path = f"/v1/trunks/{segment(trunk_id)}"
        return await self._client._get_model(Trunk, "GET", path)

    async def update(
        self,
        trunk_id: str,
        *,
        name: str = UNSET,
        allowed_addresses: Sequence[str] = UNSET,
        default_country: str | None = UNSET,
        termination_uri: str | None = UNSET,
        username: str | None = UNSET,
        password: str | None = UNSET,
        register: bool = UNSET,
    ) -> Trunk:
        """Change the given fields; ``None`` clears an optional one.

        Clearing both ``username`` and ``password`` removes the credentials.
        """
        body = given_fields(
            name=name,
            allowed_addresses=allowed_addresses,
            default_country=default_country,
            termination_uri=termination_uri,
            username=username,
            password=password,
            register=register,
        )
        if "allowed_addresses" in body:
            body["allowed_addresses"] = list(body["allowed_addresses"])
        path = f"/v1/trunks/{segment(trunk_id)}"
        return await self._client._get_model(Trunk, "PATCH", path, json=body)

    async def delete(self, trunk_id: str) -> None:
        """Remove a trunk; its numbers stay, without a trunk."""
        await self._client.request("DELETE", f"/v1/trunks/{segment(trunk_id)}")
