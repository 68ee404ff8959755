"""What media workers cost: bridged calls with one and two workers on ONE core.

``python -m bench.run --workers-scaling`` runs the bridged-calls measurement of
:mod:`bench.bridged` (same generator, same speech, same verdict: under 0.1 % of
frames lost or late) through a router started with ``ROUTER_MEDIA_WORKERS=1``
and then ``=2``. The router, its workers and the echo runner are all pinned to
core 0 (``taskset -c 0``; the workers inherit the router's core), the
generator to core 1.

On one core a second worker cannot add capacity; it can only cost some
(context switches, a second event loop and pacer, colder caches). The ratio
of the calls two workers hold to the calls one holds is therefore the price
of splitting media between processes; the target is at least 0.90. With a
core per worker, the same split is what lets bridged calls grow with cores.

Two figures come out:

* **held calls** for each worker count, stepped up as in :mod:`bench.bridged`
  and then narrowed in three times (finer than the main run, since the ratio
  is the point);
* **CPU per call** of the router and its workers together, over the window,
  at the largest call count both held: the cost of the split at equal load.

In this mode a step's ``answerer_cpu_s`` is the router's and its workers'
together (so the per-call figures of :mod:`bench.bridged` mean the same in
both configurations); ``helper_cpu_s`` lists the runner and each worker.
"""

from __future__ import annotations

import datetime
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.bridged import BridgedStep, BridgedSweep, measure_bridged_step, sweep_streams
from bench.generator import GeneratorLoad, build_generator, run_generator
from bench.peers import RouterUnderTest
from bench.system import (
    BenchError,
    machine_info,
    raised_socket_buffers,
    rss_kib,
    wait_until_quiet,
)

if TYPE_CHECKING:
    from bench.run import BenchConfig

__all__ = [
    "DOCS_BEGIN",
    "DOCS_END",
    "SCALING_REFINE_STEPS",
    "TARGET_RATIO",
    "WORKER_COUNTS",
    "format_scaling_report",
    "media_cpu_s",
    "run_workers_scaling",
    "scaling_figures",
    "scaling_markdown",
    "update_scaling_docs",
]

DOCS_BEGIN = "<!-- bench:workers-scaling:begin (written by python -m bench.run) -->"
DOCS_END = "<!-- bench:workers-scaling:end -->"

# The two configurations compared; the ratio is the second over the first.
WORKER_COUNTS = (1, 2)
# Two workers on one core should carry at least 90 % of what one carries.
TARGET_RATIO = 0.90
# Narrowing in three times leaves the limit known to an eighth of the gap
# between the last list step that held and the first that failed.
SCALING_REFINE_STEPS = 3
# Short calls placed before each step's idle RSS is read, as in the main run.
WARMUP_CALLS = 5
# Calls placed per second while a step sets up.
SETUP_RATE = 100


