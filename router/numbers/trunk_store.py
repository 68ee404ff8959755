"""Trunks in every store: their contract and their checks.

:class:`TrunkStore` is the part of :class:`~router.numbers.store.Store` that keeps the
carriers (and customers' own PBXs) allowed to send us calls. The functions below are
the checks both backends apply before writing a trunk, and :class:`TrunkUpdate` the
update rules they share; :mod:`router.numbers.trunk_matching` picks the trunk of a
source address.

A trunk's password is kept apart from the trunk and read only by
:meth:`TrunkStore.trunk_credentials`, so it cannot leave the store by accident in a
listing, a log line or an error message.
"""

from __future__ import annotations

import abc
import dataclasses
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers

from .checks import enum_or_none, to_enum
from .errors import InvalidQuery, InvalidTrunk
from .models import Trunk, TrunkType, new_trunk_id
from .trunk_matching import match_trunk

__all__ = [
    "TrunkStore",
    "TrunkUpdate",
    "check_trunk_credentials",
    "check_trunk_fields",
    "check_trunk_kind",
    "new_trunk",
]

# Digest user names end up in SIP headers (RFC 3261 §22.4) and passwords in hashes of
# them; no carrier issues credentials anywhere near this long.
_MAX_CREDENTIAL_LENGTH = 256

_SIP_SCHEMES = ("sip:", "sips:")


class TrunkStore(abc.ABC):
    """Trunks and their digest credentials; part of the store contract."""

    async def create_trunk(
        self,
        *,
        name: str,
        kind: TrunkType = TrunkType.BYO,
        allowed_addresses: Iterable[str] = (),
        default_country: str | None = None,
        termination_uri: str | None = None,
        account_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        register: bool = False,
    ) -> Trunk:
        """Add a trunk; with ``username`` and ``password``, it has digest credentials.

        The returned trunk carries the user name, never the password. On Redis, the
        new trunk is announced on the invalidation channel as ``trunk:<id>``.

        Raises:
            InvalidTrunk: naming the bad field; a user name without a password (or the
                reverse) names the missing one; ``register`` needs a termination URI.
        """
        trunk, credentials = new_trunk(
            name=name,
            kind=kind,
            allowed_addresses=allowed_addresses,
            default_country=default_country,
            termination_uri=termination_uri,
            account_id=account_id,
            username=username,
            password=password,
            register=register,
        )
        await self._insert_trunk(trunk, credentials)
        return trunk

    @abc.abstractmethod
    async def _insert_trunk(
        self, trunk: Trunk, credentials: tuple[str, str] | None
    ) -> None:
        """Write a new, checked trunk and its credentials, if it has any."""

    @abc.abstractmethod
    async def get_trunk(self, trunk_id: str, *, account_id: str | None = None) -> Trunk:
        """Return a trunk (of ``account_id``, when given). Raises :class:`NotFound`."""

    @abc.abstractmethod
    async def list_trunks(
        self, *, account_id: str | None = None, kind: TrunkType | None = None
    ) -> list[Trunk]:
        """Return trunks of the given account and kind, ordered by name then id.

        Raises:
            InvalidQuery: ``kind`` is not a trunk type.
        """

    async def update_trunk(
        self,
        trunk_id: str,
        *,
        name: str | None = None,
        allowed_addresses: Iterable[str] | None = None,
        default_country: str | None = None,
        termination_uri: str | None = None,
        username: str | None = None,
        password: str | None = None,
        register: bool | None = None,
    ) -> Trunk:
        """Change the given fields of a trunk and return the trunk.

        ``None`` leaves a field as it is; an empty string clears ``default_country``,
        ``termination_uri``, ``username`` or ``password``. The password alone may be
        changed when the trunk has a user name, and clearing both removes the
        credentials. The change is checked as a whole and announced as ``trunk:<id>``.

        Raises:
            NotFound: the trunk does not exist.
            InvalidTrunk: naming the bad field; nothing changes then.
        """
        update = TrunkUpdate(
            name=name,
            allowed_addresses=allowed_addresses,
            default_country=default_country,
            termination_uri=termination_uri,
            username=username,
            password=password,
            register=register,
        )
        return await self._update_trunk(trunk_id, update)

    @abc.abstractmethod
    async def _update_trunk(self, trunk_id: str, update: TrunkUpdate) -> Trunk:
        """Apply ``update`` to the trunk as it is now, atomically; see update_trunk.

        Raises:
            NotFound: the trunk does not exist.
            InvalidTrunk: from :meth:`TrunkUpdate.apply`; nothing changes then.
        """

    @abc.abstractmethod
    async def trunk_credentials(self, trunk_id: str) -> tuple[str, str] | None:
        """Return the trunk's ``(username, password)``, or ``None`` when it has none.

        The only way to read a password back: for digest authentication and
        registration, never for display.

        Raises:
            NotFound: the trunk does not exist.
        """

    @abc.abstractmethod
    async def delete_trunk(self, trunk_id: str) -> None:
        """Remove a trunk and its credentials; its numbers stay, with no trunk.

        Raises:
            NotFound: the trunk does not exist.
        """

    async def find_trunk_for_address(self, ip: str) -> Trunk | None:
        """Return the trunk whose allowed addresses hold ``ip`` most specifically.

        The longest matching prefix wins (a /32 beats a /24); between equal prefixes,
        the smallest trunk id, so the answer is stable. ``None`` when no trunk allows
        the address or ``ip`` is not an IP address.

        Every trunk is read with one :meth:`list_trunks` (one query, or one Redis
        round trip) and matched by :func:`match_trunk`.
        """
        return match_trunk(await self.list_trunks(), ip)


