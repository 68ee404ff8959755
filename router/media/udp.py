"""The UDP side of an RTP session: the socket and the protocol that reads it.

:class:`~router.media.session.MediaSession` binds one socket per call with
:func:`bind_udp_socket` and hands its events to itself through
:class:`RtpDatagramProtocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable

from .receiver import Address

__all__ = [
    "SOCKET_BUFFER_SIZE",
    "RtpDatagramProtocol",
    "bind_udp_socket",
    "mark_expedited_forwarding",
]

# Generous socket buffers ride out bursts and short stalls; the kernel caps the
# request at net.core.rmem_max / wmem_max.
SOCKET_BUFFER_SIZE = 1 << 20
# RFC 4594 §4.5: telephony bearer traffic is marked Expedited Forwarding
# (DSCP 46), which is 0xB8 in the old TOS byte.
_DSCP_EF_TOS = 46 << 2


class RtpDatagramProtocol(asyncio.DatagramProtocol):
    """Forwards an RTP socket's events to the session that owns it."""

    def __init__(
        self,
        on_datagram: Callable[[bytes, Address], None],
        on_error: Callable[[OSError], None],
        lost: asyncio.Future[None],
    ) -> None:
        self._on_datagram = on_datagram
        self._on_error = on_error
        self._lost = lost

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self._on_error(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(None)


def bind_udp_socket(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> socket.socket:
    """Return a non-blocking UDP socket bound to ``address``:``port`` for RTP.

    It gets large buffers and the Expedited Forwarding mark.

    Raises:
        OSError: the port could not be bound (taken, not allowed, ...).
    """
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_SIZE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_SIZE)
        mark_expedited_forwarding(sock, family)
        sock.bind((str(address), port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def mark_expedited_forwarding(
    sock: socket.socket, family: socket.AddressFamily
) -> None:
    """Mark the socket's packets as telephony bearer traffic, where allowed."""
    # Best effort: a platform that refuses the option still carries the audio.
    with contextlib.suppress(OSError, AttributeError):
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, _DSCP_EF_TOS)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _DSCP_EF_TOS)
