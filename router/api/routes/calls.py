"""``/v1/calls``: live and recent calls, newest first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from .. import models as schemas
from ..auth import CurrentPrincipal
from .common import AccountFilter, Cursor, Limit, StoreDep

if TYPE_CHECKING:
    from router.numbers.models import CallRecord

__all__ = ["router"]


router = APIRouter(prefix="/calls", tags=["calls"])


@router.get("")
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


@router.get("/{call_id}")
async def get_call(
    call_id: str, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Call:
    """Return one call."""
    call = await store.get_call(call_id, account_id=principal.account_id)
    return _call_out(call)


def _call_out(call: CallRecord) -> schemas.Call:
    out = schemas.Call.model_validate(call)
    return out.model_copy(update={"active": call.active})
