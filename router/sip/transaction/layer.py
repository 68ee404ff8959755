"""The transaction layer: server and client transactions over one clock and outbox."""

from __future__ import annotations

from .client import ClientTransactions
from .server import ServerTransactions

__all__ = ["TransactionLayer"]


class TransactionLayer(ServerTransactions, ClientTransactions):
    """Server and client transactions over a fake or real clock.

    Feed it with :meth:`receive_request` / :meth:`receive_response`, answer
    with :meth:`respond`, send requests with :meth:`send_request`, and call
    :meth:`fire_timers` at :meth:`next_deadline`. Messages to send accumulate
    in :attr:`outbox`; the owner drains it after every call.
    """
