"""The built-in echo runner: a Media Streams WebSocket server that plays callers back.

Used by the demo and by end-to-end tests. It waits for ``start``, sends every
``media`` frame straight back, places a ``mark`` after each second of echoed
audio (so marks are exercised end to end), records DTMF digits, and ends the
stream on ``stop`` or when the socket closes.

Test pipes choose the runner's behaviour through the query string of its URL:

``?ready_delay=2.0``
    Delay the WebSocket handshake by that many seconds (a runner slow to be ready).
``?hangup_after=3.0``
    Close the stream that many seconds after ``start`` (the runner hangs up).
``?reject=1``
    Refuse the handshake with HTTP 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import math
import signal
import zlib
from collections.abc import Awaitable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import structlog
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from router.runner.protocol import (
    BYTES_PER_MS,
    MAX_RUNNER_MESSAGE,
    RouterDtmf,
    RouterMark,
    RouterMediaText,
    RouterStart,
    RouterStop,
    RunnerMediaBuilder,
    RunnerProtocolError,
    read_router_message,
    runner_mark,
)
from router.runner.ws import ServerConnection, WebSocketServer, serve

__all__ = [
    "MARK_INTERVAL_MS",
    "MAX_TEST_DELAY",
    "EchoOptions",
    "EchoRunner",
    "main_echo_runner",
    "serve_echo_runner",
]

# A mark after each second of echoed audio: often enough for a short test call
# to see several, rare enough not to matter for a long demo call. Each stream
# marks at its own phase in the second (from its stream SID), the first time
# within its first second: streams that start together (a load test) would
# otherwise all mark in the same 20 ms, a burst no real set of calls makes.
MARK_INTERVAL_MS = 1000
_MARK_PHASES = MARK_INTERVAL_MS // 20

# Longest ready_delay or hangup_after a URL may ask for, in seconds: enough for
# any test scenario, and a typo cannot park a connection for hours.
MAX_TEST_DELAY = 300.0

_logger = structlog.get_logger(__name__)


class _BadOption(ValueError):
    """A test hook in the URL query string has an unusable value."""


def _parse_delay(query: dict[str, list[str]], name: str) -> float | None:
    values = query.get(name)
    if not values:
        return None
    try:
        delay = float(values[-1])
    except ValueError:
        raise _BadOption(f"{name} must be a number of seconds") from None
    if not math.isfinite(delay) or not 0.0 <= delay <= MAX_TEST_DELAY:
        raise _BadOption(f"{name} must be between 0 and {MAX_TEST_DELAY:g} seconds")
    return delay


@dataclass(frozen=True)
class EchoOptions:
    """The test hooks read from a runner URL's query string."""

    ready_delay: float | None = None
    hangup_after: float | None = None
    reject: bool = False

    @classmethod
    def from_path(cls, path: str) -> EchoOptions:
        """Read the options from the request path, e.g. ``/?hangup_after=3``.

        Raises:
            ValueError: a delay is not a number of seconds within range.
        """
        query = parse_qs(urlsplit(path).query)
        reject = query.get("reject", ["0"])[-1] not in ("", "0", "false", "no")
        return cls(
            ready_delay=_parse_delay(query, "ready_delay"),
            hangup_after=_parse_delay(query, "hangup_after"),
            reject=reject,
        )


class EchoRunner:
    """A running echo runner server; create it with :func:`serve_echo_runner`.

    Attributes:
        port: the TCP port it listens on (useful when asked for port 0).
        sessions: WebSocket streams currently open.
        digits: every DTMF digit received, in order, across sessions.
        marks_played: every mark the router reported as played.
        starts: the ``start`` messages received, in order.
    """

    def __init__(self) -> None:
        self.port = 0
        self.sessions = 0
        self.digits: list[str] = []
        self.marks_played: list[str] = []
        self.starts: list[RouterStart] = []
        self._server: WebSocketServer | None = None

    async def listen(self, host: str, port: int) -> None:
        """Start listening on ``host``:``port`` (port 0 picks a free one)."""
        self._server = await serve(
            self._open_session,
            host,
            port,
            check_request=self._check_request,
            max_message=MAX_RUNNER_MESSAGE,
        )
        self.port = self._server.port

    async def close(self) -> None:
        """Stop listening and close every open stream."""
        if self._server is not None:
            await self._server.close()

    async def serve_forever(self) -> None:
        """Wait until the server is closed."""
        if self._server is not None:
            await self._server.wait_closed()

    def _check_request(
        self, protocol: ServerProtocol, request: Request
    ) -> Response | Awaitable[None] | None:
        """Apply the ``reject`` and ``ready_delay`` hooks before the handshake."""
        try:
            options = EchoOptions.from_path(request.path)
        except ValueError as exc:
            return protocol.reject(http.HTTPStatus.BAD_REQUEST, f"{exc}\n")
        if options.reject:
            return protocol.reject(
                http.HTTPStatus.SERVICE_UNAVAILABLE, "runner not ready\n"
            )
        if options.ready_delay:
            return asyncio.sleep(options.ready_delay)
        return None

    def _open_session(self, conn: ServerConnection, request: Request) -> None:
        self.sessions += 1
        _EchoSession(self, conn, EchoOptions.from_path(request.path))

    def _session_ended(self) -> None:
        self.sessions -= 1


