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
2. The grid follows a runner that streams in real time. A frame that came on
   its own (in a message of its own, a while after the audio before it) and
   is alone in the queue, but would wait longer than the early tolerance
   (audio arriving out of phase with the grid), goes out earlier still; the grid
   moves earlier to it, as long as two limits hold: it is at least
   :data:`MIN_SPACING` after the packet before, and the stream's *lead* (how
   far its timestamps run ahead of the grid it started on) stays within
   :data:`MAX_LEAD`. The timestamp does not move: inside a talkspurt the audio
   stays contiguous, and the receiver sees a packet that arrived early, which
   its jitter buffer simply holds.
3. A runner frame late for its slot pays the lead back first: the grid moves
   later by up to the lead, and the timestamp does not move. Silence is due
   by the timestamps, not the grid: it fills a slot :data:`FILL_DELAY` after
   the slot plus the lead, so a runner frame late by up to the lead plus the
   fill delay still takes its slot (no silence spliced into speech, no
   frame left behind), and the lead stays for the next talkspurt.
4. The first runner frame of a talkspurt (after silence), sent after its
   slot, moves the grid later: its send time becomes its slot and the
   following frames keep 20 ms spacing from it; the RTP timestamp moves
   forward by the same time. Inside a talkspurt the grid stays, so a frame a
   little late (jitter) leaves no hole in the timestamps.
5. After a stall of the process (a tick later than the fill delay), frames
   catch up on the grid with a burst of at most :data:`MAX_CATCH_UP_FRAMES`
   (silence no closer than the tolerance allows); further behind, the grid
   moves to the present and the frame periods that passed are skipped, so the
   receiver sees a gap in time rather than seconds of audio at once.
6. After a stall of the runner, a runner streaming in real time wins its
   backlog back. Its stalled frames come late, in a bunch, after silence has
   taken their slots; played 20 ms apart, they would keep the runner's stall
   as a standing delay for the rest of the talkspurt. So when the newest frame
   came on its own (rule 2) and at most :data:`MAX_CATCH_UP_FRAMES` frames
   wait, the head of the queue may move the grid earlier too: the backlog goes
   out :data:`MIN_SPACING` apart until it is gone or the lead is used up; a
   larger backlog is paced until it is down to that. Audio sent ahead of real
   time (text-to-speech) comes in bunches and is paced as before; only its
   last few frames, if a frame came on its own after the bunch, may leave early,
   within the lead.
While the ticks run on time, every packet thus goes out at least
:data:`MIN_SPACING` (``20 ms - TOLERANCE``) after the one before and at most
``20 ms + TOLERANCE + MAX_LEAD`` after it; any window of ``w`` seconds holds at
most ``(w + TOLERANCE + MAX_LEAD) / 20 ms + 1`` packets, so the long-run rate
never passes 50 packets per second; and a packet's timestamp is at most
:data:`FILL_DELAY` behind the time it is sent and at most
``MAX_LEAD + EARLY_TOLERANCE`` ahead of it.

