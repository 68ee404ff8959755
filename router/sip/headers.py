"""The header fields of a SIP message (RFC 3261 §7.3, §20).

:class:`Headers` is a case-insensitive, order-preserving multimap. Names are
stored in their canonical spelling (``call-id`` and ``i`` both become
``Call-ID``) so that what we send reads the way the RFCs write it; unknown
names keep the spelling they arrived with.

How names are spelled and matched is :mod:`router.sip.header_names`. Values are
kept as text and decoded only when somebody asks: the message layer
caches decoded values with :meth:`Headers.parsed`, and every change to the
headers drops that cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar, cast

from router.sip.errors import SipParseError
from router.sip.header_names import (
    LIST_HEADERS,
    NAME_TABLE,
    canonical_name,
    header_key,
    is_token,
)

__all__ = ["Headers", "parse_header_lines", "split_list"]

T = TypeVar("T")


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value into its elements.

    Commas inside quoted strings and inside ``<...>`` do not separate
    elements; empty elements are dropped.
    """
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    if '"' not in value and "<" not in value:
        return [part.strip() for part in value.split(",") if part.strip()]
    return _split_list_scanning(value)


def _split_list_scanning(value: str) -> list[str]:
    items: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    escaped = False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif in_quotes:
            # RFC 3261 §25.1: quoted-pair = "\" followed by any char.
            escaped = char == "\\"
            in_quotes = char != '"'
        elif char == '"':
            in_quotes = True
        elif char == "<":
            in_angle = True
        elif char == ">":
            in_angle = False
        elif char == "," and not in_angle:
            items.append(value[start:index].strip())
            start = index + 1
    items.append(value[start:].strip())
    return [item for item in items if item]


# RFC 3261 §7.3.1: a line starting with SP or HT continues the previous one;
# the line break and the leading whitespace read as one SP.
_FOLD = re.compile(r"\n[ \t]+")


def parse_header_lines(text: str, max_headers: int) -> Headers:
    """Parse the header section of a message, the start line excluded.

    Args:
        text: the header lines joined by ``"\\n"`` (carriage returns removed).
        max_headers: the most header lines accepted (after unfolding).

    Raises:
        SipParseError: on a line without a colon, a bad header name, or more
            than `max_headers` lines.
    """
    text = text.rstrip("\n")
    if not text:
        return Headers._from_parsed([], {})
    if text[0] in " \t":
        raise SipParseError("Bad header line", "continuation before any header")
    if "\n " in text or "\n\t" in text:
        text = _FOLD.sub(" ", text)
    lines = text.split("\n")
    if len(lines) > max_headers:
        raise SipParseError("Too many headers", f"{len(lines)} > {max_headers}")
    fields: list[tuple[str, str]] = []
    index: dict[str, list[str]] = {}
    # This loop runs for every header of every message: it is kept inline.
    for line in lines:
        colon = line.find(":")
        if colon <= 0:
            raise SipParseError("Bad header line", repr(line[:40]))
        # RFC 3261 §7.3.1: HCOLON allows whitespace between the name and the colon.
        name = line[:colon].rstrip(" \t")
        known = NAME_TABLE.get(name.lower()) or _unknown_name(name)
        value = line[colon + 1 :].strip(" \t")
        fields.append((known[0], value))
        values = index.get(known[1])
        if values is None:
            index[known[1]] = [value]
        else:
            values.append(value)
    return Headers._from_parsed(fields, index)


def _unknown_name(name: str) -> tuple[str, str]:
    """Return (name, lookup key) for a header name not in our table."""
    if not is_token(name):
        raise SipParseError("Bad header name", repr(name[:40]))
    return name, name.lower()


def _check_field(name: str, value: str) -> None:
    # A CR or LF in a value we were handed would split the header on the wire.
    if not is_token(name):
        raise ValueError(f"invalid header name {name!r}")
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError(f"header {name} value contains a line break or NUL")


_MISSING = object()


