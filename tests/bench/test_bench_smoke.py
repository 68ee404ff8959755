"""The benchmark's own code path, in its short form, plus its verdict rules.

The end-to-end tests run ``bench.run`` the way ``python -m bench.run --quick``
does (one low rate for calls per second, a handful of bridged calls, the
compiled generator built with ``cc``) and check that every call went through
and every stream came back. They never check a speed figure: a slow or busy
machine passes, a broken benchmark or call path fails.

The other tests feed the verdict rules and the report code made-up numbers.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bench.bare import masked_frame, unmasked_frames
from bench.bridged import BridgedStep, BridgedSweep
from bench.calls_per_second import RateStep, RateSweep
from bench.generator import GeneratorLoad, run_generator
from bench.peers import RouterUnderTest, SippUas
from bench.profile import top_frames
from bench.report import (
    DOCS_BEGIN,
    DOCS_END,
    format_report,
    results_markdown,
    update_docs,
)
from bench.run import (
    BenchConfig,
    Targets,
    check_targets,
    headline_figures,
    run_benchmark,
    write_results,
)
from bench.sweep import midpoint, step_up

F = TypeVar("F", bound=Callable[..., Any])


def needs_sipp_and_cc(test: F) -> F:
    """Mark an end-to-end test that runs SIPp and the compiled generator."""
    marks = [
        pytest.mark.e2e,
        pytest.mark.skipif(
            shutil.which("sipp") is None, reason="sipp is not installed"
        ),
        pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc)"),
    ]
    for mark in marks:
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One short benchmark run, shared by the end-to-end checks below."""
    config = BenchConfig.quick()
    config.results_dir = tmp_path_factory.mktemp("results")
    config.docs_path = None
    config.streams = (4,)
    return run_benchmark(config, say=lambda line: None)


# -- the short run, end to end ------------------------------------------------------


@needs_sipp_and_cc
@pytest.mark.parametrize("answerer", ["router", "sipp_uas", "bare_python"])
def test_quick_run_places_every_call_at_a_low_rate(
    quick_results: dict[str, Any], answerer: str
) -> None:
    step = quick_results["calls_per_second"][answerer]["steps"][0]
    assert step["exit_status"] == 0, step
    assert step["successful"] == step["calls"] > 0, step
    assert step["failed"] == 0, step


@needs_sipp_and_cc
@pytest.mark.parametrize("answerer", ["router", "relay"])
def test_quick_run_answers_every_bridged_call_and_echoes_every_stream(
    quick_results: dict[str, Any], answerer: str
) -> None:
    step = quick_results["bridged"][answerer]["steps"][0]
    assert step["answered"] == step["calls"] == 4, step
    assert step["failed"] == 0, step
    assert step["calls_without_echo"] == 0, step
    assert step["frames_sent"] > 0, step
    assert step["frames_lost"] < step["frames_sent"], step
    assert step["rss_loaded_kib"] > 0, step


@needs_sipp_and_cc
@pytest.mark.parametrize("answerer", ["router", "sipp_uas"])
def test_quick_run_measures_setup_time_of_answered_calls(
    quick_results: dict[str, Any], answerer: str
) -> None:
    setup = quick_results["setup_time"][answerer]
    assert setup["answered"] == setup["calls"] > 0, setup
    assert 0 < setup["p50_ms"] <= setup["p99_ms"] <= setup["max_ms"], setup


@needs_sipp_and_cc
def test_quick_run_writes_results_and_a_readable_report(
    quick_results: dict[str, Any], tmp_path: Path
) -> None:
    path = write_results(quick_results, tmp_path)
    again = write_results(quick_results, tmp_path)

    saved = json.loads(path.read_text())
    assert again != path, "a second run must not overwrite the first"
    assert saved["machine"]["cores"] >= 1
    assert saved["socket_buffers"]["rmem_max"] > 0
    assert set(saved["figures"]) >= {
        "calls_per_second_ratio",
        "bridged_calls_ratio",
        "router_to_bare_python_ratio",
    }
    report = format_report(saved)
    assert "(a) answered calls per second" in report
    assert "vs bare-bones Python" in report
    assert "(b) bridged calls" in report
    assert "bridged calls with p99 under the target" in report
    # A quick run's figures say nothing about the targets.
    assert "not judged: a quick run measures too little" in report
    assert "MISSED" not in report and ": met" not in report
    block = results_markdown(saved, path.name)
    assert "Judged again" not in block
    rejudged = results_markdown({**saved, "rejudged": "Judged again by X."}, path.name)
    assert "\nJudged again by X." in rejudged


