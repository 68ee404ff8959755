"""The overload decision: when a new call is shed, and how often that is logged."""

from __future__ import annotations

import asyncio
import itertools

from router.overload import (
    ADMIT_DECREASE,
    DATAGRAM_OVERHEAD,
    MIN_ADMIT_SHARE,
    MIN_RETRANSMISSIONS,
    LoopLagMonitor,
    OverloadGuard,
    OverloadPolicy,
    ShedReason,
    ShedReport,
)

POLICY = OverloadPolicy(max_setup_calls=3, max_loop_lag_s=0.1, retry_after_s=2)


def test_a_calm_router_takes_the_call() -> None:
    guard = OverloadGuard(POLICY)
    guard.tick(due=1.0, now=1.001, next_due=1.021)

    assert guard.check(now=1.01, setting_up=2) is None


def test_the_set_up_limit_refuses_the_call_that_would_pass_it() -> None:
    guard = OverloadGuard(POLICY)

    assert guard.check(now=0.0, setting_up=3) is ShedReason.SETUP_LIMIT
    assert guard.check(now=0.0, setting_up=2) is None


def test_a_late_tick_past_the_limit_sheds_until_a_tick_runs_on_time() -> None:
    guard = OverloadGuard(POLICY)
    guard.tick(due=1.0, now=1.15, next_due=1.17)

    assert guard.check(now=1.16, setting_up=0) is ShedReason.LOOP_LAG
    guard.tick(due=1.17, now=1.171, next_due=1.191)
    assert guard.check(now=1.18, setting_up=0) is None


def test_a_lag_at_the_limit_is_not_overload() -> None:
    guard = OverloadGuard(OverloadPolicy(max_setup_calls=3, max_loop_lag_s=0.125))
    guard.tick(due=1.0, now=1.125, next_due=1.25)

    assert guard.check(now=1.25, setting_up=0) is None


def test_an_overdue_tick_counts_before_it_runs() -> None:
    # The loop was stalled: the INVITEs read after the stall see the tick
    # that has not run yet.
    guard = OverloadGuard(POLICY)
    guard.tick(due=1.0, now=1.0, next_due=1.02)

    assert guard.check(now=1.05, setting_up=0) is None
    assert guard.check(now=1.2, setting_up=0) is ShedReason.LOOP_LAG
    assert guard.current_lag(1.2) == 1.2 - 1.02


def test_a_lag_limit_of_zero_turns_the_lag_check_off() -> None:
    guard = OverloadGuard(OverloadPolicy(max_setup_calls=3, max_loop_lag_s=0))
    guard.tick(due=1.0, now=5.0, next_due=5.02)

    assert guard.check(now=9.0, setting_up=0) is None


def test_the_set_up_limit_is_checked_before_the_lag() -> None:
    guard = OverloadGuard(POLICY)
    guard.tick(due=1.0, now=2.0, next_due=2.02)

    assert guard.check(now=2.0, setting_up=3) is ShedReason.SETUP_LIMIT


def test_shed_report_logs_the_first_shed_then_at_most_once_an_interval() -> None:
    report = ShedReport(interval_s=10.0)

    assert report.count(100.0) == 1
    assert [report.count(100.0 + i) for i in range(1, 5)] == [None] * 4
    assert report.count(110.0) == 5
    assert report.count(111.0) is None
    assert report.count(125.0) == 2


async def test_loop_lag_monitor_measures_a_blocked_loop() -> None:
    guard = OverloadGuard(POLICY)
    monitor = LoopLagMonitor(guard, tick_s=0.01)
    monitor.start()
    try:
        await asyncio.sleep(0.05)
        assert guard.lag_s < 0.1
        assert guard.next_due is not None
        loop = asyncio.get_running_loop()
        blocked_until = loop.time() + 0.2
        while loop.time() < blocked_until:
            pass  # a stall, as a long GC pause or a slow synchronous call
        assert guard.check(loop.time(), 0) is ShedReason.LOOP_LAG
        await asyncio.sleep(0.001)
        assert guard.lag_s > 0.1
        await asyncio.sleep(0.05)
        assert guard.check(loop.time(), 0) is None
    finally:
        monitor.stop()
    assert guard.next_due is None


def _traffic(guard: OverloadGuard, samples: list[tuple[int, int]]) -> None:
    for requests, retransmissions in samples:
        guard.note_traffic(requests, retransmissions, samples=50)


def test_retransmissions_past_the_share_shed_new_calls() -> None:
    guard = OverloadGuard(POLICY)  # 5 % by default
    _traffic(guard, [(0, 0), (400, 21)])

    assert guard.window_retransmissions == 21
    assert guard.check(now=0.0, setting_up=0) is ShedReason.RETRANSMISSIONS


def test_retransmissions_within_the_share_are_not_overload() -> None:
    guard = OverloadGuard(POLICY)
    _traffic(guard, [(0, 0), (1000, 40)])

    assert guard.check(now=0.0, setting_up=0) is None


def test_a_handful_of_retransmissions_is_never_overload() -> None:
    guard = OverloadGuard(POLICY)
    _traffic(guard, [(0, 0), (30, MIN_RETRANSMISSIONS - 1)])

    assert guard.check(now=0.0, setting_up=0) is None


def test_retransmissions_leave_the_window_after_its_samples() -> None:
    guard = OverloadGuard(POLICY)
    _traffic(guard, [(0, 0), (100, 50)])
    assert guard.check(now=0.0, setting_up=0) is ShedReason.RETRANSMISSIONS

    # 50 more samples (one second of ticks) with requests but no retransmission.
    _traffic(guard, [(100 + n, 50) for n in range(1, 51)])

    assert guard.window_retransmissions == 0
    assert guard.check(now=0.0, setting_up=0) is None


