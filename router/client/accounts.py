"""``client.accounts`` and ``client.accounts.keys``: customer accounts (operator only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from router.api.models import Account, AccountCreated, ApiKey, ApiKeyCreated
from router.client.base import Resource, segment

if TYPE_CHECKING:
    from router.client.core import AsyncClient

__all__ = ["AccountsResource", "ApiKeysResource"]


class ApiKeysResource(Resource):
    """``client.accounts.keys``: an account's API keys (operator only)."""

    async def create(self, account_id: str) -> ApiKeyCreated:
        """Add a key; its secret (``api_key``) is in this answer only."""
        path = f"/v1/accounts/{segment(account_id)}/keys"
        return await self._client._get_model(ApiKeyCreated, "POST", path)

    async def list(self, account_id: str) -> list[ApiKey]:
        """Return the account's keys, revoked ones included, without secrets."""
        path = f"/v1/accounts/{segment(account_id)}/keys"
        return await self._client._get_list(ApiKey, path)

    async def revoke(self, account_id: str, key_id: str) -> None:
        """Revoke a key: it stops working at once."""
        path = f"/v1/accounts/{segment(account_id)}/keys/{segment(key_id)}"
        await self._client.request("DELETE", path)


class AccountsResource(Resource):
    """``client.accounts``: customer accounts (operator only)."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.keys = ApiKeysResource(client)

    async def create(self, *, name: str) -> AccountCreated:
        """Add an account; its first key's secret (``api_key``) is shown this once."""
        return await self._client._get_model(
            AccountCreated, "POST", "/v1/accounts", json={"name": name}
        )

    async def list(self) -> list[Account]:
        """Return every account."""
        return await self._client._get_list(Account, "/v1/accounts")

    async def get(self, account_id: str) -> Account:
        """Return one account."""
        path = f"/v1/accounts/{segment(account_id)}"
        return await self._client._get_model(Account, "GET", path)

    async def delete(self, account_id: str) -> None:
        """Remove an account (ConflictError while it owns numbers, pipes or trunks)."""
        await self._client.request("DELETE", f"/v1/accounts/{segment(account_id)}")
