"""Parsing Media Streams messages: runner -> router, and router -> runner as a runner reads them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from router.runner.protocol.messages import (
    MAX_RUNNER_MESSAGE,
    RouterConnected,
    RouterDtmf,
    RouterMark,
    RouterMedia,
    RouterMediaText,
    RouterMessage,
    RouterStart,
    RouterStop,
    RunnerClear,
    RunnerMark,
    RunnerMedia,
    RunnerMessage,
    RunnerProtocolError,
    b64decode,
)

__all__ = ["parse_router_message", "parse_runner_message", "read_router_message"]

# Fast paths for ``media``, nearly every message in either direction, in the exact
# shape our encoders (and Twilio-style runners) write it. Base64 (RFC 4648 §4) and
# decimal digits need no JSON escaping, and a string with no quote, backslash or
# control character is its own JSON text (RFC 8259 §7), so text that matches is
# exactly the object json.loads would return. Anything else, however valid, takes
# the general path.
_JSON_PLAIN_STRING = r'"[^"\\\x00-\x1f]*"'
_RUNNER_MEDIA = re.compile(
    r'\{"event":"media","streamSid":'
    + _JSON_PLAIN_STRING
    + r',"media":\{"payload":"([A-Za-z0-9+/=]*)"\}\}'
)
_ROUTER_MEDIA = re.compile(
    r'\{"event":"media","sequenceNumber":"([0-9]+)","streamSid":'
    + _JSON_PLAIN_STRING
    + r',"media":\{"track":"inbound","chunk":"([0-9]+)","timestamp":"([0-9]+)",'
    r'"payload":"([A-Za-z0-9+/=]*)"\}\}'
)


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
    if type(text) is str and len(text) <= MAX_RUNNER_MESSAGE:
        match = _RUNNER_MEDIA.fullmatch(text)
        if match is not None:
            return RunnerMedia(b64decode(match.group(1)))
    message = _load_object(text)
    event = _get_event(message)
    if event == "media":
        media = message.get("media")
        payload = media.get("payload") if type(media) is dict else None
        if type(payload) is not str:
            payload = _get_str(_get_object(message, "media"), "payload")
        return RunnerMedia(b64decode(payload))
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
    if type(text) is str and len(text) <= MAX_RUNNER_MESSAGE:
        match = _ROUTER_MEDIA.fullmatch(text)
        if match is not None:
            sequence, chunk, timestamp, payload = match.groups()
            return RouterMedia(
                int(sequence), int(chunk), int(timestamp), b64decode(payload)
            )
    message = _load_object(text)
    event = _get_event(message)
    parser = _ROUTER_PARSERS.get(event)
    return parser(message) if parser is not None else None


def read_router_message(text: str | bytes) -> RouterMessage | RouterMediaText | None:
    """Like :func:`parse_router_message`, but keep a media payload as base64 text.

    A ``media`` message becomes :class:`RouterMediaText`, its payload checked to
    be strict base64 but not handed over decoded, for a runner that forwards it.

    Raises:
        RunnerProtocolError: as for :func:`parse_router_message`.
    """
    if type(text) is str and len(text) <= MAX_RUNNER_MESSAGE:
        match = _ROUTER_MEDIA.fullmatch(text)
        if match is not None:
            sequence, chunk, timestamp, payload = match.groups()
            length = len(b64decode(payload))
            return RouterMediaText(
                int(sequence), int(chunk), int(timestamp), payload, length
            )
    message = _load_object(text)
    event = _get_event(message)
    if event == "media":
        return _read_media_text(message)
    parser = _ROUTER_PARSERS.get(event)
    return parser(message) if parser is not None else None


def _read_media_text(message: Mapping[str, Any]) -> RouterMediaText:
    media = _get_object(message, "media")
    payload = _get_str(media, "payload")
    return RouterMediaText(
        sequence_number=_get_int_str(message, "sequenceNumber"),
        chunk=_get_int_str(media, "chunk"),
        timestamp_ms=_get_int_str(media, "timestamp"),
        payload_b64=payload,
        length=len(b64decode(payload)),
    )


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
        payload=b64decode(_get_str(media, "payload")),
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