class Headers:
    """Case-insensitive, order-preserving, multi-valued SIP header fields.

    ``headers.get("i")``, ``headers.get("call-id")`` and
    ``headers.get("Call-ID")`` are the same lookup. Iterating yields
    ``(name, value)`` pairs in message order, one per header line.
    """

    __slots__ = ("_fields", "_index", "_lists", "_memo")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str]] = []
        self._index: dict[str, list[str]] | None = None
        self._lists: dict[str, list[str]] = {}
        self._memo: dict[str, object] = {}
        for name, value in fields:
            _check_field(name, value)
            self._fields.append((canonical_name(name), value))

    @classmethod
    def _from_parsed(
        cls, fields: list[tuple[str, str]], index: dict[str, list[str]]
    ) -> Headers:
        """Wrap fields already canonicalised and indexed by the parser."""
        headers = cls.__new__(cls)
        headers._fields = fields
        headers._index = index
        headers._lists = {}
        headers._memo = {}
        return headers

    @classmethod
    def copied(cls, fields: list[tuple[str, str]]) -> Headers:
        """Wrap fields copied out of other :class:`Headers`, without checking again.

        Every ``Headers`` checks and canonicalises its fields when they go in, so
        fields read back out of one need neither; a response echoing its
        request's Via, From, To, Call-ID and CSeq skips that work.
        """
        headers = cls.__new__(cls)
        headers._fields = fields
        headers._index = None
        headers._lists = {}
        headers._memo = {}
        return headers

    def compact(self) -> None:
        """Drop the lookup index and the parsed values; reading rebuilds them.

        For a message kept only to be sent again: a transaction lingers for
        64*T1 after its final response (RFC 3261 §17.2.2, RFC 6026 §7.1), and
        thousands of them, each with its index lists and parsed URIs, made every
        full garbage collection walk hundreds of thousands of objects.
        """
        self._index = None
        if self._lists:
            self._lists = {}
        if self._memo:
            self._memo = {}

    def fields(self) -> list[tuple[str, str]]:
        """The ``(name, value)`` pairs, not copied: for reading only."""
        return self._fields

    # -- reading ------------------------------------------------------------

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of header `name`, or `default`."""
        values = self._by_key().get(header_key(name))
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Return every value of header `name`, in order.

        For list-valued headers (Via, Route, Record-Route, Contact, Allow,
        Supported, Require ...) each comma-separated element is its own value,
        so ``Via: a, b`` and two ``Via`` lines read the same.
        """
        key = header_key(name)
        values = self._by_key().get(key)
        if not values:
            return []
        if key not in LIST_HEADERS:
            return list(values)
        split = self._lists.get(key)
        if split is None:
            split = [item for value in values for item in split_list(value)]
            self._lists[key] = split
        return list(split)

    def count(self, name: str) -> int:
        """Return how many header lines named `name` there are."""
        return len(self._by_key().get(header_key(name), ()))

    def items(self) -> list[tuple[str, str]]:
        """Return the ``(name, value)`` pairs in order, one per header line."""
        return list(self._fields)

    def parsed(self, key: str, parse: Callable[[Headers], T]) -> T:
        """Return ``parse(self)``, computed once and cached under `key`.

        The cache is dropped whenever the headers change, so a decoded value
        never outlives the text it came from. Exceptions are not cached.
        """
        try:
            return cast(T, self._memo[key])
        except KeyError:
            value = parse(self)
            self._memo[key] = value
            return value

    def adopt(self, source: Headers, key: str) -> None:
        """Reuse ``source``'s decoded value under ``key``, if it has one.

        Only for headers whose fields that value was decoded from were copied
        from ``source`` unchanged: a response's Via is its request's, and
        sending each response would otherwise decode it again.
        """
        value = source._memo.get(key, _MISSING)
        if value is not _MISSING:
            self._memo[key] = value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and header_key(name) in self._by_key()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._fields))

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._fields == other._fields

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"

    # -- changing -----------------------------------------------------------

    def add(self, name: str, value: str) -> None:
        """Append a header line.

        Raises:
            ValueError: if `name` is not a token or `value` contains CR, LF or NUL.
        """
        _check_field(name, value)
        self._fields.append((canonical_name(name), value))
        self._changed()

    def set(self, name: str, value: str) -> None:
        """Replace every `name` header line by one line carrying `value`.

        The new line takes the place of the first old one, or goes last.

        Raises:
            ValueError: if `name` is not a token or `value` contains CR, LF or NUL.
        """
        _check_field(name, value)
        key = header_key(name)
        new_field = (canonical_name(name), value)
        kept: list[tuple[str, str]] = []
        placed = False
        for field in self._fields:
            if header_key(field[0]) != key:
                kept.append(field)
            elif not placed:
                kept.append(new_field)
                placed = True
        if not placed:
            kept.append(new_field)
        self._fields = kept
        self._changed()

    def remove(self, name: str) -> None:
        """Remove every header line named `name` (no error if there is none)."""
        key = header_key(name)
        self._fields = [field for field in self._fields if header_key(field[0]) != key]
        self._changed()

    def copy(self) -> Headers:
        """Return an independent copy (decoded values are not shared)."""
        return Headers._from_parsed(list(self._fields), self._copy_index())

    # -- internals ----------------------------------------------------------

    def _by_key(self) -> dict[str, list[str]]:
        if self._index is None:
            index: dict[str, list[str]] = {}
            for name, value in self._fields:
                index.setdefault(header_key(name), []).append(value)
            self._index = index
        return self._index

    def _copy_index(self) -> dict[str, list[str]]:
        return {key: list(values) for key, values in self._by_key().items()}

    def _changed(self) -> None:
        self._index = None
        if self._lists:
            self._lists = {}
        if self._memo:
            self._memo = {}
