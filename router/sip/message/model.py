"""SIP requests and responses, and writing them as bytes (RFC 3261 §7).

Header values are decoded on first read (:class:`~.fields.HeaderFields`); serialising
writes the headers as held and sets Content-Length from the body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from router.sip.errors import SipParseError
from router.sip.headers import Headers
from router.sip.name_address import NameAddress
from router.sip.uri import SipUri, TelUri, parse_uri

from .fields import HeaderFields, parse_max_forwards, parse_route

__all__ = ["SIP_VERSION", "Request", "Response"]

T = TypeVar("T")

SIP_VERSION = "SIP/2.0"


@dataclass
class Request(HeaderFields):
    """A SIP request.

    Attributes:
        method: the method, case-sensitive (RFC 3261 §7.1): ``"INVITE"``.
        uri: the Request-URI as written.
        headers: the header fields.
        body: the message body (framed by Content-Length).
        version: always ``"SIP/2.0"``.

    The properties decode header values on first use and raise
    :class:`SipParseError` for a bad value; such an error carries this
    request in ``partial`` when it is still answerable.
    """

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION
    _request_uri: tuple[str, SipUri | TelUri] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def _read(self, key: str, parse: Callable[[Headers], T]) -> T:
        try:
            return self.headers.parsed(key, parse)
        except SipParseError as error:
            self._attach_partial(error, key)
            raise

    def _attach_partial(self, error: SipParseError, key: str) -> None:
        # A 400 needs Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2); a
        # fault in one of those leaves nothing to answer with.
        if error.partial is None and key not in (
            "call_id",
            "cseq",
            "top_via",
            "from",
            "to",
        ):
            error.partial = self

    @property
    def request_uri(self) -> SipUri | TelUri:
        """The Request-URI, parsed. Raises SipParseError("Bad Request-URI")."""
        cached = self._request_uri
        if cached is not None and cached[0] == self.uri:
            return cached[1]
        try:
            parsed = parse_uri(self.uri)
        except SipParseError as error:
            reason = error.reason if error.status == 416 else "Bad Request-URI"
            failure = SipParseError(reason, error.detail, status=error.status)
            failure.partial = self
            raise failure from None
        self._request_uri = (self.uri, parsed)
        return parsed

    @property
    def max_forwards(self) -> int | None:
        """The Max-Forwards value, or None when absent (RFC 3261 §8.1.1.6)."""
        return self._read("max_forwards", parse_max_forwards)

    @property
    def route(self) -> list[NameAddress]:
        """Every Route value, in order."""
        return self._read("route", parse_route)

    @property
    def require(self) -> list[str]:
        """The option tags of Require (RFC 3261 §20.32)."""
        return self.headers.get_all("Require")

    @property
    def supported(self) -> list[str]:
        """The option tags of Supported (RFC 3261 §20.37)."""
        return self.headers.get_all("Supported")

    def serialise(self) -> bytes:
        """Return the request as bytes, with Content-Length set from the body."""
        return _serialise(
            f"{self.method} {self.uri} {SIP_VERSION}", self.headers, self.body
        )


@dataclass
class Response(HeaderFields):
    """A SIP response.

    Attributes:
        status: the status code, 100-699.
        reason: the reason phrase.
        headers: the header fields.
        body: the message body.
        version: always ``"SIP/2.0"``.
    """

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    def serialise(self) -> bytes:
        """Return the response as bytes, with Content-Length set from the body."""
        return _serialise(
            f"{SIP_VERSION} {self.status} {self.reason}", self.headers, self.body
        )


def _serialise(start_line: str, headers: Headers, body: bytes) -> bytes:
    parts = [start_line, "\r\n"]
    for name, value in headers.fields():
        if name != "Content-Length":
            parts += (name, ": ", value, "\r\n")
    parts.append(f"Content-Length: {len(body)}\r\n\r\n")
    # surrogateescape gives back the exact bytes of non-UTF-8 values we parsed.
    return "".join(parts).encode("utf-8", "surrogateescape") + body
