"""Answered calls per second: SIPp's caller at stepped rates against one answerer.

Each step places ``rate * step_s`` calls of ``sipp-scenarios/uac_load.xml``
(INVITE, 200, ACK, pause, BYE, 200; no media) from SIPp pinned to the load
core. A rate *holds* when

* every call succeeds (SIPp counts no failed call and exits 0);
* retransmissions stay at or below 0.1 % of the requests SIPp sent (three a
  call: INVITE, ACK, BYE);
* the calls finish on schedule: SIPp's run takes at most 10 % (plus a fixed
  allowance for process start-up) longer than ``calls / rate + pause``.

The steps go up until a rate fails twice in a row (one failure is retried, so
a single hiccup of a shared machine does not end the search early), then two
rates half-way between the last that held and the first that failed are tried.
"""

from __future__ import annotations

import csv
import resource
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.sweep import step_up
from bench.system import (
    LOOPBACK,
    WANTED_SOCKET_BUFFER,
    BenchError,
    core_busy_shares,
    core_times,
    cpu_seconds,
    free_port_range,
    udp_error_counters,
)

__all__ = [
    "MAX_RETRANSMISSION_RATIO",
    "SCHEDULE_SLACK",
    "RateStep",
    "RateSweep",
    "check_scenario",
    "run_rate_step",
    "sweep_rates",
]

SCENARIO = Path(__file__).resolve().parent.parent / "sipp-scenarios" / "uac_load.xml"
# Requests SIPp sends per call of uac_load.xml: INVITE, ACK, BYE.
REQUESTS_PER_CALL = 3
# The hold criteria (see the module docstring).
MAX_RETRANSMISSION_RATIO = 0.001
SCHEDULE_SLACK = 0.10
# SIPp needs a moment to parse its scenario and bind before the first call.
START_ALLOWANCE_S = 0.25
# Time past the schedule after which SIPp gives up (-timeout) and we kill it.
TIMEOUT_FACTOR = 3.0
TIMEOUT_FLOOR_S = 15.0
# SIPp's limit on calls open at once (-l); far above what a step needs when
# the answerer keeps up, so the limit never paces a rate that holds.
OPEN_CALLS_FLOOR = 2000
OPEN_CALLS_SECONDS = 5
BENCH_NUMBER = "+14155550100"
SIPP_MEDIA_PORTS = 4


@dataclass
class RateStep:
    """The outcome of one rate against one answerer."""

    rate: int
    calls: int
    successful: int
    failed: int
    retransmissions: int
    elapsed_s: float
    expected_s: float
    exit_status: int
    target_cpu_s: dict[str, float]
    caller_cpu_s: float
    udp_errors: dict[str, int]
    core_busy: list[float] = field(default_factory=list)
    machine_busy_before: float = 0.0
    holds: bool = False
    why_not: str = ""

    @property
    def retransmission_ratio(self) -> float:
        """Retransmissions per request sent."""
        return self.retransmissions / max(1, REQUESTS_PER_CALL * self.calls)

    def judge(self) -> None:
        """Decide whether the step holds, and say why not when it does not."""
        reasons = []
        if self.failed or self.successful < self.calls or self.exit_status != 0:
            reasons.append(
                f"{self.calls - self.successful} of {self.calls} calls failed"
                f" (sipp exit {self.exit_status})"
            )
        if self.retransmission_ratio > MAX_RETRANSMISSION_RATIO:
            reasons.append(f"retransmissions {self.retransmission_ratio:.2%}")
        allowed = self.expected_s * (1 + SCHEDULE_SLACK) + START_ALLOWANCE_S
        if self.elapsed_s > allowed:
            reasons.append(f"took {self.elapsed_s:.2f} s for {self.expected_s:.2f} s")
        self.holds = not reasons
        self.why_not = "; ".join(reasons)

    def as_dict(self) -> dict[str, Any]:
        """The step for the results file."""
        data = asdict(self)
        data["retransmission_ratio"] = round(self.retransmission_ratio, 6)
        return data


@dataclass
class RateSweep:
    """Every step tried against one answerer, and the highest rate that held."""

    answerer: str
    steps: list[RateStep] = field(default_factory=list)

    @property
    def max_held(self) -> int:
        """The highest rate that held (0 if none did)."""
        return max((step.rate for step in self.steps if step.holds), default=0)

    @property
    def never_failed(self) -> bool:
        """Every rate tried held: the figure is a lower bound (the answerer's
        limit, or the caller's, lies higher)."""
        return bool(self.steps) and all(step.holds for step in self.steps)

    def as_dict(self) -> dict[str, Any]:
        """The sweep for the results file."""
        return {
            "answerer": self.answerer,
            "max_held_rate": self.max_held,
            "never_failed": self.never_failed,
            "steps": [step.as_dict() for step in self.steps],
        }


