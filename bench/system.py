"""The machine under the benchmark: facts about it, kernel knobs, processes, ports.

Everything here binds to loopback only. Processes are started pinned to a core
with ``taskset`` and stopped by their own PID; kernel settings changed for the
run are put back when it ends.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "LOOPBACK",
    "REPO",
    "BenchError",
    "BufferSettings",
    "Process",
    "child_pids",
    "core_busy_shares",
    "core_times",
    "cpu_seconds",
    "free_port_range",
    "free_tcp_port",
    "free_udp_port",
    "machine_info",
    "python_command",
    "raised_socket_buffers",
    "rss_kib",
    "temporary_sysctl",
    "udp_error_counters",
    "wait_for_port",
    "wait_until_quiet",
]

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent

# Large socket buffers matter at thousands of packets a second: without them
# SIPp's own UAS drops packets at 3,000 calls/s on these machines. 4 MiB is
# the size SIPp's -buff_size is given here.
WANTED_SOCKET_BUFFER = 4 * 1024 * 1024
SYSCTL_DIR = Path("/proc/sys")
RMEM_MAX = "net/core/rmem_max"
WMEM_MAX = "net/core/wmem_max"
RMEM_DEFAULT = "net/core/rmem_default"

# Ports for peers are picked below Linux's default ephemeral range
# (net.ipv4.ip_local_port_range = 32768-60999), so the kernel does not hand
# them to an outgoing connection between our check and the peer's bind.
PORT_FLOOR = 20000
PORT_CEILING = 32000
PORT_ATTEMPTS = 200

# How long a process gets to exit after SIGTERM before it is killed.
STOP_GRACE_S = 5.0
PORT_WAIT_S = 15.0
# How long each look at the machine's load lasts.
QUIET_PROBE_S = 1.0


class BenchError(Exception):
    """The benchmark could not set up or run a measurement."""


# -- the machine ---------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    try:
        result = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip()


def _tool_version(command: Sequence[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (result.stdout + result.stderr).strip()
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def machine_info() -> dict[str, Any]:
    """Describe the machine and the code under test, for the results file."""
    load = os.getloadavg()
    dirty = bool(_git("status", "--porcelain", "--", "router"))
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sipp": _tool_version(["sipp", "-v"]),
        "cc": _tool_version(["cc", "--version"]),
        "load_average_at_start": [round(value, 2) for value in load],
        "commit": _git("rev-parse", "--short", "HEAD"),
        "router_tree_modified": dirty,
    }


# -- kernel settings -------------------------------------------------------------


def _read_sysctl(name: str) -> int:
    return int((SYSCTL_DIR / name).read_text().split()[0])


def _write_sysctl(name: str, value: int) -> bool:
    try:
        (SYSCTL_DIR / name).write_text(f"{value}\n")
    except OSError:
        return False
    return True


@dataclass
class BufferSettings:
    """What the run got for socket buffers, and what it changed to get it."""

    rmem_max: int
    wmem_max: int
    changed: dict[str, int] = field(default_factory=dict)  # name -> value before

    @property
    def effective(self) -> int:
        """The largest buffer a socket can ask for without privileges."""
        return min(self.rmem_max, self.wmem_max)

    def as_dict(self) -> dict[str, Any]:
        """The settings for the results file."""
        return {
            "rmem_max": self.rmem_max,
            "wmem_max": self.wmem_max,
            "raised_by_benchmark": sorted(self.changed),
            "wanted": WANTED_SOCKET_BUFFER,
        }


@contextlib.contextmanager
def raised_socket_buffers(
    wanted: int = WANTED_SOCKET_BUFFER,
) -> Iterator[BufferSettings]:
    """Raise net.core.rmem_max and wmem_max to ``wanted`` where allowed (root).

    Values already at or above ``wanted`` are left alone; values this changed
    are put back on exit.
    """
    changed: dict[str, int] = {}
    for name in (RMEM_MAX, WMEM_MAX):
        try:
            before = _read_sysctl(name)
        except (OSError, ValueError):
            continue
        if before < wanted and _write_sysctl(name, wanted):
            changed[name] = before
    try:
        yield BufferSettings(_read_sysctl(RMEM_MAX), _read_sysctl(WMEM_MAX), changed)
    finally:
        for name, before in changed.items():
            _write_sysctl(name, before)


@contextlib.contextmanager
def temporary_sysctl(name: str, value: int) -> Iterator[bool]:
    """Set a sysctl for the duration of the block; yield whether it was set."""
    try:
        before = _read_sysctl(name)
    except (OSError, ValueError):
        yield False
        return
    if before == value or not _write_sysctl(name, value):
        yield before == value
        return
    try:
        yield True
    finally:
        _write_sysctl(name, before)


def udp_error_counters() -> dict[str, int]:
    """The kernel's UDP receive and send buffer overflow counters (all sockets)."""
    lines = Path("/proc/net/snmp").read_text().splitlines()
    rows = [line.split() for line in lines if line.startswith("Udp:")]
    if len(rows) < 2:
        return {}
    values = dict(zip(rows[0][1:], rows[1][1:], strict=False))
    return {
        "rcvbuf_errors": int(values.get("RcvbufErrors", 0)),
        "sndbuf_errors": int(values.get("SndbufErrors", 0)),
    }


