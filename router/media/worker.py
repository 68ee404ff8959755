"""One media worker process: ``python -m router.media.worker``.

A worker carries the media of the calls the router gives it: for each, a
:class:`~router.media.bridge.LocalBridge` with its RTP socket (from the
worker's own slice of the RTP ports), its runner WebSocket and its place on
the worker's own 20 ms pacer. The router steers the bridges over one socket
with the messages of :mod:`router.media.control` and hears back what changes
a call (runner hung up, caller silent, digits, final counters).

The worker ends when the router says ``shutdown``, on SIGTERM, or when the
control socket reaches end of file: the router is gone, and a worker must not
outlive it. Either way it hangs up its runner streams first. It ignores
SIGINT: a Ctrl-C in the terminal reaches the whole process group, and the
router decides when its workers stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from ..logs import configure_logging
from ..runner.client import RunnerUnavailable
from .bridge import LocalBridge
from .control import (
    ControlError,
    Message,
    audio_from_wire,
    encode_message,
    read_message,
    start_from_wire,
)
from .errors import MediaError, PortsExhausted
from .pacer import Pacer
from .ports import RtpPortPool

__all__ = ["SHUTDOWN_CLOSE_TIMEOUT", "BridgeHost", "WorkerOptions", "main", "serve"]

# Seconds the worker gives its bridges to hang up on the way out: a runner
# gets its ``stop`` flushed within 1 s and the closing handshake within 2 s
# (router.runner.client), plus a margin.
SHUTDOWN_CLOSE_TIMEOUT = 4.0

_log = structlog.get_logger("router.media.worker")

Handler = Callable[[Message], Awaitable[Message]]


@dataclass(frozen=True)
class WorkerOptions:
    """What a worker is started with (on its command line)."""

    index: int
    bind_host: str
    rtp_ports: tuple[int, int]
    inactivity_timeout: float
    max_queued_frames: int
    log_level: str = "info"
    log_format: str = "auto"

    def to_argv(self, fd: int) -> list[str]:
        """Command-line arguments for a worker whose control socket is ``fd``."""
        low, high = self.rtp_ports
        return [
            f"--fd={fd}",
            f"--index={self.index}",
            f"--bind={self.bind_host}",
            f"--rtp-ports={low}-{high}",
            f"--rtp-timeout={self.inactivity_timeout!r}",
            f"--max-queued-frames={self.max_queued_frames}",
            f"--log-level={self.log_level}",
            f"--log-format={self.log_format}",
        ]


class BridgeHost:
    """The worker's bridges, driven by control messages.

    Args:
        options: the worker's bind address, ports and per-call limits.
        send: puts one message on the control socket.
    """

    def __init__(self, options: WorkerOptions, send: Callable[[Message], None]) -> None:
        self.options = options
        self.pool = RtpPortPool(*options.rtp_ports)
        self.pacer = Pacer()
        self.bridges: dict[int, LocalBridge] = {}
        self._send = send
        self._opening: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: dict[str, Handler] = {
            "open": self._open,
            "connect": self._connect,
            "close": self._close,
            "status": self._status,
            "sync": self._sync,
        }

    def handle(self, message: Message) -> None:
        """Act on one message from the router; answer requests when they are done.

        Raises:
            ControlError: the message has no known ``op``.
        """
        op = message.get("op")
        if op == "configure":
            self._configure(message)
            return
        handler = self._handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            raise ControlError(f"unknown control operation {op!r}")
        task = asyncio.get_running_loop().create_task(self._answer(handler, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if op == "open":
            self._track_opening(_bridge_id(message), task)

    async def close_all(self, reason: str) -> None:
        """Hang up every bridge (runner ``stop`` first), within a bounded time."""
        closing = [self._close_bridge(bridge_id, reason) for bridge_id in self.bridges]
        if closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SHUTDOWN_CLOSE_TIMEOUT):
                    await asyncio.gather(*closing, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()

    # -- requests --------------------------------------------------------------

    async def _answer(self, handler: Handler, message: Message) -> None:
        reply: Message = {"ev": "reply", "req": message.get("req")}
        try:
            reply.update(await handler(message))
        except PortsExhausted as error:
            reply.update(error="ports", reason=str(error))
        except RunnerUnavailable as error:
            reply.update(error="runner", reason=error.reason)
        except MediaError as error:
            reply.update(error="media", reason=str(error))
        except Exception as error:
            _log.exception("media_worker_request_failed", op=message.get("op"))
            reply.update(error="internal", reason=type(error).__name__)
        self._send(reply)

    async def _open(self, message: Message) -> Message:
        bridge_id = _bridge_id(message)
        if bridge_id in self.bridges:
            raise MediaError(f"bridge {bridge_id} is open already")
        bridge = LocalBridge(
            pool=self.pool,
            bind_host=self.options.bind_host,
            events=_LinkedEvents(self._send, bridge_id),
            inactivity_timeout=self.options.inactivity_timeout,
            max_queued_frames=self.options.max_queued_frames,
            pacer=self.pacer,
        )
        self.bridges[bridge_id] = bridge
        try:
            port = await bridge.open()
        except BaseException:
            self.bridges.pop(bridge_id, None)
            raise
        return {"port": port}

    async def _connect(self, message: Message) -> Message:
        bridge = self._bridge(message)
        start = start_from_wire(message.get("start") or {})
        timeout = message.get("timeout")
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise ControlError(f"bad runner timeout {timeout!r}")
        await bridge.connect_runner(str(message.get("url")), start, float(timeout))
        return {}

    async def _close(self, message: Message) -> Message:
        bridge_id = _bridge_id(message)
        stats = await self._close_bridge(bridge_id, str(message.get("reason")))
        return {"stats": stats}

    async def _sync(self, message: Message) -> Message:
        # Messages are handled in the order they arrive, and a configure takes
        # effect as it is read: answering says every earlier one is in effect.
        return {}

    async def _status(self, message: Message) -> Message:
        return {
            "pid": os.getpid(),
            "bridges": len(self.bridges),
            "ports_in_use": self.pool.in_use,
            "pacer_streams": len(self.pacer),
        }

    def _configure(self, message: Message) -> None:
        # No reply: the call goes on either way, as it does in one process.
        try:
            bridge = self._bridge(message)
            bridge.configure(audio_from_wire(message.get("audio") or {}))
        except MediaError as error:
            _log.warning("media_configure_failed", reason=str(error))

    # -- bridges ---------------------------------------------------------------

    def _bridge(self, message: Message) -> LocalBridge:
        bridge = self.bridges.get(_bridge_id(message))
        if bridge is None:
            raise MediaError(f"no bridge {message.get('bridge')!r} in this worker")
        return bridge

    def _track_opening(self, bridge_id: int, task: asyncio.Task[None]) -> None:
        self._opening[bridge_id] = task
        task.add_done_callback(lambda _: self._opening.pop(bridge_id, None))

    async def _close_bridge(self, bridge_id: int, reason: str) -> dict[str, int]:
        # A close may overtake its bridge's open (the call ended meanwhile):
        # let the port be bound first, so that closing releases it.
        opening = self._opening.get(bridge_id)
        if opening is not None:
            await asyncio.wait({opening})
        bridge = self.bridges.pop(bridge_id, None)
        if bridge is None:
            return {}
        await bridge.close(reason)
        return dataclasses.asdict(bridge.stats)


class _LinkedEvents:
    """A bridge's events, sent to the router (which hands them to the call)."""

    def __init__(self, send: Callable[[Message], None], bridge_id: int) -> None:
        self._send = send
        self._bridge_id = bridge_id

    def on_runner_closed(self, reason: str) -> None:
        self._send({"ev": "runner_closed", "bridge": self._bridge_id, "reason": reason})

    def on_inactive(self) -> None:
        self._send({"ev": "inactive", "bridge": self._bridge_id})

    def on_dtmf(self, digit: str) -> None:
        self._send({"ev": "dtmf", "bridge": self._bridge_id, "digit": digit})


