"""The WebSocket client that bridges one call to its runner.

A :class:`RunnerSession` connects to the pipe's runner, sends ``connected`` and
``start``, then runs two tasks for the life of the call:

* a writer that drains a bounded queue of outgoing messages (caller audio,
  DTMF, played marks, ``stop``), so sending a 20 ms frame never blocks and never
  creates a task;
* a reader that hands the runner's audio, marks and clears to a
  :class:`MediaSink` (the call's media session).

When the runner closes the stream or the connection drops, ``on_closed`` fires
once so the call can hang up; it never fires after the call itself asked the
session to close.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidURI,
)

from router.runner.diagnostics import describe_closure, describe_failure, redact_url
from router.runner.interface import (
    MediaSink,
    RunnerStats,
    RunnerUnavailable,
    StreamStart,
)
from router.runner.protocol import (
    MAX_RUNNER_MESSAGE,
    RunnerClear,
    RunnerMark,
    RunnerMedia,
    RunnerMessage,
    RunnerProtocolError,
    StreamEncoder,
    parse_runner_message,
)

__all__ = [
    "CLOSE_TIMEOUT",
    "CONTROL_HEADROOM",
    "INVALID_LOG_INTERVAL",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "STOP_FLUSH_TIMEOUT",
    "MediaSink",
    "RunnerSession",
    "RunnerStats",
    "RunnerUnavailable",
    "StreamStart",
]

# Keepalive (RFC 6455 §5.5.2, §5.5.3: the runner must answer a ping with a pong):
# a ping every 10 s, and a runner that has not answered within 10 s more
# is declared dead. 20 s of silence is long for a conversation but short enough
# that a vanished runner does not hold a caller on a dead line; websockets'
# default of 20 s + 20 s would double that.
PING_INTERVAL = 10.0
PING_TIMEOUT = 10.0

# Seconds to wait for the runner to answer our closing handshake before the TCP
# connection is dropped; a healthy runner answers within one round trip.
CLOSE_TIMEOUT = 2.0

# Seconds close() waits for audio already queued and the final ``stop`` to be
# written, so the runner hears the caller's last words and learns why the stream
# ended; a runner that is not reading does not hold a hangup for longer.
STOP_FLUSH_TIMEOUT = 1.0

# Queue slots beyond ``max_send_queue`` kept for DTMF, played marks and ``stop``:
# these are rare and small, so they are not dropped just because audio filled
# the queue, yet a runner flooding marks cannot grow the queue without bound.
CONTROL_HEADROOM = 50

# Invalid runner messages are logged at most once per this many seconds, so a
# runner sending garbage at frame rate does not flood the log.
INVALID_LOG_INTERVAL = 1.0

_logger = structlog.get_logger(__name__)


class _State(enum.Enum):
    NEW = "new"
    OPENING = "opening"
    OPEN = "open"
    ENDED = "ended"  # the runner closed the stream or the connection dropped
    CLOSED = "closed"  # we closed the session


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """The certificate-checking context used for ``wss://`` unless one is given.

    Loading the system trust store costs milliseconds, so it is done once.
    """
    return ssl.create_default_context()


class RunnerSession:
    """One call's Media Streams session with its runner.

    Args:
        url: ``ws://`` or ``wss://`` URL of the runner.
        start: what to announce in ``start``.
        sink: receives the runner's audio, marks and clears.
        on_closed: called once with a reason when the runner ends the stream or
            the connection drops; never after :meth:`close` was called.
        connect_timeout: seconds :meth:`open` may take in all.
        ssl_context: for ``wss://``; defaults to a context that checks the
            runner's certificate against the system trust store.
        max_send_queue: outgoing messages buffered while the runner reads slowly;
            250 frames of 20 ms is 5 s of audio, after which caller audio is
            dropped (and counted) rather than delayed further.
    """

    def __init__(
        self,
        url: str,
        start: StreamStart,
        *,
        sink: MediaSink,
        on_closed: Callable[[str], None],
        connect_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        max_send_queue: int = 250,
    ) -> None:
        self.url = url
        self.start = start
        self.stats = RunnerStats()
        self._sink = sink
        self._on_closed = on_closed
        self._connect_timeout = connect_timeout
        self._ssl_context = ssl_context
        self._max_send_queue = max_send_queue
        self._encoder = StreamEncoder(
            start.stream_sid, account_sid=start.account_sid, call_sid=start.call_sid
        )
        self._state = _State.NEW
        self._ws: ClientConnection | None = None
        self._started = False
        self._queue: deque[tuple[str, bool]] = deque()
        self._wakeup = asyncio.Event()
        self._finishing = False
        self._connect_task: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._last_invalid_log = -INVALID_LOG_INTERVAL
        self._invalid_since_log = 0
        self._log = _logger.bind(call_id=start.call_sid, stream_sid=start.stream_sid)

    @property
    def is_open(self) -> bool:
        """True between a successful :meth:`open` and the end of the stream."""
        return self._state is _State.OPEN

    # Opening.

    async def open(self) -> None:
        """Connect to the runner and send ``connected`` and ``start``.

        Cancelling the task awaiting this, or calling :meth:`close`, abandons the
        attempt and closes the connection if it was made.

        Raises:
            RunnerUnavailable: the runner was not reached, refused the handshake,
                closed early, or :meth:`close` was called, within
                ``connect_timeout``.
            RuntimeError: the session was already opened.
        """
        if self._state is not _State.NEW:
            raise RuntimeError("a RunnerSession can be opened once")
        self._state = _State.OPENING
        self._connect_task = asyncio.create_task(self._connect_and_start())
        try:
            await self._connect_task
        except asyncio.CancelledError:
            if self._closed_by_us_while_opening():
                raise RunnerUnavailable("closed while opening") from None
            raise
        finally:
            self._connect_task = None
        if self._close_task is not None:
            raise RunnerUnavailable("closed while opening")
        self._start_tasks()

    def _closed_by_us_while_opening(self) -> bool:
        """True if close() cancelled the attempt, not a cancellation of our caller."""
        current = asyncio.current_task()
        caller_cancelled = current is not None and current.cancelling() > 0
        return self._close_task is not None and not caller_cancelled

    async def _connect_and_start(self) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                self._ws = ws = await self._connect()
                await ws.send(self._encoder.connected())
                await ws.send(self._encoder.start(self.start.custom_parameters))
                self._started = True
        except (OSError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
            # TimeoutError is an OSError: it covers both our deadline and
            # websockets' open_timeout.
            await self._discard_connection()
            reason = describe_failure(exc, self._connect_timeout)
            self._log.warning(
                "runner unavailable", runner=redact_url(self.url), reason=reason
            )
            raise RunnerUnavailable(reason) from exc
        except BaseException:
            await self._discard_connection()
            raise
        self._log.info("runner stream started", runner=redact_url(self.url))

    async def _connect(self) -> ClientConnection:
        options: dict[str, Any] = {
            "open_timeout": self._connect_timeout,
            "ping_interval": PING_INTERVAL,
            "ping_timeout": PING_TIMEOUT,
            "close_timeout": CLOSE_TIMEOUT,
            "max_size": MAX_RUNNER_MESSAGE,
            # base64 mu-law barely compresses, and deflating 50 frames a second
            # per call costs CPU the media path needs.
            "compression": None,
            # Runners are reached directly: call audio never goes through a proxy
            # picked up from the environment.
            "proxy": None,
        }
        if urlsplit(self.url).scheme.lower() == "wss":
            options["ssl"] = self._ssl_context or _default_ssl_context()
        return await connect(self.url, **options)

    async def _discard_connection(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await self._close_socket(ws)

    def _start_tasks(self) -> None:
        assert self._ws is not None
        self._state = _State.OPEN
        self._writer = asyncio.create_task(self._write_queued(self._ws))
        self._reader = asyncio.create_task(self._read_messages(self._ws))

    # Sending: synchronous, never blocking, called from the media path.

    def send_audio(self, ulaw: bytes) -> None:
        """Queue one frame of the caller's audio; drop it if the queue is full."""
        if self._state is not _State.OPEN:
            return
        if len(self._queue) >= self._max_send_queue:
            self._encoder.skip_media(len(ulaw))
            self.stats.frames_dropped += 1
            return
        self._queue.append((self._encoder.media(ulaw), True))
        self._wakeup.set()

    def send_dtmf(self, digit: str) -> None:
        """Queue a ``dtmf`` message for one digit (0-9, ``*``, ``#``, A-D).

        Raises:
            RunnerProtocolError: ``digit`` is not a DTMF digit.
        """
        if self._state is _State.OPEN:
            self._queue_control(self._encoder.dtmf(digit))

    def mark_played(self, name: str) -> None:
        """Tell the runner that the audio before its mark ``name`` has played."""
        if self._state is _State.OPEN:
            self._queue_control(self._encoder.mark(name))

    def _queue_control(self, text: str) -> None:
        if len(self._queue) >= self._max_send_queue + CONTROL_HEADROOM:
            self.stats.control_dropped += 1
            return
        self._queue.append((text, False))
        self._wakeup.set()

    async def _write_queued(self, ws: ClientConnection) -> None:
        """Writer task: send queued messages in order until told to finish."""
        queue = self._queue
        try:
            while queue or not self._finishing:
                if not queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                text, is_media = queue.popleft()
                await ws.send(text)
                if is_media:
                    self.stats.frames_sent += 1
        except ConnectionClosed:
            # The reader sees the same closure and reports it.
            return

    # Receiving.

    async def _read_messages(self, ws: ClientConnection) -> None:
        """Reader task: dispatch runner messages until the connection ends."""
        reason: str | None = None
        try:
            async for text in ws:
                self._dispatch(text)
        except ConnectionClosed:
            pass
        except Exception:
            # A failing sink must not leave the call up with a deaf session.
            self._log.exception("runner reader failed")
            reason = "runner session error"
        self._runner_gone(reason or describe_closure(ws))

    def _dispatch(self, text: str | bytes) -> None:
        try:
            message = parse_runner_message(text)
        except RunnerProtocolError as exc:
            self._note_invalid(exc)
            return
        if message is None:
            self.stats.unknown_messages += 1
            return
        self._deliver(message)

    def _deliver(self, message: RunnerMessage) -> None:
        if isinstance(message, RunnerMedia):
            self.stats.media_received += 1
            self.stats.media_received_bytes += len(message.payload)
            self._sink.play(message.payload)
        elif isinstance(message, RunnerMark):
            self.stats.marks_received += 1
            self._sink.mark(message.name)
        elif isinstance(message, RunnerClear):
            # Twilio answers a clear by echoing every mark the cleared audio held,
            # so the runner learns none of them will play.
            self.stats.clears_received += 1
            for name in self._sink.clear():
                self.mark_played(name)

    def _note_invalid(self, exc: RunnerProtocolError) -> None:
        self.stats.invalid_messages += 1
        self._invalid_since_log += 1
        now = time.monotonic()
        if now - self._last_invalid_log < INVALID_LOG_INTERVAL:
            return
        self._log.warning(
            "invalid runner message ignored",
            error=str(exc),
            count=self._invalid_since_log,
        )
        self._last_invalid_log = now
        self._invalid_since_log = 0

    def _runner_gone(self, reason: str) -> None:
        """The stream ended from the runner's side: tell the call, once."""
        if self._state is not _State.OPEN or self._close_task is not None:
            return
        self._state = _State.ENDED
        if self._writer is not None:
            self._writer.cancel()
        self._log.info("runner stream ended", reason=reason)
        try:
            self._on_closed(reason)
        except Exception:
            self._log.exception("on_closed callback failed")

    # Closing.

    async def close(self, reason: str = "hangup") -> None:
        """End the stream: send ``stop`` if ``start`` went out, close, stop tasks.

        Idempotent and safe to call concurrently, in any state; never raises
        (other than for the cancellation of the caller itself). After it is
        called, ``on_closed`` no longer fires.
        """
        if self._close_task is None:
            self._close_task = asyncio.create_task(self._shut_down(reason))
        await asyncio.shield(self._close_task)

    async def _shut_down(self, reason: str) -> None:
        try:
            if self._connect_task is not None:
                self._connect_task.cancel()
                await asyncio.wait({self._connect_task})
            ws = self._ws
            if ws is not None:
                if self._started and self._state is not _State.ENDED:
                    await self._send_stop(ws)
                await self._close_socket(ws)
            await self._stop_tasks()
        except Exception:
            self._log.exception("runner session close failed")
        self._state = _State.CLOSED
        self._log.info("runner session closed", reason=reason, **vars(self.stats))

    async def _send_stop(self, ws: ClientConnection) -> None:
        """Flush queued audio and ``stop`` through the writer, bounded in time."""
        stop = self._encoder.stop()
        writer = self._writer
        try:
            if writer is None or writer.done():
                await asyncio.wait_for(ws.send(stop), STOP_FLUSH_TIMEOUT)
                return
            self._queue.append((stop, False))
            self._finishing = True
            self._wakeup.set()
            await asyncio.wait({writer}, timeout=STOP_FLUSH_TIMEOUT)
        except (ConnectionClosed, TimeoutError):
            pass

    async def _close_socket(self, ws: ClientConnection) -> None:
        # Bounded by close_timeout inside websockets; the margin covers the
        # transport's own teardown.
        with contextlib.suppress(OSError, ConnectionClosed):
            await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT + 1.0)

    async def _stop_tasks(self) -> None:
        tasks = {task for task in (self._writer, self._reader) if task is not None}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._writer = self._reader = None
        self._queue.clear()