@pytest.mark.e2e
@pytest.mark.skipif(
    shutil.which("taskset") is None
    or shutil.which("redis-server") is None
    or len(os.sched_getaffinity(0)) < 2,
    reason="needs taskset, redis-server and two cores",
)
def test_a_router_profiled_apart_has_its_core_to_itself(tmp_path: Path) -> None:
    # py-spy charges the router for time it waits while the runner runs on its
    # core; for a profile the runner and Redis move to the other core.
    with RouterUnderTest(tmp_path, core=0, helpers_core=1, store="redis") as system:
        cores = {name: os.sched_getaffinity(pid) for name, pid in system.pids.items()}
    assert cores == {"router": {0}, "runner": {1}, "redis": {1}}

    with RouterUnderTest(tmp_path, core=1) as system:
        cores = {name: os.sched_getaffinity(pid) for name, pid in system.pids.items()}
    assert cores == {"router": {1}, "runner": {1}}


@needs_sipp_and_cc
def test_generator_counts_every_frame_lost_when_nothing_echoes(tmp_path: Path) -> None:
    # SIPp's UAS without -rtp_echo answers but never returns audio.
    load = GeneratorLoad(calls=3, rate=30, window_s=1.0, warmup_s=0.2, drain_s=0.3)
    with SippUas(tmp_path, core=None) as silent:
        report = run_generator(
            silent.target, load, core=None, log_path=tmp_path / "g.log"
        )

    frames = report["frames"]
    assert report["answered"] == 3
    assert frames["sent"] > 0
    assert frames["echoed"] == 0
    assert frames["lost"] == frames["sent"]
    assert frames["calls_without_echo"] == 3


# -- verdict rules and report code, on made-up numbers ----------------------------


def _rate_step(**changes: Any) -> RateStep:
    values: dict[str, Any] = {
        "rate": 100,
        "calls": 500,
        "successful": 500,
        "failed": 0,
        "retransmissions": 0,
        "elapsed_s": 5.1,
        "expected_s": 5.0,
        "exit_status": 0,
        "target_cpu_s": {"router": 2.0},
        "caller_cpu_s": 0.5,
        "udp_errors": {},
    }
    values.update(changes)
    step = RateStep(**values)
    step.judge()
    return step


def test_rate_step_holds_when_every_call_succeeds_on_schedule() -> None:
    step = _rate_step()
    assert step.holds, step.why_not


def test_rate_step_fails_on_one_failed_call() -> None:
    step = _rate_step(successful=499, failed=1, exit_status=1)
    assert not step.holds
    assert "1 of 500 calls failed" in step.why_not


def test_rate_step_fails_past_one_retransmission_per_thousand_requests() -> None:
    # 500 calls send 1,500 requests: 2 retransmissions are 0.13 %.
    assert _rate_step(retransmissions=1).holds
    assert not _rate_step(retransmissions=2).holds


def test_rate_step_fails_when_calls_finish_late() -> None:
    step = _rate_step(elapsed_s=6.0)
    assert not step.holds
    assert "took 6.00 s for 5.00 s" in step.why_not


def _bridged_step(**changes: Any) -> BridgedStep:
    values: dict[str, Any] = {
        "calls": 100,
        "answered": 100,
        "failed": 0,
        "frames_sent": 50_000,
        "frames_lost": 0,
        "frames_late": 0,
        "calls_without_echo": 0,
        "latency_p50_ms": 12.0,
        "latency_p99_ms": 22.0,
        "latency_max_ms": 30.0,
        "window_s": 10.0,
        "answerer_cpu_s": 5.0,
        "helper_cpu_s": {"runner": 2.0},
        "rss_idle_kib": 70_000,
        "rss_loaded_kib": 75_000,
        "core_busy": [0.7, 0.2],
        "generator_cpu_s": 1.0,
        "setup_p50_ms": 3.0,
        "setup_p99_ms": 9.0,
        "udp_errors": {},
    }
    values.update(changes)
    step = BridgedStep(**values)
    step.judge()
    return step


def test_bridged_step_figures_per_call() -> None:
    step = _bridged_step()
    assert step.holds, step.why_not
    assert step.cpu_per_call == pytest.approx(0.005)  # 5 s over 10 s, 100 calls
    assert step.rss_per_call_kib == pytest.approx(50.0)


def test_bridged_step_fails_at_one_bad_frame_per_thousand() -> None:
    assert _bridged_step(frames_lost=49).holds
    assert not _bridged_step(frames_lost=25, frames_late=25).holds


def test_bridged_step_fails_when_a_call_gets_no_echo() -> None:
    step = _bridged_step(calls_without_echo=1)
    assert not step.holds
    assert "1 calls got no echo" in step.why_not


def _bridged_sweep(*steps: tuple[int, float, int]) -> BridgedSweep:
    """A router sweep of (calls, p99 ms, frames late) steps."""
    return BridgedSweep(
        "router",
        [
            _bridged_step(calls=n, answered=n, latency_p99_ms=p99, frames_late=late)
            for n, p99, late in steps
        ],
    )


