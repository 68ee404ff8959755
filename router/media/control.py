"""The control protocol between the router and its media workers.

One stream socket per worker carries small JSON objects, each preceded by its
length as a 4-byte big-endian integer. Only control crosses it, a handful of
messages per call; audio never does (the worker owns both the RTP socket and
the runner's WebSocket of each call it carries).

Requests go from the router to a worker and carry ``req``, a number the reply
repeats: ``open``, ``connect``, ``close``, ``sync``, ``status`` get a ``reply``;
``configure`` and ``shutdown`` get none. A failed request's reply carries
``error`` (one of :data:`ERROR_KINDS`) and ``reason``. Events go from a worker
to the router unasked: ``ready`` once at start, then per bridge
``runner_closed``, ``inactive`` and ``dtmf``.

This module is sans-I/O apart from :func:`read_message`, which reads one
message from an :class:`asyncio.StreamReader`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import struct
from typing import Any

from ..runner.client import StreamStart
from ..sip.sdp import NegotiatedAudio
from .errors import MediaError
from .stats import MediaStats

__all__ = [
    "ERROR_KINDS",
    "HEADER",
    "MAX_MESSAGE_SIZE",
    "ControlError",
    "Message",
    "audio_from_wire",
    "audio_to_wire",
    "decode_body",
    "encode_message",
    "read_message",
    "start_from_wire",
    "start_to_wire",
    "stats_from_wire",
]

Message = dict[str, Any]

# The length prefix: an unsigned 32-bit big-endian byte count of the body.
HEADER = struct.Struct(">I")
# A ``start`` carries the INVITE's X- headers, and an INVITE is at most 64 KiB
# (the largest UDP datagram); 1 MiB leaves room for any message we send, and
# keeps a corrupted length from making us allocate gigabytes.
MAX_MESSAGE_SIZE = 1 << 20
# What a failed request's ``error`` names, and what the router raises for it.
ERROR_KINDS = frozenset({"ports", "runner", "media", "internal"})


# The fields of the values sent over the wire, and their types.
_AUDIO_TYPES: dict[str, type] = {
    "payload_type": int,
    "codec": str,
    "remote_address": str,
    "remote_port": int,
    "direction": str,
    "ptime": int,
}
_START_TYPES: dict[str, type] = {"call_sid": str, "stream_sid": str, "account_sid": str}


class ControlError(MediaError):
    """A control message that is too large, not JSON, or not an object."""


def encode_message(message: Message) -> bytes:
    """Frame ``message`` for the socket.

    Raises:
        ControlError: it does not fit :data:`MAX_MESSAGE_SIZE`.
    """
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_MESSAGE_SIZE:
        raise ControlError(f"control message of {len(body)} bytes is too large")
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> Message:
    """Parse one message body (without its length prefix).

    Raises:
        ControlError: the body is not a JSON object.
    """
    try:
        message = json.loads(body)
    except ValueError as error:
        raise ControlError(f"control message is not JSON: {error}") from None
    if not isinstance(message, dict):
        raise ControlError("control message is not a JSON object")
    return message


async def read_message(reader: asyncio.StreamReader) -> Message:
    """Read one message.

    Raises:
        asyncio.IncompleteReadError: the other end closed the socket.
        ControlError: the length is out of bounds or the body is not an object.
    """
    (length,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    if length > MAX_MESSAGE_SIZE:
        raise ControlError(f"control message of {length} bytes is too large")
    return decode_body(await reader.readexactly(length))


def audio_to_wire(audio: NegotiatedAudio) -> Message:
    """The negotiated audio as a JSON object."""
    return dataclasses.asdict(audio)


def audio_from_wire(data: Message) -> NegotiatedAudio:
    """Rebuild negotiated audio from :func:`audio_to_wire`'s object.

    Raises:
        ControlError: a field is missing, unknown or of the wrong type.
    """
    try:
        audio = NegotiatedAudio(**data)
    except TypeError as error:
        raise ControlError(f"bad negotiated audio: {error}") from None
    _check_types("negotiated audio", audio, _AUDIO_TYPES)
    if not isinstance(audio.dtmf_payload_type, int | None):
        raise ControlError("bad negotiated audio: dtmf_payload_type")
    return audio


def start_to_wire(start: StreamStart) -> Message:
    """The runner's ``start`` details as a JSON object."""
    return dataclasses.asdict(start)


def start_from_wire(data: Message) -> StreamStart:
    """Rebuild :class:`StreamStart` from :func:`start_to_wire`'s object.

    Raises:
        ControlError: a field is missing, unknown or of the wrong type.
    """
    try:
        start = StreamStart(**data)
    except TypeError as error:
        raise ControlError(f"bad stream start: {error}") from None
    _check_types("stream start", start, _START_TYPES)
    params = start.custom_parameters
    if not isinstance(params, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in params.items()
    ):
        raise ControlError("bad stream start: custom_parameters")
    return start


def stats_from_wire(data: object) -> MediaStats:
    """Rebuild media counters; unknown or malformed fields are left out."""
    stats = MediaStats()
    if isinstance(data, dict):
        for item in dataclasses.fields(stats):
            value = data.get(item.name)
            if isinstance(value, int):
                setattr(stats, item.name, value)
    return stats


def _check_types(what: str, value: object, types: dict[str, type]) -> None:
    for name, kind in types.items():
        field = getattr(value, name)
        # bool is an int to isinstance; no field here is a flag.
        if not isinstance(field, kind) or isinstance(field, bool):
            raise ControlError(f"bad {what}: {name}")
