"""The errors every store raises on purpose: one family, rooted at :class:`StoreError`.

The router maps :class:`StoreUnavailable` to ``503 Service Unavailable`` and an unknown
number to ``404 Not Found``; the admin API maps each class to one HTTP status. Messages
name the field or object at fault and never repeat a secret.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "AlreadyExists",
    "Conflict",
    "InvalidAccount",
    "InvalidCall",
    "InvalidInput",
    "InvalidPipe",
    "InvalidQuery",
    "InvalidTrunk",
    "NotFound",
    "ObjectKind",
    "StoreError",
    "StoreUnavailable",
]

ObjectKind = Literal["number", "pipe", "trunk", "account", "api_key", "call"]


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or did not answer in time; try again later."""


class NotFound(StoreError):
    """No object of this kind has this reference."""

    def __init__(self, kind: ObjectKind, ref: str) -> None:
        super().__init__(f"{kind} {ref!r} not found")
        self.kind = kind
        self.ref = ref


class AlreadyExists(StoreError):
    """The object to create is already there (for numbers: the same E.164)."""

    def __init__(self, kind: Literal["number", "pipe", "trunk"], ref: str) -> None:
        super().__init__(f"{kind} {ref!r} already exists")
        self.kind = kind
        self.ref = ref


class Conflict(StoreError):
    """The change would leave the store inconsistent: an account that still owns things.

    ``reason`` says what stands in the way; nothing was changed.
    """

    def __init__(self, kind: ObjectKind, ref: str, reason: str) -> None:
        super().__init__(f"{kind} {ref!r}: {reason}")
        self.kind = kind
        self.ref = ref
        self.reason = reason


class InvalidInput(StoreError, ValueError):
    """A field given to the store has a value it cannot accept; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidPipe(InvalidInput):
    """A pipe field is invalid."""


class InvalidTrunk(InvalidInput):
    """A trunk field is invalid."""


class InvalidQuery(InvalidInput):
    """A listing argument (filter, limit, cursor) is invalid."""


class InvalidAccount(InvalidInput):
    """An account field is invalid."""


class InvalidCall(InvalidInput):
    """A call record field is invalid."""
