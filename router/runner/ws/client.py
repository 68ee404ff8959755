"""The client side: connect to a ``ws://`` or ``wss://`` URL and do the handshake."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.http11 import USER_AGENT, Response
from websockets.uri import parse_uri

from router.runner.ws.connection import Connection, MessageHandler

__all__ = ["ClientConnection", "open_connection"]


class ClientConnection(Connection):
    """The client end of a connection; :func:`open_connection` creates it."""

    protocol: ClientProtocol

    def __init__(
        self,
        protocol: ClientProtocol,
        *,
        ping_interval: float | None,
        ping_timeout: float,
        close_timeout: float,
    ) -> None:
        super().__init__(
            protocol,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
        )
        self.handshake: asyncio.Future[None] = self._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the opening handshake's request (RFC 6455 §4.1)."""
        super().connection_made(transport)
        request = self.protocol.connect()
        request.headers["User-Agent"] = USER_AGENT
        self.protocol.send_request(request)
        self._flush()

    def _handle_handshake(self, event: object) -> None:
        if not isinstance(event, Response) or self.handshake.done():
            return
        if self.protocol.handshake_exc is not None:
            self.handshake.set_exception(self.protocol.handshake_exc)
        else:
            self.handshake.set_result(None)
            self._opened()

    def data_received(self, data: bytes) -> None:
        """As for :class:`Connection`; also report a response that could not be read."""
        super().data_received(data)
        self._report_handshake_failure()

    def _handshake_lost(self, exc: Exception | None) -> None:
        if not self._report_handshake_failure() and not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionResetError("connection lost"))

    def _report_handshake_failure(self) -> bool:
        # Garbage instead of an HTTP response, or the end of the stream before
        # one, fails the handshake without producing a Response event.
        failure = self.protocol.handshake_exc
        if failure is None or self.handshake.done():
            return False
        self.handshake.set_exception(failure)
        self.abort()
        return True


async def open_connection(
    url: str,
    *,
    on_message: MessageHandler,
    on_lost: Callable[[], None],
    ssl_context: ssl.SSLContext | None,
    max_message: int,
    ping_interval: float | None,
    ping_timeout: float,
    close_timeout: float,
) -> ClientConnection:
    """Connect to ``url`` and complete the opening handshake.

    No proxy is consulted and no extension is offered (so no compression). The
    caller bounds the time this takes.

    Args:
        url: ``ws://`` or ``wss://`` URL; user info becomes Basic authorization.
        on_message, on_lost: become the connection's callbacks before the
            handshake, so no message that follows the response is missed.
        ssl_context: for ``wss://``; defaults to one that checks the certificate
            against the system trust store. The URL's host is the server name.
        max_message: largest message accepted, in bytes, over all its fragments.
        ping_interval, ping_timeout, close_timeout: see :class:`Connection`.

    Raises:
        InvalidURI: ``url`` is not a WebSocket URL.
        InvalidHandshake: the runner refused or botched the handshake
            (:exc:`~websockets.exceptions.InvalidStatus` for a non-101 answer).
        OSError: the TCP connection or TLS failed.
    """
    uri = parse_uri(url)
    protocol = ClientProtocol(uri, max_size=max_message)
    loop = asyncio.get_running_loop()

    def new_connection() -> ClientConnection:
        connection = ClientConnection(
            protocol,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
        )
        connection.on_message, connection.on_lost = on_message, on_lost
        return connection

    _, connection = await loop.create_connection(
        new_connection,
        uri.host,
        uri.port,
        ssl=(ssl_context or ssl.create_default_context()) if uri.secure else None,
    )
    try:
        await connection.handshake
    except BaseException:
        # Settle the future so a later failure is not reported as unretrieved.
        connection.handshake.cancel()
        connection.abort()
        raise
    return connection
