"""The set of open SIP TCP connections: its limit, and finding one by address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from router.sip.transaction import Peer
from router.transport_tcp import TcpConnection, TcpConnections


@dataclass(eq=False)
class FakeConnection:
    """What the set reads of a connection: its peer."""

    peer: Peer | None


def connection(port: int) -> TcpConnection:
    return cast(TcpConnection, FakeConnection(Peer("TCP", "127.0.0.1", port)))


def test_a_connection_past_the_limit_is_refused() -> None:
    connections = TcpConnections(limit=2)

    assert connections.add(connection(40001))
    assert connections.add(connection(40002))
    assert not connections.add(connection(40003))
    assert len(connections) == 2
    assert connections.to("127.0.0.1", 40003) is None


def test_a_response_finds_the_connection_its_request_came_on() -> None:
    connections = TcpConnections(limit=10)
    first = connection(40001)
    connections.add(first)

    assert connections.to("127.0.0.1", 40001) is first
    assert connections.to("127.0.0.1", 40002) is None


def test_a_closed_connection_leaves_a_newer_one_to_the_same_address() -> None:
    connections = TcpConnections(limit=10)
    old, new = connection(40001), connection(40001)
    connections.add(old)
    connections.add(new)

    connections.remove(old)

    assert connections.to("127.0.0.1", 40001) is new
    assert list(connections) == [new]
    connections.remove(new)
    assert connections.to("127.0.0.1", 40001) is None and len(connections) == 0