def _bridge_id(message: Message) -> int:
    bridge_id = message.get("bridge")
    if not isinstance(bridge_id, int) or isinstance(bridge_id, bool):
        raise ControlError(f"bad bridge id {bridge_id!r}")
    return bridge_id


# -- the process -----------------------------------------------------------------


async def serve(options: WorkerOptions, sock: socket.socket) -> None:
    """Carry bridges for the router on the other end of ``sock`` until told to stop."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)

    def send(message: Message) -> None:
        if not writer.is_closing():
            writer.write(encode_message(message))

    host = BridgeHost(options, send)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    send({"ev": "ready", "pid": os.getpid()})
    _log.info(
        "media_worker_started", ports=f"{options.rtp_ports[0]}-{options.rtp_ports[1]}"
    )

    reading = loop.create_task(_read_until_done(reader, host))
    signalled = loop.create_task(stopped.wait())
    await asyncio.wait({reading, signalled}, return_when=asyncio.FIRST_COMPLETED)
    reason = "media worker stopping" if reading.done() else "media worker terminated"
    for task in (reading, signalled):
        task.cancel()
    await host.close_all(reason)
    with contextlib.suppress(OSError):
        await writer.drain()
    writer.close()
    _log.info("media_worker_stopped", reason=reason)


async def _read_until_done(reader: asyncio.StreamReader, host: BridgeHost) -> None:
    """Hand messages to ``host`` until ``shutdown`` or end of file."""
    while True:
        try:
            message = await read_message(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            # The router is gone (it closed the socket, or died): end with it.
            return
        except ControlError as error:
            _log.error("media_worker_protocol_error", reason=str(error))
            return
        if message.get("op") == "shutdown":
            return
        try:
            host.handle(message)
        except ControlError as error:
            _log.warning("media_worker_bad_request", reason=str(error))


def _parse_args(argv: Sequence[str] | None) -> tuple[WorkerOptions, int]:
    parser = argparse.ArgumentParser(prog="python -m router.media.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--rtp-ports", required=True)
    parser.add_argument("--rtp-timeout", type=float, required=True)
    parser.add_argument("--max-queued-frames", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--log-format", default="auto")
    args = parser.parse_args(argv)
    low, high = (int(part) for part in args.rtp_ports.split("-", 1))
    options = WorkerOptions(
        index=args.index,
        bind_host=args.bind,
        rtp_ports=(low, high),
        inactivity_timeout=args.rtp_timeout,
        max_queued_frames=args.max_queued_frames,
        log_level=args.log_level,
        log_format=args.log_format,
    )
    return options, args.fd


def main(argv: Sequence[str] | None = None) -> int:
    """Run a worker from the command line; return the exit status."""
    options, fd = _parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(options.log_level, options.log_format)
    structlog.contextvars.bind_contextvars(media_worker=options.index)
    sock = socket.socket(fileno=fd)
    _run(serve(options, sock))
    return 0


def _run(coroutine: Any) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


if __name__ == "__main__":
    sys.exit(main())
