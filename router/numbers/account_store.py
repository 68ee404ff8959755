"""Accounts and API keys in every store: their contract and their rules.

:class:`AccountStore` is the part of :class:`~router.numbers.store.Store` that keeps
the accounts owning numbers, pipes and trunks, and the API keys they reach the admin
API with. The functions below make new accounts and keys the same way in both
backends.

An API key's secret is stored only as its SHA-256, so it cannot leave the store: it
is returned once, when the key is created.
"""

from __future__ import annotations

import abc
import hashlib
import secrets
from collections.abc import Callable

from .checks import ID_PATTERN
from .errors import Conflict, InvalidAccount
from .models import Account, ApiKey, new_account_id, new_key_id

__all__ = [
    "API_KEY_PREFIX",
    "AccountStore",
    "api_key_lookup_hash",
    "check_account_name",
    "check_account_owns_nothing",
    "new_account",
    "new_api_key",
    "new_api_key_secret",
]

# API key secrets: "sk_" then 24 random bytes (192 bits) as 32 URL-safe characters.
# With that much entropy a plain SHA-256 cannot be reversed by guessing, so keys are
# found by their hash in one lookup; a slow password hash would cost every request.
API_KEY_PREFIX = "sk_"
_API_KEY_RANDOM_BYTES = 24
_API_KEY_LENGTH = len(API_KEY_PREFIX) + 32
# What a listing shows of a secret: the "sk_" and 7 characters (42 bits): enough to
# tell keys apart, far too little to guess the other 150 bits.
_API_KEY_DISPLAY_CHARS = 10


class AccountStore(abc.ABC):
    """Accounts and their API keys; part of the store contract."""

    # -- accounts --------------------------------------------------------------------

    @abc.abstractmethod
    async def create_account(self, name: str) -> Account:
        """Add an account. Raises :class:`InvalidAccount` when ``name`` is empty."""

    @abc.abstractmethod
    async def get_account(self, account_id: str) -> Account:
        """Return an account. Raises :class:`NotFound`."""

    @abc.abstractmethod
    async def list_accounts(self) -> list[Account]:
        """Return every account, ordered by name then id."""

    @abc.abstractmethod
    async def delete_account(self, account_id: str) -> None:
        """Remove an account and its API keys.

        Raises:
            NotFound: the account does not exist.
            Conflict: the account still owns numbers, pipes or trunks; nothing changes.
        """

    # -- API keys --------------------------------------------------------------------

    @abc.abstractmethod
    async def create_api_key(self, account_id: str) -> tuple[ApiKey, str]:
        """Add an API key to an account; return the key and its secret.

        The secret (``sk_`` and 32 URL-safe characters) is returned this once: the
        store keeps only its SHA-256.

        Raises:
            NotFound: the account does not exist.
        """

    @abc.abstractmethod
    async def authenticate_api_key(self, secret: str) -> ApiKey | None:
        """Return the key whose secret this is, or ``None`` when unknown or revoked.

        One lookup by the secret's hash; anything that is not shaped like a secret
        returns ``None`` without a lookup.
        """

    @abc.abstractmethod
    async def list_api_keys(self, account_id: str) -> list[ApiKey]:
        """Return an account's keys, revoked ones included, oldest first.

        Raises:
            NotFound: the account does not exist.
        """

    @abc.abstractmethod
    async def revoke_api_key(self, key_id: str) -> ApiKey:
        """Revoke a key for good and return it; revoking twice is not an error.

        Raises:
            NotFound: the key does not exist.
        """


def new_account(name: str, clock: Callable[[], float]) -> Account:
    """Return a new account with a fresh id, created now by ``clock``.

    Raises:
        InvalidAccount: ``name`` is empty (``clock`` is not read then).
    """
    return Account(new_account_id(), check_account_name(name), clock())


def check_account_name(name: str) -> str:
    """Check an account name. Raises :class:`InvalidAccount`."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidAccount("name", "must not be empty")
    return name


def check_account_owns_nothing(
    account_id: str, *, numbers: int, pipes: int, trunks: int
) -> None:
    """Refuse to delete an account that owns anything. Raises :class:`Conflict`."""
    if numbers or pipes or trunks:
        owned = f"{numbers} number(s), {pipes} pipe(s) and {trunks} trunk(s)"
        raise Conflict("account", account_id, f"still owns {owned}")


def new_api_key(account_id: str, created_at: float) -> tuple[ApiKey, str, str]:
    """Return a new key of ``account_id``, its secret and the secret's SHA-256 (hex)."""
    secret, secret_hash, prefix = new_api_key_secret()
    return ApiKey(new_key_id(), account_id, prefix, created_at), secret, secret_hash


def new_api_key_secret() -> tuple[str, str, str]:
    """Return a fresh API key secret, its SHA-256 (hex) and its display prefix."""
    secret = API_KEY_PREFIX + secrets.token_urlsafe(_API_KEY_RANDOM_BYTES)
    return secret, _sha256(secret), secret[:_API_KEY_DISPLAY_CHARS]


def api_key_lookup_hash(secret: object) -> str | None:
    """Return the SHA-256 a secret is stored under, or ``None`` if it cannot be one."""
    if (
        not isinstance(secret, str)
        or len(secret) != _API_KEY_LENGTH
        or not secret.startswith(API_KEY_PREFIX)
        or not ID_PATTERN.fullmatch(secret)
    ):
        return None
    return _sha256(secret)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
