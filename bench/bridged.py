"""Bridged calls per core: N calls of real speech echoed through the answerer.

For each N the compiled generator (on the load core) sets up N calls, starts
all N streams of 50 packets a second at once (each in its own millisecond of
the 20 ms period), waits a warm-up, then counts every frame sent during the
window and matches its echo:

* **lost**: sent in the window and never echoed before the BYEs;
* **late**: echoed more than ``late_ms`` (default 40 ms: one frame period of
  pacing plus one of processing) after it was sent;
* **latency**: sent to echoed, p50 and p99 over the window's frames.

A step *holds* when every call is answered, every call gets echoes, and fewer
than 0.1 % of the window's frames are lost or late. The answerer's CPU per
call comes from ``/proc/<pid>/stat`` over the window, its memory per call
from ``(RSS with N calls - RSS idle) / N``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.generator import GeneratorLoad, run_generator
from bench.sweep import step_up
from bench.system import udp_error_counters

__all__ = [
    "MAX_BAD_FRAME_RATIO",
    "BridgedStep",
    "BridgedSweep",
    "measure_bridged_step",
    "sweep_streams",
]

# The figure: the largest N with fewer than 0.1 % of frames late or lost.
MAX_BAD_FRAME_RATIO = 0.001


@dataclass
class BridgedStep:
    """N bridged calls through one answerer, measured over the window."""

    calls: int
    answered: int
    failed: int
    frames_sent: int
    frames_lost: int
    frames_late: int
    calls_without_echo: int
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    window_s: float
    answerer_cpu_s: float  # the answerer's main process over the window
    helper_cpu_s: dict[str, float]  # runner, Redis: same core, not counted above
    rss_idle_kib: int
    rss_loaded_kib: int
    core_busy: list[float]
    generator_cpu_s: float
    setup_p50_ms: float
    setup_p99_ms: float
    udp_errors: dict[str, int]
    machine_busy_before: float = 0.0
    holds: bool = False
    why_not: str = ""

    @property
    def bad_frame_ratio(self) -> float:
        """Frames lost or late per frame sent."""
        return (self.frames_lost + self.frames_late) / max(1, self.frames_sent)

    @property
    def cpu_per_call(self) -> float:
        """Share of one core per call (the answerer's process only)."""
        return self.answerer_cpu_s / max(1e-9, self.window_s) / max(1, self.calls)

    @property
    def rss_per_call_kib(self) -> float:
        """Resident memory added per established call, in KiB."""
        return (self.rss_loaded_kib - self.rss_idle_kib) / max(1, self.calls)

    def judge(self) -> None:
        """Decide whether the step holds, and say why not when it does not."""
        reasons = []
        if self.answered < self.calls or self.failed:
            reasons.append(
                f"{self.calls - self.answered} of {self.calls} calls unanswered"
            )
        if self.calls_without_echo:
            reasons.append(f"{self.calls_without_echo} calls got no echo")
        if self.bad_frame_ratio >= MAX_BAD_FRAME_RATIO:
            reasons.append(
                f"{self.bad_frame_ratio:.2%} of frames lost or late "
                f"({self.frames_lost} lost, {self.frames_late} late)"
            )
        self.holds = not reasons
        self.why_not = "; ".join(reasons)

    def as_dict(self) -> dict[str, Any]:
        """The step for the results file."""
        data = asdict(self)
        data["bad_frame_ratio"] = round(self.bad_frame_ratio, 6)
        data["cpu_per_call_percent"] = round(100 * self.cpu_per_call, 4)
        data["rss_per_call_kib"] = round(self.rss_per_call_kib, 2)
        return data


@dataclass
class BridgedSweep:
    """Every N tried through one answerer, and the largest that held."""

    answerer: str
    steps: list[BridgedStep] = field(default_factory=list)

    @property
    def max_held(self) -> int:
        """The largest N that held (0 if none did)."""
        return max((step.calls for step in self.steps if step.holds), default=0)

    def held_step(self) -> BridgedStep | None:
        """The step of the figure: the largest N that held."""
        held = [step for step in self.steps if step.holds]
        return max(held, key=lambda step: step.calls) if held else None

    def largest_within(self, p99_ms: float) -> BridgedStep | None:
        """The most calls held with p99 latency under ``p99_ms`` at every step up to them.

        A step can hold (almost no frame late or lost) with a p99 over a latency
        target while fewer calls meet it: the target asks for the calls that do.
        The held steps are read from the fewest calls up and the first one over
        the bound ends the count, so a lucky sample above it does not count.
        """
        best = None
        for step in sorted((s for s in self.steps if s.holds), key=lambda s: s.calls):
            if step.latency_p99_ms >= p99_ms:
                break
            best = step
        return best

    @property
    def never_failed(self) -> bool:
        """Every N tried held: the figure is a lower bound (the answerer's limit,
        or the generator's, lies higher)."""
        return bool(self.steps) and all(step.holds for step in self.steps)

    def as_dict(self) -> dict[str, Any]:
        """The sweep for the results file."""
        return {
            "answerer": self.answerer,
            "max_held_calls": self.max_held,
            "never_failed": self.never_failed,
            "steps": [step.as_dict() for step in self.steps],
        }


def measure_bridged_step(
    target: tuple[str, int],
    load: GeneratorLoad,
    *,
    answerer_pid: int,
    helper_pids: dict[str, int],
    rss_idle_kib: int,
    core: int | None,
    log_path: Any,
) -> BridgedStep:
    """Run one step of N calls (``load.calls``) against ``target``."""
    errors_before = udp_error_counters()
    watch = (answerer_pid, *helper_pids.values())
    report = run_generator(target, load, core=core, watch=watch, log_path=log_path)
    watched = report["watched"]
    frames, latency, setup = report["frames"], report["latency_us"], report["setup_us"]
    step = BridgedStep(
        calls=load.calls,
        answered=report["answered"],
        failed=report["failed"],
        frames_sent=frames["sent"],
        frames_lost=frames["lost"],
        frames_late=frames["late"],
        calls_without_echo=frames["calls_without_echo"],
        latency_p50_ms=round(latency["p50"] / 1000, 2),
        latency_p99_ms=round(latency["p99"] / 1000, 2),
        latency_max_ms=round(latency["max"] / 1000, 2),
        window_s=report["window_s"],
        answerer_cpu_s=watched[0]["cpu_s"],
        helper_cpu_s={
            name: item["cpu_s"]
            for name, item in zip(helper_pids, watched[1:], strict=False)
        },
        rss_idle_kib=rss_idle_kib,
        rss_loaded_kib=watched[0]["rss_end_kib"],
        core_busy=report.get("core_busy", []),
        generator_cpu_s=report["generator_cpu_s"],
        setup_p50_ms=round(setup["p50"] / 1000, 2),
        setup_p99_ms=round(setup["p99"] / 1000, 2),
        udp_errors={
            key: value - errors_before.get(key, 0)
            for key, value in udp_error_counters().items()
        },
    )
    step.judge()
    return step


def sweep_streams(
    answerer: str,
    counts: Sequence[int],
    run_step: Callable[[int, int], BridgedStep],
    *,
    retry_failures: bool = True,
    refine_steps: int = 1,
    report: Callable[[str], None] = print,
) -> BridgedSweep:
    """Step through ``counts`` until one fails, then narrow in (see :mod:`bench.sweep`).

    ``run_step(calls, attempt)`` measures one step.
    """

    def tell(calls: int, step: BridgedStep) -> None:
        verdict = "holds" if step.holds else f"fails: {step.why_not}"
        report(
            f"  {answerer}: {calls} calls, latency p50 {step.latency_p50_ms} ms "
            f"p99 {step.latency_p99_ms} ms, cpu {100 * step.cpu_per_call:.3f} %/call"
            f" -> {verdict}"
        )

    steps = step_up(
        counts,
        run_step,
        retry_failures=retry_failures,
        refine_steps=refine_steps,
        on_step=tell,
    )
    return BridgedSweep(answerer, steps)
