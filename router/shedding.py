"""Shedding new calls under overload: :mod:`router.overload` wired to the SIP side.

:class:`CallShedding` feeds the loop-lag monitor what it watches (the
transaction layer's request and retransmission counts, the SIP UDP socket's
receive queue), asks the guard about each new INVITE, and counts and logs the
calls it sheds. The caller answers a shed INVITE 503 with Retry-After.
"""

from __future__ import annotations

from collections import Counter

import structlog

from router.overload import (
    LoopLagMonitor,
    OverloadGuard,
    OverloadPolicy,
    ShedReason,
    ShedReport,
)
from router.sip.transaction import TransactionLayer
from router.transport import SipTransports

__all__ = ["CallShedding"]

log = structlog.get_logger("router.sip")


class CallShedding:
    """Decides, for each new INVITE, whether the router is too busy to take it.

    Args:
        policy: the overload thresholds.
        layer: the transaction layer, whose traffic counts the guard reads.
        transports: the SIP transports, whose UDP receive queue it reads.
        counters: the router's counters; ``calls_shed`` and one counter per
            reason are kept there.
    """

    def __init__(
        self,
        policy: OverloadPolicy,
        layer: TransactionLayer,
        transports: SipTransports,
        counters: Counter[str],
    ) -> None:
        self.policy = policy
        self.guard = OverloadGuard(policy)
        self._layer = layer
        self._transports = transports
        self._counters = counters
        # Shown from the start, so a dashboard sees 0 rather than no series.
        counters["calls_shed"] = 0
        self._monitor = LoopLagMonitor(
            self.guard, traffic=self._traffic, queue=self._receive_queue
        )
        self._report = ShedReport()

    def start(self) -> None:
        """Start measuring the event loop's lag."""
        self._monitor.start()

    def stop(self) -> None:
        """Stop measuring."""
        self._monitor.stop()

    def sheds(self, now: float, setting_up: int, sip_call_id: str) -> bool:
        """Whether a new INVITE is shed; a shed call is counted and reported.

        Args:
            now: the loop's clock.
            setting_up: calls routing or ringing now.
            sip_call_id: the INVITE's Call-ID, for the log line.
        """
        reason = self.guard.check(now, setting_up)
        if reason is None:
            return False
        self._count(reason, now, setting_up, sip_call_id)
        return True

    def _count(
        self, reason: ShedReason, now: float, setting_up: int, sip_call_id: str
    ) -> None:
        guard = self.guard
        guard.shed += 1
        self._counters["calls_shed"] += 1
        self._counters[f"calls_shed_{reason.name.lower()}"] += 1
        count = self._report.count(now)
        if count is None:
            return  # reported at most once an interval (router.overload)
        log.warning(
            "calls_shed",
            reason=reason.value,
            count=count,
            setting_up=setting_up,
            loop_lag_ms=round(guard.current_lag(now) * 1000, 1),
            receive_queue_ms=round(guard.queue_wait_s * 1000, 1),
            admit_percent=round(guard.admit_share * 100, 1),
            retransmissions=guard.window_retransmissions,
            requests=guard.window_requests,
            sip_call_id=sip_call_id,
        )

    def _traffic(self) -> tuple[int, int]:
        """Requests and retransmitted requests received so far."""
        return self._layer.requests_received, self._layer.retransmissions_received

    def _receive_queue(self) -> tuple[int, int, int]:
        """Bytes queued on the SIP UDP socket; bytes and datagrams read so far."""
        transports = self._transports
        return (
            transports.udp_queue_bytes(),
            transports.udp_bytes_received,
            transports.udp_datagrams_received,
        )
