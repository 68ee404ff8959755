"""What every resource route shares: the store dependency, query types, ownership."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from router.numbers.models import Number as StoredNumber
from router.numbers.models import Pipe, Trunk
from router.numbers.store import Store

from .. import models as schemas
from ..auth import Principal
from ..errors import Forbidden

__all__ = [
    "AccountFilter",
    "Cursor",
    "Limit",
    "StoreDep",
    "owned_number",
    "owned_pipe",
    "owned_trunk",
    "owner_of_new",
]


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(_store)]
Limit = Annotated[int, Query(ge=1, le=schemas.MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=256)]
AccountFilter = Annotated[
    str | None, Query(max_length=200, description="operator only: one account's")
]


# -- ownership ----------------------------------------------------------------


async def owned_number(store: Store, principal: Principal, ref: str) -> StoredNumber:
    """Return the caller's number by number_id or E.164 (not found when not theirs)."""
    # The store reports another account's number as not found: nothing leaks.
    return await store.get_number(ref, account_id=principal.account_id)


async def owned_pipe(store: Store, principal: Principal, pipe_id: str) -> Pipe:
    """Return the caller's pipe (not found when it is another account's)."""
    return await store.get_pipe(pipe_id, account_id=principal.account_id)


async def owned_trunk(store: Store, principal: Principal, trunk_id: str) -> Trunk:
    """Return the caller's trunk (not found when it is another account's)."""
    return await store.get_trunk(trunk_id, account_id=principal.account_id)


async def owner_of_new(
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
