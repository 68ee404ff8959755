"""Non-INVITE client transactions (RFC 3261 §17.1.2), used for the BYEs we send:
Timer E retransmits over UDP, Timer F gives up, Timer K forgets the answer.
"""

from __future__ import annotations

from collections.abc import Callable

from router.sip.message import Request, Response

from .core import LayerCore
from .events import ClientTransactionTimeout, Event, ResponseReceived
from .state import ClientTransaction, Peer, TransactionState

__all__ = ["ClientTransactions"]


class ClientTransactions(LayerCore):
    """The client half of :class:`~.layer.TransactionLayer`."""

    def send_request(
        self,
        request: Request,
        peer: Peer,
        now: float,
        on_done: Callable[[Response | None], None] | None = None,
    ) -> ClientTransaction:
        """Send a non-INVITE request in a new client transaction (§17.1.2).

        ``on_done`` is called once with the final response, or with None when
        Timer F fires first.
        """
        via = request.top_via
        key = (via.branch or "", request.cseq[1])
        transaction = ClientTransaction(key, request, peer, on_done=on_done)
        self._client[key] = transaction
        self._send(request, peer)
        if not peer.reliable:
            transaction.interval = self.timers.t1
            self._schedule(now + self.timers.t1, "E", transaction)
        self._schedule(now + 64 * self.timers.t1, "F", transaction)
        return transaction

    def receive_response(
        self, response: Response, peer: Peer, now: float
    ) -> list[Event]:
        """Match a response to a client transaction (§17.1.3)."""
        try:
            via = response.top_via
            key = (via.branch or "", response.cseq[1])
        except ValueError:
            return []
        transaction = self._client.get(key)
        if transaction is None or transaction.state in (
            TransactionState.COMPLETED,
            TransactionState.TERMINATED,
        ):
            return []
        if response.status < 200:
            transaction.state = TransactionState.PROCEEDING
            return []
        transaction.state = TransactionState.COMPLETED
        transaction.final_response = response
        self._cancel_timers(transaction)
        wait = 0.0 if transaction.peer.reliable else self.timers.t4
        self._schedule(now + wait, "K", transaction)
        if transaction.on_done is not None:
            transaction.on_done(response)
        return [ResponseReceived(response, transaction)]

    # -- timers -------------------------------------------------------------

    def _timer_E(self, transaction: ClientTransaction, now: float) -> list[Event]:
        # §17.1.2.2: retransmit; T1 doubling to T2 (T2 once a provisional came).
        if transaction.state not in (
            TransactionState.TRYING,
            TransactionState.PROCEEDING,
        ):
            return []
        self._send(transaction.request, transaction.peer)
        if transaction.state is TransactionState.PROCEEDING:
            transaction.interval = self.timers.t2
        else:
            transaction.interval = min(2 * transaction.interval, self.timers.t2)
        self._schedule(now + transaction.interval, "E", transaction)
        return []

    def _timer_F(self, transaction: ClientTransaction, now: float) -> list[Event]:
        if transaction.state not in (
            TransactionState.TRYING,
            TransactionState.PROCEEDING,
        ):
            return []
        self._cancel_timers(transaction)
        self._client.pop(transaction.key, None)
        transaction.state = TransactionState.TERMINATED
        if transaction.on_done is not None:
            transaction.on_done(None)
        return [ClientTransactionTimeout(transaction)]

    def _timer_K(self, transaction: ClientTransaction, now: float) -> list[Event]:
        self._client.pop(transaction.key, None)
        transaction.state = TransactionState.TERMINATED
        return []
