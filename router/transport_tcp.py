"""SIP over TCP: one connection's framing and idle timeout, and the set of them.

A :class:`TcpConnection` frames its byte stream into messages by
Content-Length (RFC 3261 §18.3), answers RFC 5626 keep-alive pings, and closes
itself after an idle timeout. :class:`TcpConnections` holds the open ones
under a limit, and finds the one to a given address, so a response can go back
on the connection its request came on (§18.2.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import structlog

from router.sip.errors import SipParseError
from router.sip.message import StreamFramer
from router.sip.transaction import Peer

if TYPE_CHECKING:
    from router.transport import SipTransports

__all__ = ["TcpConnection", "TcpConnections"]

log = structlog.get_logger("router.transport")


class TcpConnection(asyncio.Protocol):
    """One SIP-over-TCP connection, framed by Content-Length (§18.3)."""

    def __init__(self, owner: SipTransports) -> None:
        self.owner = owner
        self.framer = StreamFramer(max_size=owner.limits.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.idle_handle: asyncio.TimerHandle | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register the connection, or drop it when the limit is reached."""
        # A cast, not an isinstance check: uvloop's TCP transport (what
        # `sip-router run` uses) has asyncio.Transport's methods without
        # subclassing it.
        stream = self.transport = cast(asyncio.Transport, transport)
        host, port = stream.get_extra_info("peername")[:2]
        self.peer = Peer("TCP", host, port, connection=self)
        if not self.owner.connections.add(self):
            log.warning("tcp_connection_limit", peer=host)
            stream.abort()
            return
        self._touch()

    def data_received(self, data: bytes) -> None:
        """Frame what arrived into messages and deliver them."""
        assert self.peer is not None and self.transport is not None
        self._touch()
        try:
            messages = self.framer.feed(data)
        except SipParseError as error:
            self.owner.parse_failed(error, self.peer)
            self.transport.close()
            return
        if self.framer.pongs_due:
            # RFC 5626 §3.5.1: answer a CRLFCRLF ping with a CRLF pong.
            self.transport.write(b"\r\n" * self.framer.pongs_due)
            self.framer.pongs_due = 0
        for message in messages:
            self.owner.deliver(message, self.peer)

    def write(self, data: bytes) -> None:
        """Send ``data`` unless the connection has closed."""
        if self.transport is not None and not self.closed:
            self.transport.write(data)
            self._touch()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the idle timer and forget the connection."""
        self.closed = True
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        self.owner.connections.remove(self)

    def _touch(self) -> None:
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        loop = asyncio.get_running_loop()
        self.idle_handle = loop.call_later(
            self.owner.limits.tcp_idle_timeout, self._idle
        )

    def _idle(self) -> None:
        if self.transport is not None:
            log.info("tcp_idle_close", peer=self.peer.host if self.peer else None)
            self.transport.close()


class TcpConnections:
    """The open TCP connections, at most ``limit`` of them, by peer address."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: set[TcpConnection] = set()
        self._by_address: dict[tuple[str, int], TcpConnection] = {}

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[TcpConnection]:
        return iter(list(self._open))

    def add(self, connection: TcpConnection) -> bool:
        """Register a connection; False when the limit is reached."""
        if len(self._open) >= self.limit:
            return False
        self._open.add(connection)
        if connection.peer is not None:
            self._by_address[(connection.peer.host, connection.peer.port)] = connection
        return True

    def remove(self, connection: TcpConnection) -> None:
        """Forget a closed connection."""
        self._open.discard(connection)
        if connection.peer is not None:
            key = (connection.peer.host, connection.peer.port)
            if self._by_address.get(key) is connection:
                del self._by_address[key]

    def to(self, host: str, port: int) -> TcpConnection | None:
        """The open connection with this peer address, if any."""
        return self._by_address.get((host, port))

    def close_all(self) -> None:
        """Close every connection (each forgets itself once closed)."""
        for connection in list(self._open):
            if connection.transport is not None:
                connection.transport.close()
