"""Overload control: refuse new calls at once when the router cannot keep up.

A router past its capacity that keeps accepting INVITEs answers every one of
them late: callers retransmit (RFC 3261 §17.1.1.2), each retransmission costs
more work, and throughput collapses (RFC 6357 §2 calls this congestion
collapse). Instead, while the router is overloaded, a new INVITE is answered
at once with 503 Service Unavailable and a Retry-After header (RFC 3261
§21.5.4, §20.33), which costs one response and no call state. Requests inside
existing dialogs (ACK, BYE, re-INVITE) and CANCEL always go through: they end
or keep calls the router has already paid for.

Four signals say "overloaded", any one enough:

* the event loop lags: a tick scheduled every :data:`TICK_S` runs late by more
  than the limit (the loop is saturated, or stalled by a pause), or the next
  tick is already overdue by more than the limit when an INVITE arrives;
* requests wait in the SIP socket's receive queue: the kernel's count of the
  bytes queued (``SO_MEMINFO``), turned into datagrams and divided by the
  datagrams the router read in the last second, estimates how long the last
  request queued will wait; past the limit, new INVITEs are shed until the
  queue drains. A caller retransmits when that wait passes T1 (500 ms), so
  this sees the backlog before the retransmissions do;
* too many calls are in set-up (routing or ringing) at once: every one of them
  holds a runner connection attempt and an RTP port, and a runner that slows
  down would otherwise let them pile up without bound;
* callers retransmit: over the last :data:`TRAFFIC_WINDOW_S`, more than a set
  share of the requests that arrived were retransmissions of requests already
  received. A caller retransmits when our answer took longer than T1 (500 ms),
  so requests are waiting somewhere, most often in the socket's receive
  buffer, which neither the loop's lag nor the calls in set-up show (the loop
  may run every callback on time while thousands of datagrams queue in the
  kernel). RFC 6357 §3 names retransmissions as the first sign of overload.

The first three are shed outright. Retransmissions are a late sign (they tell of
answers that took 500 ms), and refusing every new call for as long as they
last left the core idle and answered about 60 % of what it could. So they set
the share of new INVITEs taken instead (RFC 7415's loss-based scheme): it is
halved at once, then again every half second while callers still
retransmit, and grows back by :data:`ADMIT_RECOVERY_PER_S` once they stop.
The target the share hunts for is the router's capacity: cut below it, the
backlog drains and callers stop retransmitting; grown past it, they start
again.

:class:`OverloadGuard` makes the decision and needs no event loop;
:class:`LoopLagMonitor` feeds it from the running loop. Only the feedback-free
"503 with Retry-After" scheme is implemented; RFC 7339's Via-parameter
feedback needs the upstream to support it, which carriers rarely do.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "ADMIT_DECREASE",
    "ADMIT_RECOVERY_PER_S",
    "DATAGRAM_OVERHEAD",
    "MIN_ADMIT_SHARE",
    "MIN_RETRANSMISSIONS",
    "TICK_S",
    "TRAFFIC_WINDOW_S",
    "LoopLagMonitor",
    "OverloadGuard",
    "OverloadPolicy",
    "ShedReason",
    "ShedReport",
]

# How often the loop's lag is sampled. 50 ticks a second cost a few
# microseconds each, and a lag of more than one tick is seen within a tick.
TICK_S = 0.02

# Retransmissions are counted over the last second: long enough to hold a few
# dozen calls' requests even at low rates, short enough that shedding stops
# within a second once the backlog is gone.
TRAFFIC_WINDOW_S = 1.0
# Fewer retransmissions than this in the window never count as overload: a
# lossy path retransmits now and then at any load.
MIN_RETRANSMISSIONS = 20

# The share of new INVITEs taken while callers retransmit: cut by this factor
# at once, then at most every half window (a T1: the time a retransmission
# takes to show the cut's effect) while they go on; never below the floor, so
# some calls always probe whether the router has recovered.
ADMIT_DECREASE = 0.5
MIN_ADMIT_SHARE = 0.05
# Once callers stop retransmitting, the share grows back by this much a second
# (from half to all in two seconds).
ADMIT_RECOVERY_PER_S = 0.25

# What the kernel counts for a queued datagram beyond its payload (its buffer
# head and shared info, aligned): about 780 bytes on 64-bit Linux, measured on
# loopback as 1,280 bytes queued for each 500-byte datagram. Limitations: a
# network card's driver may charge more per datagram, and while a backlog
# drains Linux frees the memory of datagrams already read in batches (a
# quarter of the receive buffer at a time), so the estimate errs high, and
# sheds early, rather than late.
DATAGRAM_OVERHEAD = 780

# At most one log line about shed calls this often, however many are shed: a
# flood of INVITEs must not become a flood of log lines.
SHED_LOG_INTERVAL_S = 10.0


class ShedReason(enum.Enum):
    """Why a new call was refused."""

    LOOP_LAG = "loop-lag"
    RECEIVE_QUEUE = "receive-queue"
    SETUP_LIMIT = "setup-limit"
    RETRANSMISSIONS = "retransmissions"


@dataclass(frozen=True)
class OverloadPolicy:
    """When to shed new calls, and what to tell the caller.

    Attributes:
        max_setup_calls: the most calls in set-up (routing or ringing) at once;
            the next INVITE is refused.
        max_loop_lag_s: the event loop's lag past which new INVITEs are
            refused; 0 turns the lag check off.
        retry_after_s: the Retry-After of the 503 (RFC 3261 §20.33).
        max_retransmission_share: the share (0 to 1) of retransmissions among
            the requests of the last :data:`TRAFFIC_WINDOW_S` past which new
            INVITEs are refused; 0 turns the check off.
        max_receive_queue_s: the estimated wait in the SIP socket's receive
            queue past which new INVITEs are refused; 0 turns the check off.
    """

    max_setup_calls: int = 200
    max_loop_lag_s: float = 0.1
    retry_after_s: int = 2
    max_retransmission_share: float = 0.05
    max_receive_queue_s: float = 0.3


class OverloadGuard:
    """Decides whether a new call is taken or refused (sans I/O).

    The lag is fed by :meth:`tick` with the time a tick was due and the time
    it ran; :meth:`check` compares the latest lag, and how overdue the next
    tick is, with the policy.
    """

    def __init__(self, policy: OverloadPolicy) -> None:
        self.policy = policy
        self.lag_s = 0.0
        """The latest lag measured, in seconds."""
        self.next_due: float | None = None
        """When the next tick is due (None: no monitor is running)."""
        self.shed = 0
        """Calls refused so far."""
        # Cumulative (requests, retransmissions) counts, one sample per tick,
        # oldest first, covering TRAFFIC_WINDOW_S.
        self._traffic: deque[tuple[int, int]] = deque()
        self.window_requests = 0
        """Requests received in the last :data:`TRAFFIC_WINDOW_S`."""
        self.window_retransmissions = 0
        """Retransmitted requests among them."""
        self.queue_wait_s = 0.0
        """The estimated wait in the SIP socket's receive queue, in seconds."""
        # (time, cumulative bytes, cumulative datagrams) read, one sample per
        # tick, covering TRAFFIC_WINDOW_S.
        self._read: deque[tuple[float, int, int]] = deque()
        self.admit_share = 1.0
        """The share of new INVITEs taken (below 1 after callers retransmitted)."""
        self._credit = 0.0
        # The last look at the retransmissions (see _adjust_admit_share).
        self._since_look = 0
        self._looked_at = (0, 0)
        self._calm = True

    def tick(self, due: float, now: float, next_due: float) -> None:
        """Record a tick that was due at ``due`` and ran at ``now``."""
        self.lag_s = max(0.0, now - due)
        self.next_due = next_due

    def note_traffic(self, requests: int, retransmissions: int, samples: int) -> None:
        """Record the cumulative counts of requests and retransmissions received.

        Args:
            requests: requests received so far, retransmissions included.
            retransmissions: retransmitted requests received so far.
            samples: how many samples make up the window (one per tick).
        """
        traffic = self._traffic
        traffic.append((requests, retransmissions))
        while len(traffic) > samples + 1:
            traffic.popleft()
        first_requests, first_retransmissions = traffic[0]
        self.window_requests = requests - first_requests
        self.window_retransmissions = retransmissions - first_retransmissions
        if self.policy.max_retransmission_share > 0:
            self._adjust_admit_share(requests, retransmissions, samples)

    def note_queue(
        self,
        now: float,
        queued_bytes: int,
        bytes_read: int,
        datagrams_read: int,
        samples: int,
    ) -> None:
        """Record the receive queue's size, and what was read from it so far.

        Args:
            now: the clock, when the counts were read.
            queued_bytes: bytes in the socket's receive queue now, as the
                kernel counts them (each datagram with its buffer overhead).
            bytes_read: payload bytes read from the socket so far.
            datagrams_read: datagrams read from the socket so far.
            samples: how many samples make up the window (one per tick).
        """
        read = self._read
        read.append((now, bytes_read, datagrams_read))
        while len(read) > samples + 1:
            read.popleft()
        first_time, first_bytes, first_datagrams = read[0]
        datagrams = datagrams_read - first_datagrams
        # The rate over the time the samples really span: less than the
        # window just after start, more when ticks run late.
        elapsed = now - first_time
        if datagrams <= 0 or elapsed <= 0:
            # Nothing read yet: no rate to divide by. A queue then is a
            # stalled router, which the loop's lag shows.
            self.queue_wait_s = 0.0
            return
        size = (bytes_read - first_bytes) / datagrams + DATAGRAM_OVERHEAD
        self.queue_wait_s = queued_bytes / size / (datagrams / elapsed)

    def _adjust_admit_share(
        self, requests: int, retransmissions: int, samples: int
    ) -> None:
        # The window still holds retransmissions for a second after callers
        # stop: a cut after the first looks only at the half window since the
        # last look (a T1, the time a cut takes to show), so a backlog gone
        # does not cut the share again.
        self._since_look += 1
        if self.admit_share == 1.0:
            if self._too_many(
                self.window_requests, self.window_retransmissions, MIN_RETRANSMISSIONS
            ):
                self._cut(requests, retransmissions)
            return
        if self._since_look >= max(1, samples // 2):
            looked_requests, looked_retransmissions = self._looked_at
            self._calm = not self._too_many(
                requests - looked_requests,
                retransmissions - looked_retransmissions,
                MIN_RETRANSMISSIONS // 2,
            )
            if not self._calm:
                self._cut(requests, retransmissions)
                return
            self._since_look, self._looked_at = 0, (requests, retransmissions)
        if self._calm:
            step = ADMIT_RECOVERY_PER_S * TRAFFIC_WINDOW_S / samples
            self.admit_share = min(1.0, self.admit_share + step)

    def _cut(self, requests: int, retransmissions: int) -> None:
        self.admit_share = max(MIN_ADMIT_SHARE, self.admit_share * ADMIT_DECREASE)
        self._since_look, self._looked_at = 0, (requests, retransmissions)
        self._calm = False

    def _too_many(self, requests: int, retransmissions: int, minimum: int) -> bool:
        # Retransmissions past the policy's share of the requests, and at least
        # ``minimum`` of them: a lossy path retransmits now and then at any load.
        return (
            retransmissions >= minimum
            and retransmissions > self.policy.max_retransmission_share * requests
        )

    def current_lag(self, now: float) -> float:
        """The lag as of ``now``: the latest sample, or the overdue tick's wait."""
        overdue = 0.0 if self.next_due is None else now - self.next_due
        return max(self.lag_s, overdue)

    def check(self, now: float, setting_up: int) -> ShedReason | None:
        """Why a new INVITE arriving at ``now`` must be refused, or None to take it.

        Args:
            now: the loop's clock.
            setting_up: calls in set-up now, not counting the new one.
        """
        if setting_up >= self.policy.max_setup_calls:
            return ShedReason.SETUP_LIMIT
        limit = self.policy.max_loop_lag_s
        if limit > 0 and self.current_lag(now) > limit:
            return ShedReason.LOOP_LAG
        queue_limit = self.policy.max_receive_queue_s
        if queue_limit > 0 and self.queue_wait_s > queue_limit:
            return ShedReason.RECEIVE_QUEUE
        if self.admit_share < 1.0:
            # Take admit_share of the new INVITEs, evenly spread.
            credit = self._credit + self.admit_share
            if credit < 1.0:
                self._credit = credit
                return ShedReason.RETRANSMISSIONS
            self._credit = credit - 1.0
        return None


@dataclass
class ShedReport:
    """Shed calls counted between two log lines (see :data:`SHED_LOG_INTERVAL_S`)."""

    interval_s: float = SHED_LOG_INTERVAL_S
    pending: int = 0
    last_logged: float | None = None

    def count(self, now: float) -> int | None:
        """Count a shed call; the calls to report when a line is due, else None."""
        self.pending += 1
        if self.last_logged is not None and now - self.last_logged < self.interval_s:
            return None
        self.last_logged = now
        count, self.pending = self.pending, 0
        return count


class LoopLagMonitor:
    """Samples the running loop's lag every :data:`TICK_S` into a guard.

    Args:
        guard: what the samples go to.
        tick_s: the sampling period.
        traffic: returns the cumulative counts of requests and of retransmitted
            requests received, sampled on every tick for the retransmission
            check; ``None`` leaves that check without data.
        queue: returns the bytes in the SIP socket's receive queue, and the
            bytes and datagrams read from it so far, sampled on every tick;
            ``None`` leaves the receive-queue check without data.
    """

    def __init__(
        self,
        guard: OverloadGuard,
        tick_s: float = TICK_S,
        traffic: Callable[[], tuple[int, int]] | None = None,
        queue: Callable[[], tuple[int, int, int]] | None = None,
    ) -> None:
        self.guard = guard
        self.tick_s = tick_s
        self._traffic = traffic
        self._queue = queue
        self._samples = max(1, round(TRAFFIC_WINDOW_S / tick_s))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        """Start sampling on the running loop."""
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        if self._traffic is not None:
            # The window counts from here, not from whatever came before.
            self.guard.note_traffic(*self._traffic(), self._samples)
        if self._queue is not None:
            self.guard.note_queue(now, *self._queue(), self._samples)
        self._schedule(now)

    def stop(self) -> None:
        """Stop sampling."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.guard.next_due = None

    def _schedule(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + self.tick_s
        self.guard.next_due = self._due
        # call_at on the due time itself, so the lag measured is the loop's,
        # not the rounding of a relative delay.
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        due = self._due
        self._schedule(now)
        self.guard.tick(due, now, self._due)
        if self._traffic is not None:
            self.guard.note_traffic(*self._traffic(), self._samples)
        if self._queue is not None:
            self.guard.note_queue(now, *self._queue(), self._samples)
