"""The Twilio Media Streams dialect spoken between the router and a runner, sans I/O.

The router is the WebSocket client and plays Twilio's part: it sends ``connected``,
``start``, ``media``, ``dtmf``, ``mark`` and ``stop``. The runner answers with
``media``, ``mark`` and ``clear``. Field names and value types follow Twilio's
messages exactly (``sequenceNumber``, ``chunk`` and ``timestamp`` are strings,
``sampleRate`` and ``channels`` are numbers), because agent frameworks read them
with Twilio serializers that expect exactly that shape.

This package builds and parses JSON text; it never touches a socket or a clock.

* :mod:`~router.runner.protocol.messages`: the constants, the message dataclasses
  and :exc:`RunnerProtocolError`.
* :mod:`~router.runner.protocol.encode`: :class:`StreamEncoder` builds router ->
  runner messages for one stream and keeps its counters; the ``runner_*`` builders
  are the runner's side, used by the echo runner and by tests.
* :mod:`~router.runner.protocol.parse`: :func:`parse_runner_message` reads runner ->
  router messages; :func:`parse_router_message` reads router -> runner messages as a
  runner would.
"""

from __future__ import annotations

from router.runner.protocol.encode import (
    RunnerMediaBuilder,
    StreamEncoder,
    new_stream_sid,
    runner_clear,
    runner_mark,
    runner_media,
)
from router.runner.protocol.messages import (
    AUDIO_ENCODING,
    BYTES_PER_MS,
    DTMF_DIGITS,
    MAX_RUNNER_MESSAGE,
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    SAMPLE_RATE,
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
)
from router.runner.protocol.parse import (
    parse_router_message,
    parse_runner_message,
    read_router_message,
)

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
    "RouterMediaText",
    "RouterMessage",
    "RouterStart",
    "RouterStop",
    "RunnerClear",
    "RunnerMark",
    "RunnerMedia",
    "RunnerMediaBuilder",
    "RunnerMessage",
    "RunnerProtocolError",
    "StreamEncoder",
    "new_stream_sid",
    "parse_router_message",
    "parse_runner_message",
    "read_router_message",
    "runner_clear",
    "runner_mark",
    "runner_media",
]
