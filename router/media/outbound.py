"""The runner's audio on its way to the caller: when each frame goes out, and as what.

:class:`OutboundStream` is sans-I/O: it is told the time, the runner's audio and
the pacer's ticks, and it returns the RTP packets to send. Every packet has a
*slot*, its nominal send time on the stream's 20 ms grid, and the RTP timestamp
follows the slots (RFC 3550 §5.1: the timestamp follows the sampling clock).

The rule:

1. A frame may go out from :data:`EARLY_TOLERANCE` before its slot. Audio that
   arrives while the stream is due (its queue drained, the slot's window open)
   goes out at once, not at the next tick: an echo or a runner streaming in
   real time adds no waiting for a clock.
2. The first runner frame of a talkspurt (after silence), sent after its
   slot, moves the grid: its send time becomes its slot and the following
   frames keep 20 ms spacing from it; the RTP timestamp moves forward by the
   same time. Inside a talkspurt the grid stays, so a frame a little late or
   early (jitter) leaves no hole in the timestamps. The grid never moves
   earlier.
3. When nothing is queued, silence fills the slot :data:`FILL_DELAY` after it,
   so a runner frame that is a few milliseconds late still gets its slot; the
   caller hears a packet at least every 20 ms plus :data:`TOLERANCE`.
4. After a stall of the process (a tick later than the fill delay), frames
   catch up on the grid with a burst of at most :data:`MAX_CATCH_UP_FRAMES`
   (silence no closer than the tolerance allows); further behind, the grid
   moves to the present and the frame periods that passed are skipped, so the
   receiver sees a gap in time rather than seconds of audio at once.

While the ticks run on time, every packet thus goes out within
``[slot - EARLY_TOLERANCE, slot + FILL_DELAY]`` and slots are at least 20 ms
apart, so any two packets are at least
``20 ms - TOLERANCE`` apart, any window of ``w`` seconds holds at most
``(w + TOLERANCE) / 20 ms + 1`` packets (never more than 50 packets per second
in the long run), and the RTP timestamp is within the tolerance of real time.

Limitation: the first runner frame of a talkspurt that arrives less than
``20 ms - TOLERANCE`` after a silence packet must wait for the next slot's
window (up to about 12 ms with the pacer's 2.5 ms ticks), and a runner that
streams without pause (an echo) keeps that wait for the whole talkspurt: the
grid cannot move earlier without sending faster than 50 packets per second.
About half of the possible phases of a runner's audio against the silence grid
meet this wait; the others go out on arrival.
"""

from __future__ import annotations

from .g711 import (
    ALAW_SILENCE,
    FRAME_BYTES,
    FRAME_DURATION,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    ULAW_SILENCE,
    ULAW_TO_ALAW,
)
from .playout import PlayoutQueue
from .rtp import RtpPacketizer
from .stats import MediaStats

__all__ = [
    "EARLY_TOLERANCE",
    "FILL_DELAY",
    "MAX_CATCH_UP_FRAMES",
    "TOLERANCE",
    "OutboundStream",
]

# How far a packet may stray from its slot. A receiver's jitter buffer holds at
# least one 20 ms frame (most hold 40-60 ms), and a 10 ms spread of send times
# is well inside it; network jitter on a good path is of the same order. Most
# of the tolerance is given to lateness: a runner frame is far more often a
# little late (loop and runner load) than early.
EARLY_TOLERANCE = 0.0025
FILL_DELAY = 0.0075
TOLERANCE = EARLY_TOLERANCE + FILL_DELAY
# After a stall, frames catch up with a burst of at most this many: 60 ms is
# the smallest jitter buffer commonly configured on carrier equipment and
# softphones. Further behind, the missed frame periods are skipped.
MAX_CATCH_UP_FRAMES = 3
_MAX_CATCH_UP = MAX_CATCH_UP_FRAMES * FRAME_DURATION

