"""``python -m bench.run``: the router against SIPp, in the same run, on one machine.

1. Socket buffers: raise net.core.rmem_max / wmem_max to 4 MiB where allowed
   (root), put them back afterwards, and report what the run got.
2. Measure, with the answerer pinned to one core and the load to the other:

   (a) answered calls per second, the router and SIPp's own UAS under the
       same SIPp caller (:mod:`bench.calls_per_second`);
   (b) bridged calls per core, the router and a plain relay (SIPp's UAS with
       ``-rtp_echo``) under the same compiled generator (:mod:`bench.bridged`);
   (c) set-up time INVITE → 200 at half of each one's highest held rate.

3. Print a table, write ``bench/results/<date>-<what>.json`` and, for a full
   run, the results section of ``docs/benchmarks.md``.
4. When the router misses a target, record py-spy profiles of it under load
   (:mod:`bench.profile`).

``--quick`` runs a few-seconds version of every step. ``--workers-scaling``
measures instead what splitting media into worker processes costs: bridged
calls with one and with two media workers, the router on one core
(:mod:`bench.workers_scaling`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.bridged import BridgedStep, BridgedSweep, measure_bridged_step, sweep_streams
from bench.calls_per_second import (
    RateStep,
    RateSweep,
    check_scenario,
    run_rate_step,
    sweep_rates,
)
from bench.generator import GeneratorLoad, build_generator, run_generator
from bench.peers import BareBonesUnderTest, RouterUnderTest, SippUas
from bench.profile import Profile, py_spy_available, record_profile
from bench.report import format_report, update_docs
from bench.system import (
    REPO,
    BenchError,
    BufferSettings,
    machine_info,
    raised_socket_buffers,
    rss_kib,
    wait_until_quiet,
)
from bench.workers_scaling import (
    WORKER_COUNTS,
    format_scaling_report,
    run_workers_scaling,
    update_scaling_docs,
)

__all__ = [
    "BenchConfig",
    "Targets",
    "check_targets",
    "headline_figures",
    "main",
    "run_benchmark",
    "write_results",
]

RESULTS_DIR = REPO / "bench" / "results"
DOCS_PATH = REPO / "docs" / "benchmarks.md"

# Rates (calls/s) and concurrent calls to step through. The rates reach past
# SIPp's UAS on these machines (~20,000/s with no pause in the call); the call
# counts stop where one core of the generator stops keeping up (~2,000 echo
# streams).
FULL_RATES: tuple[int, ...] = (100, 200, 400, 600, 800, 1000, 1500, 2000, 3000)
FULL_RATES += (4000, 5000, 6000, 8000, 10000, 12000, 15000, 20000, 25000, 30000)
FULL_RATES += (40000, 50000)
FULL_STREAMS = (50, 100, 200, 300, 400, 600, 800, 1000, 1500, 2000)
QUICK_RATES = (50,)
QUICK_STREAMS = (5,)

# How fast calls are placed for bridged steps: gently for the router (never
# above half the rate it held), briskly for the relay.
ROUTER_SETUP_RATE = 100
RELAY_SETUP_RATE = 500
# Calls placed before a bridged step's idle RSS is read, so one-off start-up
# allocations (imports, first connections) are not charged to the calls.
WARMUP_CALLS = 5


@dataclass(frozen=True)
class Targets:
    """What the router should reach; a miss triggers profiling."""

    calls_per_second_ratio: float = 0.10  # of SIPp's UAS
    bridged_calls: int = 200  # per core, holding, with...
    bridged_p99_ms: float = 20.0  # ...p99 added latency below this
    setup_p99_ms: float = 10.0
    rss_per_call_kib: float = 100.0


@dataclass
class BenchConfig:
    """One benchmark run's shape; :meth:`quick` and :meth:`full` are the presets."""

    what: str
    rates: Sequence[int]
    step_s: float
    pause_ms: int
    streams: Sequence[int]
    window_s: float
    warmup_s: float
    late_ms: float = 40.0
    drain_s: float = 1.0
    router_core: int | None = 0
    load_core: int | None = 1
    store: str = "embedded"
    log_level: str = "info"
    retry_failures: bool = True
    profile: bool = True
    profile_s: float = 10.0
    quiet_threshold: float = 0.15
    quiet_wait_s: float = 20.0
    results_dir: Path = RESULTS_DIR
    docs_path: Path | None = DOCS_PATH
    targets: Targets = field(default_factory=Targets)

    @classmethod
    def full(cls) -> BenchConfig:
        """The default run: about ten minutes on a two-core machine."""
        return cls("full", FULL_RATES, 5.0, 0, FULL_STREAMS, 10.0, 2.0)

    @classmethod
    def quick(cls) -> BenchConfig:
        """A few seconds a step: checks the whole path, measures little."""
        return cls(
            "quick",
            QUICK_RATES,
            1.0,
            0,
            QUICK_STREAMS,
            1.0,
            0.5,
            drain_s=0.5,
            quiet_wait_s=0.0,
            retry_failures=False,
            profile=False,
            docs_path=None,
        )


