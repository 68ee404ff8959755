"""The media-workers mode of the benchmark: its short run, its figures, its docs block.

The end-to-end test runs ``python -m bench.run --quick --workers-scaling`` as
code (a handful of bridged calls through routers with one and two media
workers) and checks that every call went through and came back; it never
checks a speed figure. The others feed the figure and docs code made-up steps.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.bridged import BridgedStep, BridgedSweep
from bench.run import BenchConfig
from bench.workers_scaling import (
    DOCS_BEGIN,
    DOCS_END,
    format_scaling_report,
    media_cpu_s,
    run_workers_scaling,
    scaling_figures,
    update_scaling_docs,
)


def bridged_step(calls: int, *, holds: bool = True, **changes: Any) -> BridgedStep:
    """A made-up step of ``calls`` bridged calls that holds (or loses frames)."""
    values: dict[str, Any] = {
        "calls": calls,
        "answered": calls,
        "failed": 0,
        "frames_sent": 500 * calls,
        "frames_lost": 0 if holds else 50 * calls,
        "frames_late": 0,
        "calls_without_echo": 0,
        "latency_p50_ms": 12.0,
        "latency_p99_ms": 22.0,
        "latency_max_ms": 30.0,
        "window_s": 10.0,
        "answerer_cpu_s": 3.5,  # the router and its worker
        "helper_cpu_s": {"runner": 2.0, "media-worker-0": 3.0},
        "rss_idle_kib": 70_000,
        "rss_loaded_kib": 75_000,
        "core_busy": [0.7, 0.2],
        "generator_cpu_s": 1.0,
        "setup_p50_ms": 3.0,
        "setup_p99_ms": 9.0,
        "udp_errors": {},
        **changes,
    }
    step = BridgedStep(**values)
    step.judge()
    return step


def sweep(name: str, *steps: BridgedStep) -> BridgedSweep:
    """A sweep of the given steps."""
    return BridgedSweep(name, list(steps))


# -- figures ---------------------------------------------------------------------------


def test_media_cpu_counts_the_router_and_its_workers_but_not_the_runner() -> None:
    step = bridged_step(
        100,
        answerer_cpu_s=0.5,  # the router's process alone, as measured
        helper_cpu_s={"runner": 2.0, "media-worker-0": 1.5, "media-worker-1": 1.0},
    )

    assert media_cpu_s(step) == pytest.approx(0.5 + 1.5 + 1.0)


def test_ratio_is_what_two_workers_hold_over_what_one_holds() -> None:
    one = sweep(
        "1", bridged_step(100), bridged_step(200), bridged_step(300, holds=False)
    )
    two = sweep(
        "2", bridged_step(100), bridged_step(190), bridged_step(200, holds=False)
    )

    figures = scaling_figures({1: one, 2: two}, (1, 2))

    assert figures["held_calls"] == {"1": 200, "2": 190}
    assert figures["held_ratio"] == 0.95
    assert figures["target"]["met"]
    assert figures["held_is_lower_bound"] == {"1": False, "2": False}


def test_a_ratio_below_ninety_percent_misses_the_target() -> None:
    one = sweep("1", bridged_step(200), bridged_step(300, holds=False))
    two = sweep("2", bridged_step(100), bridged_step(200, holds=False))

    figures = scaling_figures({1: one, 2: two}, (1, 2))

    assert figures["held_ratio"] == 0.5
    assert not figures["target"]["met"]


def test_cpu_per_call_is_compared_at_the_largest_count_both_held() -> None:
    one = sweep("1", bridged_step(100), bridged_step(200, answerer_cpu_s=1.0))
    two = sweep(
        "2", bridged_step(100, answerer_cpu_s=4.5), bridged_step(200, holds=False)
    )

    figures = scaling_figures({1: one, 2: two}, (1, 2))

    assert figures["common_calls"] == 100
    # 3.5 s and 4.5 s over a 10 s window, for 100 calls.
    assert figures["cpu_per_call_percent"] == {"1": 0.35, "2": 0.45}


def test_cpu_per_call_is_compared_at_a_count_both_measured() -> None:
    one = sweep("1", bridged_step(100), bridged_step(160))
    two = sweep(
        "2", bridged_step(100), bridged_step(150), bridged_step(160, holds=False)
    )

    assert scaling_figures({1: one, 2: two}, (1, 2))["common_calls"] == 100


def test_no_held_step_leaves_the_ratio_unknown_and_the_target_missed() -> None:
    figures = scaling_figures(
        {1: sweep("1", bridged_step(50, holds=False)), 2: sweep("2")}, (1, 2)
    )

    assert figures["held_ratio"] is None
    assert figures["cpu_per_call_percent"] == {"1": None, "2": None}
    assert not figures["target"]["met"]


# -- the docs block ----------------------------------------------------------------


def made_up_results() -> dict[str, Any]:
    """Results as run_workers_scaling returns them, with made-up steps."""
    sweeps = {1: sweep("1", bridged_step(100)), 2: sweep("2", bridged_step(100))}
    return {
        "what": "workers-scaling",
        "date": "2026-01-02T03:04:05+00:00",
        "command": "python -m bench.run --workers-scaling",
        "machine": {
            "cpu_model": "Test CPU",
            "cores": 2,
            "python": "3.11.7",
            "commit": "abc1234",
            "router_tree_modified": False,
        },
        "config": {"worker_counts": [1, 2], "window_s": 10.0, "late_ms": 40.0},
        "sweeps": {str(count): s.as_dict() for count, s in sweeps.items()},
        "figures": scaling_figures(sweeps, (1, 2)),
        "duration_s": 60,
    }


def test_docs_block_is_appended_once_then_replaced_leaving_other_text(
    tmp_path: Path,
) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nHand-written text.\n")
    results = made_up_results()

    update_scaling_docs(docs, results, "first.json")
    update_scaling_docs(docs, results, "second.json")

    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nHand-written text.\n")
    assert text.count(DOCS_BEGIN) == text.count(DOCS_END) == 1
    assert "second.json" in text and "first.json" not in text
    assert "| 2 | 100 |" in text


def test_terminal_report_names_the_ratio_and_the_target() -> None:
    report = format_scaling_report(made_up_results())

    assert "ratio 2/1 workers: 1.0" in report
    assert "met" in report


# -- the short run, end to end -------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc)")
def test_quick_run_bridges_every_call_through_one_and_two_workers(
    tmp_path: Path,
) -> None:
    config = BenchConfig.quick()
    config.results_dir = tmp_path
    config.streams = (3,)

    results = run_workers_scaling(config, say=lambda line: None)

    for count in ("1", "2"):
        step = results["sweeps"][count]["steps"][0]
        assert step["answered"] == step["calls"] == 3, step
        assert step["failed"] == 0, step
        assert step["calls_without_echo"] == 0, step
        workers = [name for name in step["helper_cpu_s"] if name.startswith("media-")]
        assert len(workers) == int(count), step