# Clock readings this close to a threshold count as reaching it: a tick asked
# for a time runs at it, give or take float rounding.
_CLOCK_SLACK = 1e-6
# A send this late counts as a late playout tick in the stats.
_LATE_THRESHOLD = FRAME_DURATION / 2
_TIMESTAMP_MASK = 0xFFFFFFFF
_ULAW_SILENCE_FRAME = bytes([ULAW_SILENCE]) * FRAME_BYTES
_ALAW_SILENCE_FRAME = bytes([ALAW_SILENCE]) * FRAME_BYTES


class OutboundStream:
    """One call's outbound audio: the playout queue, the 20 ms grid and RTP numbering.

    Args:
        queue: the runner's audio and marks.
        stats: counters to update.
        packetizer: numbers the packets; a random SSRC, sequence and timestamp
            if ``None``.
        tick_interval: the pacer's tick period; silence is asked for one tick
            before the fill delay ends, so that it goes out within the window.
    """

    __slots__ = (
        "_after_gap",
        "_after_silence",
        "_deferred_slot",
        "_fill_lead",
        "_frames",
        "_payload_type",
        "_quiet_until",
        "_silence",
        "_slot",
        "_stats",
        "_to_alaw",
        "packetizer",
        "queue",
    )

    def __init__(
        self,
        *,
        queue: PlayoutQueue,
        stats: MediaStats,
        packetizer: RtpPacketizer | None = None,
        tick_interval: float = 0.0025,
    ) -> None:
        self.queue = queue
        # The queue's whole frames, read on every call to see if any wait.
        self._frames = queue.frames
        self.packetizer = RtpPacketizer() if packetizer is None else packetizer
        self._stats = stats
        self._fill_lead = max(FILL_DELAY - tick_interval, 0.0)
        # The next slot; None until the stream starts.
        self._slot: float | None = None
        # After a stall, no silence before this time (see tick()).
        self._quiet_until = 0.0
        self._deferred_slot: float | None = None
        self._payload_type = 0
        self._to_alaw = False
        self._silence = _ULAW_SILENCE_FRAME
        # RFC 3551 §4.1: the marker bit flags the first packet after a gap in
        # sending (stream start, hold, skipped time) or after filler silence.
        self._after_gap = True
        self._after_silence = True

    @property
    def next_slot(self) -> float | None:
        """The nominal send time of the next packet (``None`` before :meth:`start`)."""
        return self._slot

    @property
    def next_wake(self) -> float | None:
        """When the stream next has something to do: send a queued frame, or fill.

        ``None`` before :meth:`start`.
        """
        slot = self._slot
        if slot is None:
            return None
        if self._frames:
            return slot - EARLY_TOLERANCE
        fill = slot + self._fill_lead
        quiet = self._quiet_until
        return quiet if quiet > fill else fill

    def start(self, now: float) -> None:
        """Start the grid at ``now`` (no effect once started)."""
        if self._slot is None:
            self._slot = now

    def set_codec(self, payload_type: int, *, alaw: bool) -> None:
        """Send with ``payload_type``, transcoding to A-law if ``alaw``."""
        self._payload_type = payload_type
        self._to_alaw = alaw
        self._silence = _ALAW_SILENCE_FRAME if alaw else _ULAW_SILENCE_FRAME

    def play(self, now: float, ulaw: bytes, *, sending: bool) -> bytes | None:
        """Queue the runner's audio; return the packet to send at once, if due."""
        slot = self._slot
        if (
            sending
            and slot is not None
            and now + _CLOCK_SLACK >= slot - EARLY_TOLERANCE
            and self.queue.take_now(ulaw)
        ):
            # The common case of a runner streaming in real time: one frame,
            # nothing queued, the stream due. It never enters the queue.
            return self._take_slot(now, ulaw, sending)
        self.queue.play(ulaw)
        return self._send_if_due(now, sending)

    def mark(self, now: float, name: str, *, sending: bool) -> bytes | None:
        """Place a mark; return a packet to send at once if a padded tail is due."""
        self.queue.mark(name)
        return self._send_if_due(now, sending)

    def tick(self, now: float, *, sending: bool) -> bytes | None:
        """The pacer's tick: send a queued frame or fill with silence, if it is time.

        Args:
            now: the clock.
            sending: whether packets can go out now (a target is known and the
                call is not on hold); if not, the slot passes unsent.

        Returns:
            The packet to send, or ``None`` (nothing due, or not sending).
        """
        slot = self._slot
        if slot is None:
            return None
        if self._frames:
            if now + _CLOCK_SLACK < slot - EARLY_TOLERANCE:
                return None
        elif now + _CLOCK_SLACK < slot + self._fill_lead or now < self._quiet_until:
            return None
        elif now - slot > FILL_DELAY and self._deferred_slot is None:
            # The process stalled: the runner's frames of the stalled periods
            # may be on their way (the caller's audio only reached the runner
            # now). Silence now would take their slot and leave them a frame
            # behind for the rest of the talkspurt; give them a fill delay
            # (once: until the stream is back on its grid).
            self._deferred_slot = slot
            self._quiet_until = now + self._fill_lead
            return None
        return self._take_slot(now, self.queue.next_frame(), sending)

    def _send_if_due(self, now: float, sending: bool) -> bytes | None:
        slot = self._slot
        if (
            not sending
            or slot is None
            or not self._frames
            or now + _CLOCK_SLACK < slot - EARLY_TOLERANCE
        ):
            return None
        return self._take_slot(now, self.queue.next_frame(), sending)

    def _take_slot(
        self, now: float, frame: bytes | None, sending: bool
    ) -> bytes | None:
        slot = self._slot
        assert slot is not None
        late = now - slot
        if late > 0.0 and (
            late > _MAX_CATCH_UP
            or (frame is not None and late <= FILL_DELAY and self._starts_talkspurt)
        ):
            self._move_grid(late)
            slot = now
        elif late > FILL_DELAY and frame is None:
            # Catching up after a stall: silence no closer than the tolerance.
            self._quiet_until = now + FRAME_DURATION - TOLERANCE
        if late <= FILL_DELAY:
            self._deferred_slot = None
        self._slot = slot + FRAME_DURATION
        packetizer = self.packetizer
        packet = self._packet(frame) if sending else None
        if packet is None:
            self._after_gap = True
        packetizer.timestamp = (packetizer.timestamp + FRAME_SAMPLES) & _TIMESTAMP_MASK
        return packet

    @property
    def _starts_talkspurt(self) -> bool:
        # RFC 3551 §4.1: a talkspurt's first packet (marked) is where the
        # receiver expects the timing to change: its runner frame, arriving
        # within the slot's window, brings the grid to its own phase. Inside a
        # talkspurt the grid stays, so that the timestamps stay contiguous
        # (jitter within the tolerance leaves no hole in the audio), and
        # frames late from a stall catch up instead (beyond the catch-up
        # limit, any packet moves the grid).
        return self._after_silence or self._after_gap

    def _move_grid(self, late: float) -> None:
        # The timestamp follows the grid (RFC 3550 §5.1): a slot taken late
        # moves both, so the timestamp never falls behind real time.
        self.packetizer.advance(round(late * SAMPLE_RATE))
        if late > _LATE_THRESHOLD:
            self._stats.late_ticks += 1
        if late >= FRAME_DURATION:
            # A stall: the receiver sees the gap (RFC 3551 §4.1 marks the
            # packet after it), not audio squeezed together.
            self._stats.skipped_frames += int(late / FRAME_DURATION)
            self._after_gap = True

    def _packet(self, frame: bytes | None) -> bytes:
        if frame is None:
            payload = self._silence
            self._stats.silence_frames_sent += 1
        else:
            payload = frame.translate(ULAW_TO_ALAW) if self._to_alaw else frame
        marker = self._after_gap or (frame is not None and self._after_silence)
        self._after_gap = False
        self._after_silence = frame is None
        return self.packetizer.packetize(self._payload_type, payload, marker=marker)
