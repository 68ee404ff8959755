"""One clock for every call's outbound audio.

A :class:`Pacer` runs one timer for the whole process, ticking every
:data:`TICK_INTERVAL` (2.5 ms) on the event loop's monotonic clock. Each
registered stream says, every time it is ticked, when it next needs a tick; the
pacer keeps the streams in buckets by tick number (a timing wheel), so a tick
only visits the streams that asked for it. A media session asks for about one
tick per 20 ms frame whatever its phase, so calls need not share one 20 ms
phase, and the per-frame cost stays one visit per call.

Ticks are due at ``t0 + n * TICK_INTERVAL`` (never "sleep for an interval" in a
loop, which drifts by the time each round takes). Ticks with no stream booked
are not run: the timer sleeps until the next booked one. If the process stalls,
the ticks it missed are run at once, late; each stream decides from the clock
what the lateness means for it (a media session skips the frame periods that
passed rather than bursting them at the caller).
"""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import Protocol

import structlog

from .g711 import FRAME_DURATION

__all__ = [
    "LATE_TICK_THRESHOLD",
    "TICK_INTERVAL",
    "PacedStream",
    "Pacer",
    "default_pacer",
]

# An eighth of a frame: fine enough that a stream's send falls within 2.5 ms of
# the time it asked for, coarse enough for the 1 ms timers of libuv (uvloop).
TICK_INTERVAL = FRAME_DURATION / 8
# A tick is counted as late when it runs more than half a frame after its deadline.
LATE_TICK_THRESHOLD = FRAME_DURATION / 2
# Tick numbers are rounded up from times; this much of float error is forgiven.
_EPSILON = 1e-9

_log = structlog.get_logger(__name__)


class PacedStream(Protocol):
    """Something the pacer ticks when it asks to be."""

    def on_tick(self, now: float) -> float | None:
        """Do this tick's work.

        Args:
            now: the loop's clock when the tick ran.

        Returns:
            The loop time of the next tick the stream needs (it gets the first
            tick at or after it), or ``None`` for one frame period after this
            tick's deadline.
        """


