"""The SIP UDP socket's receive queue, as the kernel counts it (overload control)."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable

import pytest

from router.overload import DATAGRAM_OVERHEAD
from router.transport import SipTransports

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SO_MEMINFO is Linux's"
)


async def test_datagrams_not_read_yet_show_in_the_queue_then_leave_it() -> None:
    transports = SipTransports(lambda message, peer: None)
    port = await transports.start("127.0.0.1", 0, tcp=False)
    try:
        assert transports.udp_queue_bytes() == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(10):
                sender.sendto(b"x" * 500, ("127.0.0.1", port))
        # The loop has not run since: all ten wait in the kernel.
        queued = transports.udp_queue_bytes()
        assert 10 * 500 < queued <= 10 * (500 + 2 * DATAGRAM_OVERHEAD)

        await _until(lambda: transports.udp_datagrams_received == 10)
        assert transports.udp_queue_bytes() == 0
        assert transports.udp_bytes_received == 10 * 500
    finally:
        await transports.close()


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met")


async def test_a_response_address_is_parsed_through_the_bounded_address_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The transport kept its own cache of every host it answered, unbounded in
    # the length of what it kept: 4,096 Via hosts of 60 kB each were 245 MB.
    from router import addresses

    kept: dict[str, object] = {}
    monkeypatch.setattr(addresses, "_IP_ADDRESSES", kept)
    transports = SipTransports(lambda message, peer: None)
    port = await transports.start("127.0.0.1", 0, tcp=False)
    try:
        transports._send_udp(b"\r\n", ("127.0.0.1", port))
        assert list(kept) == ["127.0.0.1"]
    finally:
        await transports.close()