class _EchoSession:
    """One stream on the echo runner, driven by its connection's callbacks."""

    def __init__(
        self, runner: EchoRunner, conn: ServerConnection, options: EchoOptions
    ) -> None:
        self._runner = runner
        self._conn = conn
        self._options = options
        self._media = RunnerMediaBuilder("")
        self._stream_sid = ""
        self._echoed_bytes = 0
        self._marks_sent = 0
        self._hangup: asyncio.TimerHandle | None = None
        self._ended = False
        self._log = _logger
        conn.on_message = self._on_message
        conn.on_lost = self._end

    def _on_message(self, text: str | bytes) -> None:
        if self._ended:
            return
        # Caller audio is nearly every message: it is echoed as the base64 text
        # it came in (checked to decode), not decoded and encoded again.
        try:
            message = read_router_message(text)
        except RunnerProtocolError as exc:
            self._log.warning("invalid router message ignored", error=str(exc))
            return
        if isinstance(message, RouterMediaText):
            self._echo(message.payload_b64, message.length)
        elif isinstance(message, RouterStart):
            self._begin(message)
        elif isinstance(message, RouterDtmf):
            self._runner.digits.append(message.digit)
            self._log.info("echo digit", digit=message.digit)
        elif isinstance(message, RouterMark):
            self._runner.marks_played.append(message.name)
        elif isinstance(message, RouterStop):
            self._end()
            # The stream is over: close as a WebSocket server does once its
            # handler returns (RFC 6455 §7.4.1, 1000 normal closure).
            self._conn.close()

    def _begin(self, start: RouterStart) -> None:
        self._stream_sid = start.stream_sid
        self._media = RunnerMediaBuilder(start.stream_sid)
        self._runner.starts.append(start)
        self._echoed_bytes = _mark_phase(start.stream_sid)
        self._log = _logger.bind(call_id=start.call_sid, stream_sid=start.stream_sid)
        self._log.info("echo session started", pipe_id=start.account_sid)
        delay = self._options.hangup_after
        if delay is not None and self._hangup is None:
            loop = asyncio.get_running_loop()
            self._hangup = loop.call_later(delay, self._hang_up, delay)

    def _echo(self, payload_b64: str, length: int) -> None:
        self._conn.send_text(self._media.from_base64(payload_b64))
        before = self._echoed_bytes // (MARK_INTERVAL_MS * BYTES_PER_MS)
        self._echoed_bytes += length
        if self._echoed_bytes // (MARK_INTERVAL_MS * BYTES_PER_MS) > before:
            self._marks_sent += 1
            self._conn.send_text(
                runner_mark(self._stream_sid, f"echo-{self._marks_sent}")
            )

    def _hang_up(self, delay: float) -> None:
        self._log.info("echo runner hanging up", after=delay)
        # RFC 6455 §7.4.1: 1000 is a normal closure, the stream has done its job.
        self._conn.close(1000, "runner hangup")

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._hangup is not None:
            self._hangup.cancel()
        self._runner._session_ended()
        self._log.info("echo session ended")


def _mark_phase(stream_sid: str) -> int:
    """Echoed bytes to count as already past the last mark, for this stream."""
    phase_ms = zlib.crc32(stream_sid.encode()) % _MARK_PHASES * 20
    return phase_ms * BYTES_PER_MS


async def serve_echo_runner(host: str, port: int) -> EchoRunner:
    """Start an echo runner listening on ``host``:``port`` and return it.

    Port 0 picks a free port; read it from :attr:`EchoRunner.port`.
    """
    runner = EchoRunner()
    await runner.listen(host, port)
    return runner


async def _serve_until_signalled(host: str, port: int) -> None:
    runner = await serve_echo_runner(host, port)
    _logger.info("echo runner listening", host=host, port=runner.port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.close()
        _logger.info("echo runner stopped")


def main_echo_runner(host: str, port: int) -> None:
    """Run an echo runner on ``host``:``port`` until SIGINT or SIGTERM."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_until_signalled(host, port))
