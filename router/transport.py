"""asyncio SIP transports: UDP and TCP endpoints that feed the sans-I/O core.

TCP connections themselves are :mod:`router.transport_tcp`.

Both transports parse what they receive into :class:`~router.sip.message.Request`
or :class:`~router.sip.message.Response` objects and hand them, with the
:class:`~router.sip.transaction.Peer` they came from, to one callback. Sending
follows RFC 3261 §18: responses go back on the connection the request came on
while it is open, otherwise to the address §18.2.2 names (``received`` and
``rport``, then the Via sent-by); requests go to the next hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from router.addresses import ip_address
from router.sip.errors import SipParseError
from router.sip.message import Request, Response, make_response, parse_message
from router.sip.transaction import Outgoing, Peer
from router.transport_tcp import TcpConnection, TcpConnections

__all__ = [
    "MAX_UDP_DATAGRAM",
    "SipTransports",
    "TransportLimits",
    "response_destination",
]

log = structlog.get_logger("router.transport")

# The largest UDP payload IPv4 can carry: 65,535 - 20 (IP) - 8 (UDP).
MAX_UDP_DATAGRAM = 65_507

# Socket buffers sized for bursts of thousands of datagrams; the kernel caps
# them at net.core.rmem_max / wmem_max.
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024

# With port 0, how many free UDP ports to try before giving up on finding one
# whose TCP twin is free too.
PORT_ZERO_ATTEMPTS = 20

MessageHandler = Callable[[Request | Response, Peer], None]


@dataclass(frozen=True)
class TransportLimits:
    """Limits on what a peer can make the transports hold."""

    max_message_size: int = 65_535
    max_tcp_connections: int = 1024
    # RFC 5626 keep-alives come every ~2 minutes; an idle connection past
    # this is dropped so abandoned connections cannot pile up.
    tcp_idle_timeout: float = 300.0
    tcp_connect_timeout: float = 5.0


def response_destination(response: Response, peer: Peer) -> tuple[str, int]:
    """Return the address a response goes to over UDP or a new connection.

    RFC 3261 §18.2.2 with RFC 3581: ``received`` with ``rport`` when the
    client asked for it, otherwise the sent-by host (or ``received``) and the
    sent-by port (5060 by default).
    """
    via = response.top_via
    host = via.received or via.host
    if via.rport:
        return host, int(via.rport)
    return host, via.port or 5060


def stamp_top_via(request: Request, peer: Peer) -> None:
    """Add ``received`` and fill ``rport`` in the top Via (§18.2.1, RFC 3581 §4)."""
    via = request.top_via
    changed = False
    if via.host != peer.host:
        via.params["received"] = peer.host
        changed = True
    if "rport" in via.params and not via.params["rport"]:
        via.params["rport"] = str(peer.port)
        via.params.setdefault("received", peer.host)
        changed = True
    if changed:
        vias = request.headers.get_all("Via")
        vias[0] = str(via)
        request.headers.set("Via", vias[0])
        for value in vias[1:]:
            request.headers.add("Via", value)


# Linux's SO_MEMINFO (socket(7)): nine 32-bit counters, the receive queue's
# memory first.
_SO_MEMINFO = 55
_MEMINFO_SIZE = 9 * 4


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransports) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, ...]) -> None:
        host, port = str(addr[0]), int(addr[1])
        owner = self.owner
        owner.udp_bytes_received += len(data)
        owner.udp_datagrams_received += 1
        owner.message_received(data, Peer("UDP", host, port))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable after we sent to a gone peer: nothing to do.
        log.debug("udp_error", error=str(exc))


class SipTransports:
    """UDP and TCP listeners on one address, plus the sending side."""

    def __init__(
        self,
        on_message: MessageHandler,
        *,
        limits: TransportLimits | None = None,
    ) -> None:
        self.on_message = on_message
        self.limits = limits or TransportLimits()
        self.udp: asyncio.DatagramTransport | None = None
        self.udp_bytes_received = 0
        """Bytes of SIP datagrams read so far."""
        self.udp_datagrams_received = 0
        """SIP datagrams read so far."""
        self.tcp_server: asyncio.Server | None = None
        self.connections = TcpConnections(self.limits.max_tcp_connections)
        self._pending: set[asyncio.Task[None]] = set()
        self.parse_errors = 0

    async def start(
        self, host: str, port: int, *, udp: bool = True, tcp: bool = True
    ) -> int:
        """Bind UDP and TCP on ``host``:``port``; return the port.

        With port 0 the system picks a free UDP port and TCP takes the same
        number; when TCP finds that number taken, another one is tried.

        Raises:
            OSError: the port (or, with 0, every port tried) cannot be bound.
        """
        attempts = PORT_ZERO_ATTEMPTS if port == 0 else 1
        for attempt in range(attempts):
            try:
                return await self._bind(host, port, udp=udp, tcp=tcp)
            except OSError:
                if self.udp is not None:
                    self.udp.close()
                    self.udp = None
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def udp_queue_bytes(self) -> int:
        """Bytes waiting in the kernel's receive queue of the SIP UDP socket.

        The kernel's own accounting (``SO_MEMINFO``, Linux): each datagram
        counts with its buffer overhead, so this is more than the payloads.
        0 where the platform does not tell, or without a UDP socket.
        """
        if self.udp is None:
            return 0
        sock = self.udp.get_extra_info("socket")
        try:
            info = sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO_SIZE)
        except (OSError, AttributeError):
            return 0
        queued: int = struct.unpack_from("I", info)[0]  # SK_MEMINFO_RMEM_ALLOC
        return queued

    async def _bind(self, host: str, port: int, *, udp: bool, tcp: bool) -> int:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if udp:
            sock = _udp_socket(host, port, family)
            port = sock.getsockname()[1]
            self.udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), sock=sock
            )
        if tcp:
            self.tcp_server = await loop.create_server(
                lambda: TcpConnection(self),
                host,
                port,
                family=family,
                reuse_address=True,
            )
            port = self.tcp_server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        """Stop listening, close every connection and wait for pending sends."""
        if self.udp is not None:
            self.udp.close()
        if self.tcp_server is not None:
            self.tcp_server.close()
        self.connections.close_all()
        for task in list(self._pending):
            task.cancel()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self.tcp_server is not None:
            await self.tcp_server.wait_closed()

    # -- receiving ----------------------------------------------------------

    def message_received(self, data: bytes, peer: Peer) -> None:
        """Parse one UDP datagram and deliver it."""
        if len(data) <= 4 and not data.strip():
            return  # RFC 5626 keep-alive on UDP: a bare CRLF, nothing to answer.
        try:
            message = parse_message(data, max_size=self.limits.max_message_size)
        except SipParseError as error:
            self.parse_failed(error, peer)
            return
        self.deliver(message, peer)

    def deliver(self, message: Request | Response, peer: Peer) -> None:
        """Hand a parsed message to the owner, stamping the Via of requests."""
        if isinstance(message, Request):
            try:
                stamp_top_via(message, peer)
            except SipParseError as error:
                self.parse_failed(error, peer)
                return
        self.on_message(message, peer)

    def parse_failed(self, error: SipParseError, peer: Peer) -> None:
        """Answer a malformed request 400 when it can be answered, else drop it."""
        self.parse_errors += 1
        log.info("sip_parse_error", peer=peer.host, port=peer.port, reason=error.reason)
        partial = getattr(error, "partial", None)
        if not isinstance(partial, Request) or partial.method == "ACK":
            return  # §21.4.1 needs Via/From/To/Call-ID/CSeq to answer at all.
        try:
            # 400 in general; 505, 513 or 416 where the parser names a better code.
            response = make_response(partial, error.status, error.reason)
            self.send(Outgoing(response, peer))
        except SipParseError:
            return

    # -- sending ------------------------------------------------------------

    def send(self, outgoing: Outgoing) -> None:
        """Send a response or request, choosing the route per RFC 3261 §18."""
        data = outgoing.message.serialise()
        peer = outgoing.peer
        if isinstance(outgoing.message, Response):
            self._send_response(data, outgoing.message, peer)
        else:
            self._send_request(data, peer)

    def _send_response(self, data: bytes, response: Response, peer: Peer) -> None:
        if peer.reliable:
            connection = peer.connection
            if isinstance(connection, TcpConnection) and not connection.closed:
                connection.write(data)
                return
            # §18.2.2: the connection is gone; send over one to the Via sent-by
            # (received IP with the sent-by port, never the ephemeral port).
            via = response.top_via
            self._send_stream(data, via.received or via.host, via.port or 5060)
            return
        self._send_udp(data, response_destination(response, peer))

    def _send_request(self, data: bytes, peer: Peer) -> None:
        if peer.reliable:
            connection = peer.connection
            if isinstance(connection, TcpConnection) and not connection.closed:
                connection.write(data)
                return
            self._send_stream(data, peer.host, peer.port)
            return
        self._send_udp(data, (peer.host, peer.port))

    def _send_stream(self, data: bytes, host: str, port: int) -> None:
        # Reuse an open connection to that address (one we opened for an
        # earlier message, such as the first copy of a retransmitted 2xx),
        # so retransmissions do not each open a connection of their own.
        connection = self.connections.to(host, port)
        if connection is not None and not connection.closed:
            connection.write(data)
            return
        self._spawn(self._send_tcp(data, host, port))

    def _send_udp(self, data: bytes, address: tuple[str, int]) -> None:
        if self.udp is None:
            return
        if ip_address(address[0]) is not None:
            self.udp.sendto(data, address)
        else:
            self._spawn(self._resolve_and_send_udp(data, address))

    async def _resolve_and_send_udp(
        self, data: bytes, address: tuple[str, int]
    ) -> None:
        # Limitation: plain A/AAAA lookup; RFC 3263 NAPTR/SRV lookups are not
        # done, so a hostname hop must be reachable on the port it names.
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                address[0], address[1], type=socket.SOCK_DGRAM
            )
        except OSError as error:
            log.warning("sip_resolve_failed", host=address[0], error=str(error))
            return
        if infos and self.udp is not None:
            self.udp.sendto(data, infos[0][4][:2])

    async def _send_tcp(self, data: bytes, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: TcpConnection(self), host, port),
                self.limits.tcp_connect_timeout,
            )
        except (OSError, TimeoutError) as error:
            log.warning(
                "sip_tcp_connect_failed", host=host, port=port, error=str(error)
            )
            return
        assert isinstance(protocol, TcpConnection)
        protocol.write(data)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


def _udp_socket(host: str, port: int, family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock
