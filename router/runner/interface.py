"""What a runner session and its call exchange: stream metadata, audio sink, failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["MediaSink", "RunnerStats", "RunnerUnavailable", "StreamStart"]


@dataclass(frozen=True)
class StreamStart:
    """What the ``start`` message tells the runner about the call.

    ``account_sid`` carries the pipe id and ``call_sid`` our call id, as the
    design maps them onto Twilio's fields.
    """

    call_sid: str
    stream_sid: str
    account_sid: str
    custom_parameters: dict[str, str] = field(default_factory=dict)


class MediaSink(Protocol):
    """Where the runner's audio goes; implemented by the call's media session."""

    def play(self, ulaw: bytes) -> None:
        """Queue mu-law audio of any length for the caller."""

    def mark(self, name: str) -> None:
        """Place a marker after the audio queued so far; report it once played."""

    def clear(self) -> list[str]:
        """Drop all queued audio and return the names of the marks it held."""


class RunnerUnavailable(Exception):
    """The runner could not be reached or refused the stream.

    ``reason`` says why in a few words: connect refused, timed out, handshake
    rejected, TLS failure, closed early.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class RunnerStats:
    """Counters for one session, read by metrics and tests."""

    frames_sent: int = 0
    frames_dropped: int = 0
    control_dropped: int = 0
    media_received: int = 0
    media_received_bytes: int = 0
    marks_received: int = 0
    clears_received: int = 0
    invalid_messages: int = 0
    unknown_messages: int = 0