# -- the run -------------------------------------------------------------------------


def run_benchmark(
    config: BenchConfig, *, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run every measurement of ``config`` and return the results.

    Raises:
        BenchError: a tool is missing or a process could not be set up.
    """
    check_scenario()
    build_generator()
    started = datetime.datetime.now(datetime.UTC)
    with (
        raised_socket_buffers() as buffers,
        tempfile.TemporaryDirectory(prefix="sip-router-bench-") as scratch,
    ):
        workdir = Path(scratch)
        say(_describe_buffers(buffers))
        results: dict[str, Any] = {
            "what": config.what,
            "date": started.isoformat(timespec="seconds"),
            "command": "python -m bench.run " + " ".join(sys.argv[1:]),
            "machine": machine_info(),
            "socket_buffers": buffers.as_dict(),
            "config": _config_dict(config),
        }
        rates = _measure_calls_per_second(config, workdir / "a", say)
        bridged = _measure_bridged(config, workdir / "b", rates, say)
        setup = _measure_setup_time(config, workdir / "c", rates, say)
        results["calls_per_second"] = {k: v.as_dict() for k, v in rates.items()}
        results["bridged"] = {k: v.as_dict() for k, v in bridged.items()}
        results["setup_time"] = setup
        results["figures"] = headline_figures(rates, bridged, setup, config.targets)
        results["targets"] = check_targets(config.targets, results["figures"])
        missed = [name for name, t in results["targets"].items() if not t["met"]]
        if config.profile and missed:
            try:
                results["profiles"] = _profile(
                    config, workdir / "p", rates, bridged, say
                )
            except BenchError as error:
                # The measurements stand without their profiles.
                say(f"profiling failed: {error}")
                results["profile_error"] = str(error)
        results["duration_s"] = round(
            (datetime.datetime.now(datetime.UTC) - started).total_seconds()
        )
    return results


def _describe_buffers(buffers: BufferSettings) -> str:
    raised = ", raised for this run" if buffers.changed else ""
    return (
        f"socket buffers: rmem_max {buffers.rmem_max} B, wmem_max {buffers.wmem_max} B"
        f"{raised}"
    )


def _config_dict(config: BenchConfig) -> dict[str, Any]:
    return {
        "rates": list(config.rates),
        "step_s": config.step_s,
        "pause_ms": config.pause_ms,
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
        "quiet_threshold": config.quiet_threshold,
        "quiet_wait_s": config.quiet_wait_s,
    }


# -- (a) calls per second ----------------------------------------------------------


def _measure_calls_per_second(
    config: BenchConfig, workdir: Path, say: Callable[[str], None]
) -> dict[str, RateSweep]:
    say("(a) answered calls per second")
    sweeps = {}
    with _router(config, workdir / "router", max(config.streams)) as router:
        sweeps["router"] = _sweep_rates(
            config, "router", router.target, router.pids, workdir, say
        )
    with SippUas(workdir / "sipp-uas", core=config.router_core) as uas:
        sweeps["sipp_uas"] = _sweep_rates(
            config, "sipp_uas", uas.target, uas.pids, workdir, say
        )
    # Not a target: what the same calls cost in Python without the router's
    # generality (see bench.bare), to tell the language from the design.
    bare = BareBonesUnderTest(
        workdir / "bare", core=config.router_core, max_streams=max(config.streams)
    )
    with bare:
        sweeps["bare_python"] = _sweep_rates(
            config, "bare_python", bare.target, bare.pids, workdir, say
        )
    return sweeps


def _sweep_rates(
    config: BenchConfig,
    name: str,
    target: tuple[str, int],
    pids: dict[str, int],
    workdir: Path,
    say: Callable[[str], None],
) -> RateSweep:
    def step(rate: int, attempt: int) -> RateStep:
        busy = _settle(config, say)
        result = run_rate_step(
            target,
            rate,
            step_s=config.step_s,
            pause_ms=config.pause_ms,
            core=config.load_core,
            workdir=workdir / f"{name}-{rate}-{attempt}",
            watch=pids,
        )
        result.machine_busy_before = busy
        return result

    return sweep_rates(
        name, config.rates, step, retry_failures=config.retry_failures, report=say
    )


def _settle(config: BenchConfig, say: Callable[[str], None]) -> float:
    """Wait (a while) for other programs to leave the cores; return their share."""
    if config.quiet_wait_s <= 0:
        return 0.0
    return wait_until_quiet(config.quiet_threshold, config.quiet_wait_s, say)


def _router(
    config: BenchConfig,
    workdir: Path,
    max_streams: int,
    *,
    helpers_apart: bool = False,
) -> RouterUnderTest:
    """The router as measured; ``helpers_apart`` puts its runner and Redis on the
    load core, for a profile of the router's own work."""
    return RouterUnderTest(
        workdir,
        core=config.router_core,
        store=config.store,
        max_streams=max_streams,
        log_level=config.log_level,
        helpers_core=config.load_core if helpers_apart else None,
    )


# -- (b) bridged calls ---------------------------------------------------------------


def _measure_bridged(
    config: BenchConfig,
    workdir: Path,
    rates: dict[str, RateSweep],
    say: Callable[[str], None],
) -> dict[str, BridgedSweep]:
    say(f"(b) bridged calls per core (late: echoed over {config.late_ms:g} ms)")
    router_rate = _setup_rate(ROUTER_SETUP_RATE, rates["router"].max_held)
    relay_rate = _setup_rate(RELAY_SETUP_RATE, rates["sipp_uas"].max_held)
    sweeps = {}

    def router_step(calls: int, attempt: int) -> BridgedStep:
        busy = _settle(config, say)
        step = _router_bridged_step(
            config, workdir / f"router-{calls}-{attempt}", calls, router_rate
        )
        step.machine_busy_before = busy
        return step

    def relay_step(calls: int, attempt: int) -> BridgedStep:
        busy = _settle(config, say)
        step = _relay_bridged_step(
            config, workdir / f"relay-{calls}-{attempt}", calls, relay_rate
        )
        step.machine_busy_before = busy
        return step

    for name, step in (("router", router_step), ("relay", relay_step)):
        sweeps[name] = sweep_streams(
            name,
            config.streams,
            step,
            retry_failures=config.retry_failures,
            report=say,
        )
    return sweeps


def _setup_rate(preferred: int, max_held: int) -> int:
    """Place bridged calls at ``preferred``/s, or half the held rate if lower."""
    return max(5, min(preferred, max_held // 2 or preferred))


def _load(config: BenchConfig, calls: int, rate: int) -> GeneratorLoad:
    return GeneratorLoad(
        calls=calls,
        rate=rate,
        window_s=config.window_s,
        warmup_s=config.warmup_s,
        drain_s=config.drain_s,
        late_ms=config.late_ms,
    )


def _router_bridged_step(
    config: BenchConfig, workdir: Path, calls: int, rate: int
) -> BridgedStep:
    # A new router for every step: Python keeps freed memory, so the idle RSS
    # of a router that carried more calls before would hide the cost of these.
    with _router(config, workdir, calls) as router:
        assert router.router is not None
        _warm_up(router.target, config, workdir)
        helpers = {k: v for k, v in router.pids.items() if k != "router"}
        return measure_bridged_step(
            router.target,
            _load(config, calls, rate),
            answerer_pid=router.router.pid,
            helper_pids=helpers,
            rss_idle_kib=rss_kib(router.router.pid),
            core=config.load_core,
            log_path=workdir / "generator.log",
        )


def _relay_bridged_step(
    config: BenchConfig, workdir: Path, calls: int, rate: int
) -> BridgedStep:
    with SippUas(workdir, core=config.router_core, rtp_echo=True) as relay:
        assert relay.process is not None
        _warm_up(relay.target, config, workdir)
        return measure_bridged_step(
            relay.target,
            _load(config, calls, rate),
            answerer_pid=relay.process.pid,
            helper_pids={},
            rss_idle_kib=rss_kib(relay.process.pid),
            core=config.load_core,
            log_path=workdir / "generator.log",
        )


def _warm_up(target: tuple[str, int], config: BenchConfig, workdir: Path) -> None:
    """A few short calls with media, so start-up costs are paid before measuring."""
    load = GeneratorLoad(
        calls=WARMUP_CALLS, rate=WARMUP_CALLS, window_s=0.5, warmup_s=0.2, drain_s=0.2
    )
    run_generator(target, load, core=config.load_core, log_path=workdir / "warmup.log")


# -- (c) set-up time -----------------------------------------------------------------


def _measure_setup_time(
    config: BenchConfig,
    workdir: Path,
    rates: dict[str, RateSweep],
    say: Callable[[str], None],
) -> dict[str, Any]:
    say("(c) set-up time INVITE -> 200 at half the highest held rate")
    results: dict[str, Any] = {}
    for name, sweep in rates.items():
        busy = _settle(config, say)
        rate = max(1, (sweep.max_held or min(config.rates)) // 2)
        calls = max(10, round(rate * config.step_s))
        load = GeneratorLoad(calls=calls, rate=rate, media=False, hold_s=0.0)
        if name == "router":
            peer: RouterUnderTest | SippUas = _router(config, workdir / name, 10)
        else:
            peer = SippUas(workdir / name, core=config.router_core)
        with peer:
            report = run_generator(
                peer.target,
                load,
                core=config.load_core,
                log_path=workdir / f"{name}.log",
            )
        setup = report["setup_us"]
        results[name] = {
            "rate": rate,
            "calls": calls,
            "answered": report["answered"],
            "p50_ms": round(setup["p50"] / 1000, 3),
            "p90_ms": round(setup["p90"] / 1000, 3),
            "p99_ms": round(setup["p99"] / 1000, 3),
            "max_ms": round(setup["max"] / 1000, 3),
            "retransmissions": report["sip"]["retransmissions"],
            "machine_busy_before": busy,
        }
        say(
            f"  {name}: {rate}/s, p50 {results[name]['p50_ms']} ms, "
            f"p99 {results[name]['p99_ms']} ms"
        )
    return results


# -- figures, targets, profiles ------------------------------------------------------


def _ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 3) if reference else None


def headline_figures(
    rates: dict[str, RateSweep],
    bridged: dict[str, BridgedSweep],
    setup: dict[str, Any],
    targets: Targets,
) -> dict[str, Any]:
    """The figures the report and the targets read, from every sweep of the run."""
    router_rate, sipp_rate = rates["router"].max_held, rates["sipp_uas"].max_held
    bare = rates.get("bare_python")
    bare_rate = bare.max_held if bare is not None else 0
    router_calls, relay_calls = bridged["router"].max_held, bridged["relay"].max_held
    held = bridged["router"].held_step()
    within = bridged["router"].largest_within(targets.bridged_p99_ms)
    return {
        "router_calls_per_second": router_rate,
        "sipp_uas_calls_per_second": sipp_rate,
        # True when every step held: the figure is a lower bound.
        "router_calls_per_second_is_lower_bound": rates["router"].never_failed,
        "sipp_uas_calls_per_second_is_lower_bound": rates["sipp_uas"].never_failed,
        "router_bridged_calls_is_lower_bound": bridged["router"].never_failed,
        "relay_bridged_calls_is_lower_bound": bridged["relay"].never_failed,
        "calls_per_second_ratio": _ratio(router_rate, sipp_rate),
        "bare_python_calls_per_second": bare_rate if bare is not None else None,
        "bare_python_calls_per_second_is_lower_bound": bare is not None
        and bare.never_failed,
        "bare_python_calls_per_second_ratio": _ratio(bare_rate, sipp_rate),
        "router_to_bare_python_ratio": _ratio(router_rate, bare_rate),
        "router_bridged_calls": router_calls,
        "relay_bridged_calls": relay_calls,
        "bridged_calls_ratio": _ratio(router_calls, relay_calls),
        "router_bridged_latency_p50_ms": held.latency_p50_ms if held else None,
        "router_bridged_latency_p99_ms": held.latency_p99_ms if held else None,
        # The most calls that held with p99 under the target (see check_targets).
        "router_bridged_calls_within_p99_target": within.calls if within else 0,
        "router_bridged_latency_p99_ms_within_target": within.latency_p99_ms
        if within
        else None,
        "router_cpu_per_call_percent": round(100 * held.cpu_per_call, 4)
        if held
        else None,
        "router_rss_per_call_kib": round(held.rss_per_call_kib, 1) if held else None,
        "router_setup_p50_ms": setup["router"]["p50_ms"],
        "router_setup_p99_ms": setup["router"]["p99_ms"],
        "sipp_uas_setup_p50_ms": setup["sipp_uas"]["p50_ms"],
        "sipp_uas_setup_p99_ms": setup["sipp_uas"]["p99_ms"],
        "setup_p99_overhead_ms": round(
            setup["router"]["p99_ms"] - setup["sipp_uas"]["p99_ms"], 3
        ),
    }


def check_targets(targets: Targets, figures: dict[str, Any]) -> dict[str, Any]:
    """Each target: what it asks, what the run got, and whether it was met."""
    ratio = figures["calls_per_second_ratio"] or 0.0
    latency = figures["router_bridged_latency_p99_ms"]
    within_calls = figures["router_bridged_calls_within_p99_target"]
    within_latency = figures["router_bridged_latency_p99_ms_within_target"]
    rss = figures["router_rss_per_call_kib"]
    return {
        "calls_per_second": {
            "target": f">= {targets.calls_per_second_ratio} of SIPp's UAS",
            "got": ratio,
            "met": ratio >= targets.calls_per_second_ratio,
        },
        "bridged_calls": {
            "target": f">= {targets.bridged_calls} per core, p99 < {targets.bridged_p99_ms} ms",
            # The calls that held with p99 under the bound; the largest that
            # held at all may have a higher p99 (it is reported beside them).
            "got": f"{within_calls} (p99 {within_latency} ms); "
            f"{figures['router_bridged_calls']} held (p99 {latency} ms)",
            "met": within_calls >= targets.bridged_calls,
        },
        "setup_overhead": {
            "target": f"p99 < {targets.setup_p99_ms} ms",
            "got": figures["setup_p99_overhead_ms"],
            "met": figures["setup_p99_overhead_ms"] < targets.setup_p99_ms,
        },
        "rss_per_call": {
            "target": f"<= {targets.rss_per_call_kib} KiB",
            "got": rss,
            "met": rss is not None and rss <= targets.rss_per_call_kib,
        },
    }


def _profile(
    config: BenchConfig,
    workdir: Path,
    rates: dict[str, RateSweep],
    bridged: dict[str, BridgedSweep],
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """py-spy recordings of the router: under bridged calls, and under call set-up."""
    if not py_spy_available():
        say("profiles skipped: py-spy is not installed (pip install py-spy)")
        return []
    say("profiling the router with py-spy")
    stamp = datetime.date.today().isoformat()
    failing = [step.calls for step in bridged["router"].steps if not step.holds]
    calls = max(20, bridged["router"].max_held, min(failing, default=0))
    rate = max(config.rates[0], rates["router"].max_held or config.rates[0])
    profiles: list[Profile] = []
    with _router(config, workdir / "bridged", calls, helpers_apart=True) as router:
        assert router.router is not None
        load = replace(
            _load(config, calls, _setup_rate(ROUTER_SETUP_RATE, rate)),
            window_s=config.profile_s + 4,
        )

        def bridged_load() -> None:
            # Start sampling once the calls are up: sleep through the set-up.
            run_generator(
                router.target, load, core=config.load_core, log_path=workdir / "gen.log"
            )

        profiles.append(
            _record_during(
                f"{stamp}-{config.what}-router-bridged-{calls}",
                router.router.pid,
                bridged_load,
                config,
                delay_s=calls / load.rate + load.warmup_s,
            )
        )
    with _router(config, workdir / "setup", 10, helpers_apart=True) as router:
        assert router.router is not None
        step_s = config.profile_s + 2

        def setup_load() -> None:
            run_rate_step(
                router.target,
                rate,
                step_s=step_s,
                pause_ms=config.pause_ms,
                core=config.load_core,
                workdir=workdir / "sipp",
                watch={},
            )

        profiles.append(
            _record_during(
                f"{stamp}-{config.what}-router-setup-{rate}cps",
                router.router.pid,
                setup_load,
                config,
                delay_s=0.5,
            )
        )
    for profile in profiles:
        say(f"  {profile.name}: {profile.samples} samples")
    return [profile.as_dict() for profile in profiles]


def _record_during(
    name: str,
    pid: int,
    load: Callable[[], None],
    config: BenchConfig,
    *,
    delay_s: float,
) -> Profile:
    """Record ``config.profile_s`` of samples, starting ``delay_s`` into ``load``."""
    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(delay_s)
        return record_profile(
            name,
            pid,
            duration_s=config.profile_s,
            out_dir=config.results_dir,
            core=config.load_core,
        )
    finally:
        worker.join()


# -- output ------------------------------------------------------------------------


def write_results(results: dict[str, Any], results_dir: Path) -> Path:
    """Write the results as ``<date>-<what>.json`` (never over an older file)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{results['date'][:10]}-{results['what']}-{results['config']['store']}"
    path = results_dir / f"{stem}.json"
    counter = 2
    while path.exists():
        path = results_dir / f"{stem}-{counter}.json"
        counter += 1
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds a step")
    parser.add_argument(
        "--store",
        choices=["embedded", "redis"],
        default="embedded",
        help="the router's store (redis: a redis-server of its own on the router core)",
    )
    parser.add_argument("--rates", help="comma-separated calls/s steps for (a)")
    parser.add_argument("--streams", help="comma-separated call counts for (b)")
    parser.add_argument("--late-ms", type=float, help="echo later than this is late")
    parser.add_argument(
        "--router-log-level", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--no-profile", action="store_true", help="never run py-spy")
    parser.add_argument(
        "--no-docs", action="store_true", help="leave docs/benchmarks.md"
    )
    parser.add_argument("--results-dir", type=Path, help="where the JSON goes")
    parser.add_argument(
        "--workers-scaling",
        action="store_true",
        help="bridged calls with 1 and 2 media workers, the router on one core",
    )
    parser.add_argument(
        "--worker-counts",
        default=",".join(str(count) for count in WORKER_COUNTS),
        help="media worker counts --workers-scaling compares (first is the base)",
    )
    return parser


def _config_from(args: argparse.Namespace) -> BenchConfig:
    config = BenchConfig.quick() if args.quick else BenchConfig.full()
    config.store = args.store
    if args.rates:
        config.rates = [int(rate) for rate in args.rates.split(",")]
    if args.streams:
        config.streams = [int(count) for count in args.streams.split(",")]
    if args.late_ms:
        config.late_ms = args.late_ms
    if args.router_log_level:
        config.log_level = args.router_log_level
    if args.no_profile:
        config.profile = False
    if args.no_docs:
        config.docs_path = None
    if args.results_dir:
        config.results_dir = args.results_dir
    if (os.cpu_count() or 1) < 2:
        # One core: nothing to pin apart; the figures then mix load and answerer.
        config.router_core = config.load_core = None
    return config


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # Leave through SystemExit, so every process the run started is stopped
    # by its context manager and every kernel setting is put back.
    sys.exit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line; return the exit status."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = _parser().parse_args(argv)
    config = _config_from(args)
    if args.workers_scaling:
        counts = tuple(int(count) for count in args.worker_counts.split(","))
        return _main_workers_scaling(config, counts)
    try:
        results = run_benchmark(config)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    print(format_report(results))
    path = write_results(results, config.results_dir)
    print(f"results: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    if config.docs_path is not None:
        update_docs(config.docs_path, results, path.name)
        print(f"updated {config.docs_path.relative_to(REPO)}")
    return 0


def _main_workers_scaling(config: BenchConfig, counts: tuple[int, ...]) -> int:
    try:
        results = run_workers_scaling(config, worker_counts=counts)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    print(format_scaling_report(results))
    path = write_results(results, config.results_dir)
    print(f"results: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    if config.docs_path is not None:
        update_scaling_docs(config.docs_path, results, path.name)
        print(f"updated {config.docs_path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
