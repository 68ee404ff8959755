"""``/v1/trunks``: the carriers (or PBXs) allowed to send calls."""

from __future__ import annotations

from typing import Any

import pydantic
from fastapi import APIRouter

from router.numbers.models import Trunk, TrunkType
from router.numbers.store import Store

from .. import models as schemas
from ..auth import CurrentPrincipal
from ..errors import Forbidden, InvalidRequest
from .common import AccountFilter, StoreDep, owned_trunk, owner_of_new

__all__ = ["TRUNK_CLEARABLE", "router"]


# Optional text fields of a trunk that a PATCH may clear by sending null.
TRUNK_CLEARABLE = frozenset(
    {"default_country", "termination_uri", "username", "password"}
)

router = APIRouter(prefix="/trunks", tags=["trunks"])


async def _trunk_out(store: Store, trunk: Trunk) -> schemas.Trunk:
    """The trunk as answered: whether credentials are set, never the password."""
    credentials = await store.trunk_credentials(trunk.trunk_id)
    out = schemas.Trunk.model_validate(trunk)
    return out.model_copy(update={"has_credentials": credentials is not None})


@router.post("", status_code=201)
async def create_trunk(
    body: schemas.TrunkCreate, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Trunk:
    """Add a trunk. Accounts add their own carriers (byo) only."""
    if not principal.is_operator and body.kind != "byo":
        raise Forbidden("accounts may add byo trunks only")
    account_id = await owner_of_new(store, principal, body.account_id)
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


@router.get("")
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


@router.get("/{trunk_id}")
async def get_trunk(
    trunk_id: str, store: StoreDep, principal: CurrentPrincipal
) -> schemas.Trunk:
    """Return one trunk (without its password)."""
    return await _trunk_out(store, await owned_trunk(store, principal, trunk_id))


@router.patch("/{trunk_id}")
async def update_trunk(
    trunk_id: str,
    body: schemas.TrunkUpdate,
    store: StoreDep,
    principal: CurrentPrincipal,
) -> schemas.Trunk:
    """Change the given fields of a trunk; ``null`` clears an optional text field.

    Clearing both ``username`` and ``password`` removes the trunk's credentials.
    """
    await owned_trunk(store, principal, trunk_id)
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


@router.delete("/{trunk_id}", status_code=204)
async def delete_trunk(
    trunk_id: str, store: StoreDep, principal: CurrentPrincipal
) -> None:
    """Remove a trunk; its numbers stay, without a trunk."""
    await owned_trunk(store, principal, trunk_id)
    await store.delete_trunk(trunk_id)
