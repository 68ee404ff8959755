"""The playout queue of runner audio and marks, without sockets or clocks."""

from __future__ import annotations

import pytest

from router.media.g711 import ULAW_SILENCE
from router.media.playout import PlayoutQueue
from router.media.stats import MediaStats


def frame(seed: int) -> bytes:
    return bytes([seed % 0x70 + 0x10]) * 160


def make_queue(max_frames: int = 500) -> PlayoutQueue:
    return PlayoutQueue(max_frames=max_frames, stats=MediaStats())


def tick(queue: PlayoutQueue) -> tuple[bytes | None, list[str]]:
    """What one pacer tick does: take a frame, then collect the marks it completed."""
    played = queue.next_frame()
    marks = []
    while (name := queue.pop_played_mark()) is not None:
        marks.append(name)
    return played, marks


def test_audio_of_any_length_is_recut_into_frames_in_order():
    queue = make_queue()
    audio = b"".join(frame(i) for i in range(5))

    for start in range(0, len(audio), 130):
        queue.play(audio[start : start + 130])

    assert queue.queued_frames == 5
    assert [queue.next_frame() for _ in range(5)] == [frame(i) for i in range(5)]
    assert queue.next_frame() is None


def test_a_short_tail_waits_one_tick_for_more_audio_then_is_padded():
    queue = make_queue()
    queue.play(b"\x22" * 100)

    assert queue.next_frame() is None
    assert queue.next_frame() == b"\x22" * 100 + bytes([ULAW_SILENCE]) * 60


def test_a_tail_completed_in_time_is_not_padded():
    queue = make_queue()
    queue.play(b"\x22" * 100)
    assert queue.next_frame() is None

    queue.play(b"\x33" * 60)

    assert queue.next_frame() == b"\x22" * 100 + b"\x33" * 60


def test_a_mark_is_reported_after_the_audio_queued_before_it():
    queue = make_queue()
    queue.play(frame(1) + frame(2))
    queue.mark("greeting")
    queue.play(frame(3))

    assert tick(queue) == (frame(1), [])
    assert tick(queue) == (frame(2), ["greeting"])
    assert tick(queue) == (frame(3), [])


def test_a_mark_on_an_empty_queue_is_reported_on_the_next_tick():
    queue = make_queue()
    queue.mark("now")

    assert tick(queue) == (None, ["now"])


def test_consecutive_marks_are_reported_together_in_order():
    queue = make_queue()
    queue.play(frame(1))
    queue.mark("a")
    queue.mark("b")

    assert tick(queue) == (frame(1), ["a", "b"])


def test_a_mark_pads_a_short_tail_so_it_follows_audible_audio():
    queue = make_queue()
    queue.play(b"\x44" * 40)
    queue.mark("end")

    played, marks = tick(queue)

    assert played == b"\x44" * 40 + bytes([ULAW_SILENCE]) * 120
    assert marks == ["end"]


def test_clear_drops_audio_and_returns_pending_marks_in_order():
    queue = make_queue()
    queue.play(frame(1))
    queue.mark("first")
    queue.play(frame(2) + b"\x55" * 10)
    queue.mark("second")

    assert queue.clear() == ["first", "second"]
    assert tick(queue) == (None, [])
    assert queue.queued_frames == 0


def test_audio_and_marks_after_a_clear_play_normally():
    queue = make_queue()
    queue.play(frame(1))
    queue.mark("old")
    queue.clear()

    queue.play(frame(2))
    queue.mark("new")

    assert tick(queue) == (frame(2), ["new"])


def test_overflow_drops_the_oldest_frames_and_counts_them():
    stats = MediaStats()
    queue = PlayoutQueue(max_frames=3, stats=stats)

    queue.play(b"".join(frame(i) for i in range(5)))

    assert [queue.next_frame() for _ in range(3)] == [frame(2), frame(3), frame(4)]
    assert stats.frames_dropped_overflow == 2


def test_overflow_never_drops_a_mark():
    queue = PlayoutQueue(max_frames=2, stats=MediaStats())
    queue.play(frame(0))
    queue.mark("dropped-audio")
    queue.play(frame(1) + frame(2) + frame(3))

    # frame 0 and 1 were dropped; the mark's audio is gone, so its turn has come.
    assert tick(queue) == (frame(2), ["dropped-audio"])
    assert tick(queue) == (frame(3), [])


def test_played_frames_are_counted():
    stats = MediaStats()
    queue = PlayoutQueue(max_frames=10, stats=stats)
    queue.play(frame(1) + frame(2))

    tick(queue)
    tick(queue)
    tick(queue)

    assert stats.frames_played == 2


def test_the_queue_needs_room_for_at_least_one_frame():
    with pytest.raises(ValueError, match="at least 1"):
        PlayoutQueue(max_frames=0, stats=MediaStats())
