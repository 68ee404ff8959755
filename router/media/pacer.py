"""One 20 ms clock for every call's outbound audio.

A :class:`Pacer` ticks every 20 ms on the event loop's monotonic clock and lets
every registered stream send one frame per tick. One timer for the whole process
costs far less than a task per call, and every stream shares the same jitter-free
schedule: tick *n* is due at ``t0 + n * 20 ms`` (never "sleep 20 ms" in a loop,
which drifts by the time each round takes).

If the process stalls, the pacer catches up with a short burst when it is at
most :data:`MAX_CATCH_UP_FRAMES` behind; further behind, it skips ahead and
tells the streams how many frame periods passed, so their RTP timestamps keep
following real time instead of bursting seconds of audio at the caller.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol

import structlog

from .g711 import FRAME_DURATION

__all__ = [
    "LATE_TICK_THRESHOLD",
    "MAX_CATCH_UP_FRAMES",
    "PacedStream",
    "Pacer",
    "default_pacer",
]

# A receiver's jitter buffer absorbs a short burst: 60 ms is the smallest jitter
# buffer commonly configured on carrier equipment and softphones.
MAX_CATCH_UP_FRAMES = 3
# A tick is counted as late when it runs more than half a frame after its deadline.
LATE_TICK_THRESHOLD = FRAME_DURATION / 2

_log = structlog.get_logger(__name__)


class PacedStream(Protocol):
    """Something that sends one frame per pacer tick."""

    def on_tick(self, now: float, frames: int, late: bool) -> None:
        """Send this tick's frame.

        Args:
            now: the loop's clock when the tick ran.
            frames: frame periods since the previous tick: 1, or more after the
                pacer skipped ahead.
            late: the tick ran more than :data:`LATE_TICK_THRESHOLD` late.
        """


class Pacer:
    """Ticks every ``interval`` seconds while streams are registered.

    Args:
        interval: the tick period; the 20 ms frame of G.711 by default.
        max_catch_up: how many periods behind the pacer may fall and still catch
            up by ticking back to back; further behind, it skips ahead.
    """

    def __init__(
        self,
        *,
        interval: float = FRAME_DURATION,
        max_catch_up: int = MAX_CATCH_UP_FRAMES,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"pacer interval must be positive, not {interval}")
        self._interval = interval
        self._max_lag = interval * max_catch_up
        self._streams: dict[PacedStream, None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._start = 0.0
        self._tick_number = 0
        self._ticking = False
        self.ticks = 0
        """Ticks run so far."""
        self.late_ticks = 0
        """Ticks that ran more than half a frame late."""
        self.skipped_ticks = 0
        """Ticks skipped because the pacer fell too far behind."""
        self.failed_ticks = 0
        """Calls of a stream's ``on_tick`` that raised."""
        self._failed_streams: set[PacedStream] = set()

    @property
    def running(self) -> bool:
        """Whether a tick is scheduled (true exactly while streams are registered)."""
        return self._timer is not None

    def __len__(self) -> int:
        return len(self._streams)

    def register(self, stream: PacedStream) -> None:
        """Start ticking ``stream``; the first tick comes at the next deadline.

        Must be called from the event loop the pacer runs on.

        Raises:
            RuntimeError: no event loop is running, or the pacer is running on
                another loop.
        """
        loop = asyncio.get_running_loop()
        if self._timer is not None and loop is not self._loop:
            raise RuntimeError("this pacer is running on another event loop")
        self._streams[stream] = None
        if self._timer is None:
            self._begin(loop)

    def unregister(self, stream: PacedStream) -> None:
        """Stop ticking ``stream`` (no effect if it is not registered).

        The pacer stops when the last stream is unregistered.
        """
        self._streams.pop(stream, None)
        self._failed_streams.discard(stream)
        # Inside a tick, the tick itself stops the pacer if no stream is left;
        # stopping here too would let a register() in the same tick start a
        # second chain of timers.
        if not self._streams and self._timer is not None and not self._ticking:
            self._stop()

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._loop = None

    def _begin(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._start = loop.time()
        self._tick_number = 0
        self._timer = loop.call_at(self._start, self._tick)

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None, "a tick is only scheduled while the pacer runs"
        now = loop.time()
        lag = now - self._deadline(self._tick_number)
        late = lag > LATE_TICK_THRESHOLD
        frames = self._skip_if_far_behind(lag)
        self.ticks += 1
        if late:
            self.late_ticks += 1

        # Streams may register and unregister (even others) from inside on_tick:
        # iterate over a snapshot and skip the ones that left.
        self._ticking = True
        try:
            for stream in tuple(self._streams):
                if stream in self._streams:
                    self._tick_stream(stream, now, frames, late)
        finally:
            self._ticking = False

        self._tick_number += 1
        if self._streams:
            self._timer = loop.call_at(self._deadline(self._tick_number), self._tick)
        else:
            self._stop()

    def _skip_if_far_behind(self, lag: float) -> int:
        """Skip ahead if far behind; return the frame periods this tick stands for."""
        if lag <= self._max_lag:
            return 1
        behind = int(lag / self._interval)
        self._tick_number += behind
        self.skipped_ticks += behind
        return 1 + behind

    def _deadline(self, tick_number: int) -> float:
        # Computed from the start each time, so rounding errors cannot accumulate.
        return self._start + tick_number * self._interval

    def _tick_stream(
        self, stream: PacedStream, now: float, frames: int, late: bool
    ) -> None:
        try:
            stream.on_tick(now, frames, late)
        except Exception:
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
