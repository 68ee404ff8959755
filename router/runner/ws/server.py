"""The server side: accept connections, run the opening handshake, hand over streams."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from router.runner.ws.connection import Connection

__all__ = [
    "RequestCheck",
    "ServerConnection",
    "StreamOpened",
    "WebSocketServer",
    "serve",
]

# Decides on a handshake request before it is accepted: a Response (made with
# ``protocol.reject``) refuses it, None accepts it; it may be a coroutine.
RequestCheck = Callable[
    [ServerProtocol, Request], Response | Awaitable[Response | None] | None
]

# Called once a connection is open, with the request that opened it; it sets the
# connection's on_message and on_lost.
StreamOpened = Callable[["ServerConnection", Request], None]


class ServerConnection(Connection):
    """The server end of a connection, created by :class:`WebSocketServer`."""

    protocol: ServerProtocol

    def __init__(
        self,
        server: WebSocketServer,
        protocol: ServerProtocol,
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
        self._server = server
        self._checking: asyncio.Task[None] | None = None
        self.request: Request | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Track the connection so closing the server closes it too."""
        super().connection_made(transport)
        self._server.connections.add(self)

    def _handle_handshake(self, event: object) -> None:
        if not isinstance(event, Request) or self.request is not None:
            return
        self.request = event
        verdict = self._server.check_request(self.protocol, event)
        if inspect.isawaitable(verdict):
            self._checking = asyncio.ensure_future(self._answer_later(event, verdict))
        else:
            self._answer(event, verdict)

    async def _answer_later(
        self, request: Request, verdict: Awaitable[Response | None]
    ) -> None:
        self._answer(request, await verdict)

    def _answer(self, request: Request, rejection: Response | None) -> None:
        if self.lost:
            return
        response = rejection or self.protocol.accept(request)
        self.protocol.send_response(response)
        self._flush()
        if self.protocol.handshake_exc is not None or response.status_code != 101:
            # RFC 6455 §4.2.2: a refused handshake ends the TCP connection.
            if self.transport is not None:
                self.transport.close()
            return
        self._opened()
        self._server.stream_opened(self, request)

    def _handshake_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        if self._checking is not None:
            self._checking.cancel()


class WebSocketServer:
    """A listening WebSocket server; create it with :func:`serve`."""

    def __init__(
        self,
        stream_opened: StreamOpened,
        check_request: RequestCheck,
        *,
        max_message: int,
        ping_interval: float | None,
        ping_timeout: float,
        close_timeout: float,
    ) -> None:
        self.stream_opened = stream_opened
        self.check_request = check_request
        self.connections: set[ServerConnection] = set()
        self._max_message = max_message
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self.server: asyncio.Server | None = None

    def new_connection(self) -> ServerConnection:
        """Protocol factory for the listening socket."""
        # No extensions are enabled, so permessage-deflate is never negotiated.
        protocol = ServerProtocol(max_size=self._max_message)
        return ServerConnection(
            self,
            protocol,
            ping_interval=self._ping_interval,
            ping_timeout=self._ping_timeout,
            close_timeout=self._close_timeout,
        )

    @property
    def port(self) -> int:
        """The TCP port of the first listening socket."""
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        """Stop listening, close every connection (1001) and wait for them to end."""
        if self.server is None:
            return
        self.server.close()
        connections = list(self.connections)
        for connection in connections:
            # RFC 6455 §7.4.1: 1001, the endpoint is going away.
            connection.close(CloseCode.GOING_AWAY)
        for connection in connections:
            await connection.wait_lost()
        await self.server.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the server has been closed."""
        if self.server is not None:
            await self.server.wait_closed()


async def serve(
    stream_opened: StreamOpened,
    host: str,
    port: int,
    *,
    check_request: RequestCheck,
    max_message: int,
    ping_interval: float | None = 20.0,
    ping_timeout: float = 20.0,
    close_timeout: float = 10.0,
) -> WebSocketServer:
    """Listen on ``host``:``port`` (0 picks a free port) for WebSocket connections.

    ``check_request`` sees each handshake request first; ``stream_opened`` gets
    every connection whose handshake succeeded. The keepalive and closing
    defaults are websockets' own server defaults, which the echo runner used
    before it moved onto this layer.
    """
    server = WebSocketServer(
        stream_opened,
        check_request,
        max_message=max_message,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
    )
    loop = asyncio.get_running_loop()
    server.server = await loop.create_server(server.new_connection, host, port)
    return server
