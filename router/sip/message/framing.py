"""Cutting a byte stream (TCP, TLS) into SIP messages (RFC 3261 §18.3).

One :class:`StreamFramer` per connection; Content-Length is mandatory on streams, and
double-CRLF keepalives (RFC 5626 §3.5.1) are counted for the transport to answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.sip.errors import SipParseError
from router.sip.headers import Headers

from .fields import parse_content_length
from .model import Request, Response
from .parser import (
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    build_message,
    find_head_end,
    parse_head,
)

__all__ = ["StreamFramer"]


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
        return build_message(pending.start_line, pending.headers, body, framed=True)

    def _next_head(self) -> _PendingHead | None:
        if not self._skip_keepalives():
            return None
        head_end, body_start = find_head_end(self._buffer, self._scanned)
        if head_end < 0:
            if len(self._buffer) > self.max_size:
                raise SipParseError("Message too large", "header block", status=513)
            # The terminator may straddle two feeds: rescan its last 3 bytes.
            self._scanned = max(0, len(self._buffer) - 3)
            return None
        head = bytes(self._buffer[:head_end])
        del self._buffer[:body_start]
        self._scanned = 0
        start_line, headers = parse_head(head, self.max_headers)
        length = parse_content_length(headers)
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
    message = build_message(start_line, headers, b"", framed=True)
    if isinstance(message, Request):
        error.partial = message
    return error
