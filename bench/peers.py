"""What the load is aimed at: the router under test, and SIPp's UAS as the reference.

:class:`RouterUnderTest` is a production ``sip-router run`` (uvloop) with its
own store, seeded with one number attached to a pipe whose runner is the
built-in echo runner, and a trunk for loopback; the echo runner (and Redis,
when the Redis store is chosen) share the router's core. :class:`SippUas` is
SIPp's embedded UAS on the same core, with large socket buffers, optionally
echoing RTP (``-rtp_echo``) as the plain-relay reference for bridged calls.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from contextlib import nullcontext
from pathlib import Path
from types import TracebackType
from typing import Self

from bench.system import (
    LOOPBACK,
    RMEM_DEFAULT,
    WANTED_SOCKET_BUFFER,
    BenchError,
    Process,
    child_pids,
    free_port_range,
    free_tcp_port,
    python_command,
    temporary_sysctl,
    wait_for_port,
)

__all__ = ["BENCH_NUMBER", "BareBonesUnderTest", "RouterUnderTest", "SippUas"]

BENCH_NUMBER = "+14155550100"
# Calls the router may hold at once; far above any load the benchmark places,
# so the figure is the router's, not this setting's.
MAX_CALLS = 50_000
# Two ports per call (RFC 3550 §11: RTP even, RTCP the odd one above), for the
# most calls a step places, plus room for ports other programs hold.
RTP_PORTS_PER_CALL = 2
RTP_PORT_HEADROOM = 200
# SIPp binds its media port and the port two above it (audio and video echo).
SIPP_MEDIA_PORTS = 4


class _Answerer:
    """Start on entering a ``with`` block, stop (by PID) on leaving it, even half-started."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RouterUnderTest(_Answerer):
    """A router process, its echo runner (and its Redis), all on one core.

    Args:
        workdir: where the store file and the logs go.
        core: the core the router, the echo runner and Redis are pinned to.
        store: "embedded" (SQLite file) or "redis" (a redis-server of its own).
        max_streams: the most concurrent calls a step will place (sizes the RTP
            port range).
        log_level: the router's log level (production default: info).
        media_workers: media worker processes (``ROUTER_MEDIA_WORKERS``); they
            inherit the router's core. 0: media in the router's process.
        helpers_core: the core of the echo runner and Redis; None: ``core``.
            Measurements keep them on the router's core. A profile of the router
            puts them apart: py-spy counts the time the router waits, runnable,
            while a helper on its core runs, and charges it to the line the
            router was on (a socket write that woke the runner, mostly).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        core: int | None,
        store: str = "embedded",
        max_streams: int = 100,
        log_level: str = "info",
        media_workers: int = 0,
        helpers_core: int | None = None,
    ) -> None:
        if store not in ("embedded", "redis"):
            raise BenchError(f"unknown store {store!r}: embedded or redis")
        self.workdir = workdir
        self.core = core
        self.helpers_core = core if helpers_core is None else helpers_core
        self.store = store
        self.log_level = log_level
        self.media_workers = media_workers
        self.rtp_ports = free_port_range(
            max_streams * RTP_PORTS_PER_CALL + RTP_PORT_HEADROOM
        )
        self.sip_port = free_port_range(1, tcp=True)[0]
        self.runner_port = free_tcp_port()
        self.db_path = workdir / "router.db"
        self.redis_url: str | None = None
        self.router: Process | None = None
        self.runner: Process | None = None
        self.redis: Process | None = None

    @property
    def target(self) -> tuple[str, int]:
        """The router's SIP address."""
        return (LOOPBACK, self.sip_port)

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the processes that make up the system under test."""
        processes = {"router": self.router, "runner": self.runner, "redis": self.redis}
        pids = {name: p.pid for name, p in processes.items() if p is not None}
        for index, pid in enumerate(self.worker_pids()):
            pids[f"media-worker-{index}"] = pid
        return pids

    def worker_pids(self) -> list[int]:
        """PIDs of the router's media workers (its child processes), lowest first."""
        if self.router is None or not self.media_workers:
            return []
        return child_pids(self.router.pid)

    def start(self) -> None:
        """Start Redis (if used) and the echo runner, seed the store, start the router.

        Raises:
            BenchError: a process did not start or bind its port.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.store == "redis":
            self._start_redis()
        self.runner = Process(
            "echo runner",
            python_command("-m", "bench.echo", str(self.runner_port)),
            core=self.helpers_core,
            log_path=self.workdir / "runner.log",
        )
        wait_for_port(self.runner, self.runner_port, tcp=True)
        asyncio.run(self._seed())
        self._start_router()

    def _start_redis(self) -> None:
        if shutil.which("redis-server") is None:
            raise BenchError("redis-server is not installed (needed for --store redis)")
        port = free_tcp_port()
        # No persistence: the benchmark's Redis is thrown away with the run.
        argv = ["redis-server", "--port", str(port), "--bind", LOOPBACK]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.redis = Process(
            "redis", argv, core=self.helpers_core, log_path=self.workdir / "redis.log"
        )
        wait_for_port(self.redis, port, tcp=True)
        self.redis_url = f"redis://{LOOPBACK}:{port}/0"

    async def _seed(self) -> None:
        """One trunk for loopback, one pipe on the echo runner, one number on it."""
        from router.numbers.models import TrunkType
        from router.numbers.store import open_store

        # A new store each start: the runner's port changes from run to run.
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)
        store = await open_store(redis_url=self.redis_url, db_path=str(self.db_path))
        try:
            await store.create_trunk(
                name="bench-loopback",
                kind=TrunkType.UNPOD,
                allowed_addresses=[f"{LOOPBACK}/32"],
                default_country="US",
            )
            pipe = await store.create_pipe(
                name="bench", runner_url=f"ws://{LOOPBACK}:{self.runner_port}/"
            )
            number = await store.create_number(BENCH_NUMBER, country="US")
            await store.attach(number.number_id, pipe.pipe_id)
        finally:
            await store.close()

    def _start_router(self) -> None:
        low, high = self.rtp_ports
        argv = python_command("-m", "router.cli", "run", "--bind", LOOPBACK)
        argv += ["--advertise", LOOPBACK, "--sip-port", str(self.sip_port)]
        argv += ["--rtp-ports", f"{low}-{high}", "--http-port", "0"]
        argv += ["--log-level", self.log_level, "--log-format", "json"]
        if self.redis_url:
            argv += ["--redis-url", self.redis_url]
        else:
            argv += ["--db", str(self.db_path)]
        env = {"ROUTER_MAX_CALLS": str(MAX_CALLS), "ROUTER_INSTANCE_ID": "bench"}
        if self.media_workers:
            env["ROUTER_MEDIA_WORKERS"] = str(self.media_workers)
        self.router = Process(
            "router",
            argv,
            core=self.core,
            log_path=self.workdir / "router.log",
            env=env,
        )
        wait_for_port(self.router, self.sip_port, tcp=False)

    def stop(self) -> None:
        """Stop the router, then the runner and Redis (each by its PID)."""
        for process in (self.router, self.runner, self.redis):
            if process is not None:
                process.stop()


class BareBonesUnderTest(_Answerer):
    """The bare-bones Python call path (:mod:`bench.bare`) and its runner, on one core.

    Args:
        workdir: where the logs go.
        core: the core both processes are pinned to.
        max_streams: sizes the RTP port range, as for the router.
    """

    def __init__(
        self, workdir: Path, *, core: int | None, max_streams: int = 100
    ) -> None:
        self.workdir = workdir
        self.core = core
        self.rtp_ports = free_port_range(
            max_streams * RTP_PORTS_PER_CALL + RTP_PORT_HEADROOM
        )
        self.sip_port = free_port_range(1)[0]
        self.runner_port = free_tcp_port()
        self.router: Process | None = None
        self.runner: Process | None = None

    @property
    def target(self) -> tuple[str, int]:
        """Its SIP address."""
        return (LOOPBACK, self.sip_port)

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of its SIP side and its runner."""
        processes = {"router": self.router, "runner": self.runner}
        return {name: p.pid for name, p in processes.items() if p is not None}

    def start(self) -> None:
        """Start the runner, then the SIP side.

        Raises:
            BenchError: a process did not start or bind its port.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.runner = Process(
            "bare-bones runner",
            python_command("-m", "bench.bare", "runner", str(self.runner_port)),
            core=self.core,
            log_path=self.workdir / "runner.log",
        )
        wait_for_port(self.runner, self.runner_port, tcp=True)
        low, high = self.rtp_ports
        argv = python_command("-m", "bench.bare", "router", str(self.sip_port))
        argv += [str(self.runner_port), str(low), str(high)]
        self.router = Process(
            "bare-bones router", argv, core=self.core, log_path=self.workdir / "sip.log"
        )
        wait_for_port(self.router, self.sip_port, tcp=False)

    def stop(self) -> None:
        """Stop both processes by their PIDs."""
        for process in (self.router, self.runner):
            if process is not None:
                process.stop()


class SippUas(_Answerer):
    """SIPp's embedded UAS on one core: the reference answerer.

    Args:
        workdir: where its log goes.
        core: the core it is pinned to.
        rtp_echo: echo RTP back to its sender (the plain-relay reference).
        socket_buffer: SIP socket buffers (-buff_size), and, where the kernel
            lets us, the RTP echo socket's receive buffer (through
            net.core.rmem_default, set only while SIPp opens its sockets).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        core: int | None,
        rtp_echo: bool = False,
        socket_buffer: int = WANTED_SOCKET_BUFFER,
    ) -> None:
        self.workdir = workdir
        self.core = core
        self.rtp_echo = rtp_echo
        self.socket_buffer = socket_buffer
        self.sip_port = free_port_range(1)[0]
        self.media_port = free_port_range(SIPP_MEDIA_PORTS)[0]
        self.control_port = free_port_range(1)[0]
        self.process: Process | None = None
        self.echo_buffer_raised = False

    @property
    def target(self) -> tuple[str, int]:
        """SIPp's SIP address."""
        return (LOOPBACK, self.sip_port)

    @property
    def pids(self) -> dict[str, int]:
        """The PID of SIPp."""
        return {"sipp_uas": self.process.pid} if self.process else {}

    def start(self) -> None:
        """Start SIPp and wait until it listens.

        Raises:
            BenchError: SIPp is missing, or did not bind its port.
        """
        if shutil.which("sipp") is None:
            raise BenchError("sipp is not installed (Debian package sip-tester)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = ["sipp", "-sn", "uas", "-i", LOOPBACK, "-p", str(self.sip_port)]
        argv += ["-bind_local", "-mi", LOOPBACK, "-mp", str(self.media_port)]
        argv += ["-ci", LOOPBACK, "-cp", str(self.control_port), "-nostdin"]
        argv += ["-buff_size", str(self.socket_buffer)]
        if self.rtp_echo:
            argv.append("-rtp_echo")
        # SIPp has no option for its media socket's buffer; it gets the kernel
        # default, raised here only while SIPp starts.
        size = self.socket_buffer if self.rtp_echo else 0
        raise_buffer = (
            temporary_sysctl(RMEM_DEFAULT, size) if size else nullcontext(False)
        )
        with raise_buffer as raised:
            self.process = Process(
                "sipp uas",
                argv,
                core=self.core,
                log_path=self.workdir / "sipp-uas.log",
                stop_signal=signal.SIGKILL,
            )
            wait_for_port(self.process, self.sip_port, tcp=False)
            if self.rtp_echo:
                wait_for_port(self.process, self.media_port, tcp=False)
            self.echo_buffer_raised = bool(raised)

    def stop(self) -> None:
        """Stop SIPp by its PID."""
        if self.process is not None:
            self.process.stop()
