"""Media in worker processes: one per core, so bridged calls scale with cores.

SIP and call control stay in the router's process; the media of each call (its
RTP socket, its runner WebSocket and the relay between them) runs in one of N
worker processes (:mod:`router.media.worker`). Each worker has its own event
loop, its own 20 ms pacer and its own slice of the RTP port range, so workers
share nothing per call, and no frame ever crosses a process boundary: the
router only sends control (open, configure, connect runner, close) and hears
back events (runner closed, RTP inactive, digits, counters at close).

:class:`WorkerPool` starts the workers, gives each new call to the least
loaded one and restarts a worker that dies; the calls it carried end with a
BYE, through the normal path (their bridges report the runner stream lost).
:class:`RemoteBridge` is the call's side of a bridge in a worker: a
:class:`~router.media.bridge.MediaBridge` like the in-process one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ..runner.client import RunnerUnavailable, StreamStart
from ..sip.sdp import NegotiatedAudio
from .bridge import BridgeEvents, MediaUnavailable
from .control import (
    ControlError,
    Message,
    audio_to_wire,
    encode_message,
    read_message,
    start_to_wire,
    stats_from_wire,
)
from .errors import MediaError, PortsExhausted
from .ports import RtpPortPool
from .stats import MediaStats
from .worker import SHUTDOWN_CLOSE_TIMEOUT, WorkerOptions

__all__ = [
    "CONTROL_MARGIN",
    "MAX_RESTART_DELAY",
    "WORKER_START_TIMEOUT",
    "RemoteBridge",
    "WorkerPool",
    "WorkerPoolConfig",
    "split_port_range",
]

# Seconds a worker may take from exec to its ``ready``: an interpreter start
# and the media imports take well under one second on an idle machine; a
# loaded one gets ten times that.
WORKER_START_TIMEOUT = 10.0
# Seconds added to a request's own deadline for the round trip through the
# worker, so that the worker's answer (with its reason) usually wins the race.
CONTROL_MARGIN = 1.0
# Seconds a close may take: the worker hangs up the runner (stop flush and
# closing handshake, see router.runner.client) before it answers.
CLOSE_REPLY_TIMEOUT = SHUTDOWN_CLOSE_TIMEOUT + CONTROL_MARGIN
# Seconds a worker gets to exit after ``shutdown``, then after SIGTERM.
STOP_GRACE = SHUTDOWN_CLOSE_TIMEOUT + 2.0
KILL_GRACE = 2.0
# A worker that dies within MIN_UPTIME of its start is restarted after a delay
# that doubles each time up to MAX_RESTART_DELAY, so a worker that cannot run
# does not spin; one that ran for a while is restarted at once.
MIN_UPTIME = 5.0
FIRST_RESTART_DELAY = 0.1
MAX_RESTART_DELAY = 5.0

_log = structlog.get_logger("router.media.workers")


@dataclass(frozen=True)
class WorkerPoolConfig:
    """What the pool's workers are started with."""

    workers: int
    bind_host: str
    rtp_ports: tuple[int, int]
    inactivity_timeout: float
    max_queued_frames: int
    log_level: str = "info"
    log_format: str = "auto"


def split_port_range(low: int, high: int, parts: int) -> list[tuple[int, int]]:
    """Split ``low..high`` into ``parts`` ranges holding whole RTP/RTCP pairs.

    RFC 3550 §11: RTP takes an even port and RTCP the odd one above it, so
    every range starts on an even port and ends on an odd one; the pairs are
    shared out as evenly as they go.

    Raises:
        ValueError: ``parts`` is not positive, or some range would get no pair.
    """
    if parts < 1:
        raise ValueError(f"cannot split RTP ports between {parts} workers")
    first_even = low + (low & 1)
    pairs = (high - first_even + 1) // 2
    share, extra = divmod(pairs, parts)
    if share == 0:
        raise ValueError(
            f"RTP ports {low}-{high} hold {pairs} RTP/RTCP pairs, "
            f"fewer than one for each of {parts} media workers"
        )
    ranges = []
    start = first_even
    for index in range(parts):
        count = share + (1 if index < extra else 0)
        ranges.append((start, start + 2 * count - 1))
        start += 2 * count
    return ranges


