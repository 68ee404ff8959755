"""The admin API's resource routes: numbers, pipes, trunks, accounts and calls.

Each handler authenticates the caller (:mod:`router.api.auth`), scopes what it reads
to the caller's account, and leaves store errors to :mod:`router.api.errors`. An
account's view is enforced by the store itself: every ``get_*`` takes the caller's
``account_id`` and reports another account's object as not found.

:data:`RESOURCE_ROUTERS` are mounted under ``/v1`` by :func:`router.api.app.create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import pydantic
from fastapi import APIRouter, Depends, Query, Request

from router.numbers.models import Number as StoredNumber
from router.numbers.models import NumberStatus, Pipe, Trunk, TrunkType
from router.numbers.store import Store

from . import models as schemas
from .auth import CurrentPrincipal, OperatorPrincipal, Principal
from .errors import Forbidden, InvalidRequest, ResourceNotFound

if TYPE_CHECKING:
    from router.numbers.models import CallRecord

__all__ = [
    "RESOURCE_ROUTERS",
    "AccountFilter",
    "StoreDep",
    "attach_for",
    "create_number_for",
]

# Optional text fields of a trunk that a PATCH may clear by sending null.
TRUNK_CLEARABLE = frozenset(
    {"default_country", "termination_uri", "username", "password"}
)


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(_store)]
Limit = Annotated[int, Query(ge=1, le=schemas.MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=256)]
AccountFilter = Annotated[
    str | None, Query(max_length=200, description="operator only: one account's")
]


# -- ownership helpers ----------------------------------------------------------------


async def _owned_number(store: Store, principal: Principal, ref: str) -> StoredNumber:
    # The store reports another account's number as not found: nothing leaks.
    return await store.get_number(ref, account_id=principal.account_id)


async def _owned_pipe(store: Store, principal: Principal, pipe_id: str) -> Pipe:
    return await store.get_pipe(pipe_id, account_id=principal.account_id)


async def _owned_trunk(store: Store, principal: Principal, trunk_id: str) -> Trunk:
    return await store.get_trunk(trunk_id, account_id=principal.account_id)


async def _owner_of_new(
    store: Store, principal: Principal, requested: str | None
) -> str | None:
    """Return the account a new resource belongs to.

    Accounts create for themselves only; the operator names the account (checked to
    exist) or creates an operator-owned resource.
    """
    if not principal.is_operator:
        if requested is not None and requested != principal.account_id:
            raise Forbidden("account_id may be set by the operator only")
        return principal.account_id
    if requested is not None:
        await store.get_account(requested)
    return requested


# -- numbers --------------------------------------------------------------------------

_numbers = APIRouter(prefix="/numbers", tags=["numbers"])


@_numbers.get("")
async def list_numbers(
    store: StoreDep,
    principal: CurrentPrincipal,
    status: schemas.Status | None = None,
    country: Annotated[str | None, Query(pattern="^[A-Za-z]{2}$")] = None,
    trunk_type: schemas.TrunkKind | None = None,
    pipe_id: Annotated[str | None, Query(max_length=200)] = None,
    account_id: AccountFilter = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> schemas.NumberList:
    """List numbers matching every filter given, ordered by number."""
    page = await store.list_numbers(
        status=NumberStatus(status) if status else None,
        country=country.upper() if country else None,
        trunk_type=TrunkType(trunk_type) if trunk_type else None,
        pipe_id=pipe_id,
        account_id=principal.scope(account_id),
        limit=limit,
        cursor=cursor,
    )
    data = [schemas.Number.model_validate(number) for number in page.items]
    return schemas.NumberList(data=data, next_cursor=page.next_cursor)


@_numbers.post("", status_code=201)
async def create_number(
    body: schemas.NumberCreate, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Number:
    """Add a number (E.164, validated); its country is derived when omitted."""
    number = await create_number_for(store, principal, body)
    return schemas.Number.model_validate(number)


async def create_number_for(
    store: Store, principal: Principal, body: schemas.NumberCreate
) -> StoredNumber:
    """Create a number as ``principal`` may: in its own account, on its own trunk.

    Raises:
        Forbidden: an account set another account's id.
        ResourceNotFound: the trunk is not the caller's (or not of that account).
        InvalidRequest: ``trunk_type`` does not match the trunk's kind.
    """
    account_id = await _owner_of_new(store, principal, body.account_id)
    trunk_type = await _trunk_type_for(store, principal, body, account_id)
    return await store.create_number(
        body.number,
        country=body.country,
        status=NumberStatus(body.status),
        trunk_type=trunk_type,
        trunk_id=body.trunk_id,
        account_id=account_id,
    )


async def _trunk_type_for(
    store: Store,
    principal: Principal,
    body: schemas.NumberCreate,
    account_id: str | None,
) -> TrunkType:
    """Return the new number's trunk type, checked against its trunk's kind."""
    if body.trunk_id is None:
        return TrunkType(body.trunk_type or TrunkType.UNPOD)
    trunk = await _owned_trunk(store, principal, body.trunk_id)
    # A number arrives over its own account's trunk or over one of ours (unpod).
    if trunk.account_id not in (None, account_id):
        raise ResourceNotFound("trunk", body.trunk_id)
    if body.trunk_type is not None and body.trunk_type != trunk.kind:
        raise InvalidRequest("trunk_type", f"trunk {trunk.trunk_id} is {trunk.kind}")
    return TrunkType(trunk.kind)


@_numbers.get("/{ref}")
async def get_number(
    ref: str, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Number:
    """Return one number, by number_id or E.164."""
    number = await _owned_number(store, principal, ref)
    return schemas.Number.model_validate(number)


@_numbers.patch("/{ref}")
async def update_number(
    ref: str, body: schemas.NumberUpdate, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Number:
    """Change a number's status."""
    number = await _owned_number(store, principal, ref)
    updated = await store.update_number(
        number.number_id, status=NumberStatus(body.status)
    )
    return schemas.Number.model_validate(updated)


