"""Health, readiness and metrics over plain HTTP/1.1.

A deliberately small server: GET only, one request per connection, bounded
request size and read time. It answers

* ``/healthz``: 200 while the process runs;
* ``/readyz``: 200 when the store answers, 503 otherwise (or while draining);
* ``/metrics``: Prometheus text format;
* ``/v1/status``: the same figures as JSON.
"""

from __future__ import annotations

import asyncio
import json

import structlog

from router.numbers.store import Store, StoreError
from router.server import SipRouter

__all__ = ["HealthServer", "router_status"]

log = structlog.get_logger("router.http")

# A health probe's request is a few hundred bytes; 8 KiB is the common limit
# for a request head in HTTP servers.
MAX_REQUEST_HEAD = 8192
READ_TIMEOUT = 5.0


def router_status(sip: SipRouter) -> dict[str, int]:
    """Figures about the running router, for /metrics and /v1/status."""
    status = {
        "active_calls": sip.active_calls,
        "rtp_ports_in_use": sip.port_pool.in_use,
        "sip_transactions": sip.layer.server_transactions
        + sip.layer.client_transactions,
        "sip_parse_errors": sip.transports.parse_errors,
        "tcp_connections": len(sip.transports.connections),
    }
    status.update({name: count for name, count in sorted(sip.counters.items())})
    return status


class HealthServer:
    """The HTTP listener for probes and metrics."""

    def __init__(self, sip: SipRouter, store: Store) -> None:
        self.sip = sip
        self.store = store
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host``:``port`` (0 picks a free port)."""
        self.server = await asyncio.start_server(self._serve, host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("http_listening", bind=host, port=self.port)

    async def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            status, content_type, body = await self._answer(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, content_type, body = 400, "text/plain", b"bad request\n"
        except ConnectionError:
            writer.close()
            return
        writer.write(
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        try:
            await writer.drain()
        finally:
            writer.close()

    async def _answer(self, head: bytes) -> tuple[int, str, bytes]:
        if len(head) > MAX_REQUEST_HEAD:
            return 431, "text/plain", b"request head too large\n"
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or parts[0] != b"GET":
            return 405, "text/plain", b"only GET\n"
        path = parts[1].split(b"?", 1)[0].decode("ascii", "replace")
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            return await self._ready()
        if path == "/metrics":
            return (
                200,
                "text/plain; version=0.0.4",
                _prometheus(router_status(self.sip)),
            )
        if path == "/v1/status":
            body = json.dumps(router_status(self.sip)).encode()
            return 200, "application/json", body
        return 404, "text/plain", b"not found\n"

    async def _ready(self) -> tuple[int, str, bytes]:
        if self.sip.draining:
            return 503, "text/plain", b"draining\n"
        try:
            await self.store.ping()
        except StoreError:
            return 503, "text/plain", b"store unavailable\n"
        return 200, "text/plain", b"ready\n"


def _prometheus(status: dict[str, int]) -> bytes:
    lines = [f"sip_router_{name} {value}" for name, value in status.items()]
    return ("\n".join(lines) + "\n").encode()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