class RemoteBridge:
    """A call's :class:`~router.media.bridge.MediaBridge` carried by a media worker.

    The worker is chosen when the bridge opens (the least loaded one that has
    a free port); from then on every request goes to that worker. Made by
    :meth:`WorkerPool.bridge`.
    """

    def __init__(self, pool: WorkerPool, events: BridgeEvents, bridge_id: int) -> None:
        self.bridge_id = bridge_id
        self.worker: _Worker | None = None
        self.local_port = 0
        self._pool = pool
        self._events = events
        self._stats = MediaStats()
        self._runner_ready = False
        self._closed = False

    @property
    def stats(self) -> MediaStats:
        """The worker's counters for this call, once :meth:`close` returned."""
        return self._stats

    @property
    def worker_pid(self) -> int | None:
        """The PID of the worker carrying the call (``None`` before open)."""
        return self.worker.pid if self.worker is not None else None

    async def open(self) -> int:
        """Open the bridge in the least loaded worker that has a free port.

        Raises:
            PortsExhausted: every worker's ports are in use.
            MediaUnavailable: no worker is running.
            MediaError: the bridge was opened or closed before.
        """
        if self.worker is not None or self._closed:
            raise MediaError("open() on a bridge that is open or closed")
        exhausted: PortsExhausted | None = None
        for worker in self._pool.workers_by_load():
            self._attach(worker)
            try:
                reply = await worker.request({"op": "open", "bridge": self.bridge_id})
            except PortsExhausted as error:
                self._detach()
                exhausted = error
                continue
            except MediaUnavailable:
                self._detach()  # it died meanwhile: the next one may take the call
                continue
            return self._opened(worker, reply)
        if exhausted is not None:
            raise exhausted
        raise MediaUnavailable("no media worker is running")

    def configure(self, audio: NegotiatedAudio) -> None:
        """Start or change media in the worker (no answer is awaited)."""
        worker = self.worker
        if worker is not None and worker.alive and not self._closed:
            message = {"op": "configure", "bridge": self.bridge_id}
            worker.send({**message, "audio": audio_to_wire(audio)})

    async def configured(self) -> None:
        """Wait for the worker to answer a request sent after the last configure.

        The worker reads its socket in order and applies a configure as it
        reads it, so once it answers, the configure is in effect.

        Raises:
            MediaUnavailable: the worker was lost.
        """
        worker = self.worker
        if worker is None or self._closed:
            raise MediaUnavailable("configured() on a bridge that is not open")
        await worker.request({"op": "sync", "bridge": self.bridge_id})

    async def connect_runner(
        self, url: str, start: StreamStart, timeout: float
    ) -> None:
        """Have the worker open the runner's stream.

        Raises:
            RunnerUnavailable: the runner was not reached within ``timeout``, or
                the worker carrying the bridge was lost.
        """
        worker = self.worker
        if worker is None or not worker.alive or self._closed:
            raise RunnerUnavailable("media worker lost")
        message = {"op": "connect", "bridge": self.bridge_id, "url": url}
        message.update(start=start_to_wire(start), timeout=timeout)
        try:
            async with asyncio.timeout(timeout + CONTROL_MARGIN):
                await worker.request(message)
        except TimeoutError:
            raise RunnerUnavailable(f"timed out after {timeout:g}s") from None
        except MediaUnavailable:
            raise RunnerUnavailable("media worker lost") from None
        self._runner_ready = True

    async def close(self, reason: str) -> None:
        """Have the worker hang up and release the port; keep its counters."""
        if self._closed:
            return
        self._closed = True
        worker = self.worker
        if worker is None:
            return
        try:
            if worker.alive:
                message = {"op": "close", "bridge": self.bridge_id, "reason": reason}
                async with asyncio.timeout(CLOSE_REPLY_TIMEOUT):
                    reply = await worker.request(message)
                self._stats = stats_from_wire(reply.get("stats"))
        except (MediaError, TimeoutError) as error:
            _log.warning(
                "media_close_failed",
                worker=worker.index,
                reason=str(error) or "timeout",
            )
        finally:
            worker.release(self.bridge_id)

    # -- the worker's side -----------------------------------------------------

    def on_event(self, message: Message) -> None:
        """An event the worker sent for this bridge."""
        if self._closed:
            return
        event = message.get("ev")
        if event == "runner_closed":
            self._events.on_runner_closed(str(message.get("reason")))
        elif event == "inactive":
            self._events.on_inactive()
        elif event == "dtmf":
            self._events.on_dtmf(str(message.get("digit")))

    def on_worker_lost(self) -> None:
        """The worker died: a connected call hears that its runner stream is gone.

        Before the runner is connected the loss shows instead as the failure
        of :meth:`open` or :meth:`connect_runner`.
        """
        if not self._closed and self._runner_ready:
            self._events.on_runner_closed("media worker lost")

    def _attach(self, worker: _Worker) -> None:
        self.worker = worker
        worker.bridges[self.bridge_id] = self

    def _detach(self) -> None:
        if self.worker is not None:
            self.worker.release(self.bridge_id)
        self.worker = None

    def _opened(self, worker: _Worker, reply: Message) -> int:
        port = reply.get("port")
        if not isinstance(port, int):
            raise MediaError(
                f"media worker {worker.index} answered open without a port"
            )
        worker.port_holders.add(self.bridge_id)
        self.local_port = port
        return port

    def __repr__(self) -> str:
        where = f"worker={self.worker.index}" if self.worker is not None else "unopened"
        return f"RemoteBridge({self.bridge_id}, {where}, port={self.local_port})"