def test_bridged_target_counts_the_most_calls_held_under_the_latency_bound() -> None:
    # 300 calls held (few frames late) with p99 26 ms; 200 held with p99 2 ms; 400
    # failed, whatever its p99.
    sweep = _bridged_sweep((200, 2.0, 0), (300, 26.0, 0), (400, 5.0, 25_000))
    assert sweep.max_held == 300
    within = sweep.largest_within(20.0)
    assert within is not None and within.calls == 200


def test_bridged_target_counts_no_step_at_the_bound_nor_a_lucky_one_above() -> None:
    # p99 must be under the bound; 350 under it after 300 over it is a lucky sample.
    sweep = _bridged_sweep((200, 2.0, 0), (250, 20.0, 0), (300, 19.0, 0))
    within = sweep.largest_within(20.0)
    assert within is not None and within.calls == 200
    assert _bridged_sweep((50, 21.0, 0), (100, 3.0, 0)).largest_within(20.0) is None


def test_bridged_verdict_reads_the_calls_within_the_target_bound() -> None:
    sweeps = {
        "router": _bridged_sweep((200, 2.0, 0), (300, 8.0, 0)),
        "relay": _bridged_sweep((2000, 0.3, 0)),
    }
    rates = {
        name: RateSweep(name, [_rate_step(rate=rate)])
        for name, rate in (("router", 700), ("sipp_uas", 22_000))
    }
    setup = {name: {"p50_ms": 1.0, "p99_ms": 2.0} for name in ("router", "sipp_uas")}

    # The bound comes from the targets: under 5 ms only 200 calls count.
    targets = Targets(bridged_p99_ms=5.0)
    figures = headline_figures(rates, sweeps, setup, targets)
    assert figures["router_bridged_calls"] == 300
    assert figures["router_bridged_calls_within_p99_target"] == 200
    assert figures["router_bridged_latency_p99_ms_within_target"] == 2.0

    verdict = check_targets(targets, figures)["bridged_calls"]
    assert verdict["met"]
    assert verdict["got"] == "200 (p99 2.0 ms); 300 held (p99 8.0 ms)"
    assert not check_targets(Targets(bridged_calls=250), figures)["bridged_calls"][
        "met"
    ]


def test_top_frames_ranks_own_and_total_time() -> None:
    collapsed = "\n".join(
        [
            "MainThread;run (asyncio/runners.py:1);tick (/x/router/media/pacer.py:9) 6",
            "MainThread;run (asyncio/runners.py:1);send (/x/router/runner/client.py:3) 3",
            "MainThread;run (asyncio/runners.py:1) 1",
        ]
    )
    samples, own, total = top_frames(collapsed)
    assert samples == 10
    assert own[0].function == "tick (router/media/pacer.py)"
    assert own[0].self_share == pytest.approx(0.6)
    # The event loop's run is under every sample: ranked by own time only.
    assert own[2].function == "run (asyncio/runners.py)"
    assert total[0].function == "tick (router/media/pacer.py)"
    assert total[0].total_share == pytest.approx(0.6)


def test_update_docs_replaces_only_the_results_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        f"# Benchmarks\n\nBy hand.\n\n{DOCS_BEGIN}\nold\n{DOCS_END}\n\nAfter.\n"
    )
    monkeypatch.setattr("bench.report.results_markdown", lambda results, name: "new")

    update_docs(docs, {}, "x.json")

    text = docs.read_text()
    assert "By hand." in text and "After." in text
    assert "old" not in text
    assert f"{DOCS_BEGIN}\n\nnew\n\n{DOCS_END}" in text


class _Step:
    def __init__(self, holds: bool) -> None:
        self.holds = holds


def test_sweep_retries_a_failure_then_narrows_in_between_held_and_failed() -> None:
    tried: list[int] = []

    def run_step(value: int, attempt: int) -> _Step:
        tried.append(value)
        return _Step(value <= 270)

    steps = step_up(
        [100, 200, 400, 600],
        run_step,
        retry_failures=True,
        refine_steps=2,
        on_step=lambda value, step: None,
    )

    assert tried == [100, 200, 400, 400, 300, 300, 250]
    assert [step.holds for step in steps][-1] is True


def test_midpoint_is_round_and_strictly_between() -> None:
    assert midpoint(200, 400) == 300
    assert midpoint(10_000, 12_000) == 11_000
    assert midpoint(50, 100) == 75
    assert midpoint(99, 100) is None


@pytest.mark.parametrize("size", [0, 5, 125, 126, 300])
def test_bare_bones_frames_read_back_whatever_their_length(size: int) -> None:
    payload = bytes(range(256)) * 2
    buffer = bytearray(
        masked_frame(0x1, payload[:size]) + masked_frame(0x8, b"\x03\xe8")
    )
    buffer += b"\x81"  # the start of a frame that has not come yet

    frames = unmasked_frames(buffer)

    assert frames == [(0x1, payload[:size]), (0x8, b"\x03\xe8")]
    assert buffer == bytearray(b"\x81")
