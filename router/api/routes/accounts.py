"""``/v1/accounts``: customer accounts and their API keys (operator only)."""

from __future__ import annotations

from fastapi import APIRouter

from .. import models as schemas
from ..auth import OperatorPrincipal
from ..errors import ResourceNotFound
from .common import StoreDep

__all__ = ["router"]


router = APIRouter(prefix="/accounts", tags=["accounts"])


@router.post("", status_code=201)
async def create_account(
    body: schemas.AccountCreate, store: StoreDep, operator: OperatorPrincipal
) -> schemas.AccountCreated:
    """Add an account and its first API key (the secret is shown only here)."""
    account = await store.create_account(body.name)
    _key, secret = await store.create_api_key(account.account_id)
    out = schemas.Account.model_validate(account)
    return schemas.AccountCreated(**out.model_dump(), api_key=secret)


@router.get("")
async def list_accounts(
    store: StoreDep, operator: OperatorPrincipal
) -> dict[str, list[schemas.Account]]:
    """List every account."""
    accounts = await store.list_accounts()
    return schemas.listing([schemas.Account.model_validate(a) for a in accounts])


@router.get("/{account_id}")
async def get_account(
    account_id: str, store: StoreDep, operator: OperatorPrincipal
) -> schemas.Account:
    """Return one account."""
    account = await store.get_account(account_id)
    return schemas.Account.model_validate(account)


@router.delete("/{account_id}", status_code=204)
async def delete_account(
    account_id: str, store: StoreDep, operator: OperatorPrincipal
) -> None:
    """Remove an account; 409 while it still owns numbers, pipes or trunks."""
    await store.delete_account(account_id)


@router.post("/{account_id}/keys", status_code=201)
async def create_api_key(
    account_id: str, store: StoreDep, operator: OperatorPrincipal
) -> schemas.ApiKeyCreated:
    """Add an API key to an account (the secret is shown only here)."""
    key, secret = await store.create_api_key(account_id)
    out = schemas.ApiKey.model_validate(key)
    return schemas.ApiKeyCreated(**out.model_dump(), api_key=secret)


@router.get("/{account_id}/keys")
async def list_api_keys(
    account_id: str, store: StoreDep, operator: OperatorPrincipal
) -> dict[str, list[schemas.ApiKey]]:
    """List an account's API keys, without their secrets."""
    await store.get_account(account_id)
    keys = await store.list_api_keys(account_id)
    return schemas.listing([schemas.ApiKey.model_validate(key) for key in keys])


@router.delete("/{account_id}/keys/{key_id}", status_code=204)
async def revoke_api_key(
    account_id: str, key_id: str, store: StoreDep, operator: OperatorPrincipal
) -> None:
    """Revoke one of an account's API keys; it stops working at once."""
    keys = await store.list_api_keys(account_id)
    if key_id not in {key.key_id for key in keys}:
        raise ResourceNotFound("api_key", key_id)
    await store.revoke_api_key(key_id)
