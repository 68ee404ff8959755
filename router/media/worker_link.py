"""The control channel to one media worker process.

:class:`WorkerLink` starts a worker (:mod:`router.media.worker`), sends it
requests and matches their replies, hands its events (runner closed, RTP
inactive, digits) to the :class:`~router.media.workers.RemoteBridge` they
concern, and stops it. :class:`~router.media.workers.WorkerPool` keeps one per
worker and restarts a worker that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from ..runner.client import RunnerUnavailable
from .bridge import MediaUnavailable
from .control import (
    ControlError,
    Message,
    encode_message,
    read_message,
)
from .errors import MediaError, PortsExhausted
from .worker import SHUTDOWN_CLOSE_TIMEOUT, WorkerOptions

if TYPE_CHECKING:
    from .workers import RemoteBridge

__all__ = [
    "KILL_GRACE",
    "STOP_GRACE",
    "WORKER_START_TIMEOUT",
    "WorkerLink",
]

# Seconds a worker may take from exec to its ``ready``: an interpreter start
# and the media imports take well under one second on an idle machine; a
# loaded one gets ten times that.
WORKER_START_TIMEOUT = 10.0
# Seconds a worker gets to exit after ``shutdown``, then after SIGTERM.
STOP_GRACE = SHUTDOWN_CLOSE_TIMEOUT + 2.0
KILL_GRACE = 2.0

_log = structlog.get_logger("router.media.workers")


class WorkerLink:
    """One worker process and its control socket, seen from the router."""

    def __init__(
        self, options: WorkerOptions, on_lost: Callable[[WorkerLink], None]
    ) -> None:
        self.options = options
        self.index = options.index
        self.pid = 0
        self.alive = False
        self.started_at = 0.0
        self.bridges: dict[int, RemoteBridge] = {}
        self.port_holders: set[int] = set()
        self._on_lost = on_lost
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._requests = itertools.count(1)

    async def start(self) -> None:
        """Start the process and wait for its ``ready``.

        Raises:
            MediaUnavailable: it did not start, or not within the timeout.
        """
        ours, theirs = socket.socketpair()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "router.media.worker",
                *self.options.to_argv(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        except OSError as error:
            ours.close()
            raise MediaUnavailable(f"cannot start media worker: {error}") from None
        finally:
            theirs.close()
        self.pid = self._process.pid
        try:
            await self._handshake(ours)
        except BaseException:
            if self._writer is not None:
                self._writer.close()
            else:
                ours.close()
            await self._kill()
            raise

    async def _handshake(self, sock: socket.socket) -> None:
        reader, self._writer = await asyncio.open_unix_connection(sock=sock)
        try:
            async with asyncio.timeout(WORKER_START_TIMEOUT):
                hello = await read_message(reader)
        except (TimeoutError, asyncio.IncompleteReadError, ControlError):
            raise MediaUnavailable(
                f"media worker {self.index} (pid {self.pid}) did not start"
            ) from None
        if hello.get("ev") != "ready":
            raise MediaUnavailable(f"media worker {self.index} said {hello!r} first")
        self.alive = True
        self.started_at = time.monotonic()
        loop = asyncio.get_running_loop()
        self._reader_task = loop.create_task(self._read_events(reader))

    # -- requests --------------------------------------------------------------

    def send(self, message: Message) -> None:
        """Send a message that gets no answer."""
        if self.alive and self._writer is not None:
            self._writer.write(encode_message(message))

    async def request(self, message: Message) -> Message:
        """Send a request and return its successful reply.

        Raises:
            MediaUnavailable: the worker is gone, or died before answering.
            PortsExhausted, RunnerUnavailable, MediaError: the worker's answer.
        """
        if not self.alive:
            raise MediaUnavailable(f"media worker {self.index} is not running")
        number = next(self._requests)
        reply: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[number] = reply
        try:
            self.send({**message, "req": number})
            return _check_reply(await reply)
        finally:
            self._pending.pop(number, None)

    def release(self, bridge_id: int) -> None:
        """Forget a bridge that has closed (its port is free again)."""
        self.bridges.pop(bridge_id, None)
        self.port_holders.discard(bridge_id)

    async def status(self) -> Message:
        """The worker's own figures: its bridges, ports in use and pid."""
        return await self.request({"op": "status"})

    # -- events ----------------------------------------------------------------

    async def _read_events(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                self._dispatch(await read_message(reader))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker exited (or was killed)
        except ControlError as error:
            _log.error(
                "media_worker_protocol_error", worker=self.index, reason=str(error)
            )
        self._lost()

    def _dispatch(self, message: Message) -> None:
        # Ids are ints on the wire; anything else matches nothing (-1).
        if message.get("ev") == "reply":
            reply = self._pending.get(_int_field(message, "req"))
            if reply is not None and not reply.done():
                reply.set_result(message)
            return
        bridge = self.bridges.get(_int_field(message, "bridge"))
        if bridge is None:
            return  # an event of a bridge that has closed meanwhile
        try:
            bridge.on_event(message)
        except Exception:
            _log.exception(
                "media_event_failed", worker=self.index, event=message.get("ev")
            )

    def _lost(self) -> None:
        """The control socket closed: fail what waits, tell the calls, tell the pool."""
        self.alive = False
        lost = MediaUnavailable(f"media worker {self.index} (pid {self.pid}) exited")
        for reply in self._pending.values():
            if not reply.done():
                reply.set_exception(lost)
        bridges = list(self.bridges.values())
        self.port_holders.clear()
        self._on_lost(self)
        for bridge in bridges:
            try:
                bridge.on_worker_lost()
            except Exception:
                _log.exception("media_event_failed", worker=self.index, event="lost")

    # -- the process -----------------------------------------------------------

    async def wait(self) -> int | None:
        """Wait for the process to exit (reaping it); return its exit status."""
        if self._process is None:
            return None
        return await self._process.wait()

    async def stop(self) -> None:
        """Ask the worker to hang up its calls and exit; kill it if it lingers."""
        self.send({"op": "shutdown"})
        if self._process is not None:
            try:
                async with asyncio.timeout(STOP_GRACE):
                    await self._process.wait()
            except TimeoutError:
                _log.warning(
                    "media_worker_stop_timeout", worker=self.index, pid=self.pid
                )
            await self._kill()
        if self._reader_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        if self._writer is not None:
            self._writer.close()

    async def _kill(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(KILL_GRACE):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _int_field(message: Message, name: str) -> int:
    value = message.get(name)
    return value if isinstance(value, int) else -1


def _check_reply(reply: Message) -> Message:
    """Raise the error a worker's reply carries; return the reply if it has none."""
    kind = reply.get("error")
    if kind is None:
        return reply
    reason = str(reply.get("reason"))
    if kind == "ports":
        raise PortsExhausted(reason)
    if kind == "runner":
        raise RunnerUnavailable(reason)
    raise MediaError(f"media worker: {reason}")
