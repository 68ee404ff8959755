"""SIP transactions (RFC 3261 §17), sans-I/O.

The :class:`TransactionLayer` takes parsed messages and the current time, and
returns events for the transaction user (the call logic) while queueing the
bytes to send in :attr:`TransactionLayer.outbox`. It never reads a clock and
never touches a socket: the caller passes ``now`` (seconds on a monotonic
clock) into every method and asks :meth:`TransactionLayer.next_deadline` when
to call :meth:`TransactionLayer.fire_timers` next. Tests drive it with a fake
clock.

Implemented here:

* INVITE server transactions (§17.2.1) with the RFC 6026 "Accepted" state:
  retransmitted INVITEs are absorbed and the last response is sent again; a
  non-2xx final response is retransmitted on unreliable transports (Timer G)
  until the ACK arrives or Timer H fires, then Timer I.
* 2xx retransmission by the UAS core (§13.3.1.4): from T1 doubling up to T2
  until the ACK arrives; after 64*T1 without an ACK the layer reports
  :class:`AckTimeout` so the call can be ended with a BYE.
* Non-INVITE server transactions (§17.2.2) with Timer J.
* Non-INVITE client transactions (§17.1.2) with Timers E, F and K, used for
  the BYEs we send.

One module per part: :mod:`.state` (peers, transactions, branches),
:mod:`.events`, :mod:`.timers` (timer values and the timer queue), :mod:`.server`
and :mod:`.client` (the two halves of the layer), :mod:`.layer`.
"""

from __future__ import annotations

from .events import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    ClientTransactionTimeout,
    Event,
    RequestReceived,
    ResponseReceived,
)
from .layer import TransactionLayer
from .server import MAX_TRANSACTIONS, ack_key, server_transaction_key
from .state import (
    MAGIC_COOKIE,
    ClientTransaction,
    Outgoing,
    Peer,
    ServerTransaction,
    TransactionState,
    new_branch,
)
from .timers import Timers

__all__ = [
    "MAGIC_COOKIE",
    "MAX_TRANSACTIONS",
    "AckReceived",
    "AckTimeout",
    "CancelReceived",
    "ClientTransaction",
    "ClientTransactionTimeout",
    "Event",
    "Outgoing",
    "Peer",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransaction",
    "Timers",
    "TransactionLayer",
    "TransactionState",
    "ack_key",
    "new_branch",
    "server_transaction_key",
]
