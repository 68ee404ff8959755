"""Server transactions (RFC 3261 §17.2): matching requests, answering them, and the
timers that retransmit the answers and then forget them.

INVITE transactions keep RFC 6026's Accepted state after a 2xx and retransmit a
non-2xx final with Timer G until its ACK (Timers H, I); the 2xx itself is
retransmitted until its ACK (§13.3.1.4, reporting :class:`~.events.AckTimeout`
after 64*T1). Non-INVITE transactions end with Timer J.
"""

from __future__ import annotations

from router.sip.message import Request, Response, make_response, parse_message

from .core import LayerCore
from .events import AckReceived, AckTimeout, CancelReceived, Event, RequestReceived
from .state import (
    MAGIC_COOKIE,
    Lingering,
    Peer,
    Pending2xx,
    ServerTransaction,
    TransactionState,
)

__all__ = [
    "MAX_TRANSACTIONS",
    "ServerTransactions",
    "ack_key",
    "server_transaction_key",
]

# Limit on live transactions, so a flood of requests cannot grow memory without
# bound. Each one lives at most 64*T1 (32 s); 100k covers ~3k new requests/s.
MAX_TRANSACTIONS = 100_000


def server_transaction_key(request: Request) -> tuple[str, ...]:
    """Return the key that matches a request to its server transaction.

    RFC 3261 §17.2.3: with a magic-cookie branch, the branch, the sent-by and
    the method (INVITE for an ACK) identify the transaction. Older peers
    (RFC 2543) get the fallback of Call-ID, CSeq number, From tag and top Via.
    """
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    sent_by = f"{via.host}:{via.port or ''}"
    if branch.startswith(MAGIC_COOKIE):
        return ("3261", branch, sent_by, method)
    cseq_number, _ = request.cseq
    return (
        "2543",
        request.call_id,
        str(cseq_number),
        request.from_tag or "",
        str(via),
        method,
    )


def ack_key(call_id: str, local_tag: str, cseq_number: int) -> tuple[str, str, int]:
    """Key that matches an ACK to the 2xx it acknowledges (dialog + CSeq)."""
    return (call_id, local_tag, cseq_number)


