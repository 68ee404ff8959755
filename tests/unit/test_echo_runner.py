"""The built-in echo runner's own rules (its wire behaviour is tested end to end)."""

from __future__ import annotations

from router.runner.echo import MARK_INTERVAL_MS, _mark_phase
from router.runner.protocol import BYTES_PER_MS

FRAME_BYTES = 20 * BYTES_PER_MS


def test_streams_that_start_together_mark_at_their_own_phase() -> None:
    # 200 calls of a load test start together; their marks must not all fall
    # in the same 20 ms of every second.
    phases = [_mark_phase(f"MZ{n:032x}") for n in range(200)]

    assert len(set(phases)) >= 40
    assert all(0 <= phase < MARK_INTERVAL_MS * BYTES_PER_MS for phase in phases)
    assert all(phase % FRAME_BYTES == 0 for phase in phases)


def test_a_stream_marks_the_same_way_every_time() -> None:
    sid = "MZ0123456789abcdef0123456789abcdef"

    assert _mark_phase(sid) == _mark_phase(sid)
