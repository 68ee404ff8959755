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
4. After a stall (a tick or frame later than the fill delay), the grid moves to
   the present and the frame periods that passed are skipped: the receiver
   sees a gap in time, never a burst.

Every packet thus goes out within ``[slot - EARLY_TOLERANCE, slot + FILL_DELAY]``
and slots are at least 20 ms apart, so any two packets are at least
``20 ms - TOLERANCE`` apart, any window of ``w`` seconds holds at most
``(w + TOLERANCE) / 20 ms + 1`` packets (never more than 50 packets per second
in the long run), and the RTP timestamp is within the tolerance of real time.
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

# Clock readings this close to a threshold count as reaching it: a tick asked
# for a time runs at it, give or take float rounding.
_CLOCK_SLACK = 1e-6
# A send this late counts as a late playout tick in the stats.
_LATE_THRESHOLD = FRAME_DURATION / 2
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

    def __init__(
        self,
        *,
        queue: PlayoutQueue,
        stats: MediaStats,
        packetizer: RtpPacketizer | None = None,
        tick_interval: float = 0.0025,
    ) -> None:
        self.queue = queue
        self.packetizer = RtpPacketizer() if packetizer is None else packetizer
        self._stats = stats
        self._fill_lead = max(FILL_DELAY - tick_interval, 0.0)
        # The next slot; None until the stream starts.
        self._slot: float | None = None
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
    def next_wake(self) -> float:
        """When the stream next has something to do: send a queued frame, or fill.

        Raises:
            RuntimeError: the stream has not started.
        """
        slot = self._slot
        if slot is None:
            raise RuntimeError("an outbound stream has no schedule before start()")
        if self.queue.queued_frames:
            return slot - EARLY_TOLERANCE
        return slot + self._fill_lead

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
        now += _CLOCK_SLACK
        if self.queue.queued_frames:
            if now < slot - EARLY_TOLERANCE:
                return None
        elif now < slot + self._fill_lead:
            return None
        now -= _CLOCK_SLACK
        return self._take_slot(now, self.queue.next_frame(), sending)

    def _send_if_due(self, now: float, sending: bool) -> bytes | None:
        slot = self._slot
        if (
            not sending
            or slot is None
            or now + _CLOCK_SLACK < slot - EARLY_TOLERANCE
            or not self.queue.queued_frames
        ):
            return None
        return self._take_slot(now, self.queue.next_frame(), sending)

    def _take_slot(
        self, now: float, frame: bytes | None, sending: bool
    ) -> bytes | None:
        slot = self._slot
        assert slot is not None
        late = now - slot
        # RFC 3551 §4.1: a talkspurt's first packet (marked) is where the
        # receiver expects the timing to change. Inside a talkspurt the grid
        # stays, so that the timestamps stay contiguous and jitter within the
        # tolerance leaves no hole in the audio.
        starts_talkspurt = frame is not None and (
            self._after_silence or self._after_gap
        )
        if late > FILL_DELAY or (starts_talkspurt and late > 0.0):
            self._move_grid(late)
            slot = now
        self._slot = slot + FRAME_DURATION
        packet = self._packet(frame) if sending else None
        if packet is None:
            self._after_gap = True
        self.packetizer.advance(FRAME_SAMPLES)
        return packet

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