class _Worker:
    """One worker process and its control socket, seen from the router."""

    def __init__(
        self, options: WorkerOptions, on_lost: Callable[[_Worker], None]
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


class _PoolPorts:
    """The RTP ports of every worker, counted in the router (a ``PortUsage``)."""

    def __init__(self, pool: WorkerPool, capacity: int) -> None:
        self._pool = pool
        self._capacity = capacity

    @property
    def in_use(self) -> int:
        """Ports held by bridges that are open in a running worker."""
        return sum(len(worker.port_holders) for worker in self._pool.workers)

    @property
    def capacity(self) -> int:
        """Ports of every worker's slice."""
        return self._capacity


class WorkerPool:
    """N media worker processes, restarted when they die.

    Args:
        config: how many workers, where they bind RTP, the per-call limits.

    Raises:
        ValueError: the RTP range cannot give every worker a port.
    """

    def __init__(self, config: WorkerPoolConfig) -> None:
        ranges = split_port_range(*config.rtp_ports, config.workers)
        self.config = config
        self._options = [
            WorkerOptions(
                index=index,
                bind_host=config.bind_host,
                rtp_ports=ports,
                inactivity_timeout=config.inactivity_timeout,
                max_queued_frames=config.max_queued_frames,
                log_level=config.log_level,
                log_format=config.log_format,
            )
            for index, ports in enumerate(ranges)
        ]
        self._slots: list[_Worker | None] = [None] * config.workers
        self._bridge_ids = itertools.count(1)
        self._restarting: set[asyncio.Task[None]] = set()
        self._delays = [0.0] * config.workers
        self._stopping = False
        self.restarts = 0
        """Workers started again after one died."""
        capacity = sum(RtpPortPool(*ports).capacity for ports in ranges)
        self.ports = _PoolPorts(self, capacity)
        """RTP ports in use across the workers (as far as the router knows)."""

    @property
    def workers(self) -> list[_Worker]:
        """The workers running now, by index."""
        return [worker for worker in self._slots if worker is not None and worker.alive]

    @property
    def pids(self) -> list[int]:
        """PIDs of the workers running now."""
        return [worker.pid for worker in self.workers]

    async def start(self) -> None:
        """Start every worker and wait until all are ready.

        Raises:
            MediaUnavailable: a worker did not start (the others are stopped).
        """
        results = await asyncio.gather(
            *(self._spawn(index) for index in range(len(self._slots))),
            return_exceptions=True,
        )
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            await self.stop()
            raise failure

    async def stop(self) -> None:
        """Stop every worker (they hang up calls they still carry); no restarts."""
        self._stopping = True
        restarting = list(self._restarting)
        for task in restarting:
            task.cancel()
        await asyncio.gather(*restarting, return_exceptions=True)
        running = [worker for worker in self._slots if worker is not None]
        await asyncio.gather(*(worker.stop() for worker in running))
        self._slots = [None] * len(self._slots)

    def bridge(self, events: BridgeEvents) -> RemoteBridge:
        """A new bridge for a call; it picks its worker when it opens."""
        return RemoteBridge(self, events, next(self._bridge_ids))

    def workers_by_load(self) -> list[_Worker]:
        """Running workers, the one carrying fewest bridges first."""
        return sorted(self.workers, key=lambda worker: len(worker.bridges))

    async def status(self) -> list[Message]:
        """Each running worker's own figures (``pid``, ``bridges``, ``ports_in_use``)."""
        return list(await asyncio.gather(*(worker.status() for worker in self.workers)))

    # -- life and death of workers ---------------------------------------------

    async def _spawn(self, index: int) -> None:
        worker = _Worker(self._options[index], on_lost=self._worker_lost)
        await worker.start()
        self._slots[index] = worker
        low, high = self._options[index].rtp_ports
        _log.info(
            "media_worker_ready", worker=index, pid=worker.pid, ports=f"{low}-{high}"
        )

    def _worker_lost(self, worker: _Worker) -> None:
        if self._slots[worker.index] is worker and not self._stopping:
            self._slots[worker.index] = None
            task = asyncio.get_running_loop().create_task(self._restart(worker))
            self._restarting.add(task)
            task.add_done_callback(self._restarting.discard)

    async def _restart(self, dead: _Worker) -> None:
        status = await dead.wait()
        uptime = time.monotonic() - dead.started_at
        _log.warning(
            "media_worker_died",
            worker=dead.index,
            pid=dead.pid,
            exit_status=status,
            calls=len(dead.bridges),
            uptime_s=round(uptime, 1),
        )
        delay = self._next_delay(dead.index, uptime)
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self._spawn(dead.index)
            except MediaUnavailable as error:
                _log.error(
                    "media_worker_restart_failed", worker=dead.index, reason=str(error)
                )
                delay = min(max(delay * 2, FIRST_RESTART_DELAY), MAX_RESTART_DELAY)
                continue
            self.restarts += 1
            return

    def _next_delay(self, index: int, uptime: float) -> float:
        if uptime >= MIN_UPTIME:
            self._delays[index] = 0.0
        else:
            previous = self._delays[index]
            self._delays[index] = min(
                max(previous * 2, FIRST_RESTART_DELAY), MAX_RESTART_DELAY
            )
        return self._delays[index]
