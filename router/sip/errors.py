"""Exceptions of the SIP layer.

Every fault found in bytes that came off the wire is reported as a
:class:`SipParseError`, whose :attr:`~SipParseError.reason` is short enough to
be the reason phrase of the error response (``400 Bad Via header``). Nothing
in :mod:`router.sip` lets an ``IndexError``, ``KeyError`` or ``ValueError``
escape for bad input: the transport maps this one family to one response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.sip.message import Request

__all__ = ["SipError", "SipParseError"]

# RFC 3261 §25.1: Reason-Phrase = *(reserved / unreserved / escaped / UTF8 / SP / HTAB).
# We keep our own phrases to printable ASCII so they are safe in any log or header.
_PRINTABLE = frozenset(chr(code) for code in range(0x20, 0x7F))

# A reason phrase is one short line; anything longer is a bug in the caller.
MAX_REASON_LENGTH = 80


class SipError(Exception):
    """Base class of every exception raised by :mod:`router.sip`."""


class SipParseError(SipError):
    """A SIP message, header, URI or session description could not be parsed.

    Attributes:
        reason: a short phrase naming the fault, usable as the reason phrase
            of the error response, e.g. ``"Missing Call-ID header"``.
        detail: free text for logs (may quote the offending input).
        status: the response code this fault calls for: 400 unless a more
            specific one applies (413/513 for size, 416 for an unknown URI
            scheme, 488 for SDP we cannot accept, 505 for another SIP version).
        partial: the request as far as it was parsed, when enough of it was
            read to answer it (start line, Via, From, To, Call-ID and CSeq all
            valid); ``None`` otherwise.
    """

    def __init__(self, reason: str, detail: str = "", *, status: int = 400) -> None:
        self.reason = _printable(reason)
        self.detail = detail
        self.status = status
        self.partial: Request | None = None
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)


def _printable(reason: str) -> str:
    """Return `reason` restricted to printable ASCII and a bounded length."""
    cleaned = "".join(char if char in _PRINTABLE else "?" for char in reason)
    return cleaned[:MAX_REASON_LENGTH] or "Bad Request"