def run_rate_step(
    target: tuple[str, int],
    rate: int,
    *,
    step_s: float,
    pause_ms: int,
    core: int | None,
    workdir: Path,
    watch: dict[str, int],
) -> RateStep:
    """Place ``rate * step_s`` calls at ``rate`` per second and measure the run.

    Raises:
        BenchError: SIPp could not be run.
    """
    calls = max(1, round(rate * step_s))
    expected = calls / rate + pause_ms / 1000
    timeout = max(TIMEOUT_FLOOR_S, expected * TIMEOUT_FACTOR)
    workdir.mkdir(parents=True, exist_ok=True)
    argv = _sipp_caller(target, rate, calls, pause_ms, timeout, workdir)
    if core is not None:
        argv = ["taskset", "-c", str(core), *argv]

    target_before = {name: cpu_seconds(pid) for name, pid in watch.items()}
    errors_before = udp_error_counters()
    children_before = _children_cpu()
    cores_before = core_times()
    started = time.monotonic()
    status = _run_sipp(argv, workdir, timeout)
    elapsed = time.monotonic() - started
    final = _final_statistics(workdir / "stat.csv")

    step = RateStep(
        rate=rate,
        calls=calls,
        successful=int(final.get("SuccessfulCall(C)", 0)),
        failed=int(final.get("FailedCall(C)", 0)),
        retransmissions=int(final.get("Retransmissions(C)", 0)),
        elapsed_s=round(elapsed, 3),
        expected_s=round(expected, 3),
        exit_status=status,
        target_cpu_s={
            name: round(cpu_seconds(pid) - target_before[name], 2)
            for name, pid in watch.items()
        },
        caller_cpu_s=round(_children_cpu() - children_before, 2),
        udp_errors=_difference(udp_error_counters(), errors_before),
        core_busy=core_busy_shares(cores_before, core_times()),
    )
    step.judge()
    return step


def _sipp_caller(
    target: tuple[str, int],
    rate: int,
    calls: int,
    pause_ms: int,
    timeout: float,
    workdir: Path,
) -> list[str]:
    local_port, control_port = free_port_range(1)[0], free_port_range(1)[0]
    # SIPp binds its media port and the port two above it.
    media_port = free_port_range(SIPP_MEDIA_PORTS)[0]
    open_calls = max(OPEN_CALLS_FLOOR, rate * OPEN_CALLS_SECONDS)
    argv = ["sipp", f"{target[0]}:{target[1]}", "-sf", str(SCENARIO)]
    argv += ["-s", BENCH_NUMBER, "-i", LOOPBACK, "-p", str(local_port), "-bind_local"]
    argv += ["-mi", LOOPBACK, "-mp", str(media_port), "-ci", LOOPBACK]
    argv += ["-cp", str(control_port), "-nostdin"]
    argv += [
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-d",
        str(pause_ms),
        "-l",
        str(open_calls),
    ]
    argv += ["-buff_size", str(WANTED_SOCKET_BUFFER)]
    argv += ["-timeout", f"{timeout:.0f}s", "-timeout_error"]
    argv += ["-trace_stat", "-stf", str(workdir / "stat.csv"), "-fd", "1"]
    argv += ["-trace_err", "-error_file", str(workdir / "errors.log")]
    return argv


def _run_sipp(argv: Sequence[str], workdir: Path, timeout: float) -> int:
    with (workdir / "sipp.log").open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        try:
            return process.wait(timeout + TIMEOUT_FLOOR_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return -9


def _final_statistics(path: Path) -> dict[str, str]:
    """The last row of SIPp's -trace_stat file (cumulative counters)."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle, delimiter=";"))
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before.get(key, 0) for key in after}


def sweep_rates(
    answerer: str,
    rates: Sequence[int],
    run_step: Callable[[int, int], RateStep],
    *,
    retry_failures: bool = True,
    refine_steps: int = 2,
    report: Callable[[str], None] = print,
) -> RateSweep:
    """Step through ``rates`` until one fails, then narrow in (see :mod:`bench.sweep`).

    ``run_step(rate, attempt)`` measures one step.
    """

    def tell(rate: int, step: RateStep) -> None:
        verdict = "holds" if step.holds else f"fails: {step.why_not}"
        report(f"  {answerer}: {rate}/s x {step.calls} calls -> {verdict}")

    steps = step_up(
        rates,
        run_step,
        retry_failures=retry_failures,
        refine_steps=refine_steps,
        on_step=tell,
    )
    return RateSweep(answerer, steps)


def check_scenario() -> None:
    """Make sure the caller's scenario is there.

    Raises:
        BenchError: it is missing.
    """
    if not SCENARIO.is_file():
        raise BenchError(f"missing SIPp scenario {SCENARIO.name}")
