"""``/v1/pipes``: Speech Pipes, where calls to their numbers go."""

from __future__ import annotations

from fastapi import APIRouter

from .. import models as schemas
from ..auth import CurrentPrincipal
from .common import AccountFilter, StoreDep, owned_pipe, owner_of_new

__all__ = ["router"]


router = APIRouter(prefix="/pipes", tags=["pipes"])


@router.post("", status_code=201)
async def create_pipe(
    body: schemas.PipeCreate, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Pipe:
    """Add a pipe: calls to its numbers go to its runner."""
    account_id = await owner_of_new(store, principal, body.account_id)
    pipe = await store.create_pipe(
        name=body.name,
        runner_url=body.runner_url,
        max_call_duration_s=body.max_call_duration_s,
        account_id=account_id,
    )
    return schemas.Pipe.model_validate(pipe)


@router.get("")
async def list_pipes(
    store: StoreDep, principal: CurrentPrincipal, account_id: AccountFilter = None
) -> dict[str, list[schemas.Pipe]]:
    """List pipes, ordered by name."""
    pipes = await store.list_pipes(account_id=principal.scope(account_id))
    return schemas.listing([schemas.Pipe.model_validate(pipe) for pipe in pipes])


@router.get("/{pipe_id}")
async def get_pipe(
    pipe_id: str, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Pipe:
    """Return one pipe."""
    return schemas.Pipe.model_validate(await owned_pipe(store, principal, pipe_id))


@router.patch("/{pipe_id}")
async def update_pipe(
    pipe_id: str, body: schemas.PipeUpdate, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Pipe:
    """Change the given fields of a pipe."""
    await owned_pipe(store, principal, pipe_id)
    pipe = await store.update_pipe(
        pipe_id,
        name=body.name,
        runner_url=body.runner_url,
        max_call_duration_s=body.max_call_duration_s,
    )
    return schemas.Pipe.model_validate(pipe)


@router.delete("/{pipe_id}")
async def delete_pipe(
    pipe_id: str, store: StoreDep, principal: CurrentPrincipal
) -> schemas.PipeDeleted:
    """Remove a pipe, detaching its numbers."""
    await owned_pipe(store, principal, pipe_id)
    detached = await store.delete_pipe(pipe_id)
    return schemas.PipeDeleted(pipe_id=pipe_id, detached_numbers=detached)
