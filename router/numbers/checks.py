"""Input checks shared by every kind of object the stores keep.

The checks of one kind (numbers, trunks, call records ...) sit with that kind's part
of the store contract; what they all use is here: the shape of an id, enum fields,
hiding another account's objects, and telling a number's id from its E.164.
"""

from __future__ import annotations

import re
from typing import Literal, TypeVar

from .errors import InvalidInput, NotFound, ObjectKind
from .models import CallEndedBy, NumberStatus, TrunkType

__all__ = [
    "ID_PATTERN",
    "NumberRef",
    "check_owner",
    "enum_or_none",
    "parse_number_ref",
    "to_enum",
]

# Ids the stores generate, and the router's call ids, use only these characters; an id
# with any other (":" in particular) could alias another key in Redis.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Same bound as E.164 (ITU-T E.164 §6): references longer than this are not numbers.
_MAX_NUMBER_DIGITS = 15

_REF_SEPARATORS = str.maketrans("", "", "-.() ")

_E = TypeVar("_E", NumberStatus, TrunkType, CallEndedBy)

NumberRef = tuple[Literal["id", "e164"], str]


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


def parse_number_ref(ref: str) -> NumberRef | None:
    """Classify a number reference: ``("id", "num_...")`` or ``("e164", "+...")``.

    E.164 references may leave out the ``+`` and carry visual separators. Returns
    ``None`` when ``ref`` can be neither (the caller reports it as not found).
    """
    if ref.startswith("num_"):
        return ("id", ref)
    digits = ref.strip().translate(_REF_SEPARATORS).removeprefix("+")
    if not digits.isascii() or not digits.isdigit() or len(digits) > _MAX_NUMBER_DIGITS:
        return None
    return ("e164", "+" + digits)