def run_workers_scaling(
    config: BenchConfig,
    *,
    worker_counts: tuple[int, ...] = WORKER_COUNTS,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Sweep bridged calls for each worker count; return the results.

    Raises:
        BenchError: a tool is missing or a process could not be set up.
    """
    if len(worker_counts) < 2 or min(worker_counts) < 1:
        raise BenchError("--workers-scaling compares at least two counts of 1 or more")
    build_generator()
    started = datetime.datetime.now(datetime.UTC)
    with (
        raised_socket_buffers() as buffers,
        tempfile.TemporaryDirectory(prefix="sip-router-bench-") as scratch,
    ):
        say(f"bridged calls with media workers {worker_counts}, router on one core")
        sweeps = {
            count: _sweep(config, Path(scratch) / f"workers-{count}", count, say)
            for count in worker_counts
        }
        results: dict[str, Any] = {
            "what": "workers-scaling",
            "date": started.isoformat(timespec="seconds"),
            "command": "python -m bench.run " + " ".join(sys.argv[1:]),
            "machine": machine_info(),
            "socket_buffers": buffers.as_dict(),
            "config": _config_dict(config, worker_counts),
            "sweeps": {str(count): sweep.as_dict() for count, sweep in sweeps.items()},
        }
    results["figures"] = scaling_figures(sweeps, worker_counts)
    results["duration_s"] = round(
        (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    )
    return results


def _config_dict(config: BenchConfig, worker_counts: tuple[int, ...]) -> dict[str, Any]:
    return {
        "worker_counts": list(worker_counts),
        "streams": list(config.streams),
        "window_s": config.window_s,
        "warmup_s": config.warmup_s,
        "drain_s": config.drain_s,
        "late_ms": config.late_ms,
        "router_core": config.router_core,
        "load_core": config.load_core,
        "store": config.store,
        "router_log_level": config.log_level,
        "retry_failures": config.retry_failures,
        "refine_steps": SCALING_REFINE_STEPS,
    }


def _sweep(
    config: BenchConfig, workdir: Path, workers: int, say: Callable[[str], None]
) -> BridgedSweep:
    def step(calls: int, attempt: int) -> BridgedStep:
        busy = (
            wait_until_quiet(config.quiet_threshold, config.quiet_wait_s, say)
            if config.quiet_wait_s > 0
            else 0.0
        )
        result = _bridged_step(config, workdir / f"{calls}-{attempt}", calls, workers)
        result.machine_busy_before = busy
        return result

    return sweep_streams(
        f"{workers} worker{'s' if workers > 1 else ''}",
        config.streams,
        step,
        retry_failures=config.retry_failures,
        refine_steps=SCALING_REFINE_STEPS,
        report=say,
    )


def _bridged_step(
    config: BenchConfig, workdir: Path, calls: int, workers: int
) -> BridgedStep:
    # A new router for every step, as in the main run.
    with RouterUnderTest(
        workdir,
        core=config.router_core,
        store=config.store,
        max_streams=calls,
        log_level=config.log_level,
        media_workers=workers,
    ) as router:
        assert router.router is not None
        if len(router.worker_pids()) != workers:
            raise BenchError(
                f"the router runs {len(router.worker_pids())} media workers, "
                f"not {workers}:\n{router.router.log_tail()}"
            )
        _warm_up(router.target, config, workdir)
        helpers = {name: pid for name, pid in router.pids.items() if name != "router"}
        load = GeneratorLoad(
            calls=calls,
            rate=SETUP_RATE,
            window_s=config.window_s,
            warmup_s=config.warmup_s,
            drain_s=config.drain_s,
            late_ms=config.late_ms,
        )
        step = measure_bridged_step(
            router.target,
            load,
            answerer_pid=router.router.pid,
            helper_pids=helpers,
            rss_idle_kib=rss_kib(router.router.pid),
            core=config.load_core,
            log_path=workdir / "generator.log",
        )
    # The media's CPU is the workers': the answerer is the router with them.
    step.answerer_cpu_s = media_cpu_s(step)
    return step


def _warm_up(target: tuple[str, int], config: BenchConfig, workdir: Path) -> None:
    load = GeneratorLoad(
        calls=WARMUP_CALLS, rate=WARMUP_CALLS, window_s=0.5, warmup_s=0.2, drain_s=0.2
    )
    run_generator(target, load, core=config.load_core, log_path=workdir / "warmup.log")


# -- figures -------------------------------------------------------------------------


def media_cpu_s(step: BridgedStep) -> float:
    """CPU seconds of the router's process and its media workers over the window.

    ``step`` as measured, with the router alone as the answerer.
    """
    workers = sum(
        seconds
        for name, seconds in step.helper_cpu_s.items()
        if name.startswith("media-worker")
    )
    return step.answerer_cpu_s + workers


def _held_at(sweep: BridgedSweep, calls: int) -> BridgedStep | None:
    return next(
        (step for step in sweep.steps if step.calls == calls and step.holds), None
    )


def _largest_held_by_all(sweeps: list[BridgedSweep]) -> int:
    """The largest call count every sweep measured and held (0 if none)."""
    held = [{step.calls for step in sweep.steps if step.holds} for sweep in sweeps]
    return max(set.intersection(*held), default=0) if held else 0


def scaling_figures(
    sweeps: dict[int, BridgedSweep], worker_counts: tuple[int, ...]
) -> dict[str, Any]:
    """Held calls per worker count, their ratio, and CPU per call at equal load."""
    base, split = worker_counts[0], worker_counts[-1]
    held = {str(count): sweeps[count].max_held for count in worker_counts}
    ratio = (
        round(sweeps[split].max_held / sweeps[base].max_held, 3)
        if sweeps[base].max_held
        else None
    )
    common = _largest_held_by_all([sweeps[count] for count in worker_counts])
    cpu: dict[str, float | None] = {}
    for count in worker_counts:
        step = _held_at(sweeps[count], common) if common else None
        cpu[str(count)] = (
            round(100 * step.cpu_per_call, 4) if step is not None else None
        )
    return {
        "held_calls": held,
        "held_is_lower_bound": {
            str(count): sweeps[count].never_failed for count in worker_counts
        },
        "held_ratio": ratio,
        "common_calls": common,
        "cpu_per_call_percent": cpu,
        "target": {
            "target": f"{split} workers hold >= {TARGET_RATIO:.0%} of {base}",
            "got": ratio,
            "met": ratio is not None and ratio >= TARGET_RATIO,
        },
    }


# -- output --------------------------------------------------------------------------


def _rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for count, sweep in results["sweeps"].items():
        for step in sweep["steps"]:
            per_call = step["cpu_per_call_percent"]
            verdict = "holds" if step["holds"] else f"fails: {step['why_not']}"
            rows.append(
                [
                    count,
                    str(step["calls"]),
                    f"{step['frames_sent']}",
                    f"{step['frames_lost']}",
                    f"{step['frames_late']}",
                    f"{step['latency_p99_ms']}",
                    f"{per_call:.3f}",
                    verdict,
                ]
            )
    return rows


HEADER = [
    "workers",
    "calls",
    "frames",
    "lost",
    "late",
    "p99 ms",
    "cpu %/call",
    "verdict",
]


def _summary_lines(results: dict[str, Any]) -> list[str]:
    figures = results["figures"]
    counts = results["config"]["worker_counts"]
    held = ", ".join(
        f"{count} worker{'s' if count > 1 else ''}: "
        f"{'>= ' if figures['held_is_lower_bound'][str(count)] else ''}"
        f"{figures['held_calls'][str(count)]}"
        for count in counts
    )
    cpu = ", ".join(
        f"{count}: {figures['cpu_per_call_percent'][str(count)]} %" for count in counts
    )
    target = figures["target"]
    return [
        f"held bridged calls on one core: {held}",
        f"ratio {counts[-1]}/{counts[0]} workers: {figures['held_ratio']} "
        f"(target {target['target']}: {'met' if target['met'] else 'missed'})",
        f"CPU per call at {figures['common_calls']} calls (router + workers): {cpu}",
    ]


def format_scaling_report(results: dict[str, Any]) -> str:
    """The results as a terminal report."""
    rows = [HEADER, *_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    table = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    title = f"media workers on one core ({results['date']})"
    return "\n".join(
        [title, *(line.rstrip() for line in table), "", *_summary_lines(results)]
    )


def scaling_markdown(results: dict[str, Any], json_name: str) -> str:
    """The results as the Markdown between the docs markers."""
    machine = results["machine"]
    config = results["config"]
    lines = [
        f"### Latest run: {results['date'][:10]}",
        "",
        f"- Machine: {machine['cpu_model']}, {machine['cores']} cores, "
        f"Python {machine['python']}; commit {machine['commit']}"
        + (" with local changes" if machine["router_tree_modified"] else "")
        + ".",
        f"- Command: `{results['command'].strip()}` ({results['duration_s']} s); "
        f"window {config['window_s']:g} s, late = echoed more than "
        f"{config['late_ms']:g} ms after sending.",
        f"- Every figure: `bench/results/{json_name}`.",
        "",
        *(f"- {line}" for line in _summary_lines(results)),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(row) + " |" for row in _rows(results)),
    ]
    return "\n".join(lines)


def update_scaling_docs(path: Path, results: dict[str, Any], json_name: str) -> None:
    """Put these results between this mode's markers in ``path`` (appended if absent)."""
    text = path.read_text() if path.exists() else ""
    if DOCS_BEGIN not in text or DOCS_END not in text:
        text = text.rstrip("\n") + f"\n\n{DOCS_BEGIN}\n{DOCS_END}\n"
    before, _, rest = text.partition(DOCS_BEGIN)
    _, _, after = rest.partition(DOCS_END)
    block = scaling_markdown(results, json_name)
    path.write_text(f"{before}{DOCS_BEGIN}\n\n{block}\n\n{DOCS_END}{after}")
