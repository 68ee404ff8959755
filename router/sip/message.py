"""SIP requests and responses: parsing, header access, serialising.

RFC 3261 §7 (messages), §18.3 (framing) and §20 (header fields).

Parsing is lazy where that is cheap: :func:`parse_message` splits the start
line and the header lines once, checks the fields every request needs
(RFC 3261 §8.1.1: Via, From, To, Call-ID, CSeq) and frames the body. Other
header values (Contact, Record-Route, the Request-URI ...) are decoded the
first time a property reads them and cached on the message's
:class:`~router.sip.headers.Headers`.

Datagrams go through :func:`parse_message`; byte streams (TCP, TLS) through a
:class:`StreamFramer` per connection. Both raise only
:class:`~router.sip.errors.SipParseError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from router.sip.errors import SipParseError
from router.sip.headers import Headers, is_token, parse_header_lines
from router.sip.uri import (
    NameAddress,
    SipUri,
    TelUri,
    Via,
    parse_name_address,
    parse_uri,
    parse_via,
)

__all__ = [
    "MAX_HEADERS",
    "MAX_MESSAGE_SIZE",
    "SIP_VERSION",
    "Headers",
    "Request",
    "Response",
    "StreamFramer",
    "is_keepalive",
    "make_response",
    "parse_message",
    "reason_phrase",
]

T = TypeVar("T")

SIP_VERSION = "SIP/2.0"

# The largest UDP payload is 65,507 bytes over IPv4 (65,535 minus the 20-byte IP
# and 8-byte UDP headers) and 65,527 over IPv6; 65,535 admits every datagram and
# bounds what one TCP peer can make us buffer for a single message.
MAX_MESSAGE_SIZE = 65_535

# Carrier INVITEs carry 15-40 header lines; 256 leaves room for verbose PBXs
# while bounding the work a hostile message can cause.
MAX_HEADERS = 256

# RFC 3261 §8.1.1.5: the CSeq sequence number MUST be less than 2**31.
MAX_CSEQ = 2**31 - 1

# RFC 3261 §20.22: Max-Forwards is an integer in the range 0-255.
MAX_MAX_FORWARDS = 255

# RFC 3261 §20.14 sets no bound; a length past 2**31 - 1 is never a real body,
# and any length past max_size is refused when framing anyway.
MAX_CONTENT_LENGTH = 2**31 - 1

# RFC 3261 §8.1.1 lists what every request carries; responses carry the same
# (§8.2.6.2) because transactions are matched on them.
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")

# RFC 3261 §21 (and RFC 3262, 3265, 3329, 4028, 6086 for the rest).
_REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_CLASS_PHRASES = {
    1: "Session Progress",
    2: "OK",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}


def reason_phrase(status: int) -> str:
    """Return the RFC reason phrase for `status`, or a generic one for its class."""
    return _REASON_PHRASES.get(status) or _CLASS_PHRASES.get(status // 100, "Unknown")


# -- header-derived properties shared by requests and responses ----------------


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


def _parse_route(headers: Headers) -> list[NameAddress]:
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


def _parse_content_length(headers: Headers) -> int | None:
    values = headers.get_all("Content-Length")
    if not values:
        return None
    # Two differing lengths would let two parsers frame the body differently.
    length = _bounded_int(values[0], MAX_CONTENT_LENGTH)
    if len(set(values)) > 1 or length is None:
        raise SipParseError("Bad Content-Length header")
    return length


class _HeaderFields:
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
        return self._read("content_length", _parse_content_length)


# -- requests and responses ------------------------------------------------------


@dataclass
class Request(_HeaderFields):
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
        return self._read("max_forwards", _parse_max_forwards)

    @property
    def route(self) -> list[NameAddress]:
        """Every Route value, in order."""
        return self._read("route", _parse_route)

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


def _parse_max_forwards(headers: Headers) -> int | None:
    value = headers.get("Max-Forwards")
    if value is None:
        return None
    hops = _bounded_int(value, MAX_MAX_FORWARDS)
    if hops is None:
        raise SipParseError("Bad Max-Forwards header")
    return hops


@dataclass
class Response(_HeaderFields):
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
    for name, value in headers:
        if name != "Content-Length":
            parts += (name, ": ", value, "\r\n")
    parts.append(f"Content-Length: {len(body)}\r\n\r\n")
    # surrogateescape gives back the exact bytes of non-UTF-8 values we parsed.
    return "".join(parts).encode("utf-8", "surrogateescape") + body


# -- parsing ----------------------------------------------------------------------


def is_keepalive(data: bytes) -> bool:
    """Return True for a datagram holding only CR/LF (a keepalive, RFC 5626 §4.4.1)."""
    return bool(data) and not data.strip(b"\r\n")


def parse_message(
    data: bytes, *, max_size: int = MAX_MESSAGE_SIZE, max_headers: int = MAX_HEADERS
) -> Request | Response:
    """Parse one complete message, such as a UDP datagram.

    Content-Length is optional here; when present, bytes past it are dropped
    and a shorter body is an error (RFC 3261 §18.3).

    Raises:
        SipParseError: for anything that is not a valid message; ``partial``
            carries the request when it can still be answered with a 400.
    """
    if len(data) > max_size:
        raise SipParseError("Message too large", f"{len(data)} bytes", status=513)
    if data[:1] in (b"\r", b"\n"):
        # RFC 3261 §7.5: CRLFs before the start line are ignored.
        data = data.lstrip(b"\r\n")
    head_end, body_start = _find_head_end(data, 0)
    if head_end < 0:
        # No empty line: tolerate a message that is only a start line and headers.
        head_end = body_start = len(data)
    start_line, headers = _parse_head(data[:head_end], max_headers)
    return _build_message(start_line, headers, data[body_start:], framed=False)


def _find_head_end(data: bytes | bytearray, start: int) -> tuple[int, int]:
    """Return (end of headers, start of body), or (-1, -1) if not there yet."""
    crlf = data.find(b"\r\n\r\n", start)
    # Tolerate bare-LF line ends: some test tools and embedded stacks send them.
    lf = data.find(b"\n\n", start, crlf if crlf >= 0 else len(data))
    if lf >= 0:
        # A CR before the first LF of the pair belongs to the last header line.
        return (lf - 1 if lf and data[lf - 1] == 0x0D else lf), lf + 2
    if crlf >= 0:
        return crlf, crlf + 4
    return -1, -1


def _parse_head(head: bytes, max_headers: int) -> tuple[str, Headers]:
    """Split the start line from the header lines and parse the headers."""
    # RFC 3261 §7.3.1 allows UTF-8 in values; surrogateescape keeps any other
    # bytes (a Latin-1 display name) intact instead of rejecting the call.
    text = head.decode("utf-8", "surrogateescape")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            raise SipParseError("Bad header line", "bare CR")
    if "\x00" in text:
        # RFC 3261 §25.1: no header text may hold NUL; refusing it here keeps
        # every value we parsed safe to copy into a response.
        raise SipParseError("Bad header line", "NUL byte")
    start_line, _, rest = text.partition("\n")
    return start_line, parse_header_lines(rest, max_headers)


def _build_message(
    start_line: str, headers: Headers, body: bytes, *, framed: bool
) -> Request | Response:
    """Make a Request or Response and check what every message must carry."""
    # Step 1: the start line.
    message: Request | Response
    if start_line[:4].upper() == "SIP/":
        status, reason = _parse_status_line(start_line)
        message = Response(status, reason, headers)
    else:
        method, uri = _parse_request_line(start_line)
        message = Request(method, uri, headers)

    # Step 2: the headers a transaction is matched on (RFC 3261 §8.1.1, §17.2.3).
    _check_mandatory(message)

    # Step 3: the body, and what makes a request answerable but wrong.
    try:
        message.body = _frame_body(headers, body, framed)
        if isinstance(message, Request):
            _check_request(message)
    except SipParseError as error:
        if isinstance(message, Request) and error.partial is None:
            error.partial = message
        raise
    return message


def _check_mandatory(message: Request | Response) -> None:
    # Reading each property parses it once and caches the result.
    _ = (message.top_via, message.from_, message.to, message.call_id, message.cseq)


def _parse_request_line(line: str) -> tuple[str, str]:
    # RFC 3261 §7.1: Request-Line = Method SP Request-URI SP SIP-Version CRLF.
    parts = line.split()
    if len(parts) != 3 or not is_token(parts[0]):
        raise SipParseError("Bad request line", repr(line[:60]))
    _check_version(parts[2], "Bad request line")
    return parts[0], parts[1]


def _parse_status_line(line: str) -> tuple[int, str]:
    # RFC 3261 §7.2: Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF.
    parts = line.split(None, 2)
    if len(parts) < 2:
        raise SipParseError("Bad status line", repr(line[:60]))
    _check_version(parts[0], "Bad status line")
    code = parts[1]
    if (
        len(code) != 3
        or not code.isascii()
        or not code.isdigit()
        or not 100 <= int(code) <= 699
    ):
        raise SipParseError("Bad status line", f"bad status code {code[:10]!r}")
    return int(code), parts[2].strip() if len(parts) == 3 else ""


def _check_version(version: str, reason: str) -> None:
    # RFC 3261 §7.1: the version string is case-insensitive.
    if version.upper() == SIP_VERSION:
        return
    if version[:4].upper() == "SIP/":
        raise SipParseError("Version Not Supported", version[:20], status=505)
    raise SipParseError(reason, f"not SIP: {version[:20]!r}")


def _frame_body(headers: Headers, body: bytes, framed: bool) -> bytes:
    length = _parse_content_length(headers)
    if framed or length is None:
        # Stream framing already cut the body; on UDP the datagram bounds it.
        return body
    if len(body) < length:
        raise SipParseError("Content-Length mismatch", f"{len(body)} < {length} bytes")
    # RFC 3261 §18.3: bytes past Content-Length in a datagram are discarded.
    return body[:length] if len(body) > length else body


def _check_request(request: Request) -> None:
    # RFC 3261 §19.1: a Request-URI is an absolute URI, so it has a scheme. The
    # full parse waits until routing reads request.request_uri.
    if ":" not in request.uri:
        raise SipParseError("Bad Request-URI", repr(request.uri[:60]))
    # RFC 3261 §8.1.1.5: the CSeq method matches the request method.
    if request.cseq[1] != request.method:
        raise SipParseError(
            "CSeq method mismatch", f"{request.cseq[1]} != {request.method}"
        )
    _ = request.max_forwards


# -- stream framing ----------------------------------------------------------------


@dataclass
class _PendingHead:
    """A parsed header block waiting for its body."""

    start_line: str
    headers: Headers
    body_length: int


class StreamFramer:
    """Cut a byte stream (TCP, TLS) into SIP messages (RFC 3261 §18.3).

    Feed it what the connection receives; it returns every message completed
    so far. Content-Length is mandatory on streams. CRLFs between messages are
    skipped; each double CRLF is a keepalive ping (RFC 5626 §3.5.1) counted in
    :attr:`pongs_due`, which the transport answers with one CRLF each and
    resets.

    After an error the framer stays failed: the transport closes the
    connection. If complete messages preceded the bad one in the same
    :meth:`feed`, they are returned and the error is raised by the next call.
    """

    def __init__(
        self, *, max_size: int = MAX_MESSAGE_SIZE, max_headers: int = MAX_HEADERS
    ) -> None:
        self.max_size = max_size
        self.max_headers = max_headers
        self.pongs_due = 0
        self._buffer = bytearray()
        self._scanned = 0
        self._pending: _PendingHead | None = None
        self._error: SipParseError | None = None

    @property
    def failed(self) -> bool:
        """True once a framing or parse error has made the stream unusable."""
        return self._error is not None

    @property
    def buffered(self) -> int:
        """How many received bytes belong to a message not yet complete."""
        return len(self._buffer)

    def take_pongs(self) -> int:
        """Return :attr:`pongs_due` and reset it to zero."""
        pongs, self.pongs_due = self.pongs_due, 0
        return pongs

    def feed(self, data: bytes) -> list[Request | Response]:
        """Add received bytes; return the messages they complete, in order.

        Raises:
            SipParseError: for a malformed message, a missing Content-Length
                header, or a header block or body past ``max_size``.
        """
        if self._error is not None:
            raise self._error
        self._buffer += data
        messages: list[Request | Response] = []
        try:
            while (message := self._next_message()) is not None:
                messages.append(message)
        except SipParseError as error:
            self._error = error
            self._buffer.clear()
            if not messages:
                raise
        return messages

    def _next_message(self) -> Request | Response | None:
        if self._pending is None:
            self._pending = self._next_head()
            if self._pending is None:
                return None
        pending = self._pending
        if len(self._buffer) < pending.body_length:
            return None
        body = bytes(self._buffer[: pending.body_length])
        del self._buffer[: pending.body_length]
        self._pending = None
        return _build_message(pending.start_line, pending.headers, body, framed=True)

    def _next_head(self) -> _PendingHead | None:
        if not self._skip_keepalives():
            return None
        head_end, body_start = _find_head_end(self._buffer, self._scanned)
        if head_end < 0:
            if len(self._buffer) > self.max_size:
                raise SipParseError("Message too large", "header block", status=513)
            # The terminator may straddle two feeds: rescan its last 3 bytes.
            self._scanned = max(0, len(self._buffer) - 3)
            return None
        head = bytes(self._buffer[:head_end])
        del self._buffer[:body_start]
        self._scanned = 0
        start_line, headers = _parse_head(head, self.max_headers)
        length = _parse_content_length(headers)
        if length is None:
            raise _missing_content_length(start_line, headers)
        if body_start + length > self.max_size:
            raise SipParseError(
                "Message too large", f"body of {length} bytes", status=513
            )
        return _PendingHead(start_line, headers, length)

    def _skip_keepalives(self) -> bool:
        """Drop CRLFs before a start line; return False if only those remain."""
        buffer = self._buffer
        while buffer and buffer[0] in (0x0D, 0x0A):
            if buffer.startswith(b"\r\n\r\n"):
                # RFC 5626 §3.5.1: a double-CRLF ping is answered by one CRLF.
                self.pongs_due += 1
                del buffer[:4]
            elif len(buffer) < 4 and b"\r\n\r\n".startswith(buffer):
                return False  # maybe the first half of a ping
            else:
                # RFC 3261 §7.5: stray CRLFs before a start line are ignored.
                del buffer[: 2 if buffer.startswith(b"\r\n") else 1]
        return bool(buffer)


def _missing_content_length(start_line: str, headers: Headers) -> SipParseError:
    # RFC 3261 §18.3: on a stream, Content-Length MUST be present.
    error = SipParseError("Missing Content-Length header")
    message = _build_message(start_line, headers, b"", framed=True)
    if isinstance(message, Request):
        error.partial = message
    return error


# -- building responses --------------------------------------------------------------


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """Build a response to `request` (RFC 3261 §8.2.6).

    Copies every Via in order, From, To, Call-ID and CSeq (§8.2.6.2), adds
    `to_tag` to To unless To already has a tag, copies Record-Route into
    101-299 responses to INVITE (§12.1.1) and Timestamp into 100 (§8.2.6.1).
    `headers` follow, then Content-Type when `content_type` is given.
    Content-Length is written by :meth:`Response.serialise`.

    Raises:
        ValueError: for a status outside 100-699 or a header value with CR/LF.
        SipParseError: if the request's To header cannot be read.
    """
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} is outside 100-699")
    if reason is not None and ("\r" in reason or "\n" in reason):
        raise ValueError("reason phrase contains a line break")
    fields: list[tuple[str, str]] = []
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            fields.append((name, value))
        elif name == "To":
            fields.append((name, _to_with_tag(value, to_tag, request)))
        elif _copies_extra(name, status, request.method):
            fields.append((name, value))
    fields += headers
    response = Response(status, reason or reason_phrase(status), Headers(fields), body)
    if content_type is not None:
        response.headers.set("Content-Type", content_type)
    return response


def _copies_extra(name: str, status: int, method: str) -> bool:
    if name == "Record-Route":
        # §12.1.1: responses that set up a (possibly early) dialog echo Record-Route.
        return method == "INVITE" and 101 <= status <= 299
    # §8.2.6.1: a 100 Trying echoes the request's Timestamp.
    return name == "Timestamp" and status == 100


def _to_with_tag(value: str, to_tag: str | None, request: Request) -> str:
    # §8.2.6.2: the UAS adds a tag to To unless the request already had one.
    if to_tag is None or request.to.tag is not None:
        return value
    return f"{value};tag={to_tag}"
