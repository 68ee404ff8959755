"""A lean WebSocket layer for runner streams, on websockets' sans-I/O protocol.

:mod:`~router.runner.ws.connection` drives the protocol from a plain
:class:`asyncio.Protocol`, sending and delivering messages synchronously;
:mod:`~router.runner.ws.client` connects to a runner and
:mod:`~router.runner.ws.server` accepts streams (the echo runner);
:mod:`~router.runner.ws.framing` writes data frames without the per-frame
overhead of the generic frame builder.
"""

from __future__ import annotations

from router.runner.ws.client import ClientConnection, open_connection
from router.runner.ws.connection import Connection, MessageHandler
from router.runner.ws.server import (
    RequestCheck,
    ServerConnection,
    StreamOpened,
    WebSocketServer,
    serve,
)

__all__ = [
    "ClientConnection",
    "Connection",
    "MessageHandler",
    "RequestCheck",
    "ServerConnection",
    "StreamOpened",
    "WebSocketServer",
    "open_connection",
    "serve",
]
