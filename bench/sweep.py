"""Stepping a load up until the answerer fails, then narrowing in on the limit.

Both sweeps of the benchmark (call rates, concurrent calls) go the same way:
try each value in turn; a value that fails is tried once more (a shared
machine has hiccups); after the first value that fails twice, try values
half-way between the highest that held and the lowest that failed, a few
times, so the figure is not only as fine as the list of steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

__all__ = ["Step", "midpoint", "step_up"]


class Step(Protocol):
    """What a sweep needs to know of a measured step."""

    holds: bool


S = TypeVar("S", bound=Step)


def midpoint(low: int, high: int) -> int | None:
    """A round value half-way between ``low`` and ``high``, or None if none is left.

    Rounded to two significant digits, so the figures stay readable.
    """
    middle = (low + high) / 2
    digits = max(0, len(str(int(middle))) - 2)
    value = int(round(middle, -digits))
    return value if low < value < high else None


def step_up(
    values: Sequence[int],
    run_step: Callable[[int, int], S],
    *,
    retry_failures: bool,
    refine_steps: int,
    on_step: Callable[[int, S], None],
) -> list[S]:
    """Measure ``values`` in order until one fails, then refine; return every step.

    ``run_step(value, attempt)`` measures one step; ``on_step`` hears of each.
    """
    steps: list[S] = []
    attempts = 2 if retry_failures else 1

    def measure(value: int) -> bool:
        for attempt in range(attempts):
            step = run_step(value, attempt)
            steps.append(step)
            on_step(value, step)
            if step.holds:
                return True
        return False

    held, failed = 0, 0
    for value in values:
        if not measure(value):
            failed = value
            break
        held = value
    for _ in range(refine_steps if failed and held else 0):
        middle = midpoint(held, failed)
        if middle is None:
            break
        value = middle
        if measure(value):
            held = value
        else:
            failed = value
    return steps
