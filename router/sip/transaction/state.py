"""What a transaction is: where its messages go, its state, and its branch.

Server transactions (RFC 3261 §17.2) answer requests we receive, client transactions
(§17.1) carry requests we send; a 2xx to an INVITE is retransmitted by the UAS core
until its ACK arrives (§13.3.1.4), so it gets a record of its own.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from router.sip.message import Request, Response

from .timers import Timer

__all__ = [
    "MAGIC_COOKIE",
    "ClientTransaction",
    "Lingering",
    "Outgoing",
    "Peer",
    "Pending2xx",
    "ServerTransaction",
    "TransactionState",
    "new_branch",
]

# RFC 3261 §8.1.1.7: branches that start with this cookie are unique and can be
# used alone to match transactions.
MAGIC_COOKIE = "z9hG4bK"


def new_branch() -> str:
    """Return a fresh RFC 3261 branch parameter (magic cookie + 96 random bits)."""
    return MAGIC_COOKIE + secrets.token_hex(12)


@dataclass(frozen=True, eq=False)
class Peer:
    """Where a message came from, and therefore how to answer it.

    ``transport`` is "UDP", "TCP" or "TLS". ``connection`` is an opaque handle
    of the stream connection a request arrived on (None for UDP); the transport
    uses it to send responses on the same connection (RFC 3261 §18.2.2).
    """

    transport: str
    host: str
    port: int
    connection: object | None = None

    @property
    def reliable(self) -> bool:
        """True for stream transports, where the transport layer retransmits."""
        return self.transport != "UDP"


@dataclass(frozen=True)
class Outgoing:
    """A message for the transport to send.

    For responses ``peer`` is the peer the request came from, and the transport
    applies §18.2.2 (connection, then ``received``/``rport``, then sent-by). For
    requests it is the next hop.
    """

    message: Request | Response
    peer: Peer


class TransactionState(enum.Enum):
    """States of server and client transactions (RFC 3261 §17, RFC 6026 §7.1)."""

    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


# A server transaction that only lingers to match what the peer sends again:
# an INVITE transaction in Accepted (RFC 6026 §7.1, Timer L), which absorbs
# retransmissions, or a non-INVITE one in Completed over UDP (RFC 3261
# §17.2.2, Timer J), which answers them with its final response again:
# ``(state, response bytes or None, transport, host, port)``. A plain tuple of
# strings and bytes: the collector stops tracking it, and thousands of them
# (64*T1 of traffic) no longer lengthen every full collection.
Lingering = tuple[str, bytes | None, str, str, int]


@dataclass(eq=False)
class ServerTransaction:
    """A server transaction: the request, who sent it, and the last response."""

    key: tuple[str, ...]
    request: Request
    peer: Peer
    state: TransactionState
    last_response: Response | None = None
    cancelled: bool = False
    interval: float = 0.0
    timers: list[Timer] = field(default_factory=list)

    @property
    def is_invite(self) -> bool:
        """True for INVITE server transactions."""
        return self.request.method == "INVITE"


@dataclass(eq=False)
class ClientTransaction:
    """A non-INVITE client transaction for a request we send (§17.1.2)."""

    key: tuple[str, ...]
    request: Request
    peer: Peer
    state: TransactionState = TransactionState.TRYING
    interval: float = 0.0
    final_response: Response | None = None
    on_done: Callable[[Response | None], None] | None = None
    timers: list[Timer] = field(default_factory=list)


@dataclass(eq=False)
class Pending2xx:
    """A 2xx we retransmit until its ACK arrives (§13.3.1.4)."""

    invite: ServerTransaction
    response: Response
    interval: float
    gives_up: float
    """When the UAS core stops waiting for the ACK (64*T1 after the 2xx)."""
    acked: bool = False
    timers: list[Timer] = field(default_factory=list)
