"""The Twilio Media Streams dialect spoken between the router and a runner, sans I/O.

The router is the WebSocket client and plays Twilio's part: it sends ``connected``,
``start``, ``media``, ``dtmf``, ``mark`` and ``stop``. The runner answers with
``media``, ``mark`` and ``clear``. Field names and value types follow Twilio's
messages exactly (``sequenceNumber``, ``chunk`` and ``timestamp`` are strings,
``sampleRate`` and ``channels`` are numbers), because agent frameworks read them
with Twilio serializers that expect exactly that shape.

This module builds and parses JSON text; it never touches a socket or a clock.

* :class:`StreamEncoder` builds router -> runner messages for one stream and
  keeps its counters.
* :func:`parse_runner_message` reads runner -> router messages.
* :func:`parse_router_message` and the ``runner_*`` builders are the runner's
  side of the same dialect, used by the echo runner and by tests.
"""

from __future__ import annotations

import binascii
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AUDIO_ENCODING",
    "BYTES_PER_MS",
    "DTMF_DIGITS",
    "MAX_RUNNER_MESSAGE",
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "SAMPLE_RATE",
    "RouterConnected",
    "RouterDtmf",
    "RouterMark",
    "RouterMedia",
    "RouterMessage",
    "RouterStart",
    "RouterStop",
    "RunnerClear",
    "RunnerMark",
    "RunnerMedia",
    "RunnerMessage",
    "RunnerProtocolError",
    "StreamEncoder",
    "new_stream_sid",
    "parse_router_message",
    "parse_runner_message",
    "runner_clear",
    "runner_mark",
    "runner_media",
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
_MEDIA_TRACK = "inbound"
_DTMF_TRACK = "inbound_track"


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


def new_stream_sid() -> str:
    """Return a fresh stream id shaped like Twilio's: ``MZ`` and 32 hex digits."""
    return "MZ" + secrets.token_hex(16)


def _json_str(value: str) -> str:
    """Return ``value`` as a JSON string literal, quotes included."""
    return json.dumps(value, ensure_ascii=False)


