"""Parsing one complete message, such as a UDP datagram (RFC 3261 §7, §18.3).

Parsing is lazy where that is cheap: :func:`parse_message` splits the start line and
the header lines once, checks the fields every request needs (RFC 3261 §8.1.1: Via,
From, To, Call-ID, CSeq) and frames the body. The steps are shared with the stream
framer.
"""

from __future__ import annotations

from router.sip.errors import SipParseError
from router.sip.header_names import is_token
from router.sip.headers import Headers, parse_header_lines

from .fields import parse_content_length
from .model import SIP_VERSION, Request, Response

__all__ = [
    "MAX_HEADERS",
    "MAX_MESSAGE_SIZE",
    "build_message",
    "find_head_end",
    "is_keepalive",
    "parse_head",
    "parse_message",
]

# The largest UDP payload is 65,507 bytes over IPv4 (65,535 minus the 20-byte IP
# and 8-byte UDP headers) and 65,527 over IPv6; 65,535 admits every datagram and
# bounds what one TCP peer can make us buffer for a single message.
MAX_MESSAGE_SIZE = 65_535

# Carrier INVITEs carry 15-40 header lines; 256 leaves room for verbose PBXs
# while bounding the work a hostile message can cause.
MAX_HEADERS = 256


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
    head_end, body_start = find_head_end(data, 0)
    if head_end < 0:
        # No empty line: tolerate a message that is only a start line and headers.
        head_end = body_start = len(data)
    start_line, headers = parse_head(data[:head_end], max_headers)
    return build_message(start_line, headers, data[body_start:], framed=False)


def find_head_end(data: bytes | bytearray, start: int) -> tuple[int, int]:
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


def parse_head(head: bytes, max_headers: int) -> tuple[str, Headers]:
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


def build_message(
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
    # RFC 3261 §8.1.1 lists what every request carries: Via, From, To, Call-ID and
    # CSeq; responses carry the same (§8.2.6.2) because transactions are matched on
    # them. Reading each property parses it once and caches the result.
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
    length = parse_content_length(headers)
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
