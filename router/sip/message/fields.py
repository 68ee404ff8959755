"""Typed access to the header fields of a message, decoded on first read.

Each property of :class:`HeaderFields` parses its header the first time it is read
and caches the result on the message's :class:`~router.sip.headers.Headers`; a bad
value raises :class:`~router.sip.errors.SipParseError` naming the header
(RFC 3261 §20 defines each field).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from router.sip.errors import SipParseError
from router.sip.header_names import is_token
from router.sip.headers import Headers
from router.sip.name_address import NameAddress, parse_name_address
from router.sip.via import Via, parse_via

__all__ = [
    "MAX_CONTENT_LENGTH",
    "MAX_CSEQ",
    "MAX_MAX_FORWARDS",
    "HeaderFields",
    "parse_content_length",
    "parse_max_forwards",
    "parse_route",
]

T = TypeVar("T")

# RFC 3261 §8.1.1.5: the CSeq sequence number MUST be less than 2**31.
MAX_CSEQ = 2**31 - 1

# RFC 3261 §20.22: Max-Forwards is an integer in the range 0-255.
MAX_MAX_FORWARDS = 255

# RFC 3261 §20.14 sets no bound; a length past 2**31 - 1 is never a real body,
# and any length past max_size is refused when framing anyway.
MAX_CONTENT_LENGTH = 2**31 - 1


def _single(headers: Headers, name: str) -> str:
    """Return the one value of a header that must appear exactly once."""
    values = headers.get_all(name)
    if not values:
        raise SipParseError(f"Missing {name} header")
    if len(values) > 1:
        # RFC 3261 §7.3.1: only list-valued headers may repeat; two Call-IDs
        # or CSeqs make the message ambiguous (RFC 4475 §3.1.2.19).
        raise SipParseError(f"Bad {name} header", "appears more than once")
    return values[0]


def _parse_call_id(headers: Headers) -> str:
    value = _single(headers, "Call-ID")
    # RFC 3261 §25.1: callid = word [ "@" word ]; no whitespace inside.
    if not value or len(value.split()) != 1:
        raise SipParseError("Bad Call-ID header", repr(value[:60]))
    return value


def _parse_cseq(headers: Headers) -> tuple[int, str]:
    parts = _single(headers, "CSeq").split()
    # RFC 3261 §20.16: CSeq = 1*DIGIT LWS Method.
    number = _bounded_int(parts[0], MAX_CSEQ) if len(parts) == 2 else None
    if number is None or not is_token(parts[1]):
        raise SipParseError("Bad CSeq header")
    return number, parts[1]


def _bounded_int(text: str, maximum: int) -> int | None:
    """Return `text` as an int if it is ASCII digits worth at most `maximum`."""
    # Checking the length first keeps int() away from a 60,000-digit value.
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(maximum)) or not text.isascii() or not text.isdigit():
        return None
    value = int(digits)
    return value if value <= maximum else None


def _parse_name_address_header(headers: Headers, name: str) -> NameAddress:
    value = _single(headers, name)
    try:
        return parse_name_address(value)
    except SipParseError as error:
        raise SipParseError(f"Bad {name} header", error.detail) from None


def _parse_from(headers: Headers) -> NameAddress:
    return _parse_name_address_header(headers, "From")


def _parse_to(headers: Headers) -> NameAddress:
    return _parse_name_address_header(headers, "To")


def _parse_record_route(headers: Headers) -> list[NameAddress]:
    return _parse_name_address_list(headers, "Record-Route")


def parse_route(headers: Headers) -> list[NameAddress]:
    """Return every Route value, in order. Raises SipParseError("Bad Route header")."""
    return _parse_name_address_list(headers, "Route")


def _parse_top_via(headers: Headers) -> Via:
    values = headers.get_all("Via")
    if not values:
        raise SipParseError("Missing Via header")
    return parse_via(values[0])


def _parse_vias(headers: Headers) -> list[Via]:
    values = headers.get_all("Via")
    if not values:
        raise SipParseError("Missing Via header")
    return [parse_via(value) for value in values]


def _parse_contact(headers: Headers) -> NameAddress | None:
    values = headers.get_all("Contact")
    if not values:
        return None
    try:
        return parse_name_address(values[0])
    except SipParseError as error:
        raise SipParseError("Bad Contact header", error.detail) from None


def _parse_name_address_list(headers: Headers, name: str) -> list[NameAddress]:
    try:
        return [parse_name_address(value) for value in headers.get_all(name)]
    except SipParseError as error:
        raise SipParseError(f"Bad {name} header", error.detail) from None


def parse_content_length(headers: Headers) -> int | None:
    """Return the Content-Length, or None when absent. Raises SipParseError."""
    values = headers.get_all("Content-Length")
    if not values:
        return None
    # Two differing lengths would let two parsers frame the body differently.
    length = _bounded_int(values[0], MAX_CONTENT_LENGTH)
    if len(set(values)) > 1 or length is None:
        raise SipParseError("Bad Content-Length header")
    return length


class HeaderFields:
    """Typed access to the header fields requests and responses share."""

    headers: Headers

    def _read(self, key: str, parse: Callable[[Headers], T]) -> T:
        return self.headers.parsed(key, parse)

    @property
    def call_id(self) -> str:
        """The Call-ID. Raises SipParseError if missing, repeated or malformed."""
        return self._read("call_id", _parse_call_id)

    @property
    def cseq(self) -> tuple[int, str]:
        """The CSeq as (sequence number, method)."""
        return self._read("cseq", _parse_cseq)

    @property
    def top_via(self) -> Via:
        """The topmost Via (only it is decoded)."""
        return self._read("top_via", _parse_top_via)

    @property
    def vias(self) -> list[Via]:
        """Every Via, topmost first."""
        return self._read("vias", _parse_vias)

    @property
    def from_(self) -> NameAddress:
        """The From header."""
        return self._read("from", _parse_from)

    @property
    def to(self) -> NameAddress:
        """The To header."""
        return self._read("to", _parse_to)

    @property
    def from_tag(self) -> str | None:
        """The From tag, or None."""
        return self.from_.tag

    @property
    def to_tag(self) -> str | None:
        """The To tag, or None (a request outside any dialog has none)."""
        return self.to.tag

    @property
    def contact(self) -> NameAddress | None:
        """The first Contact, or None when absent. ``Contact: *`` is an error here."""
        return self._read("contact", _parse_contact)

    @property
    def record_route(self) -> list[NameAddress]:
        """Every Record-Route value, in order."""
        return self._read("record_route", _parse_record_route)

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower-cased without parameters, or None."""
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.partition(";")[0].strip(" \t").lower() or None

    @property
    def content_length(self) -> int | None:
        """The Content-Length value, or None when the header is absent."""
        return self._read("content_length", parse_content_length)


def parse_max_forwards(headers: Headers) -> int | None:
    """Return Max-Forwards (0-255), or None when absent. Raises SipParseError."""
    value = headers.get("Max-Forwards")
    if value is None:
        return None
    hops = _bounded_int(value, MAX_MAX_FORWARDS)
    if hops is None:
        raise SipParseError("Bad Max-Forwards header")
    return hops
