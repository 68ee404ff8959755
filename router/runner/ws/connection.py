"""One WebSocket connection: a sans-I/O protocol driven by a plain asyncio.Protocol.

Everything on the per-message path is synchronous: a text message is framed and
handed to the transport at once, and a received message goes to a callback as
soon as its last frame arrives. There is no task, lock or queue per connection;
timers exist only for keepalive and for bounding the closing handshake.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from typing import cast

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import CLIENT, CONNECTING, OPEN, Protocol

from router.runner.ws.framing import encode_text_frame

__all__ = ["Connection", "MessageHandler"]

MessageHandler = Callable[[str | bytes], None]


class Connection(asyncio.Protocol):
    """A WebSocket connection over an asyncio transport.

    The owner sets :attr:`on_message` (called with each complete message: ``str``
    for text, ``bytes`` for binary) and :attr:`on_lost` (called once, when the TCP
    connection is gone). Subclasses perform the opening handshake.

    Args:
        protocol: the websockets sans-I/O protocol, client or server side.
        ping_interval: seconds between keepalive pings; None disables keepalive.
        ping_timeout: seconds to wait for the pong before failing the connection.
        close_timeout: seconds the closing handshake may take before the TCP
            connection is dropped.
    """

    def __init__(
        self,
        protocol: Protocol,
        *,
        ping_interval: float | None,
        ping_timeout: float,
        close_timeout: float,
    ) -> None:
        self.protocol = protocol
        self.on_message: MessageHandler | None = None
        self.on_lost: Callable[[], None] | None = None
        self.transport: asyncio.Transport | None = None
        self._mask = protocol.side is CLIENT
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self._loop = asyncio.get_running_loop()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._drained: asyncio.Future[None] | None = None
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._ping_data = b""
        self._close_timer: asyncio.TimerHandle | None = None

    # State.

    @property
    def is_open(self) -> bool:
        """True while messages can be sent: handshake done, no close frame yet."""
        return self.protocol.state is OPEN

    @property
    def buffered(self) -> int:
        """Bytes written but not yet accepted by the kernel (runner reading slowly)."""
        transport = self.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    # Sending.

    def send_text(self, text: str) -> bool:
        """Send ``text`` as one text message now; return False if not open."""
        transport = self.transport
        if self.protocol.state is not OPEN or transport is None:
            return False
        transport.write(encode_text_frame(text.encode(), mask=self._mask))
        return True

    def send_texts(self, texts: Sequence[str]) -> bool:
        """Send each of ``texts`` as a text message, in one write; False if not open."""
        transport = self.transport
        if self.protocol.state is not OPEN or transport is None:
            return False
        mask = self._mask
        transport.write(
            b"".join(encode_text_frame(t.encode(), mask=mask) for t in texts)
        )
        return True

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds until everything written reached the kernel."""
        if self.buffered == 0 or self._lost.done():
            return
        if self._drained is None or self._drained.done():
            self._drained = self._loop.create_future()
        await asyncio.wait({self._drained, self._lost}, timeout=timeout)

    def close(
        self,
        code: int = CloseCode.NORMAL_CLOSURE,
        reason: str = "",
        *,
        last_text: str | None = None,
    ) -> None:
        """Start the closing handshake (RFC 6455 §7.1.2), bounded by close_timeout.

        ``last_text``, when given, goes out as a text message just before the
        close frame, in the same write. Before the opening handshake is
        complete the TCP connection is dropped (and ``last_text`` with it).
        """
        if self.transport is None or self._lost.done():
            return
        if self.protocol.state is OPEN:
            if last_text is not None:
                self.transport.write(
                    encode_text_frame(last_text.encode(), mask=self._mask)
                    + self._take_close_frame(code, reason)
                )
            else:
                self.protocol.send_close(code, reason)
                self._flush()
            self._expect_close()
        elif self.protocol.state is CONNECTING:
            self.transport.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        if self.transport is not None:
            self.transport.abort()

    async def wait_lost(self) -> None:
        """Wait until the TCP connection is gone."""
        await asyncio.shield(self._lost)

    @property
    def lost(self) -> bool:
        """True once the TCP connection is gone."""
        return self._lost.done()

    # asyncio.Protocol callbacks.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport; ask to hear as soon as its write buffer is empty."""
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = transport = cast(asyncio.Transport, transport)
        # With both water marks at 0, pause_writing() fires as soon as anything
        # waits in user space and resume_writing() once it is all gone: that is
        # what drain() waits for. While the kernel takes every write at once,
        # which is the normal case, neither fires.
        transport.set_write_buffer_limits(high=0, low=0)

    def data_received(self, data: bytes) -> None:
        """Feed the protocol, answer what it answers, deliver complete messages."""
        protocol = self.protocol
        protocol.receive_data(data)
        events = protocol.events_received()
        self._flush()
        self._handle_events(events)
        if protocol.close_expected():
            self._expect_close()

    def eof_received(self) -> bool:
        """The peer closed its side: let the protocol conclude, then close ours."""
        self.protocol.receive_eof()
        self._flush()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timers, settle the protocol's state and tell the owner, once."""
        self.protocol.receive_eof()
        self.protocol.data_to_send()
        for timer in (self._ping_timer, self._pong_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._lost.set_result(None)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._handshake_lost(exc)
        on_lost = self.on_lost
        # Nothing comes after this: drop the owner's callbacks, which would
        # otherwise keep the owner and this connection in a cycle that only a
        # full collection frees.
        self.on_message = self.on_lost = None
        if on_lost is not None:
            on_lost()

    def pause_writing(self) -> None:
        """The transport holds unsent data; drain() waits for resume_writing()."""

    def resume_writing(self) -> None:
        """Everything written has reached the kernel."""
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # Hooks for the handshake of each side.

    def _handle_handshake(self, event: object) -> None:
        """Act on a handshake request or response; subclasses implement it."""
        raise NotImplementedError

    def _handshake_lost(self, exc: Exception | None) -> None:
        """The connection ended, possibly while the handshake was under way."""

    def _opened(self) -> None:
        """The opening handshake succeeded: start keepalive."""
        self._schedule_ping()

    # Receiving.

    def _handle_events(self, events: Sequence[object]) -> None:
        for event in events:
            if isinstance(event, Frame):
                self._handle_frame(event)
            else:
                self._handle_handshake(event)

    def _handle_frame(self, frame: Frame) -> None:
        # Received frames carry bytes, for which bytes() is the same object.
        opcode, data = frame.opcode, bytes(frame.data)
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._deliver(opcode, data)
            else:
                # RFC 6455 §5.4: the first frame of a fragmented message gives its
                # type; the protocol enforces max_size over all its fragments.
                self._fragment_opcode = opcode
                self._fragments = [data]
        elif opcode is Opcode.CONT:
            self._fragments.append(data)
            if frame.fin and self._fragment_opcode is not None:
                data = b"".join(self._fragments)
                opcode, self._fragment_opcode, self._fragments = (
                    self._fragment_opcode,
                    None,
                    [],
                )
                self._deliver(opcode, data)
        elif opcode is Opcode.PONG:
            self._pong_received(data)

    def _deliver(self, opcode: Opcode, data: bytes) -> None:
        if opcode is Opcode.TEXT:
            try:
                message: str | bytes = data.decode()
            except UnicodeDecodeError as exc:
                # RFC 6455 §8.1: text that is not UTF-8 fails the connection (1007).
                self._fail(
                    CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}"
                )
                return
        else:
            message = data
        if self.on_message is not None:
            self.on_message(message)

    # Writing what the protocol produced.

    def _take_close_frame(self, code: int, reason: str) -> bytes:
        """Have the protocol send a close frame; return its bytes unwritten."""
        self.protocol.send_close(code, reason)
        chunks = self.protocol.data_to_send()
        # send_close queues the frame alone: the EOF follows the peer's close
        # frame, so every chunk here is frame data.
        return b"".join(chunks)

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self.protocol.data_to_send():
            if not data:
                # An empty chunk is the protocol asking to half-close (its
                # SEND_EOF). TLS cannot half-close; closing still sends what is
                # buffered first.
                if transport.can_write_eof():
                    transport.write_eof()
                else:
                    transport.close()
            else:
                transport.write(data)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 §7.1.7): close frame, then wait for TCP close."""
        self.protocol.fail(code, reason)
        self._flush()
        self._expect_close()

    def _expect_close(self) -> None:
        """Bound the wait for the peer to close TCP by close_timeout."""
        if self._close_timer is None and not self._lost.done():
            self._close_timer = self._loop.call_later(self._close_timeout, self.abort)
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        if self._pong_timer is not None:
            self._pong_timer.cancel()

    # Keepalive: RFC 6455 §5.5.2 and §5.5.3, a ping must be answered by a pong.

    def _schedule_ping(self) -> None:
        if self._ping_interval is not None and not self._lost.done():
            self._ping_timer = self._loop.call_later(self._ping_interval, self._ping)

    def _ping(self) -> None:
        if self.protocol.state is not OPEN:
            return
        self._ping_data = os.urandom(4)
        self.protocol.send_ping(self._ping_data)
        self._flush()
        self._pong_timer = self._loop.call_later(
            self._ping_timeout, self._ping_timed_out
        )

    def _pong_received(self, data: bytes) -> None:
        if self._pong_timer is None or data != self._ping_data:
            return
        self._pong_timer.cancel()
        self._pong_timer = None
        self._schedule_ping()

    def _ping_timed_out(self) -> None:
        self._pong_timer = None
        if self.protocol.state is OPEN:
            self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")

    def closed_error(self) -> ConnectionClosed:
        """The exception describing how the connection ended, for callers that raise."""
        protocol = self.protocol
        rcvd, sent = protocol.close_rcvd, protocol.close_sent
        rcvd_then_sent = bool(protocol.close_rcvd_then_sent) if rcvd and sent else None
        return ConnectionClosed(rcvd, sent, rcvd_then_sent)