A runner frame that arrives just after a silence packet must wait for the
spacing (up to about 12 ms with the pacer's 2.5 ms ticks); the frames after it
go out on arrival, since the grid moves to them (rule 2).

Limitation: a runner stall longer than the lead allows (about 40 ms) is won
back only as far as the lead goes (rule 6); the rest stays a standing delay
until the talkspurt ends, and so does a backlog that a runner streaming in
real time keeps above :data:`MAX_CATCH_UP_FRAMES` frames. Runner audio is
never dropped: nothing here can tell a late bunch for sure from a runner
sending ahead of real time on purpose (text-to-speech does).
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
    "MAX_LEAD",
    "MIN_SPACING",
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
# Two packets are never closer than this: a frame period less the tolerance.
MIN_SPACING = FRAME_DURATION - TOLERANCE
# How far the grid may move earlier than the timestamps (rules 2 and 6): two
# frame periods and a pacer tick. One period and a tick take up the longest
# wait a runner frame meets after a silence packet (the spacing and a tick),
# so that an echo locks on whatever its phase; and after a runner frame came
# too late for its slot (silence took it), they let the stream win back the
# whole frame period. The second period lets a runner that stalled win back
# up to two more frames of backlog. A receiver sees packets arriving up to
# 45 ms early for their timestamps. An adaptive jitter buffer (softphones,
# WebRTC, media gateways) holds them; a fixed one with less room than that may
# drop one right after a runner stall, the price of not keeping the stall as
# delay. A runner with jitter of its own has more of it passed on, as its
# frames go out when they come, within the lead.
MAX_LEAD = 2 * FRAME_DURATION + 0.0025
# After a stall, frames catch up with a burst of at most this many: 60 ms is
# the smallest jitter buffer commonly configured on carrier equipment and
# softphones. Further behind, the missed frame periods are skipped.
MAX_CATCH_UP_FRAMES = 3
_MAX_CATCH_UP = MAX_CATCH_UP_FRAMES * FRAME_DURATION

# Runner audio that comes at least this long after the audio before it, one
# frame or less, comes on its own: a runner streaming in real time, whose
# frames may move the grid (rule 2). A quarter of a frame period: an echo's
# frame right after a late one still counts; a runner sending ahead of real
# time (frames back to back) does not.
_ON_ITS_OWN = FRAME_DURATION / 4

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
        "_arrived",
        "_deferred_slot",
        "_fill_lead",
        "_frames",
        "_lead",
        "_opens",
        "_paced",
        "_payload_type",
        "_quiet_until",
        "_silence",
        "_slot",
        "_stats",
        "_streaming",
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
        # How far the timestamps run ahead of the grid (rules 2 and 3).
        self._lead = 0.0
        # When a runner frame may next go out: one that may move the grid
        # earlier (rule 2), and any other.
        self._opens = 0.0
        self._paced = 0.0
        # When the runner's audio last arrived, and whether the newest frame
        # came on its own, a while after the audio before it (a runner
        # streaming in real time); only then may the queue move the grid.
        self._arrived = float("-inf")
        self._streaming = False
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
    def lead(self) -> float:
        """How far, in seconds, the timestamps run ahead of the grid (rule 2)."""
        return self._lead

    @property
    def next_wake(self) -> float | None:
        """When the stream next has something to do: send a queued frame, or fill.

        ``None`` before :meth:`start`.
        """
        slot = self._slot
        if slot is None:
            return None
        if self._frames:
            return self._opening()
        fill = slot + self._lead + self._fill_lead
        quiet = self._quiet_until
        return quiet if quiet > fill else fill

    def start(self, now: float) -> None:
        """Start the grid at ``now`` (no effect once started)."""
        if self._slot is None:
            self._slot = now
            self._opens = self._paced = now - EARLY_TOLERANCE

    def set_codec(self, payload_type: int, *, alaw: bool) -> None:
        """Send with ``payload_type``, transcoding to A-law if ``alaw``."""
        self._payload_type = payload_type
        self._to_alaw = alaw
        self._silence = _ALAW_SILENCE_FRAME if alaw else _ULAW_SILENCE_FRAME

    def play(self, now: float, ulaw: bytes, *, sending: bool) -> bytes | None:
        """Queue the runner's audio; return the packet to send at once, if due."""
        streaming = now - self._arrived >= _ON_ITS_OWN and len(ulaw) <= FRAME_BYTES
        self._arrived = now
        self._streaming = streaming
        if (
            sending
            and self._slot is not None
            and now + _CLOCK_SLACK >= (self._opens if streaming else self._paced)
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
            if now + _CLOCK_SLACK < self._opening():
                return None
            return self._take_slot(now, self.queue.next_frame(), sending)
        # Silence waits out the lead first (rule 3).
        due = slot + self._lead
        if now + _CLOCK_SLACK < due + self._fill_lead or now < self._quiet_until:
            return None
        if now - due > FILL_DELAY and self._deferred_slot is None:
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
        if (
            not sending
            or self._slot is None
            or not self._frames
            or now + _CLOCK_SLACK < self._opening()
        ):
            return None
        return self._take_slot(now, self.queue.next_frame(), sending)

    def _opening(self) -> float:
        # The frame at the head of the queue may move the grid (rules 2 and 6)
        # only when the newest frame came on its own and at most a few frames
        # wait: a runner streaming in real time, and what it left when it
        # stalled. A larger backlog is paced until it is down to that.
        if self._streaming and len(self._frames) <= MAX_CATCH_UP_FRAMES:
            return self._opens
        return self._paced

    def _take_slot(
        self, now: float, frame: bytes | None, sending: bool
    ) -> bytes | None:
        slot = self._slot
        assert slot is not None
        late = now - slot
        lead = self._lead
        if late < -EARLY_TOLERANCE - _CLOCK_SLACK:
            # Rule 2: the grid moves earlier to the frame; the timestamp stays.
            lead -= late
            late = 0.0
            slot = now
        elif frame is None:
            # Silence is due by the timestamps, not the grid (rule 3).
            late -= lead
        elif late > 0.0 and lead > 0.0:
            # Rule 3: a late frame pays the lead back first.
            paid = late if late < lead else lead
            slot += paid
            late -= paid
            lead -= paid
        if late > 0.0:
            if late > _MAX_CATCH_UP or (
                frame is not None and late <= FILL_DELAY and self._starts_talkspurt
            ):
                self._move_grid(late)
                slot = now
                lead = 0.0  # (a frame paid it all back; silence re-anchors)
            elif late > FILL_DELAY and frame is None:
                # Catching up after a stall: silence no closer than the tolerance.
                self._quiet_until = now + MIN_SPACING
        if late <= FILL_DELAY:
            self._deferred_slot = None
        self._lead = lead
        self._slot = slot = slot + FRAME_DURATION
        # The next runner frame may go out from the early tolerance before its
        # slot, or earlier by what is left of the lead, but never closer than
        # the spacing to this packet (unless catching up after a stall).
        early = MAX_LEAD - lead
        opens = slot - (early if early > EARLY_TOLERANCE else EARLY_TOLERANCE)
        paced = slot - EARLY_TOLERANCE
        spaced = now + MIN_SPACING if late <= FILL_DELAY else paced
        self._opens = opens if opens > spaced else spaced
        self._paced = paced if paced > spaced else spaced
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
