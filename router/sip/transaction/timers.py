"""The timer machinery of the transaction layer, on a clock the caller passes in.

Timers are kept in one heap ordered by deadline (then by when they were set, so two
timers due at the same time fire in that order). A cancelled timer stays in the heap
until it comes up and is skipped, without its target; each transaction keeps only its
live timers.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Timed", "Timer", "TimerQueue", "Timers"]


@dataclass(frozen=True)
class Timers:
    """RFC 3261 §17.1.1.1 timer values, in seconds (Table 4 defaults)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


@dataclass(order=True)
class Timer:
    """One timer: which (``name``, e.g. ``"G"``), for what, and when it fires."""

    deadline: float
    seq: int
    name: str = field(compare=False)
    target: object = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Timed(Protocol):
    """What timers are set on: a transaction, or a 2xx waiting for its ACK."""

    timers: list[Timer]
    interval: float


class TimerQueue:
    """Every live timer of one transaction layer, earliest deadline first."""

    def __init__(self) -> None:
        """Create an empty queue."""
        # (deadline, seq, timer): tuples compare in C, where the Timer
        # dataclass's generated ordering ran in Python for every heap step.
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()

    def schedule(
        self, deadline: float, name: str, target: Timed, interval: float | None = None
    ) -> None:
        """Set timer ``name`` on ``target``; with ``interval``, record it there too."""
        seq = next(self._seq)
        timer = Timer(deadline, seq, name, target)
        heapq.heappush(self._heap, (deadline, seq, timer))
        # Keep only live timers so the list cannot grow with retransmissions.
        target.timers[:] = [t for t in target.timers if not t.cancelled]
        target.timers.append(timer)
        if interval is not None:
            target.interval = interval

    @staticmethod
    def cancel(target: Timed) -> None:
        """Cancel every timer set on ``target``."""
        for timer in target.timers:
            timer.cancelled = True
            # The heap keeps a cancelled timer until its deadline (up to 64*T1);
            # it must not keep the transaction, its messages, alive that long.
            timer.target = None
        target.timers.clear()

    def next_deadline(self) -> float | None:
        """Return the earliest deadline of a live timer, or None when none is set."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> Iterator[Timer]:
        """Yield each live timer due at ``now``, marking it done, earliest first.

        A timer set (due at ``now``) while the caller handles one is yielded too.
        """
        while self._heap and self._heap[0][0] <= now:
            timer = heapq.heappop(self._heap)[2]
            if not timer.cancelled:
                timer.cancelled = True
                yield timer
