"""Fixtures for the end-to-end tests: the real router and echo runner as subprocesses.

Each process is started the way an operator starts it, through the ``sip-router``
command line, with its settings in ``ROUTER_*`` variables, on loopback ports chosen
free when the fixture starts, and with an embedded store file of its own that the
command line seeds (``sip-router pipes create``, ``numbers create``, ``numbers
attach``). Nothing of the caller's environment reaches them: every inherited
``ROUTER_*`` variable is dropped, so a developer's Redis or config file is never
touched.

Teardown stops each process by its PID (SIGTERM, as a service manager would) and
fails the test if it did not exit, or exited with an error.

:class:`Service` is one such process; :class:`RouterProcess` adds the router's
``/v1/status`` and :class:`EchoRunnerProcess` the runner's URL and its log of
sessions. :class:`SeededStore` seeds a store file through the command line.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.e2e.harness import (
    LOOPBACK,
    SIPP_SCENARIOS,
    HarnessError,
    LoopbackNamespace,
    MatchResult,
    audio_matches,
    correlate_pcm,
    decode_g711,
    free_port_range,
)

__all__ = [
    "ECHO_NUMBER",
    "HANGUP_NUMBER",
    "SLOW_NUMBER",
    "UNKNOWN_NUMBER",
    "EchoMeasures",
    "EchoRunnerProcess",
    "RouterProcess",
    "RouterUnderTest",
    "SeededStore",
    "Service",
    "echo_runner",
    "g711_reference",
    "measure_echo",
    "router",
    "running_echo_runner",
    "running_router",
    "sip_router_command",
    "subprocess_environment",
    "ulaw_bytes",
]

REPO_ROOT = Path(__file__).resolve().parents[2]

# The numbers the module-scoped router knows, one per runner behaviour. They are in
# the 555-01xx range that North American numbering keeps for fiction.
ECHO_NUMBER = "+14155550100"
SLOW_NUMBER = "+14155550101"
HANGUP_NUMBER = "+14155550102"
UNKNOWN_NUMBER = "+14155550199"

# The runner behind SLOW_NUMBER delays its handshake this long, so the call is
# still ringing when the caller cancels it.
SLOW_RUNNER_DELAY_S = 3.0
# The runner behind HANGUP_NUMBER closes its stream this long after `start`.
RUNNER_HANGUP_AFTER_S = 2.0

# Interpreter start, imports and store open take about a second here; a loaded CI
# machine gets ten times that.
START_TIMEOUT_S = 15.0
# Stopping hangs up live calls (BYE) and closes the store: well under a second here.
STOP_TIMEOUT_S = 10.0
# A call's ports and runner stream are released within a few event-loop turns of
# its end; five seconds is generous.
IDLE_TIMEOUT_S = 5.0
# Every HTTP exchange with /v1/status is one small request on loopback.
HTTP_TIMEOUT_S = 2.0
POLL_INTERVAL_S = 0.05
# 16 RTP ports: room for 8 calls (RTP on even ports, RFC 3550 §11), more than any
# test places at once.
RTP_PORT_COUNT = 16
# Lines of a process's log quoted in a failure message.
LOG_TAIL_CHARS = 4000
# Speech is correlated in chunks of 0.5 s (at 8 kHz): long enough to find its place
# in the echo, short enough that one 20 ms slip of the far end's timing spoils
# only the chunk it falls in.
CHUNK_SAMPLES = 4000
# ... and looked for within 100 ms of where the whole speech lines up: room for a
# few such slips.
CHUNK_SLACK_SAMPLES = 800


# ---------------------------------------------------------------------------
# Command line and environment
# ---------------------------------------------------------------------------


def sip_router_command() -> list[str]:
    """Return the argv prefix that runs ``sip-router`` from this interpreter.

    The installed console script is preferred, since that is what the README tells
    people to run; without one, the same entry point runs as ``python -m router.cli``.
    """
    script = Path(sys.executable).with_name("sip-router")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "router.cli"]


def subprocess_environment(**settings: str) -> dict[str, str]:
    """Return an environment for a ``sip-router`` process with exactly ``settings``.

    Inherited ``ROUTER_*`` variables are dropped, and this checkout comes first on
    ``PYTHONPATH`` so the processes run the code under test.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    paths = [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["ROUTER_LOG_FORMAT"] = "json"
    env.update(settings)
    return env


# ---------------------------------------------------------------------------
# Echoed audio
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EchoMeasures:
    """How much of the sent speech came back, by two measures.

    ``match`` counts the speech frames found byte-identical and in order, which a
    frame inserted or dropped on the way (a late packet at one end, a jitter
    buffer at the other) does not disturb. ``chunk_correlations`` are those of
    each 0.5 s of the sent audio at its own best place in the received audio;
    their median stays high through such a slip, where the correlation of the
    whole at one lag (``match.correlation``) drops.
    """

    match: MatchResult
    chunk_correlations: list[float]

    @property
    def median_correlation(self) -> float:
        """The median of the chunk correlations."""
        return statistics.median(self.chunk_correlations)

    def __str__(self) -> str:
        chunks = ", ".join(f"{c:.2f}" for c in self.chunk_correlations)
        return f"{self.match}; chunk correlations [{chunks}]"


def measure_echo(
    sent: Sequence[bytes], received: Sequence[bytes], *, law: str = "pcmu"
) -> EchoMeasures:
    """Compare received G.711 payloads with the sent frames (see EchoMeasures)."""
    match = audio_matches(sent, received, law=law)
    lag = match.offset if match.offset is not None else match.correlation.lag
    sent_samples = decode_g711(b"".join(sent), law)
    received_samples = decode_g711(b"".join(received), law)
    chunks = []
    for start in range(0, len(sent_samples) - CHUNK_SAMPLES // 2, CHUNK_SAMPLES):
        # Look for each chunk near where the whole lines up, give or take a few
        # frames, so the search cannot settle on a look-alike elsewhere.
        low = max(0, start + lag - CHUNK_SLACK_SAMPLES)
        high = start + lag + CHUNK_SAMPLES + CHUNK_SLACK_SAMPLES
        chunk = sent_samples[start : start + CHUNK_SAMPLES]
        chunks.append(correlate_pcm(chunk, received_samples[low:high]).coefficient)
    return EchoMeasures(match, chunks)


@functools.cache
def g711_reference() -> ModuleType:
    """Import sipp-scenarios/make_speech_pcap.py, a G.711 encoder independent of ours."""
    path = SIPP_SCENARIOS / "make_speech_pcap.py"
    spec = importlib.util.spec_from_file_location("make_speech_pcap", path)
    if spec is None or spec.loader is None:
        raise HarnessError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def ulaw_bytes(samples: Sequence[int]) -> bytes:
    """Encode 16-bit samples as μ-law; exact for samples decoded from μ-law."""
    encode = g711_reference().linear_to_ulaw
    return bytes(encode(sample) for sample in samples)


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------


class Service:
    """A long-running process we started; stopped by its PID.

    Its standard output and standard error go to files in ``workdir``; the router
    and the echo runner log JSON lines to standard error.

    Raises:
        HarnessError: from :meth:`start`, if the process does not come up.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        workdir: Path,
        namespace: LoopbackNamespace | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.workdir = workdir
        self.namespace = namespace
        self.stdout_path = workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.log"
        self.returncode: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The process id."""
        if self._process is None:
            raise HarnessError(f"{self.name} was not started")
        return self._process.pid

    def start(self) -> None:
        """Start the process (inside the namespace, if one was given)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = self.namespace.command(self.argv) if self.namespace else self.argv
        with (
            self.stdout_path.open("wb") as stdout,
            self.stderr_path.open("wb") as stderr,
        ):
            self._process = subprocess.Popen(
                argv,
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )

    def running(self) -> bool:
        """Tell whether the process is still running."""
        return self._process is not None and self._process.poll() is None

    def stop(self, signum: int = signal.SIGTERM) -> int | None:
        """Send ``signum`` to the process by PID and wait for it to exit.

        Returns its exit status, or None if it had to be killed (SIGKILL) because
        it did not exit within STOP_TIMEOUT_S.
        """
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)
        try:
            self.returncode = process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            self.returncode = None
        return self.returncode

    def output(self) -> str:
        """Return what the process wrote to standard output so far."""
        return _read(self.stdout_path)

    def log(self) -> str:
        """Return what the process wrote to standard error so far."""
        return _read(self.stderr_path)

    def log_tail(self) -> str:
        """The end of the log, for failure messages."""
        return f"--- {self.name} log ---\n{self.log()[-LOG_TAIL_CHARS:]}"

    def events(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """Return the JSON log lines, optionally only those with these values."""
        found = []
        for line in self.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a traceback or other non-JSON output
            if not isinstance(record, dict):
                continue
            if event is not None and record.get("event") != event:
                continue
            if all(record.get(key) == value for key, value in fields.items()):
                found.append(record)
        return found

    def wait_for_event(self, event: str, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the log has a line with this event.

        Raises:
            HarnessError: the process exited or the time ran out first.
        """
        self._wait(lambda: bool(self.events(event)), f"log {event!r}", timeout)

    def wait_for_output(self, text: str, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the standard output contains ``text``.

        Raises:
            HarnessError: the process exited or the time ran out first.
        """
        self._wait(lambda: text in self.output(), f"output {text!r}", timeout)

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll ``ready`` until true; raise if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.running():
                raise HarnessError(
                    f"{self.name} exited before {what}\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"{self.name}: no {what} in {timeout:g} s\n{self.log_tail()}"
                )
            time.sleep(POLL_INTERVAL_S)


def _read(path: Path) -> str:
    """Return the text of path, or "" if it does not exist yet."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


class EchoRunnerProcess(Service):
    """``sip-router echo-runner`` on a loopback port."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int,
        namespace: LoopbackNamespace | None = None,
    ) -> None:
        argv = [*sip_router_command(), "echo-runner", "--bind", LOOPBACK]
        argv += ["--port", str(port)]
        super().__init__(
            "echo-runner",
            argv,
            env=subprocess_environment(),
            workdir=workdir,
            namespace=namespace,
        )
        self.port = port

    def start(self) -> None:
        """Start the runner and wait until it listens."""
        super().start()
        self.wait_for_event("echo runner listening")

    def url(self, query: str = "") -> str:
        """The runner URL a pipe points at, with test hooks in ``query``."""
        return f"ws://{LOOPBACK}:{self.port}/" + (f"?{query}" if query else "")

    def sessions_started(self, **fields: Any) -> list[dict[str, Any]]:
        """The runner's log line for each `start` it received (one per session)."""
        return self.events("echo session started", **fields)


class RouterProcess(Service):
    """``sip-router run`` (or any command that runs a router) with its HTTP status."""

    def __init__(
        self,
        workdir: Path,
        *,
        argv: Sequence[str] | None = None,
        settings: dict[str, str] | None = None,
        namespace: LoopbackNamespace | None = None,
        name: str = "router",
    ) -> None:
        sip_port = free_port_range(1, tcp=True)[0]
        http_port = free_port_range(1, tcp=True)[0]
        rtp_lo, rtp_hi = free_port_range(RTP_PORT_COUNT)
        env = subprocess_environment(
            ROUTER_BIND=LOOPBACK,
            ROUTER_SIP_PORT=str(sip_port),
            ROUTER_RTP_PORTS=f"{rtp_lo}-{rtp_hi}",
            ROUTER_HTTP_BIND=LOOPBACK,
            ROUTER_HTTP_PORT=str(http_port),
            **(settings or {}),
        )
        command = [*sip_router_command(), "run"] if argv is None else list(argv)
        super().__init__(name, command, env=env, workdir=workdir, namespace=namespace)
        self.sip_port = sip_port
        self.http_port = http_port
        self.rtp_ports = range(rtp_lo, rtp_hi + 1)

    @property
    def sip_target(self) -> str:
        """``host:port`` of the router's SIP side, for SIPp."""
        return f"{LOOPBACK}:{self.sip_port}"

    def start(self) -> None:
        """Start the router and wait until /v1/status answers."""
        super().start()
        self._wait(self._answers, "answer on /v1/status", START_TIMEOUT_S)

    def _answers(self) -> bool:
        try:
            self.status()
        except (OSError, HarnessError):
            return False
        return True

    def status(self) -> dict[str, Any]:
        """GET /v1/status and return the JSON it answers.

        Raises:
            HarnessError: the answer is not 200 with a JSON object.
            OSError: the router did not accept the connection.
        """
        family, kind = socket.AF_INET, socket.SOCK_STREAM
        if self.namespace is not None:
            sock = self.namespace.open_socket(family, kind)
        else:
            sock = socket.socket(family, kind)
        with sock:
            sock.settimeout(HTTP_TIMEOUT_S)
            sock.connect((LOOPBACK, self.http_port))
            request = f"GET /v1/status HTTP/1.1\r\nHost: {LOOPBACK}\r\nConnection: close\r\n\r\n"
            sock.sendall(request.encode())
            answer = _read_until_closed(sock)
        head, _, body = answer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise HarnessError(f"/v1/status answered {head[:80]!r}")
        data = json.loads(body)
        if not isinstance(data, dict):
            raise HarnessError(f"/v1/status answered {body[:80]!r}")
        return data

    def wait_for_status(
        self, ready: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        """Poll /v1/status until ``ready`` accepts it; return the last status seen."""
        deadline = time.monotonic() + timeout
        status = self.status()
        while not ready(status) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_S)
            status = self.status()
        return status

    def wait_until_idle(self, timeout: float = IDLE_TIMEOUT_S) -> dict[str, Any]:
        """Wait until no call is active and no RTP port is held; return the status.

        The caller asserts on the returned status, which is the last one seen if
        the router never became idle.
        """
        return self.wait_for_status(_idle, timeout)


def _idle(status: dict[str, Any]) -> bool:
    return status.get("active_calls") == 0 and status.get("rtp_ports_in_use") == 0


def _read_until_closed(sock: socket.socket) -> bytes:
    """Read until the peer closes (the request asked for Connection: close)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------------
# Seeding a store through the command line
# ---------------------------------------------------------------------------


class SeededStore:
    """An embedded store file, filled through ``sip-router pipes|numbers``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pipes: dict[str, str] = {}  # pipe name -> pipe_id

    def cli(self, *arguments: str) -> dict[str, Any]:
        """Run ``sip-router ARGUMENTS --db PATH --json`` and return its JSON.

        Raises:
            HarnessError: the command failed.
        """
        argv = [*sip_router_command(), *arguments, "--db", str(self.path), "--json"]
        done = subprocess.run(
            argv,
            env=subprocess_environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise HarnessError(
                f"{' '.join(arguments)} exited {done.returncode}: {done.stderr.decode()}"
            )
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def add_pipe(self, name: str, runner_url: str) -> str:
        """Create a pipe and return its id."""
        pipe = self.cli("pipes", "create", "--name", name, "--runner-url", runner_url)
        self.pipes[name] = str(pipe["pipe_id"])
        return self.pipes[name]

    def add_number(self, number: str, pipe_id: str) -> None:
        """Create a number and attach it to a pipe."""
        self.cli("numbers", "create", number)
        attached = self.cli("numbers", "attach", number, pipe_id)
        if attached.get("pipe_id") != pipe_id:
            raise HarnessError(f"attach {number} to {pipe_id} answered {attached}")


# ---------------------------------------------------------------------------
# Starting and stopping
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def running_echo_runner(
    workdir: Path, namespace: LoopbackNamespace | None = None
) -> Iterator[EchoRunnerProcess]:
    """Run an echo runner for the duration; fail if it does not stop cleanly."""
    runner = EchoRunnerProcess(
        workdir, port=free_port_range(1, tcp=True)[0], namespace=namespace
    )
    with _stopped_cleanly(runner):
        yield runner


@contextlib.contextmanager
def running_router(
    workdir: Path,
    store: SeededStore,
    namespace: LoopbackNamespace | None = None,
    **settings: str,
) -> Iterator[RouterProcess]:
    """Run ``sip-router run`` on ``store`` for the duration; fail if it does not stop.

    Calls from any loopback source are accepted (ROUTER_ALLOW_UNLISTED_SOURCES): the
    tests play a carrier that no trunk lists.
    """
    settings = {
        "ROUTER_DB_PATH": str(store.path),
        "ROUTER_ALLOW_UNLISTED_SOURCES": "1",
        **settings,
    }
    router_process = RouterProcess(workdir, settings=settings, namespace=namespace)
    with _stopped_cleanly(router_process):
        yield router_process


@contextlib.contextmanager
def _stopped_cleanly(service: Service, signum: int = signal.SIGTERM) -> Iterator[None]:
    """Start service; on the way out stop it by PID and check it exited with 0."""
    try:
        service.start()
        yield
    finally:
        running = service.running()
        code = service.stop(signum)
    if not running:
        pytest.fail(
            f"{service.name} had exited before teardown ({code})\n{service.log_tail()}"
        )
    if code != 0:
        pytest.fail(
            f"{service.name} did not stop cleanly ({code})\n{service.log_tail()}"
        )


@dataclass
class RouterUnderTest:
    """The module's router, its echo runner, and the pipe behind each test number."""

    process: RouterProcess
    runner: EchoRunnerProcess
    store: SeededStore
    pipe_of: dict[str, str]  # number -> pipe_id


@pytest.fixture(scope="module")
def echo_runner(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EchoRunnerProcess]:
    """An echo runner subprocess shared by the tests of one module."""
    with running_echo_runner(tmp_path_factory.mktemp("echo-runner")) as runner:
        yield runner


@pytest.fixture(scope="module")
def router(
    tmp_path_factory: pytest.TempPathFactory, echo_runner: EchoRunnerProcess
) -> Iterator[RouterUnderTest]:
    """``sip-router run`` on a store of its own, shared by the tests of one module.

    The store has ECHO_NUMBER on a plain echo pipe, SLOW_NUMBER on a pipe whose
    runner takes SLOW_RUNNER_DELAY_S to accept, HANGUP_NUMBER on a pipe whose
    runner hangs up RUNNER_HANGUP_AFTER_S after `start`; UNKNOWN_NUMBER is absent.
    """
    workdir = tmp_path_factory.mktemp("router")
    store = SeededStore(workdir / "router.db")
    hooks = {
        ECHO_NUMBER: ("echo", ""),
        SLOW_NUMBER: ("slow", f"ready_delay={SLOW_RUNNER_DELAY_S:g}"),
        HANGUP_NUMBER: ("hangup", f"hangup_after={RUNNER_HANGUP_AFTER_S:g}"),
    }
    pipe_of = {}
    for number, (name, query) in hooks.items():
        pipe_of[number] = store.add_pipe(name, echo_runner.url(query))
        store.add_number(number, pipe_of[number])
    with running_router(workdir, store) as process:
        yield RouterUnderTest(process, echo_runner, store, pipe_of)
