"""The WebSocket client that bridges one call to its runner.

A :class:`RunnerSession` connects to the pipe's runner, sends ``connected`` and
``start``, then, for the life of the call, writes each outgoing message (caller
audio, DTMF, played marks, ``stop``) to the connection at once and hands the
runner's audio, marks and clears to a :class:`MediaSink` (the call's media
session) as each message arrives. Neither direction uses a task: sending a 20 ms
frame is a function call that frames the message and gives it to the transport.

When the runner does not read, the bytes the kernel would not take pile up in
the transport; past a bound, caller audio is dropped (and counted) rather than
delayed further.

When the runner closes the stream or the connection drops, ``on_closed`` fires
once so the call can hang up; it never fires after the call itself asked the
session to close.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import structlog
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
from router.runner.ws import ClientConnection, open_connection

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

# Room beyond ``max_send_queue``, in 20 ms media messages' worth of bytes, kept
# for DTMF, played marks and ``stop``: these are rare and small, so they are not
# dropped just because audio filled the buffer, yet a runner flooding marks
# cannot grow the buffer without bound.
CONTROL_HEADROOM = 50

# Caller audio arrives in 20 ms frames of 160 bytes (RFC 3551 §4.5.14 at the
# default packetization); buffer bounds are counted in messages of that size.
_FRAME_BYTES = 160

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
        max_send_queue: outgoing 20 ms media messages' worth of bytes buffered
            beyond what the kernel holds while the runner reads slowly; 250 is
            5 s of audio, after which caller audio is dropped (and counted)
            rather than delayed further.
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
        self._encoder = StreamEncoder(
            start.stream_sid, account_sid=start.account_sid, call_sid=start.call_sid
        )
        message_bytes = _wire_size(len(start.stream_sid))
        self._audio_limit = max_send_queue * message_bytes
        self._control_limit = (max_send_queue + CONTROL_HEADROOM) * message_bytes
        self._state = _State.NEW
        self._conn: ClientConnection | None = None
        self._started = False
        self._early: list[str | bytes] = []
        self._deaf = False
        self._connect_task: asyncio.Task[None] | None = None
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
        self._state = _State.OPEN
        early, self._early = self._early, []
        for message in early:
            self._on_message(message)
        if self._conn is not None and self._conn.lost:
            # The runner went away while open() was returning.
            self._on_lost()

    def _closed_by_us_while_opening(self) -> bool:
        """True if close() cancelled the attempt, not a cancellation of our caller."""
        current = asyncio.current_task()
        caller_cancelled = current is not None and current.cancelling() > 0
        return self._close_task is not None and not caller_cancelled

    async def _connect_and_start(self) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                self._conn = conn = await self._connect()
            # One write for both: a syscall less on every call's set-up.
            opening = [
                self._encoder.connected(),
                self._encoder.start(self.start.custom_parameters),
            ]
            if not conn.send_texts(opening):
                raise conn.closed_error()
            self._started = True
        except (OSError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
            # TimeoutError is an OSError: it covers our deadline.
            self._discard_connection()
            reason = describe_failure(exc, self._connect_timeout)
            self._log.warning(
                "runner unavailable", runner=redact_url(self.url), reason=reason
            )
            raise RunnerUnavailable(reason) from exc
        except BaseException:
            self._discard_connection()
            raise
        self._log.info("runner stream started", runner=redact_url(self.url))

    async def _connect(self) -> ClientConnection:
        scheme = urlsplit(self.url).scheme.lower()
        context = None
        if scheme == "wss":
            context = self._ssl_context or _default_ssl_context()
        return await open_connection(
            self.url,
            on_message=self._on_message,
            on_lost=self._on_lost,
            ssl_context=context,
            max_message=MAX_RUNNER_MESSAGE,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            close_timeout=CLOSE_TIMEOUT,
        )

    def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()

    # Sending: synchronous, never blocking, called from the media path.

    def send_audio(self, ulaw: bytes) -> None:
        """Send one frame of the caller's audio; drop it if the runner is behind."""
        if self._state is not _State.OPEN:
            return
        conn = self._conn
        assert conn is not None
        if conn.buffered > self._audio_limit:
            self._encoder.skip_media(len(ulaw))
            self.stats.frames_dropped += 1
            return
        if conn.send_text(self._encoder.media(ulaw)):
            self.stats.frames_sent += 1

    def send_dtmf(self, digit: str) -> None:
        """Send a ``dtmf`` message for one digit (0-9, ``*``, ``#``, A-D).

        Raises:
            RunnerProtocolError: ``digit`` is not a DTMF digit.
        """
        if self._state is _State.OPEN:
            self._send_control(self._encoder.dtmf(digit))

    def mark_played(self, name: str) -> None:
        """Tell the runner that the audio before its mark ``name`` has played."""
        if self._state is _State.OPEN:
            self._send_control(self._encoder.mark(name))

    def _send_control(self, text: str) -> None:
        conn = self._conn
        assert conn is not None
        if conn.buffered > self._control_limit:
            self.stats.control_dropped += 1
            return
        conn.send_text(text)

    # Receiving: called by the connection as each message completes.

    def _on_message(self, message: str | bytes) -> None:
        if self._state is _State.OPENING:
            # The runner spoke before open() returned; keep it for the sink.
            self._early.append(message)
        elif not self._deaf:
            try:
                self._dispatch(message)
            except Exception:
                # A failing sink must not leave the call up with a deaf session.
                self._log.exception("runner reader failed")
                self._deaf = True
                self._runner_gone("runner session error")

    def _on_lost(self) -> None:
        conn = self._conn
        if conn is not None:
            self._runner_gone(describe_closure(conn.protocol))

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
            conn = self._conn
            if conn is not None:
                stop = self._started and self._state is not _State.ENDED
                if stop and conn.buffered:
                    # Audio is backed up: stop follows it out first, bounded.
                    await self._send_stop(conn)
                    stop = False
                # Otherwise stop and the close frame go out in one write.
                await self._close_connection(
                    conn, self._encoder.stop() if stop else None
                )
        except Exception:
            self._log.exception("runner session close failed")
        self._state = _State.CLOSED
        self._early.clear()
        # on_closed never fires after close(): let go of its owner (the call).
        self._on_closed = _closed_already
        self._log.info("runner session closed", reason=reason, **vars(self.stats))

    async def _send_stop(self, conn: ClientConnection) -> None:
        """Send ``stop`` after the audio already written, and let it drain, bounded."""
        if conn.send_text(self._encoder.stop()):
            await conn.drain(STOP_FLUSH_TIMEOUT)

    async def _close_connection(
        self, conn: ClientConnection, last_text: str | None = None
    ) -> None:
        # The connection bounds its closing handshake by CLOSE_TIMEOUT; the margin
        # covers the transport's own teardown.
        conn.close(last_text=last_text)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT + 1.0):
                await conn.wait_lost()
        except TimeoutError:
            conn.abort()


def _closed_already(reason: str) -> None:
    """``on_closed`` of a session closed by its owner: nobody to tell."""


@functools.lru_cache(maxsize=16)
def _wire_size(stream_sid_length: int) -> int:
    """Bytes a 20 ms media message takes on the wire, for a stream id of that length."""
    probe = StreamEncoder("M" * stream_sid_length, account_sid="", call_sid="")
    # RFC 6455 §5.2: 2 header bytes, 2 for a 16-bit length, 4 for the mask key.
    return len(probe.media(bytes(_FRAME_BYTES))) + 8
