"""Input checks shared by every kind of object the stores keep.

The checks of one kind (numbers, trunks, call records ...) sit with that kind's part
of the store contract; what they all use is here: the shape of an id, enum fields,
and hiding another account's objects.
"""

from __future__ import annotations

import re
from typing import TypeVar

from .errors import InvalidInput, NotFound, ObjectKind
from .models import CallEndedBy, NumberStatus, TrunkType

__all__ = ["ID_PATTERN", "check_owner", "enum_or_none", "to_enum"]

# Ids the stores generate, and the router's call ids, use only these characters; an id
# with any other (":" in particular) could alias another key in Redis.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")

_E = TypeVar("_E", NumberStatus, TrunkType, CallEndedBy)


def check_owner(
    owner: str | None, account_id: str | None, kind: ObjectKind, ref: str
) -> None:
    """Report an object of another account as not found, when scoped to ``account_id``.

    Raises:
        NotFound: ``account_id`` is set and is not ``owner``.
    """
    if account_id is not None and owner != account_id:
        raise NotFound(kind, ref)


def enum_or_none(
    enum: type[_E], value: _E | str | None, error: type[InvalidInput], field: str
) -> _E | None:
    """Return ``value`` as a member of ``enum``, or ``None`` when it is ``None``.

    Raises:
        InvalidInput: of class ``error``, naming ``field`` and the choices.
    """
    return None if value is None else to_enum(enum, value, error, field)


def to_enum(
    enum: type[_E], value: _E | str, error: type[InvalidInput], field: str
) -> _E:
    """Return ``value`` as a member of ``enum``.

    Raises:
        InvalidInput: of class ``error``, naming ``field`` and the choices.
    """
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise error(field, f"{value!r} is not one of {choices}") from None