def core_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies of each core since boot, from /proc/stat (proc(5))."""
    times = []
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu") or not line[3:4].isdigit():
            continue
        # user nice system idle iowait irq softirq steal
        values = [int(value) for value in line.split()[1:9]]
        busy = sum(values) - values[3] - values[4]
        times.append((busy, sum(values)))
    return times


def core_busy_shares(
    before: list[tuple[int, int]], after: list[tuple[int, int]]
) -> list[float]:
    """The share of each core that was busy between two :func:`core_times`."""
    shares = []
    for (busy0, total0), (busy1, total1) in zip(before, after, strict=False):
        shares.append(round((busy1 - busy0) / max(1, total1 - total0), 3))
    return shares


def wait_until_quiet(
    threshold: float, timeout_s: float, say: Callable[[str], None]
) -> float:
    """Wait until the machine's cores are at most ``threshold`` busy (on average
    over one second), or ``timeout_s`` passed; return the last share measured.

    Other programs on the machine take cores from the answerer and the load
    generator alike; the figures are only worth comparing on a quiet machine.
    """
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        before = core_times()
        time.sleep(QUIET_PROBE_S)
        shares = core_busy_shares(before, core_times())
        busy = sum(shares) / max(1, len(shares))
        if busy <= threshold or time.monotonic() >= deadline:
            return round(busy, 3)
        if not told:
            say(f"waiting for a quieter machine: cores {busy:.0%} busy")
            told = True


# -- processes ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (proc(5), fields 14 and 15).

    Raises:
        BenchError: the process is gone.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError as error:
        raise BenchError(f"process {pid} is gone") from error
    # The command name (field 2) may hold spaces: count from its closing paren.
    fields = text[text.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """PIDs of the live child processes of ``pid`` (proc(5): field 4 is the parent)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                children.append(int(stat.parent.name))
    return sorted(children)


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (VmRSS), 0 if it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Process:
    """A helper process pinned to one core, with its output in a log file.

    Stopped by its own PID: SIGTERM first (or ``stop_signal``), SIGKILL if it
    lingers.

    Raises:
        BenchError: the program could not be started.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        core: int | None,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path = REPO,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.stop_signal = stop_signal
        command = list(argv)
        if core is not None and shutil.which("taskset"):
            command = ["taskset", "-c", str(core), *command]
        self.command = command
        self._log: IO[bytes] = log_path.open("wb")
        try:
            # taskset execs the program, so the PID is the program's own.
            self._popen = subprocess.Popen(
                command,
                cwd=cwd,
                env={**_inherited_environment(), **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        except OSError as error:
            self._log.close()
            raise BenchError(f"cannot start {name}: {error}") from error

    @property
    def pid(self) -> int:
        """The process id."""
        return self._popen.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self._popen.poll() is None

    def log_tail(self, size: int = 2000) -> str:
        """The end of the process's output, for error messages."""
        self._log.flush()
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-size:]
        return ""

    def stop(self) -> int | None:
        """Stop the process and return its exit status."""
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(self.stop_signal)
            try:
                self._popen.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        self._log.close()
        return self._popen.returncode

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _inherited_environment() -> dict[str, str]:
    """This process's environment without ``ROUTER_*``: a developer's Redis URL
    or config file must never reach a router the benchmark starts."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}


def wait_for_port(process: Process, port: int, *, tcp: bool) -> None:
    """Wait until ``process`` has bound ``port`` (UDP, or TCP listening).

    Raises:
        BenchError: the process exited, or the port was not bound in time.
    """
    deadline = time.monotonic() + PORT_WAIT_S
    while time.monotonic() < deadline:
        if not process.alive():
            raise BenchError(
                f"{process.name} exited before binding port {port}:\n"
                + process.log_tail()
            )
        if _port_bound(process.pid, port, tcp=tcp):
            return
        time.sleep(0.02)
    raise BenchError(f"{process.name} did not bind port {port}:\n{process.log_tail()}")


def _port_bound(pid: int, port: int, *, tcp: bool) -> bool:
    """Whether a socket in pid's network namespace has ``port`` (listening, for TCP)."""
    suffix = f":{port:04X}"
    tables = ("tcp", "tcp6") if tcp else ("udp", "udp6")
    for table in tables:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                # /proc/net/tcp state 0A is LISTEN.
                if fields[1].endswith(suffix) and (not tcp or fields[3] == "0A"):
                    return True
    return False


# -- ports -------------------------------------------------------------------------


def free_udp_port() -> int:
    """A UDP port on loopback that is free at the time of the call."""
    return free_port_range(1)[0]


def free_tcp_port() -> int:
    """A TCP port on loopback that is free at the time of the call."""
    return free_port_range(1, tcp=True)[0]


def free_port_range(count: int, *, tcp: bool = False) -> tuple[int, int]:
    """``(low, high)``, both inclusive, of ``count`` free consecutive ports.

    ``low`` is even (RFC 3550 §11: RTP on an even port).

    Raises:
        BenchError: no such range was found.
    """
    for _ in range(PORT_ATTEMPTS):
        low = random.randrange(PORT_FLOOR, PORT_CEILING - count) & ~1
        if all(_port_free(port, tcp) for port in range(low, low + count)):
            return low, low + count - 1
    raise BenchError(f"no {count} consecutive free ports on {LOOPBACK}")


def _port_free(port: int, tcp: bool) -> bool:
    kinds = [socket.SOCK_DGRAM, socket.SOCK_STREAM] if tcp else [socket.SOCK_DGRAM]
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                return False
    return True


def python_command(*args: str) -> list[str]:
    """Run a module of this repository with the interpreter running the benchmark."""
    return [sys.executable, *args]
