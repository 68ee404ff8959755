"""Short, credential-free reasons for a runner connection that failed or ended.

They go into logs and into the SIP response a failed call gets, so they name the
cause in a few words and never carry a URL's user info or query.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)
from websockets.frames import Close
from websockets.protocol import Protocol

__all__ = ["describe_close_frame", "describe_closure", "describe_failure", "redact_url"]


def redact_url(url: str) -> str:
    """Return ``url`` without user info and query, which may carry credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def describe_failure(exc: BaseException, timeout: float) -> str:
    """Turn a connection failure into a short reason for logs and SIP responses."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, InvalidStatus):
        return f"handshake rejected (HTTP {exc.response.status_code})"
    if isinstance(exc, InvalidHandshake):
        return f"handshake failed: {exc}"
    if isinstance(exc, InvalidURI):
        return "invalid runner URL"
    if isinstance(exc, ConnectionClosed):
        return "closed early"
    if isinstance(exc, ConnectionRefusedError):
        return "connect refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    return f"connect failed: {exc}"


def describe_closure(protocol: Protocol) -> str:
    """Say how the runner's connection ended, for ``on_closed``, from its protocol."""
    received, sent = protocol.close_rcvd, protocol.close_sent
    if received is not None:
        return f"runner closed ({describe_close_frame(received)})"
    if sent is not None:
        # RFC 6455 §7.1.7: we failed the connection (message too big, keepalive
        # ping timeout, ...) and did not wait for the runner's close frame.
        return f"runner connection failed ({describe_close_frame(sent)})"
    return "runner connection lost"


def describe_close_frame(frame: Close) -> str:
    """Return a close frame's code and, when it has one, its reason."""
    return f"{frame.code} {frame.reason}" if frame.reason else f"{frame.code}"