def new_trunk(
    *,
    name: str,
    kind: TrunkType | str,
    allowed_addresses: Iterable[str],
    default_country: str | None,
    termination_uri: str | None,
    account_id: str | None,
    username: str | None,
    password: str | None,
    register: bool,
) -> tuple[Trunk, tuple[str, str] | None]:
    """Check the fields of a new trunk; return it with a fresh id, and its credentials.

    Raises:
        InvalidTrunk: naming the first bad field (credentials are checked first).
    """
    credentials = check_trunk_credentials(username, password)
    checked = check_trunk_fields(
        name=name,
        kind=kind,
        allowed_addresses=allowed_addresses,
        default_country=default_country,
        termination_uri=termination_uri,
        username=username,
        register=register,
    )
    trunk = dataclasses.replace(checked, trunk_id=new_trunk_id(), account_id=account_id)
    return trunk, credentials


def check_trunk_fields(
    *,
    name: str,
    kind: TrunkType | str,
    allowed_addresses: Iterable[str],
    default_country: str | None,
    termination_uri: str | None,
    username: str | None = None,
    register: bool = False,
) -> Trunk:
    """Check trunk fields; return them canonical in a Trunk with an empty id.

    ``username`` is only copied: check it with :func:`check_trunk_credentials`.

    Raises:
        InvalidTrunk: naming the first bad field.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidTrunk("name", "must not be empty")
    trunk_kind = to_enum(TrunkType, kind, InvalidTrunk, "kind")
    if isinstance(allowed_addresses, str):
        raise InvalidTrunk("allowed_addresses", "must be a list of addresses")
    addresses = tuple(_canonical_network(address) for address in allowed_addresses)
    country = default_country.upper() if default_country else None
    if country is not None and country not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidTrunk(
            "default_country", f"{default_country!r} is not a country code"
        )
    if termination_uri is not None and not termination_uri.startswith(_SIP_SCHEMES):
        raise InvalidTrunk("termination_uri", f"{termination_uri!r} is not a sip: URI")
    _check_register(register, termination_uri)
    return Trunk(
        "",
        name,
        trunk_kind,
        addresses,
        country,
        termination_uri,
        None,
        username,
        register,
    )


def _check_register(register: bool, termination_uri: str | None) -> None:
    if not isinstance(register, bool):
        raise InvalidTrunk("register", "must be true or false")
    if register and termination_uri is None:
        # RFC 3261 §10.2: a REGISTER goes to a registrar; the trunk must name one.
        raise InvalidTrunk("register", "needs a termination_uri to register at")


def check_trunk_kind(kind: TrunkType | str | None) -> TrunkType | None:
    """Check the ``kind`` filter of :meth:`Store.list_trunks`. Raises InvalidQuery."""
    return enum_or_none(TrunkType, kind, InvalidQuery, "kind")


def check_trunk_credentials(
    username: str | None, password: str | None
) -> tuple[str, str] | None:
    """Check digest credentials: both or neither. Returns them, or ``None``.

    Error messages never repeat the password.

    Raises:
        InvalidTrunk: naming the missing or bad field.
    """
    if username is None and password is None:
        return None
    if password is None:
        raise InvalidTrunk("password", "is required with a username")
    if username is None:
        raise InvalidTrunk("username", "is required with a password")
    for field, value in (("username", username), ("password", password)):
        _check_credential(field, value)
    return username, password


def _check_credential(field: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidTrunk(field, "must be a non-empty string")
    if len(value) > _MAX_CREDENTIAL_LENGTH:
        raise InvalidTrunk(
            field, f"must be at most {_MAX_CREDENTIAL_LENGTH} characters"
        )
    # A CR or LF would end the Authorization header it is written into
    # (RFC 3261 §7.3.1), letting the value inject headers of its own.
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise InvalidTrunk(field, "must not contain control characters")


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkUpdate:
    """The arguments of one :meth:`Store.update_trunk` call, applied by both stores.

    ``None`` keeps a field; an empty string clears an optional text field.
    """

    name: str | None = None
    allowed_addresses: Iterable[str] | None = None
    default_country: str | None = None
    termination_uri: str | None = None
    username: str | None = None
    password: str | None = None
    register: bool | None = None

    def apply(
        self, trunk: Trunk, password: str | None
    ) -> tuple[Trunk, tuple[str, str] | None]:
        """Return the updated trunk and credentials, checked as a whole.

        ``password`` is the trunk's current password (``None`` when it has none).

        Raises:
            InvalidTrunk: naming the first bad field.
        """
        username = _updated(self.username, trunk.username)
        credentials = check_trunk_credentials(
            username, _updated(self.password, password)
        )
        checked = check_trunk_fields(
            name=trunk.name if self.name is None else self.name,
            kind=trunk.kind,
            allowed_addresses=(
                trunk.allowed_addresses
                if self.allowed_addresses is None
                else self.allowed_addresses
            ),
            default_country=_updated(self.default_country, trunk.default_country),
            termination_uri=_updated(self.termination_uri, trunk.termination_uri),
            username=username,
            register=trunk.register if self.register is None else self.register,
        )
        updated = dataclasses.replace(
            checked, trunk_id=trunk.trunk_id, account_id=trunk.account_id
        )
        return updated, credentials


def _updated(new: str | None, old: str | None) -> str | None:
    """Apply one optional text field of an update: None keeps, "" clears."""
    if new is None:
        return old
    return new or None


def _canonical_network(address: str) -> str:
    if not isinstance(address, str):
        raise InvalidTrunk("allowed_addresses", f"{address!r} is not a string")
    try:
        network = ipaddress.ip_network(address.strip())
    except ValueError as exc:
        raise InvalidTrunk("allowed_addresses", str(exc)) from None
    # A single host is written as a bare address; a prefix keeps its length.
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)
