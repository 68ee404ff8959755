"""Who is calling: the operator, or one account through one of its API keys.

Every ``/v1`` route except ``/v1/status`` needs ``Authorization: Bearer <token>``
(RFC 6750 §2.1). The token is either the operator token from the settings
(``ROUTER_API_TOKEN``), compared in constant time, or an account's API key
(``sk_…``), checked by the store. A missing, malformed, wrong or revoked token gets
the same 401 whatever the cause, so a caller learns nothing from the answer.

An account sees only what it owns. Resources of other accounts are reported as not
found (404), never as forbidden, so that ids cannot be probed; the operator-only
routes (accounts) answer 403 to accounts, which reveals nothing about anyone.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from router.numbers.store import Store

from .errors import Forbidden, Unauthorized

__all__ = [
    "Authenticator",
    "CurrentPrincipal",
    "OperatorPrincipal",
    "Principal",
    "current_principal",
    "require_operator",
]

# An API key or operator token is a few dozen characters; anything much longer is not
# one of ours and is refused before it reaches the store.
MAX_TOKEN_LENGTH = 512

# auto_error=False: a missing header must get our own 401 body, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="Operator token or account API key")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: the operator (``account_id`` None) or one account."""

    account_id: str | None
    key_id: str | None = None

    @property
    def is_operator(self) -> bool:
        """Whether this is the operator, who sees every account."""
        return self.account_id is None

    def scope(self, requested: str | None = None) -> str | None:
        """Return the account id a listing is limited to.

        Accounts always see their own; the operator sees everything, or the one
        account it asks for.
        """
        return requested if self.is_operator else self.account_id


class Authenticator:
    """Turns a bearer token into a :class:`Principal` or raises :class:`Unauthorized`."""

    def __init__(self, store: Store, operator_token: str | None) -> None:
        self.store = store
        self._operator = operator_token.encode() if operator_token else None

    async def authenticate(self, token: str | None) -> Principal:
        """Return who ``token`` belongs to.

        Raises:
            Unauthorized: no token, or one that matches nothing live.
            StoreUnavailable: the store could not check an account key.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise Unauthorized()
        if self._is_operator_token(token):
            return Principal(account_id=None)
        key = await self.store.authenticate_api_key(token)
        if key is None or key.revoked:
            raise Unauthorized()
        return Principal(account_id=key.account_id, key_id=key.key_id)

    def _is_operator_token(self, token: str) -> bool:
        if self._operator is None:
            return False
        # Constant time, so the comparison leaks nothing about how much matched.
        return hmac.compare_digest(token.encode(), self._operator)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: authenticate the request's bearer token."""
    authenticator: Authenticator = request.app.state.authenticator
    token = credentials.credentials if credentials is not None else None
    return await authenticator.authenticate(token)


async def require_operator(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    """FastAPI dependency: the operator only; accounts get 403."""
    if not principal.is_operator:
        raise Forbidden("only the operator token may do this")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
OperatorPrincipal = Annotated[Principal, Depends(require_operator)]
