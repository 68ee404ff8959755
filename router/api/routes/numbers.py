"""``/v1/numbers``: phone numbers, and attaching them to pipes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from router.numbers.models import Number as StoredNumber
from router.numbers.models import NumberStatus, TrunkType
from router.numbers.store import Store

from .. import models as schemas
from ..auth import CurrentPrincipal, Principal
from ..errors import InvalidRequest, ResourceNotFound
from .common import (
    AccountFilter,
    Cursor,
    Limit,
    StoreDep,
    owned_number,
    owned_pipe,
    owned_trunk,
    owner_of_new,
)

__all__ = ["attach_for", "create_number_for", "router"]


router = APIRouter(prefix="/numbers", tags=["numbers"])


@router.get("")
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


@router.post("", status_code=201)
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
    account_id = await owner_of_new(store, principal, body.account_id)
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
    trunk = await owned_trunk(store, principal, body.trunk_id)
    # A number arrives over its own account's trunk or over one of ours (unpod).
    if trunk.account_id not in (None, account_id):
        raise ResourceNotFound("trunk", body.trunk_id)
    if body.trunk_type is not None and body.trunk_type != trunk.kind:
        raise InvalidRequest("trunk_type", f"trunk {trunk.trunk_id} is {trunk.kind}")
    return TrunkType(trunk.kind)


@router.get("/{ref}")
async def get_number(
    ref: str, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Number:
    """Return one number, by number_id or E.164."""
    number = await owned_number(store, principal, ref)
    return schemas.Number.model_validate(number)


@router.patch("/{ref}")
async def update_number(
    ref: str, body: schemas.NumberUpdate, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Number:
    """Change a number's status."""
    number = await owned_number(store, principal, ref)
    updated = await store.update_number(
        number.number_id, status=NumberStatus(body.status)
    )
    return schemas.Number.model_validate(updated)


@router.delete("/{ref}", status_code=204)
async def delete_number(ref: str, store: StoreDep, principal: CurrentPrincipal) -> None:
    """Remove a number (detaching it first)."""
    number = await owned_number(store, principal, ref)
    await store.delete_number(number.number_id)


@router.post("/{ref}/attach")
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
    number = await owned_number(store, principal, ref)
    pipe = await owned_pipe(store, principal, pipe_id)
    # Even the operator may not route one account's number into another's pipe.
    if pipe.account_id != number.account_id:
        raise ResourceNotFound("pipe", pipe_id)
    return await store.attach(number.number_id, pipe.pipe_id)


@router.post("/{ref}/detach")
async def detach_number(
    ref: str, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Number:
    """Detach a number from its pipe; detaching a detached number is not an error."""
    number = await owned_number(store, principal, ref)
    detached = await store.detach(number.number_id)
    return schemas.Number.model_validate(detached)
