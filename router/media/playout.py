"""The runner's half of a media stream: audio and marks queued for playout.

:class:`PlayoutQueue` is sans-I/O. The runner's audio arrives in chunks of any
length; the queue re-cuts it into 160-byte (20 ms) μ-law frames and hands one out
per playout tick. Marks are placed between frames and reported once every frame
queued before them has been played (or dropped). The queue is bounded: when it
is full the oldest frames are dropped, so a runner that sends audio much faster
than real time cannot make the router hold minutes of audio per call.
"""

from __future__ import annotations

from collections import deque

from .g711 import FRAME_BYTES, ULAW_SILENCE
from .stats import MediaStats

__all__ = ["PlayoutQueue"]

_SILENCE_BYTE = bytes([ULAW_SILENCE])


class PlayoutQueue:
    """μ-law frames waiting to be played to the caller, with marks between them.

    Args:
        max_frames: how many frames the queue holds before dropping the oldest.
        stats: counters to update.

    Raises:
        ValueError: ``max_frames`` is smaller than 1.
    """

    def __init__(self, *, max_frames: int, stats: MediaStats) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, not {max_frames}")
        self._max_frames = max_frames
        self._stats = stats
        self.frames: deque[bytes] = deque()
        """The whole frames waiting, oldest first; read-only for others."""
        self._partial = bytearray()
        self._partial_waited = False
        # Marks are kept apart from the frames, each with the count of frames
        # ever queued before it; a mark is due once that many frames are done
        # (played, dropped or cleared). Dropping a frame thus never loses a mark.
        self.marks: deque[tuple[int, str]] = deque()
        """Marks not reported yet, with their position; read-only for others."""
        self._frames_queued = 0
        self._frames_done = 0

    @property
    def queued_frames(self) -> int:
        """Whole frames waiting to be played (a partial tail is not counted)."""
        return len(self.frames)

    def play(self, ulaw: bytes) -> None:
        """Queue μ-law audio of any length behind what is already queued.

        A tail shorter than a frame waits for the next chunk; if none comes by
        the second tick that finds the queue empty, it is padded with silence.
        """
        self._partial_waited = False
        partial = self._partial
        if not partial and len(ulaw) == FRAME_BYTES:
            self._enqueue(ulaw)
            return
        partial += ulaw
        whole = len(partial) - len(partial) % FRAME_BYTES
        with memoryview(partial) as view:
            for start in range(0, whole, FRAME_BYTES):
                self._enqueue(bytes(view[start : start + FRAME_BYTES]))
        del partial[:whole]

    def take_now(self, ulaw: bytes) -> bool:
        """Play one whole frame at once, if nothing is queued before it.

        The frame counts as queued and played (marks and counters as if it
        went through the queue), without touching the queue.

        Returns:
            Whether the frame was taken; if not, nothing was done.
        """
        if self.frames or self._partial or len(ulaw) != FRAME_BYTES:
            return False
        self._partial_waited = False
        self._frames_queued += 1
        self._frames_done += 1
        self._stats.frames_played += 1
        return True

    def mark(self, name: str) -> None:
        """Place a mark behind everything queued so far.

        A partial tail is padded with silence first: the mark must follow audio
        that is actually played, not audio waiting for more bytes.
        """
        self._flush_partial()
        self.marks.append((self._frames_queued, name))

    def clear(self) -> list[str]:
        """Drop every queued frame and mark now.

        Returns:
            The names of the marks that had not been played, in queue order.
        """
        self.frames.clear()
        self._partial.clear()
        self._frames_done = self._frames_queued
        names = [name for _position, name in self.marks]
        self.marks.clear()
        return names

    def next_frame(self) -> bytes | None:
        """Take the frame to play in this tick, or ``None`` if nothing is queued."""
        frames = self.frames
        if not frames and self._partial:
            # A tail is padded only once a whole tick passed without more audio:
            # a runner streaming in odd-sized chunks must not get silence spliced
            # into the middle of its speech.
            if not self._partial_waited:
                self._partial_waited = True
                return None
            self._flush_partial()
        if not frames:
            return None
        self._frames_done += 1
        self._stats.frames_played += 1
        return frames.popleft()

    def pop_played_mark(self) -> str | None:
        """Take the next mark whose audio has all been played, or ``None``."""
        marks = self.marks
        if marks and marks[0][0] <= self._frames_done:
            return marks.popleft()[1]
        return None

    def _enqueue(self, frame: bytes) -> None:
        frames = self.frames
        if len(frames) >= self._max_frames:
            frames.popleft()
            self._frames_done += 1
            self._stats.frames_dropped_overflow += 1
        frames.append(frame)
        self._frames_queued += 1

    def _flush_partial(self) -> None:
        partial = self._partial
        if partial:
            padding = _SILENCE_BYTE * (FRAME_BYTES - len(partial))
            self._enqueue(bytes(partial) + padding)
            partial.clear()
