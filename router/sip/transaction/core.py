"""What both halves of the transaction layer share: the outbox, the timers, and
dispatching a timer that fires to the method that handles it.
"""

from __future__ import annotations

from collections import deque

from router.sip.message import Request, Response

from .events import Event
from .state import (
    ClientTransaction,
    Lingering,
    Outgoing,
    Peer,
    Pending2xx,
    ServerTransaction,
)
from .timers import Timed, Timer, TimerQueue, Timers

__all__ = ["LayerCore"]


class LayerCore:
    """The state of a transaction layer, and the timer machinery its halves use.

    A timer named ``X`` is handled by the method ``_timer_X`` of the layer (``-`` in
    a name becomes ``_``); each half defines the handlers of its own timers.
    """

    def __init__(
        self, timers: Timers | None = None, *, auto_trying: bool = True
    ) -> None:
        """Create an empty layer.

        Args:
            timers: T1, T2 and T4; RFC 3261 defaults when omitted.
            auto_trying: answer every new INVITE 100 Trying at once. A user
                that checks the source first (and may drop it silently)
                turns this off and sends the 100 itself.
        """
        self.timers = timers or Timers()
        self.auto_trying = auto_trying
        self.outbox: list[Outgoing] = []
        self._server: dict[tuple[str, ...], ServerTransaction | Lingering] = {}
        # Server transactions that only linger (see Lingering), by when they
        # end: all linger 64*T1, so the earliest is always first.
        self._lingering: deque[tuple[float, tuple[str, ...]]] = deque()
        self._client: dict[tuple[str, ...], ClientTransaction] = {}
        self._pending_2xx: dict[tuple[str, str, int], Pending2xx] = {}
        self._queue = TimerQueue()

    # -- inspection ---------------------------------------------------------

    @property
    def server_transactions(self) -> int:
        """Number of live server transactions."""
        return len(self._server)

    @property
    def client_transactions(self) -> int:
        """Number of live client transactions."""
        return len(self._client)

    @property
    def pending_acks(self) -> int:
        """Number of 2xx responses still waiting for their ACK."""
        return len(self._pending_2xx)

    def next_deadline(self) -> float | None:
        """Return the earliest timer deadline, or None when no timer is set."""
        deadline = self._queue.next_deadline()
        if self._lingering:
            ends = self._lingering[0][0]
            if deadline is None or ends < deadline:
                return ends
        return deadline

    # -- timers -------------------------------------------------------------

    def fire_timers(self, now: float) -> list[Event]:
        """Run every timer due at ``now``; return the events they produce."""
        events: list[Event] = []
        for timer in self._queue.pop_due(now):
            events.extend(self._fire(timer, now))
        lingering, server = self._lingering, self._server
        while lingering and lingering[0][0] <= now:
            key = lingering.popleft()[1]
            if type(server.get(key)) is tuple:
                del server[key]
        return events

    def _fire(self, timer: Timer, now: float) -> list[Event]:
        handler = getattr(self, f"_timer_{timer.name.replace('-', '_')}")
        result: list[Event] = handler(timer.target, now)
        return result

    # -- helpers ------------------------------------------------------------

    def _send(self, message: Request | Response, peer: Peer) -> None:
        self.outbox.append(Outgoing(message, peer))

    def _schedule(
        self, deadline: float, name: str, target: Timed, interval: float | None = None
    ) -> None:
        self._queue.schedule(deadline, name, target, interval)

    def _cancel_timers(self, target: Timed) -> None:
        self._queue.cancel(target)
