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
:class:`~router.media.bridge.MediaBridge` like the in-process one. The
control channel to one worker process is :mod:`router.media.worker_link`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

import structlog

from ..runner.client import RunnerUnavailable, StreamStart
from ..sip.sdp import NegotiatedAudio
from .bridge import BridgeEvents, MediaUnavailable
from .control import (
    Message,
    audio_to_wire,
    start_to_wire,
    stats_from_wire,
)
from .errors import MediaError, PortsExhausted
from .ports import RtpPortPool
from .stats import MediaStats
from .worker import SHUTDOWN_CLOSE_TIMEOUT, WorkerOptions
from .worker_link import WORKER_START_TIMEOUT, WorkerLink

__all__ = [
    "CONTROL_MARGIN",
    "MAX_RESTART_DELAY",
    "WORKER_START_TIMEOUT",
    "RemoteBridge",
    "WorkerPool",
    "WorkerPoolConfig",
    "split_port_range",
]

# Seconds added to a request's own deadline for the round trip through the
# worker, so that the worker's answer (with its reason) usually wins the race.
CONTROL_MARGIN = 1.0
# Seconds a close may take: the worker hangs up the runner (stop flush and
# closing handshake, see router.runner.client) before it answers.
CLOSE_REPLY_TIMEOUT = SHUTDOWN_CLOSE_TIMEOUT + CONTROL_MARGIN
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
        self.worker: WorkerLink | None = None
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

    def _attach(self, worker: WorkerLink) -> None:
        self.worker = worker
        worker.bridges[self.bridge_id] = self

    def _detach(self) -> None:
        if self.worker is not None:
            self.worker.release(self.bridge_id)
        self.worker = None

    def _opened(self, worker: WorkerLink, reply: Message) -> int:
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
        self._slots: list[WorkerLink | None] = [None] * config.workers
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
    def workers(self) -> list[WorkerLink]:
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

    def workers_by_load(self) -> list[WorkerLink]:
        """Running workers, the one carrying fewest bridges first."""
        return sorted(self.workers, key=lambda worker: len(worker.bridges))

    async def status(self) -> list[Message]:
        """Each running worker's own figures (``pid``, ``bridges``, ``ports_in_use``)."""
        return list(await asyncio.gather(*(worker.status() for worker in self.workers)))

    # -- life and death of workers ---------------------------------------------

    async def _spawn(self, index: int) -> None:
        worker = WorkerLink(self._options[index], on_lost=self._worker_lost)
        await worker.start()
        self._slots[index] = worker
        low, high = self._options[index].rtp_ports
        _log.info(
            "media_worker_ready", worker=index, pid=worker.pid, ports=f"{low}-{high}"
        )

    def _worker_lost(self, worker: WorkerLink) -> None:
        if self._slots[worker.index] is worker and not self._stopping:
            self._slots[worker.index] = None
            task = asyncio.get_running_loop().create_task(self._restart(worker))
            self._restarting.add(task)
            task.add_done_callback(self._restarting.discard)

    async def _restart(self, dead: WorkerLink) -> None:
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
