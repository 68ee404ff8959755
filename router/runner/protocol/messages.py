"""The Media Streams dialect's constants, message dataclasses and error, sans I/O.

Also the two codecs every message shares: JSON string literals and strict base64.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass, field

__all__ = [
    "AUDIO_ENCODING",
    "BYTES_PER_MS",
    "DTMF_DIGITS",
    "DTMF_TRACK",
    "MAX_RUNNER_MESSAGE",
    "MEDIA_TRACK",
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "SAMPLE_RATE",
    "RouterConnected",
    "RouterDtmf",
    "RouterMark",
    "RouterMedia",
    "RouterMediaText",
    "RouterMessage",
    "RouterStart",
    "RouterStop",
    "RunnerClear",
    "RunnerMark",
    "RunnerMedia",
    "RunnerMessage",
    "RunnerProtocolError",
    "b64decode",
    "b64encode",
    "json_str",
]

# Largest runner -> router message we accept, in bytes. Runners may send a whole
# utterance of synthesised speech in one ``media`` message; 1 MiB of JSON carries
# about 786 KiB of mu-law once base64 is undone, i.e. over 90 seconds of audio at
# 8000 bytes per second, far beyond any single utterance, while still bounding the
# memory one misbehaving runner can make us hold. It is also the websockets default.
MAX_RUNNER_MESSAGE = 1024 * 1024

PROTOCOL_NAME = "Call"
PROTOCOL_VERSION = "1.0.0"

# RFC 3551 §4.5.14: PCMU is G.711 mu-law sampled at 8000 Hz, one byte per sample,
# so 8 bytes of payload per millisecond.
AUDIO_ENCODING = "audio/x-mulaw"
SAMPLE_RATE = 8000
BYTES_PER_MS = SAMPLE_RATE // 1000

# RFC 4733 §3.2: events 0-15 are the DTMF digits 0-9, *, # and A-D.
DTMF_DIGITS = frozenset("0123456789*#ABCD")

# Twilio names the caller's leg "inbound" in start.tracks and media.track, but
# "inbound_track" in dtmf.track.
MEDIA_TRACK = "inbound"
DTMF_TRACK = "inbound_track"


class RunnerProtocolError(ValueError):
    """A message that does not follow the Media Streams dialect.

    Raised for text that is too large, not JSON, not a JSON object, or whose
    fields have the wrong types or an undecodable base64 payload; also raised by
    the builders for values the dialect cannot carry.
    """


# Runner -> router messages.


@dataclass(frozen=True, slots=True)
class RunnerMedia:
    """Audio from the runner to play to the caller: mu-law bytes of any length."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class RunnerMark:
    """A marker the runner placed after its queued audio; echo it once played."""

    name: str


@dataclass(frozen=True, slots=True)
class RunnerClear:
    """The runner asks to drop all queued audio (the caller interrupted it)."""


RunnerMessage = RunnerMedia | RunnerMark | RunnerClear


# Router -> runner messages, as a runner reads them.


@dataclass(frozen=True, slots=True)
class RouterConnected:
    """First message on a stream: names the protocol and its version."""

    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class RouterStart:
    """Stream metadata, sent once after ``connected``."""

    stream_sid: str
    account_sid: str
    call_sid: str
    tracks: tuple[str, ...]
    custom_parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = AUDIO_ENCODING
    sample_rate: int = SAMPLE_RATE
    channels: int = 1


@dataclass(frozen=True, slots=True)
class RouterMedia:
    """One frame of the caller's audio."""

    sequence_number: int
    chunk: int
    timestamp_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class RouterMediaText:
    """One frame of the caller's audio, its payload kept as the base64 text it came in.

    For a runner that forwards the audio as it is (the echo runner): the text is
    known to be strict base64 of ``length`` bytes, so it can be sent on unchanged.
    """

    sequence_number: int
    chunk: int
    timestamp_ms: int
    payload_b64: str
    length: int


@dataclass(frozen=True, slots=True)
class RouterDtmf:
    """A DTMF digit the caller pressed."""

    digit: str


@dataclass(frozen=True, slots=True)
class RouterMark:
    """The runner's mark of this name has played to the caller."""

    name: str


@dataclass(frozen=True, slots=True)
class RouterStop:
    """The stream has ended (the call hung up)."""


RouterMessage = (
    RouterConnected | RouterStart | RouterMedia | RouterDtmf | RouterMark | RouterStop
)


def json_str(value: str) -> str:
    """Return ``value`` as a JSON string literal, quotes included."""
    return json.dumps(value, ensure_ascii=False)


def b64encode(data: bytes) -> str:
    """Return standard base64 of ``data`` without a trailing newline."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64decode(text: str) -> bytes:
    """Decode strict standard base64, raising :exc:`RunnerProtocolError`."""
    # RFC 4648 §3.3: characters outside the alphabet (line breaks included) are
    # rejected rather than skipped, so a corrupted payload is reported, not played.
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise RunnerProtocolError(f"invalid base64 payload: {exc}") from None
