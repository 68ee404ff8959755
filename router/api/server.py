"""Serve the admin API with uvicorn inside the router's own event loop.

The router process owns SIGINT and SIGTERM (it drains calls before it stops), so
uvicorn must not install its signal handlers: :class:`ApiServer` runs
``uvicorn.Server.serve()`` as a task with signal capture turned off, and stops it
when the router stops. The listening socket is bound here, before uvicorn starts,
so an address in use is an ``OSError`` for the caller rather than uvicorn's
``sys.exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Iterator

import structlog
import uvicorn
from starlette.types import ASGIApp

__all__ = ["ApiServer"]

log = structlog.get_logger("router.http")

# How long open requests may run on after stop() before they are cancelled. Admin
# calls take milliseconds; a few seconds covers a large import on a slow store.
SHUTDOWN_GRACE_S = 5

# Keep-alive connections idle longer than this are closed. Clients (the CLI, the
# AsyncClient) reuse a connection within a burst of calls; 5 s is uvicorn's default.
KEEP_ALIVE_S = 5

# How many connections the admin API serves at once; more get 503 from uvicorn. The
# API is for operators and customers' scripts, not for call traffic.
MAX_CONNECTIONS = 256

# The kernel's accept queue; the same as asyncio's default.
BACKLOG = 100


class _RouterOwnedSignals(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the router process."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing: SIGINT and SIGTERM stop the whole router, not just HTTP."""
        yield

    def install_signal_handlers(self) -> None:
        """Install nothing (the hook's name in uvicorn releases before 0.29)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start serving, then tell :meth:`ApiServer.start` that we listen."""
        await super().startup(sockets=sockets)
        self.ready.set()


class ApiServer:
    """The admin API's HTTP listener, running as a task in the current event loop."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.port = 0
        self._server: _RouterOwnedSignals | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host``:``port`` (0 picks a free port) and serve in a task.

        Raises:
            OSError: the address cannot be bound.
        """
        self._socket = _bind(host, port)
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            limit_concurrency=MAX_CONNECTIONS,
            backlog=BACKLOG,
        )
        self._server = _RouterOwnedSignals(config)
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self._socket]), name="admin-api"
        )
        await self._wait_until_listening(self._server, self._task)
        log.info("http_listening", bind=host, port=self.port)

    @staticmethod
    async def _wait_until_listening(
        server: _RouterOwnedSignals, task: asyncio.Task[None]
    ) -> None:
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            task.result()  # raises what made uvicorn stop
            raise OSError("the admin API stopped while starting")

    async def stop(self) -> None:
        """Stop accepting, let open requests finish (bounded), and close the socket."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._task, SHUTDOWN_GRACE_S * 2)
            except TimeoutError:
                log.warning("http_stop_timeout")
        if self._socket is not None:
            self._socket.close()
        self._server = self._task = self._socket = None


def _bind(host: str, port: int) -> socket.socket:
    family = (
        socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    )
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Lets a restarted router rebind at once while old connections sit in
        # TIME_WAIT (RFC 9293 §3.6.1); it does not allow two live listeners.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