def _b64encode(data: bytes) -> str:
    """Return standard base64 of ``data`` without a trailing newline."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _b64decode(text: str) -> bytes:
    """Decode strict standard base64, raising :exc:`RunnerProtocolError`."""
    # RFC 4648 §3.3: characters outside the alphabet (line breaks included) are
    # rejected rather than skipped, so a corrupted payload is reported, not played.
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise RunnerProtocolError(f"invalid base64 payload: {exc}") from None


class StreamEncoder:
    """Builds the router -> runner messages of one stream and keeps its counters.

    Twilio numbers every message after ``connected`` with ``sequenceNumber``
    (starting at 1 with ``start``) and every media message with ``chunk``
    (starting at 1); ``timestamp`` is the position of the frame in the caller's
    audio in milliseconds since the stream started.

    Media messages are built by formatting a template prepared once per stream:
    base64 text (RFC 4648 §4) is drawn from ``[A-Za-z0-9+/=]`` and needs no JSON
    escaping, so a 20 ms frame costs one base64 encode and one string format, not
    a ``json.dumps`` of a fresh dictionary.
    """

    def __init__(self, stream_sid: str, *, account_sid: str, call_sid: str) -> None:
        """Prepare an encoder for the stream ``stream_sid`` of call ``call_sid``.

        ``account_sid`` carries the pipe id, ``call_sid`` our call id.
        """
        self.stream_sid = stream_sid
        self.account_sid = account_sid
        self.call_sid = call_sid
        self.sequence_number = 0
        self.chunk = 0
        self.audio_bytes = 0
        self._sid_field = '"streamSid":' + _json_str(stream_sid)

    def _next_sequence(self) -> int:
        self.sequence_number += 1
        return self.sequence_number

    def connected(self) -> str:
        """Return the ``connected`` message; it carries no sequence number."""
        return json.dumps(
            {
                "event": "connected",
                "protocol": PROTOCOL_NAME,
                "version": PROTOCOL_VERSION,
            }
        )

    def start(self, custom_parameters: Mapping[str, str] | None = None) -> str:
        """Return the ``start`` message.

        Raises:
            RunnerProtocolError: a custom parameter name or value is not a string
                (Twilio's ``customParameters`` maps strings to strings).
        """
        parameters = dict(custom_parameters or {})
        for key, value in parameters.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise RunnerProtocolError(
                    f"custom parameter {key!r} must map str to str"
                )
        start = {
            "streamSid": self.stream_sid,
            "accountSid": self.account_sid,
            "callSid": self.call_sid,
            "tracks": [_MEDIA_TRACK],
            "customParameters": parameters,
            "mediaFormat": {
                "encoding": AUDIO_ENCODING,
                "sampleRate": SAMPLE_RATE,
                "channels": 1,
            },
        }
        return self._control("start", {"start": start})

    def media(self, ulaw: bytes) -> str:
        """Return a ``media`` message carrying ``ulaw`` and advance the audio clock."""
        sequence = self._next_sequence()
        self.chunk += 1
        timestamp = self.audio_bytes // BYTES_PER_MS
        self.audio_bytes += len(ulaw)
        return (
            f'{{"event":"media","sequenceNumber":"{sequence}",{self._sid_field},'
            f'"media":{{"track":"{_MEDIA_TRACK}","chunk":"{self.chunk}",'
            f'"timestamp":"{timestamp}","payload":"{_b64encode(ulaw)}"}}}}'
        )

    def skip_media(self, length: int) -> None:
        """Account for ``length`` bytes of caller audio that were not sent.

        The audio clock still advances, so the runner sees the gap in ``timestamp``.
        """
        self.audio_bytes += length

    def dtmf(self, digit: str) -> str:
        """Return a ``dtmf`` message for one digit.

        Raises:
            RunnerProtocolError: ``digit`` is not one of 0-9, ``*``, ``#``, A-D.
        """
        if digit not in DTMF_DIGITS:
            raise RunnerProtocolError(f"not a DTMF digit: {digit!r}")
        return self._control("dtmf", {"dtmf": {"track": _DTMF_TRACK, "digit": digit}})

    def mark(self, name: str) -> str:
        """Return a ``mark`` message telling the runner its mark ``name`` has played."""
        return self._control("mark", {"mark": {"name": name}})

    def stop(self) -> str:
        """Return the ``stop`` message that ends the stream."""
        body = {"stop": {"accountSid": self.account_sid, "callSid": self.call_sid}}
        return self._control("stop", body)

    def _control(self, event: str, body: dict[str, Any]) -> str:
        message = {
            "event": event,
            "sequenceNumber": str(self._next_sequence()),
            "streamSid": self.stream_sid,
            **body,
        }
        return json.dumps(message, ensure_ascii=False)


# Runner-side builders: what a runner sends to the router.


def runner_media(stream_sid: str, ulaw: bytes) -> str:
    """Return a runner ``media`` message carrying ``ulaw`` for the caller."""
    return (
        f'{{"event":"media","streamSid":{_json_str(stream_sid)},'
        f'"media":{{"payload":"{_b64encode(ulaw)}"}}}}'
    )


def runner_mark(stream_sid: str, name: str) -> str:
    """Return a runner ``mark`` message placing ``name`` after its queued audio."""
    return json.dumps(
        {"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}
    )


def runner_clear(stream_sid: str) -> str:
    """Return a runner ``clear`` message dropping all queued audio."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})


# Parsing.


def _load_object(text: str | bytes) -> dict[str, Any]:
    """Decode one JSON object, bounded by :data:`MAX_RUNNER_MESSAGE`."""
    if len(text) > MAX_RUNNER_MESSAGE:
        raise RunnerProtocolError(
            f"message of {len(text)} bytes exceeds {MAX_RUNNER_MESSAGE}"
        )
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and undecodable UTF-8; deeply nested
        # arrays exhaust the parser's recursion instead.
        raise RunnerProtocolError(f"invalid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise RunnerProtocolError("message is not a JSON object")
    return message


def _get_object(container: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = container.get(key)
    if not isinstance(value, dict):
        raise RunnerProtocolError(f"{key!r} must be an object")
    return value


def _get_str(container: Mapping[str, Any], key: str) -> str:
    value = container.get(key)
    if not isinstance(value, str):
        raise RunnerProtocolError(f"{key!r} must be a string")
    return value


def _get_int_str(container: Mapping[str, Any], key: str) -> int:
    """Read a counter that Twilio sends as a decimal string, e.g. ``"12"``."""
    value = _get_str(container, key)
    if not value.isascii() or not value.isdigit():
        raise RunnerProtocolError(f"{key!r} must be a decimal string")
    return int(value)


def _get_int(container: Mapping[str, Any], key: str) -> int:
    value = container.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RunnerProtocolError(f"{key!r} must be an integer")
    return value


def _get_event(message: Mapping[str, Any]) -> str:
    return _get_str(message, "event")


def parse_runner_message(text: str | bytes) -> RunnerMessage | None:
    """Parse one runner -> router message.

    Returns:
        :class:`RunnerMedia`, :class:`RunnerMark` or :class:`RunnerClear`, or
        ``None`` for an event this dialect does not define (ignored, so runners
        may add their own).

    Raises:
        RunnerProtocolError: the text is larger than :data:`MAX_RUNNER_MESSAGE`,
            not a JSON object, lacks a string ``event``, has fields of the wrong
            type, or carries a payload that is not strict base64.
    """
    message = _load_object(text)
    event = _get_event(message)
    if event == "media":
        media = _get_object(message, "media")
        return RunnerMedia(_b64decode(_get_str(media, "payload")))
    if event == "mark":
        return RunnerMark(_get_str(_get_object(message, "mark"), "name"))
    if event == "clear":
        return RunnerClear()
    return None


def parse_router_message(text: str | bytes) -> RouterMessage | None:
    """Parse one router -> runner message, as a runner would.

    Returns:
        One of the ``Router*`` dataclasses, or ``None`` for an unknown event.

    Raises:
        RunnerProtocolError: as for :func:`parse_runner_message`, and for counters
            that are not decimal strings.
    """
    message = _load_object(text)
    event = _get_event(message)
    parser = _ROUTER_PARSERS.get(event)
    return parser(message) if parser is not None else None


def _parse_connected(message: Mapping[str, Any]) -> RouterConnected:
    return RouterConnected(_get_str(message, "protocol"), _get_str(message, "version"))


def _parse_start(message: Mapping[str, Any]) -> RouterStart:
    start = _get_object(message, "start")
    tracks = start.get("tracks")
    if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
        raise RunnerProtocolError("'tracks' must be a list of strings")
    parameters = _get_object(start, "customParameters")
    if not all(isinstance(value, str) for value in parameters.values()):
        raise RunnerProtocolError("'customParameters' values must be strings")
    media_format = _get_object(start, "mediaFormat")
    return RouterStart(
        stream_sid=_get_str(start, "streamSid"),
        account_sid=_get_str(start, "accountSid"),
        call_sid=_get_str(start, "callSid"),
        tracks=tuple(tracks),
        custom_parameters=parameters,
        encoding=_get_str(media_format, "encoding"),
        sample_rate=_get_int(media_format, "sampleRate"),
        channels=_get_int(media_format, "channels"),
    )


def _parse_media(message: Mapping[str, Any]) -> RouterMedia:
    media = _get_object(message, "media")
    return RouterMedia(
        sequence_number=_get_int_str(message, "sequenceNumber"),
        chunk=_get_int_str(media, "chunk"),
        timestamp_ms=_get_int_str(media, "timestamp"),
        payload=_b64decode(_get_str(media, "payload")),
    )


def _parse_dtmf(message: Mapping[str, Any]) -> RouterDtmf:
    return RouterDtmf(_get_str(_get_object(message, "dtmf"), "digit"))


def _parse_mark(message: Mapping[str, Any]) -> RouterMark:
    return RouterMark(_get_str(_get_object(message, "mark"), "name"))


def _parse_stop(message: Mapping[str, Any]) -> RouterStop:
    _get_object(message, "stop")
    return RouterStop()


_ROUTER_PARSERS: dict[str, Callable[[Mapping[str, Any]], RouterMessage]] = {
    "connected": _parse_connected,
    "start": _parse_start,
    "media": _parse_media,
    "dtmf": _parse_dtmf,
    "mark": _parse_mark,
    "stop": _parse_stop,
}