class Pacer:
    """One timer that ticks every stream when it asks, while streams are registered.

    Args:
        interval: the tick period.
        period: the cadence of a stream whose ``on_tick`` returns ``None``.
    """

    def __init__(
        self, *, interval: float = TICK_INTERVAL, period: float = FRAME_DURATION
    ) -> None:
        if interval <= 0 or period <= 0:
            raise ValueError(f"pacer interval {interval} and period must be positive")
        self._interval = interval
        self._period_ticks = max(1, round(period / interval))
        self._streams: dict[PacedStream, None] = {}
        # The timing wheel: tick number -> streams booked for it. A stream has
        # one live booking (in _booked); entries left behind when a booking
        # moved earlier are skipped when their tick runs.
        self._wheel: dict[int, list[PacedStream]] = {}
        self._booked: dict[PacedStream, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_tick = 0
        self._start = 0.0
        self._next_tick = 0
        self._ticking = False
        self.ticks = 0
        """Ticks run so far."""
        self.late_ticks = 0
        """Ticks that ran more than half a frame late."""
        self.skipped_ticks = 0
        """Ticks run late and together with a later one because the process stalled."""
        self.failed_ticks = 0
        """Calls of a stream's ``on_tick`` that raised."""
        self._failed_streams: set[PacedStream] = set()

    @property
    def running(self) -> bool:
        """Whether the pacer is running (exactly while streams are registered)."""
        return self._loop is not None

    def __len__(self) -> int:
        return len(self._streams)

    def time(self) -> float:
        """The clock ticks are measured on: the running loop's.

        Raises:
            RuntimeError: no event loop is running.
        """
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    def register(self, stream: PacedStream) -> None:
        """Start ticking ``stream``; its first tick is the next one.

        Must be called from the event loop the pacer runs on.

        Raises:
            RuntimeError: no event loop is running, or the pacer is running on
                another loop.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:
            raise RuntimeError("this pacer is running on another event loop")
        if self._loop is None:
            self._begin(loop)
        self._streams[stream] = None
        self._book(stream, self._next_tick)

    def unregister(self, stream: PacedStream) -> None:
        """Stop ticking ``stream`` (no effect if it is not registered).

        The pacer stops when the last stream is unregistered.
        """
        self._streams.pop(stream, None)
        self._booked.pop(stream, None)
        self._failed_streams.discard(stream)
        # Inside a tick, the tick itself stops the pacer if no stream is left;
        # stopping here too would let a register() in the same tick start a
        # second chain of timers.
        if not self._streams and self._loop is not None and not self._ticking:
            self._stop()

    def wake(self, stream: PacedStream, when: float) -> None:
        """Tick ``stream`` at the first tick at or after ``when``, unless sooner.

        A stream that learns between ticks that it needs one earlier than it
        asked (audio was queued) calls this; asking for a later one is done by
        returning it from ``on_tick``. No effect on a stream not registered.
        """
        # A registered stream has one booking, except while it is being ticked
        # (it then books what on_tick returns): no booking, nothing to move.
        booked = self._booked
        current = booked.get(stream)
        if current is None:
            return
        # The first tick at or after `when`, but not one that has run.
        tick = math.ceil((when - self._start) / self._interval - _EPSILON)
        if tick >= current:
            return
        if tick < self._next_tick:
            tick = self._next_tick
        booked[stream] = tick
        bucket = self._wheel.get(tick)
        if bucket is None:
            self._wheel[tick] = [stream]
        else:
            bucket.append(stream)
        loop = self._loop
        if not self._ticking and loop is not None and tick < self._timer_tick:
            self._arm(loop)

    # -- the timer ----------------------------------------------------------------

    def _begin(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._start = loop.time()
        self._next_tick = 0
        self._timer_tick = 0
        self._timer = loop.call_at(self._start, self._tick)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._loop = None
        self._wheel.clear()
        self._booked.clear()

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None, "a tick is only scheduled while the pacer runs"
        self._timer = None
        now = loop.time()
        # Every tick up to now is due: normally just the one the timer was
        # for; after a stall, all those the process slept through.
        last = max(self._timer_tick, int((now - self._start) / self._interval))
        self.ticks += 1
        if now - self._deadline(self._timer_tick) > LATE_TICK_THRESHOLD:
            self.late_ticks += 1
        self.skipped_ticks += last - self._timer_tick

        # Bookings made from here on (by the streams ticked, or by streams they
        # register) go to the next tick at the earliest.
        first, self._next_tick = self._next_tick, last + 1
        self._ticking = True
        try:
            for number in range(first, last + 1):
                bucket = self._wheel.pop(number, None)
                if bucket is not None:
                    self._run_bucket(number, bucket, now)
        finally:
            self._ticking = False

        if self._streams:
            self._arm(loop)
        else:
            self._stop()

    def _run_bucket(self, number: int, bucket: list[PacedStream], now: float) -> None:
        # The per-stream work of every tick: kept to dictionary and list
        # operations inline (no helper calls), as it runs 50 times a second
        # per call.
        booked, wheel, streams = self._booked, self._wheel, self._streams
        start, interval, ceil = self._start, self._interval, math.ceil
        earliest = self._next_tick
        for stream in bucket:
            # Streams may register and unregister (even others) from inside
            # on_tick; a stream whose booking moved or ended is skipped.
            if booked.get(stream) != number:
                continue
            del booked[stream]
            try:
                wanted = stream.on_tick(now)
            except Exception:
                wanted = None
                self._note_failure(stream)
            if stream not in streams:
                continue
            if wanted is None:
                tick = number + self._period_ticks
            else:
                tick = ceil((wanted - start) / interval - _EPSILON)
            if tick < earliest:
                tick = earliest
            # on_tick may have asked for an earlier tick through wake().
            current = booked.get(stream)
            if current is not None and current <= tick:
                continue
            booked[stream] = tick
            later = wheel.get(tick)
            if later is None:
                wheel[tick] = [stream]
            else:
                later.append(stream)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Set the timer for the earliest booked tick."""
        first = min(self._wheel, default=self._next_tick)
        first = max(first, self._next_tick)
        if self._timer is not None:
            if self._timer_tick <= first:
                return
            self._timer.cancel()
        self._timer_tick = first
        self._timer = loop.call_at(self._deadline(first), self._tick)

    def _book(self, stream: PacedStream, tick: int) -> None:
        tick = max(tick, self._next_tick)
        current = self._booked.get(stream)
        if current is not None and current <= tick:
            return
        self._booked[stream] = tick
        bucket = self._wheel.get(tick)
        if bucket is None:
            self._wheel[tick] = [stream]
        else:
            bucket.append(stream)
        # Outside a tick the timer may be set for a later tick than this one.
        if not self._ticking and self._loop is not None and tick < self._timer_tick:
            self._arm(self._loop)

    def _deadline(self, tick_number: int) -> float:
        # Computed from the start each time, so rounding errors cannot accumulate.
        return self._start + tick_number * self._interval

    def _note_failure(self, stream: PacedStream) -> None:
        # One faulty stream must not silence every other call, nor flood the
        # log 50 times a second: its first failure is logged, later ones counted.
        self.failed_ticks += 1
        if stream not in self._failed_streams:
            self._failed_streams.add(stream)
            _log.exception("media.tick_failed", stream=repr(stream))


_default_pacers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pacer] = (
    weakref.WeakKeyDictionary()
)


def default_pacer() -> Pacer:
    """Return the shared pacer of the running event loop, creating it on first use.

    Raises:
        RuntimeError: no event loop is running.
    """
    loop = asyncio.get_running_loop()
    pacer = _default_pacers.get(loop)
    if pacer is None:
        pacer = _default_pacers[loop] = Pacer()
    return pacer