@_numbers.delete("/{ref}", status_code=204)
async def delete_number(ref: str, store: StoreDep, principal: CurrentPrincipal) -> None:
    """Remove a number (detaching it first)."""
    number = await _owned_number(store, principal, ref)
    await store.delete_number(number.number_id)


@_numbers.post("/{ref}/attach")
async def attach_number(
    ref: str, body: schemas.AttachRequest, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Number:
    """Attach a number to a pipe of the same account, moving it off any other pipe."""
    number = await attach_for(store, principal, ref, body.pipe_id)
    return schemas.Number.model_validate(number)


async def attach_for(
    store: Store, principal: Principal, ref: str, pipe_id: str
) -> StoredNumber:
    """Attach the caller's number to a pipe of the number's own account.

    Raises:
        ResourceNotFound: the number or the pipe is missing or not visible.
    """
    number = await _owned_number(store, principal, ref)
    pipe = await _owned_pipe(store, principal, pipe_id)
    # Even the operator may not route one account's number into another's pipe.
    if pipe.account_id != number.account_id:
        raise ResourceNotFound("pipe", pipe_id)
    return await store.attach(number.number_id, pipe.pipe_id)


@_numbers.post("/{ref}/detach")
async def detach_number(
    ref: str, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Number:
    """Detach a number from its pipe; detaching a detached number is not an error."""
    number = await _owned_number(store, principal, ref)
    detached = await store.detach(number.number_id)
    return schemas.Number.model_validate(detached)


# -- pipes ----------------------------------------------------------------------------

_pipes = APIRouter(prefix="/pipes", tags=["pipes"])


@_pipes.post("", status_code=201)
async def create_pipe(
    body: schemas.PipeCreate, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Pipe:
    """Add a pipe: calls to its numbers go to its runner."""
    account_id = await _owner_of_new(store, principal, body.account_id)
    pipe = await store.create_pipe(
        name=body.name,
        runner_url=body.runner_url,
        max_call_duration_s=body.max_call_duration_s,
        account_id=account_id,
    )
    return schemas.Pipe.model_validate(pipe)


@_pipes.get("")
async def list_pipes(
    store: StoreDep, principal: CurrentPrincipal, account_id: AccountFilter = None
) -> dict[str, list[schemas.Pipe]]:
    """List pipes, ordered by name."""
    pipes = await store.list_pipes(account_id=principal.scope(account_id))
    return schemas.listing([schemas.Pipe.model_validate(pipe) for pipe in pipes])


@_pipes.get("/{pipe_id}")
async def get_pipe(
    pipe_id: str, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Pipe:
    """Return one pipe."""
    return schemas.Pipe.model_validate(await _owned_pipe(store, principal, pipe_id))


@_pipes.patch("/{pipe_id}")
async def update_pipe(
    pipe_id: str, body: schemas.PipeUpdate, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Pipe:
    """Change the given fields of a pipe."""
    await _owned_pipe(store, principal, pipe_id)
    pipe = await store.update_pipe(
        pipe_id,
        name=body.name,
        runner_url=body.runner_url,
        max_call_duration_s=body.max_call_duration_s,
    )
    return schemas.Pipe.model_validate(pipe)


@_pipes.delete("/{pipe_id}")
async def delete_pipe(
    pipe_id: str, store: StoreDep, principal: CurrentPrincipal
) -> schemas.PipeDeleted:
    """Remove a pipe, detaching its numbers."""
    await _owned_pipe(store, principal, pipe_id)
    detached = await store.delete_pipe(pipe_id)
    return schemas.PipeDeleted(pipe_id=pipe_id, detached_numbers=detached)


# -- trunks ---------------------------------------------------------------------------

_trunks = APIRouter(prefix="/trunks", tags=["trunks"])


async def _trunk_out(store: Store, trunk: Trunk) -> schemas.Trunk:
    """The trunk as answered: whether credentials are set, never the password."""
    credentials = await store.trunk_credentials(trunk.trunk_id)
    out = schemas.Trunk.model_validate(trunk)
    return out.model_copy(update={"has_credentials": credentials is not None})


@_trunks.post("", status_code=201)
async def create_trunk(
    body: schemas.TrunkCreate, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Trunk:
    """Add a trunk. Accounts add their own carriers (byo) only."""
    if not principal.is_operator and body.kind != "byo":
        raise Forbidden("accounts may add byo trunks only")
    account_id = await _owner_of_new(store, principal, body.account_id)
    password = body.password.get_secret_value() if body.password else None
    trunk = await store.create_trunk(
        name=body.name,
        kind=TrunkType(body.kind),
        allowed_addresses=body.allowed_addresses,
        default_country=body.default_country,
        termination_uri=body.termination_uri,
        account_id=account_id,
        username=body.username,
        password=password,
        register=body.register,
    )
    return await _trunk_out(store, trunk)


@_trunks.get("")
async def list_trunks(
    store: StoreDep,
    principal: CurrentPrincipal,
    kind: schemas.TrunkKind | None = None,
    account_id: AccountFilter = None,
) -> dict[str, list[schemas.Trunk]]:
    """List trunks, ordered by name."""
    trunks = await store.list_trunks(
        account_id=principal.scope(account_id),
        kind=TrunkType(kind) if kind else None,
    )
    return schemas.listing([await _trunk_out(store, trunk) for trunk in trunks])


@_trunks.get("/{trunk_id}")
async def get_trunk(
    trunk_id: str, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Trunk:
    """Return one trunk (without its password)."""
    return await _trunk_out(store, await _owned_trunk(store, principal, trunk_id))


@_trunks.patch("/{trunk_id}")
async def update_trunk(
    trunk_id: str,
    body: schemas.TrunkUpdate,
    store: StoreDep,
    principal: CurrentPrincipal,
) -> schemas.Trunk:
    """Change the given fields of a trunk; ``null`` clears an optional text field.

    Clearing both ``username`` and ``password`` removes the trunk's credentials.
    """
    await _owned_trunk(store, principal, trunk_id)
    trunk = await store.update_trunk(trunk_id, **_trunk_changes(body))
    return await _trunk_out(store, trunk)


def _trunk_changes(body: schemas.TrunkUpdate) -> dict[str, Any]:
    """Return the store's update arguments: omitted keeps, null clears ("")."""
    changes: dict[str, Any] = {}
    for field in body.model_fields_set:
        value = getattr(body, field)
        if value is None and field not in TRUNK_CLEARABLE:
            raise InvalidRequest(field, f"{field}: cannot be null")
        if isinstance(value, pydantic.SecretStr):
            value = value.get_secret_value()
        changes[field] = "" if value is None else value
    return changes


@_trunks.delete("/{trunk_id}", status_code=204)
async def delete_trunk(
    trunk_id: str, store: StoreDep, principal: CurrentPrincipal
) -> None:
    """Remove a trunk; its numbers stay, without a trunk."""
    await _owned_trunk(store, principal, trunk_id)
    await store.delete_trunk(trunk_id)


# -- accounts -------------------------------------------------------------------------

_accounts = APIRouter(prefix="/accounts", tags=["accounts"])


@_accounts.post("", status_code=201)
async def create_account(
    body: schemas.AccountCreate, store: StoreDep, operator: OperatorPrincipal
) -> schemas.AccountCreated:
    """Add an account and its first API key (the secret is shown only here)."""
    account = await store.create_account(body.name)
    _key, secret = await store.create_api_key(account.account_id)
    out = schemas.Account.model_validate(account)
    return schemas.AccountCreated(**out.model_dump(), api_key=secret)


@_accounts.get("")
async def list_accounts(
    store: StoreDep, operator: OperatorPrincipal
) -> dict[str, list[schemas.Account]]:
    """List every account."""
    accounts = await store.list_accounts()
    return schemas.listing([schemas.Account.model_validate(a) for a in accounts])


@_accounts.get("/{account_id}")
async def get_account(
    account_id: str, store: StoreDep, operator: OperatorPrincipal
) -> schemas.Account:
    """Return one account."""
    account = await store.get_account(account_id)
    return schemas.Account.model_validate(account)


@_accounts.delete("/{account_id}", status_code=204)
async def delete_account(
    account_id: str, store: StoreDep, operator: OperatorPrincipal
) -> None:
    """Remove an account; 409 while it still owns numbers, pipes or trunks."""
    await store.delete_account(account_id)


@_accounts.post("/{account_id}/keys", status_code=201)
async def create_api_key(
    account_id: str, store: StoreDep, operator: OperatorPrincipal
) -> schemas.ApiKeyCreated:
    """Add an API key to an account (the secret is shown only here)."""
    key, secret = await store.create_api_key(account_id)
    out = schemas.ApiKey.model_validate(key)
    return schemas.ApiKeyCreated(**out.model_dump(), api_key=secret)


@_accounts.get("/{account_id}/keys")
async def list_api_keys(
    account_id: str, store: StoreDep, operator: OperatorPrincipal
) -> dict[str, list[schemas.ApiKey]]:
    """List an account's API keys, without their secrets."""
    await store.get_account(account_id)
    keys = await store.list_api_keys(account_id)
    return schemas.listing([schemas.ApiKey.model_validate(key) for key in keys])


@_accounts.delete("/{account_id}/keys/{key_id}", status_code=204)
async def revoke_api_key(
    account_id: str, key_id: str, store: StoreDep, operator: OperatorPrincipal
) -> None:
    """Revoke one of an account's API keys; it stops working at once."""
    keys = await store.list_api_keys(account_id)
    if key_id not in {key.key_id for key in keys}:
        raise ResourceNotFound("api_key", key_id)
    await store.revoke_api_key(key_id)


# -- calls ----------------------------------------------------------------------------

_calls = APIRouter(prefix="/calls", tags=["calls"])


@_calls.get("")
async def list_calls(
    store: StoreDep,
    principal: CurrentPrincipal,
    active: bool | None = None,
    account_id: AccountFilter = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> schemas.CallList:
    """List calls, newest first; ``active`` keeps only live (or only ended) calls."""
    page = await store.list_calls(
        account_id=principal.scope(account_id),
        active=active,
        limit=limit,
        cursor=cursor,
    )
    data = [_call_out(call) for call in page.items]
    return schemas.CallList(data=data, next_cursor=page.next_cursor)


@_calls.get("/{call_id}")
async def get_call(
    call_id: str, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Call:
    """Return one call."""
    call = await store.get_call(call_id, account_id=principal.account_id)
    return _call_out(call)


def _call_out(call: CallRecord) -> schemas.Call:
    out = schemas.Call.model_validate(call)
    return out.model_copy(update={"active": call.active})


RESOURCE_ROUTERS = (_numbers, _pipes, _trunks, _accounts, _calls)