def test_a_share_of_zero_turns_the_retransmission_check_off() -> None:
    guard = OverloadGuard(
        OverloadPolicy(max_setup_calls=3, max_retransmission_share=0.0)
    )
    _traffic(guard, [(0, 0), (100, 100)])

    assert guard.check(now=0.0, setting_up=0) is None


async def test_the_monitor_samples_the_traffic_on_every_tick() -> None:
    guard = OverloadGuard(POLICY)
    counts = [0, 0]
    monitor = LoopLagMonitor(guard, tick_s=0.01, traffic=lambda: (counts[0], counts[1]))
    monitor.start()
    try:
        counts[:] = [60, 30]
        await asyncio.sleep(0.05)
        assert (guard.window_requests, guard.window_retransmissions) == (60, 30)
    finally:
        monitor.stop()


def test_retransmissions_cut_the_share_of_new_calls_taken_not_all_of_them() -> None:
    # Refusing every new call while callers retransmitted left the core idle:
    # at 700-800 calls/s offered, about 60 % of capacity was answered.
    guard = OverloadGuard(POLICY)
    _traffic(guard, [(0, 0), (400, 40)])
    assert guard.admit_share == ADMIT_DECREASE

    taken = [guard.check(now=0.0, setting_up=0) is None for _ in range(100)]
    assert sum(taken) == round(100 * ADMIT_DECREASE)
    # Evenly spread: never two refusals in a row at a half share.
    assert not any(a is b is False for a, b in itertools.pairwise(taken))


def test_the_share_is_cut_again_every_half_window_while_callers_retransmit() -> None:
    guard = OverloadGuard(POLICY)
    requests, retransmissions = 0, 0
    shares = []
    for _ in range(100):  # two seconds of ticks, 10 % retransmitted throughout
        requests, retransmissions = requests + 10, retransmissions + 1
        _traffic(guard, [(requests, retransmissions)])
        shares.append(guard.admit_share)
    # Cut once the window holds MIN_RETRANSMISSIONS, then every half window.
    cuts = sorted({share for share in shares if share < 1.0}, reverse=True)
    assert cuts[:3] == [ADMIT_DECREASE, ADMIT_DECREASE**2, ADMIT_DECREASE**3]
    assert shares.count(ADMIT_DECREASE**2) == 25  # half a window of 50 ticks
    assert min(shares) >= MIN_ADMIT_SHARE


def test_the_share_grows_back_once_callers_stop_retransmitting() -> None:
    guard = OverloadGuard(POLICY)
    _traffic(guard, [(0, 0), (400, 40)])
    # One window of ticks clears the retransmissions, then the share grows by
    # ADMIT_RECOVERY_PER_S a second.
    _traffic(guard, [(400 + n, 40) for n in range(1, 51)])
    assert guard.window_retransmissions == 0
    assert guard.admit_share < 1.0
    _traffic(guard, [(450 + n, 40) for n in range(1, 101)])
    assert guard.admit_share == 1.0
    assert all(guard.check(now=0.0, setting_up=0) is None for _ in range(20))


def _queue(guard: OverloadGuard, samples: list[tuple[float, int, int, int]]) -> None:
    for now, queued, read_bytes, read_datagrams in samples:
        guard.note_queue(now, queued, read_bytes, read_datagrams, samples=50)


def test_the_receive_queue_wait_is_its_datagrams_over_the_rate_they_are_read() -> None:
    guard = OverloadGuard(POLICY)  # 300 ms by default
    size = 500 + DATAGRAM_OVERHEAD
    # 1,000 datagrams of 500 bytes read in the last second; 200 queued: 200 ms.
    _queue(guard, [(0.0, 0, 0, 0), (1.0, 200 * size, 500_000, 1000)])
    assert abs(guard.queue_wait_s - 0.2) < 1e-9
    assert guard.check(now=1.0, setting_up=0) is None

    # 400 queued at that rate: 400 ms, and new calls are shed until it drains.
    _queue(guard, [(1.02, 400 * size, 510_000, 1020)])
    assert guard.check(now=1.02, setting_up=0) is ShedReason.RECEIVE_QUEUE
    _queue(guard, [(1.04, 10 * size, 520_000, 1040)])
    assert guard.check(now=1.04, setting_up=0) is None


def test_the_rate_is_over_the_time_the_samples_span_not_the_window() -> None:
    # Just after start two ticks cover 40 ms; ticks running late spread the
    # window's samples over more than a second. Either way the rate is the
    # datagrams read over the time they took.
    guard = OverloadGuard(POLICY)
    size = 500 + DATAGRAM_OVERHEAD
    _queue(guard, [(0.0, 0, 0, 0), (0.02, 0, 6000, 12), (0.04, 60 * size, 12000, 24)])
    assert abs(guard.queue_wait_s - 0.1) < 1e-9  # 60 queued at 600 a second

    late = OverloadGuard(POLICY)
    _queue(late, [(0.06 * n, 360 * size, 18_000 * n, 36 * n) for n in range(60)])
    assert abs(late.queue_wait_s - 0.6) < 1e-9  # 360 queued at 600 a second
    assert late.check(now=3.6, setting_up=0) is ShedReason.RECEIVE_QUEUE


def test_a_queue_with_nothing_read_is_left_to_the_lag_check() -> None:
    guard = OverloadGuard(POLICY)
    _queue(guard, [(0.0, 0, 0, 0), (1.0, 10**6, 0, 0)])
    assert guard.queue_wait_s == 0.0


def test_a_queue_limit_of_zero_turns_the_check_off() -> None:
    guard = OverloadGuard(OverloadPolicy(max_receive_queue_s=0.0))
    _queue(guard, [(0.0, 0, 0, 0), (1.0, 10**7, 500, 1)])
    assert guard.check(now=1.0, setting_up=0) is None
