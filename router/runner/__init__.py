"""The runner bridge: Twilio Media Streams over WebSocket.

:mod:`router.runner.protocol` builds and parses the messages (sans I/O),
:mod:`router.runner.ws` carries them over WebSocket connections,
:mod:`router.runner.client` bridges one call to its runner, and
:mod:`router.runner.echo` is the built-in echo runner used by the demo and tests.
"""

from __future__ import annotations

from router.runner.client import (
    MediaSink,
    RunnerSession,
    RunnerStats,
    RunnerUnavailable,
    StreamStart,
)
from router.runner.echo import EchoRunner, main_echo_runner, serve_echo_runner
from router.runner.protocol import RunnerProtocolError, new_stream_sid

__all__ = [
    "EchoRunner",
    "MediaSink",
    "RunnerProtocolError",
    "RunnerSession",
    "RunnerStats",
    "RunnerUnavailable",
    "StreamStart",
    "main_echo_runner",
    "new_stream_sid",
    "serve_echo_runner",
]
