"""Building Media Streams messages: the router's :class:`StreamEncoder` and the runner's."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

from router.runner.protocol.messages import (
    AUDIO_ENCODING,
    BYTES_PER_MS,
    DTMF_DIGITS,
    DTMF_TRACK,
    MEDIA_TRACK,
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    SAMPLE_RATE,
    RunnerProtocolError,
    b64encode,
    json_str,
)

__all__ = [
    "RunnerMediaBuilder",
    "StreamEncoder",
    "new_stream_sid",
    "runner_clear",
    "runner_mark",
    "runner_media",
]


def new_stream_sid() -> str:
    """Return a fresh stream id shaped like Twilio's: ``MZ`` and 32 hex digits."""
    return "MZ" + secrets.token_hex(16)


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
        self._sid_field = '"streamSid":' + json_str(stream_sid)

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
            "tracks": [MEDIA_TRACK],
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
            f'"media":{{"track":"{MEDIA_TRACK}","chunk":"{self.chunk}",'
            f'"timestamp":"{timestamp}","payload":"{b64encode(ulaw)}"}}}}'
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
        return self._control("dtmf", {"dtmf": {"track": DTMF_TRACK, "digit": digit}})

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


class RunnerMediaBuilder:
    """Builds a runner's ``media`` messages for one stream from a template.

    The JSON around the payload is fixed per stream, and base64 needs no JSON
    escaping, so a message is two string concatenations.
    """

    def __init__(self, stream_sid: str) -> None:
        """Prepare the template for stream ``stream_sid``."""
        self._head = f'{{"event":"media","streamSid":{json_str(stream_sid)},'
        self._head += '"media":{"payload":"'

    def from_base64(self, payload_b64: str) -> str:
        """Return a message whose payload is ``payload_b64``, known to be base64."""
        return self._head + payload_b64 + '"}}'

    def from_ulaw(self, ulaw: bytes) -> str:
        """Return a message carrying ``ulaw`` for the caller."""
        return self._head + b64encode(ulaw) + '"}}'


def runner_media(stream_sid: str, ulaw: bytes) -> str:
    """Return a runner ``media`` message carrying ``ulaw`` for the caller."""
    return RunnerMediaBuilder(stream_sid).from_ulaw(ulaw)


def runner_mark(stream_sid: str, name: str) -> str:
    """Return a runner ``mark`` message placing ``name`` after its queued audio."""
    return json.dumps(
        {"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}
    )


def runner_clear(stream_sid: str) -> str:
    """Return a runner ``clear`` message dropping all queued audio."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})