class ServerTransactions(LayerCore):
    """The server half of :class:`~.layer.TransactionLayer`."""

    requests_received = 0
    """Requests other than ACK received so far, retransmissions included."""
    retransmissions_received = 0
    """Requests received again while their server transaction lived."""

    # -- requests in --------------------------------------------------------

    def receive_request(self, request: Request, peer: Peer, now: float) -> list[Event]:
        """Match a request to a transaction, or start a new one.

        Returns the events for the transaction user: nothing for a
        retransmission, which the layer answers itself.
        """
        if request.method == "ACK":
            return self._receive_ack(request, peer, now)

        self.requests_received += 1
        key = server_transaction_key(request)
        existing = self._server.get(key)
        if existing is not None:
            self.retransmissions_received += 1
            if isinstance(existing, ServerTransaction):
                self._absorb_retransmission(existing)
            else:
                self._answer_again(existing)
            return []

        if len(self._server) >= MAX_TRANSACTIONS:
            # Limitation: past the limit new requests are dropped unanswered;
            # the peer retransmits and gets in once old transactions expire.
            return []

        if request.method == "CANCEL":
            return self._receive_cancel(request, peer, key, now)

        state = (
            TransactionState.PROCEEDING
            if request.method == "INVITE"
            else TransactionState.TRYING
        )
        transaction = ServerTransaction(key, request, peer, state)
        self._server[key] = transaction
        if request.method == "INVITE" and self.auto_trying:
            # RFC 3261 §17.2.1: we always answer 100 Trying at once, which
            # stops the caller's INVITE retransmissions (Timer A) early.
            self.respond(transaction, make_response(request, 100), now)
        return [RequestReceived(request, transaction)]

    def _absorb_retransmission(self, transaction: ServerTransaction) -> None:
        # §17.2.1 / §17.2.2: a retransmitted request gets the last response
        # again; RFC 6026 §7.1: in Accepted, INVITE retransmissions are absorbed
        # (the 2xx is retransmitted on its own schedule).
        if transaction.state is TransactionState.ACCEPTED:
            return
        if transaction.last_response is not None and transaction.state in (
            TransactionState.PROCEEDING,
            TransactionState.COMPLETED,
        ):
            self._send(transaction.last_response, transaction.peer)

    def _answer_again(self, lingering: Lingering) -> None:
        # A lingering transaction: a non-INVITE one sends its final response
        # again (§17.2.2); an INVITE one in Accepted absorbs (RFC 6026 §7.1).
        _state, data, transport, host, port = lingering
        if data is not None:
            response = parse_message(data)
            assert isinstance(response, Response)
            self._send(response, Peer(transport, host, port))

    def _receive_ack(self, request: Request, peer: Peer, now: float) -> list[Event]:
        found = self._server.get(server_transaction_key(request))
        # A lingering INVITE transaction is in Accepted: the ACK of a 2xx,
        # matched below.
        transaction = found if isinstance(found, ServerTransaction) else None
        if transaction is not None and transaction.state is TransactionState.COMPLETED:
            # §17.2.1: ACK for a non-2xx final: stop Timer G/H, start Timer I.
            transaction.state = TransactionState.CONFIRMED
            self._cancel_timers(transaction)
            wait = 0.0 if transaction.peer.reliable else self.timers.t4
            self._schedule(now + wait, "I", transaction)
            return []
        if transaction is not None and transaction.state is TransactionState.CONFIRMED:
            return []

        # An ACK for a 2xx is a transaction of its own (§17.1.1.3): match it to
        # the 2xx by dialog and CSeq.
        cseq_number, _ = request.cseq
        pending = self._pending_2xx.pop(
            ack_key(request.call_id, request.to_tag or "", cseq_number), None
        )
        if pending is None:
            return []
        pending.acked = True
        self._cancel_timers(pending)
        return [AckReceived(request, peer)]

    def _receive_cancel(
        self, request: Request, peer: Peer, key: tuple[str, ...], now: float
    ) -> list[Event]:
        transaction = ServerTransaction(key, request, peer, TransactionState.TRYING)
        self._server[key] = transaction

        # §9.2: the CANCEL matches the INVITE with the same branch and sent-by.
        invite = self._server.get((*key[:-1], "INVITE"))
        if (
            not isinstance(invite, ServerTransaction)
            or invite.state is not TransactionState.PROCEEDING
        ):
            # §9.2: no matching transaction -> 481. After our final response
            # (RFC 6026 keeps the INVITE transaction) the CANCEL has no effect
            # but is still answered 200.
            status = 481 if invite is None else 200
            self.respond(transaction, make_response(request, status), now)
            return []
        self.respond(transaction, make_response(request, 200), now)
        invite.cancelled = True
        return [CancelReceived(request, invite)]

    # -- responses out ------------------------------------------------------

    def respond(
        self, transaction: ServerTransaction, response: Response, now: float
    ) -> None:
        """Send a response within a server transaction and advance its state."""
        if transaction.state in (
            TransactionState.COMPLETED,
            TransactionState.CONFIRMED,
            TransactionState.ACCEPTED,
            TransactionState.TERMINATED,
        ):
            # A final response has been sent already; §17.2.1 allows no other.
            return
        transaction.last_response = response
        self._send(response, transaction.peer)
        if response.status < 200:
            if not transaction.is_invite:
                transaction.state = TransactionState.PROCEEDING
            return
        # From here on the final response is only ever sent again.
        response.headers.compact()
        if transaction.is_invite:
            self._invite_final_sent(transaction, response, now)
        else:
            self._non_invite_final_sent(transaction, now)

    def _invite_final_sent(
        self, transaction: ServerTransaction, response: Response, now: float
    ) -> None:
        t1 = self.timers.t1
        if 200 <= response.status < 300:
            # RFC 6026 §7.1: Accepted state for 64*T1 (Timer L) absorbs INVITE
            # retransmissions; §13.3.1.4: the core retransmits the 2xx.
            transaction.state = TransactionState.ACCEPTED
            self._linger(transaction, None, now)
            cseq_number, _ = transaction.request.cseq
            pending = Pending2xx(transaction, response, t1, now + 64 * t1)
            key = ack_key(
                transaction.request.call_id, response.to_tag or "", cseq_number
            )
            self._pending_2xx[key] = pending
            self._schedule(now + t1, "2xx", pending)
            return
        # §17.2.1: Completed; Timer G retransmits over UDP, Timer H gives up.
        transaction.state = TransactionState.COMPLETED
        if not transaction.peer.reliable:
            self._schedule(now + t1, "G", transaction, interval=t1)
        self._schedule(now + 64 * t1, "H", transaction)

    def _non_invite_final_sent(
        self, transaction: ServerTransaction, now: float
    ) -> None:
        # §17.2.2: Completed, Timer J = 64*T1 for UDP, zero for reliable ones.
        # The request now serves only to match retransmissions, by its key.
        transaction.state = TransactionState.COMPLETED
        if transaction.peer.reliable:
            self._schedule(now, "J", transaction)
            return
        assert transaction.last_response is not None
        self._linger(transaction, transaction.last_response.serialise(), now)

    def _linger(
        self, transaction: ServerTransaction, data: bytes | None, now: float
    ) -> None:
        # The transaction now only matches what the peer sends again, for
        # 64*T1 (Timers L and J): a plain record takes its place (Lingering).
        peer = transaction.peer
        key = transaction.key
        self._server[key] = (
            transaction.state.value,
            data,
            peer.transport,
            peer.host,
            peer.port,
        )
        self._lingering.append((now + 64 * self.timers.t1, key))

    def forget(self, transaction: ServerTransaction) -> None:
        """Drop a server transaction without answering (a silently refused request)."""
        self._terminate(transaction)

    # -- timers -------------------------------------------------------------

    def _timer_G(self, transaction: ServerTransaction, now: float) -> list[Event]:
        # §17.2.1: retransmit the final response, doubling up to T2.
        if transaction.state is not TransactionState.COMPLETED:
            return []
        assert transaction.last_response is not None
        self._send(transaction.last_response, transaction.peer)
        interval = min(2 * transaction.interval, self.timers.t2)
        self._schedule(now + interval, "G", transaction, interval=interval)
        return []

    def _timer_H(self, transaction: ServerTransaction, now: float) -> list[Event]:
        # §17.2.1: no ACK for our non-2xx final; give up on the transaction.
        self._terminate(transaction)
        return []

    def _timer_I(self, transaction: ServerTransaction, now: float) -> list[Event]:
        self._terminate(transaction)
        return []

    def _timer_J(self, transaction: ServerTransaction, now: float) -> list[Event]:
        self._terminate(transaction)
        return []

    def _timer_2xx(self, pending: Pending2xx, now: float) -> list[Event]:
        # §13.3.1.4: retransmit the 2xx from T1 doubling up to T2 until the ACK,
        # for 64*T1 at most. (One timer per 2xx: a second one for the time
        # limit would stay in the queue for 64*T1 after every ACK.)
        if pending.acked:
            return []
        if now >= pending.gives_up:
            return self._ack_timeout(pending)
        self._send(pending.response, pending.invite.peer)
        pending.interval = min(2 * pending.interval, self.timers.t2)
        self._schedule(min(now + pending.interval, pending.gives_up), "2xx", pending)
        return []

    def _ack_timeout(self, pending: Pending2xx) -> list[Event]:
        self._cancel_timers(pending)
        cseq_number, _ = pending.invite.request.cseq
        key = ack_key(
            pending.invite.request.call_id, pending.response.to_tag or "", cseq_number
        )
        self._pending_2xx.pop(key, None)
        return [AckTimeout(pending.invite)]

    def _terminate(self, transaction: ServerTransaction) -> None:
        transaction.state = TransactionState.TERMINATED
        self._cancel_timers(transaction)
        if self._server.get(transaction.key) is transaction:
            del self._server[transaction.key]
