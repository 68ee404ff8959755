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
"""

from __future__ import annotations

import enum
import heapq
import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from router.sip.message import Request, Response, make_response

__all__ = [
    "MAGIC_COOKIE",
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
    "new_branch",
]

# RFC 3261 §8.1.1.7: branches that start with this cookie are unique and can be
# used alone to match transactions.
MAGIC_COOKIE = "z9hG4bK"

# Limit on live transactions, so a flood of requests cannot grow memory without
# bound. Each one lives at most 64*T1 (32 s); 100k covers ~3k new requests/s.
MAX_TRANSACTIONS = 100_000


def new_branch() -> str:
    """Return a fresh RFC 3261 branch parameter (magic cookie + 96 random bits)."""
    return MAGIC_COOKIE + secrets.token_hex(12)


@dataclass(frozen=True)
class Timers:
    """RFC 3261 §17.1.1.1 timer values, in seconds (Table 4 defaults)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


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
    timers: list[_Timer] = field(default_factory=list)

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
    timers: list[_Timer] = field(default_factory=list)


@dataclass(frozen=True)
class RequestReceived:
    """A new request for the transaction user (not a retransmission)."""

    request: Request
    transaction: ServerTransaction


@dataclass(frozen=True)
class AckReceived:
    """The ACK for a 2xx we sent (a transaction of its own, §17.1.1.3)."""

    request: Request
    peer: Peer


@dataclass(frozen=True)
class CancelReceived:
    """A CANCEL matched a pending INVITE; the layer has already answered it 200."""

    request: Request
    invite: ServerTransaction


@dataclass(frozen=True)
class AckTimeout:
    """No ACK arrived within 64*T1 after our 2xx (§13.3.1.4): end the call."""

    invite: ServerTransaction


@dataclass(frozen=True)
class ResponseReceived:
    """A final response to one of our client transactions."""

    response: Response
    transaction: ClientTransaction


@dataclass(frozen=True)
class ClientTransactionTimeout:
    """Timer F fired: the far end never answered our request (§17.1.2.2)."""

    transaction: ClientTransaction


Event = (
    RequestReceived
    | AckReceived
    | CancelReceived
    | AckTimeout
    | ResponseReceived
    | ClientTransactionTimeout
)


@dataclass(eq=False)
class _Pending2xx:
    """A 2xx we retransmit until its ACK arrives (§13.3.1.4)."""

    invite: ServerTransaction
    response: Response
    interval: float
    acked: bool = False
    timers: list[_Timer] = field(default_factory=list)


_Timed = ServerTransaction | ClientTransaction | _Pending2xx


@dataclass(order=True)
class _Timer:
    deadline: float
    seq: int
    name: str = field(compare=False)
    target: object = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


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


class TransactionLayer:
    """Server and client transactions over a fake or real clock.

    Feed it with :meth:`receive_request` / :meth:`receive_response`, answer
    with :meth:`respond`, send requests with :meth:`send_request`, and call
    :meth:`fire_timers` at :meth:`next_deadline`. Messages to send accumulate
    in :attr:`outbox`; the owner drains it after every call.
    """

    def __init__(
        self, timers: Timers | None = None, *, auto_trying: bool = True
    ) -> None:
        """Create an empty layer.

        Args:
            timers: T1, T2 and T4; RFC 3261 defaults when omitted.
            auto_trying: answer every new INVITE 100 Trying at once. A user
                that checks the source first (and may drop it silently)
                turns this off and sends the 100 itself.
        """
        self.timers = timers or Timers()
        self.auto_trying = auto_trying
        self.outbox: list[Outgoing] = []
        self._server: dict[tuple[str, ...], ServerTransaction] = {}
        self._client: dict[tuple[str, ...], ClientTransaction] = {}
        self._pending_2xx: dict[tuple[str, str, int], _Pending2xx] = {}
        self._heap: list[_Timer] = []
        self._seq = itertools.count()

    # -- inspection ---------------------------------------------------------

    @property
    def server_transactions(self) -> int:
        """Number of live server transactions."""
        return len(self._server)

    @property
    def client_transactions(self) -> int:
        """Number of live client transactions."""
        return len(self._client)

    @property
    def pending_acks(self) -> int:
        """Number of 2xx responses still waiting for their ACK."""
        return len(self._pending_2xx)

    def next_deadline(self) -> float | None:
        """Return the earliest timer deadline, or None when no timer is set."""
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].deadline if self._heap else None

    # -- requests in --------------------------------------------------------

    def receive_request(self, request: Request, peer: Peer, now: float) -> list[Event]:
        """Match a request to a transaction, or start a new one.

        Returns the events for the transaction user: nothing for a
        retransmission, which the layer answers itself.
        """
        if request.method == "ACK":
            return self._receive_ack(request, peer, now)

        key = server_transaction_key(request)
        existing = self._server.get(key)
        if existing is not None:
            self._absorb_retransmission(existing)
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

    def _receive_ack(self, request: Request, peer: Peer, now: float) -> list[Event]:
        transaction = self._server.get(server_transaction_key(request))
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
        if invite is None or invite.state is not TransactionState.PROCEEDING:
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
            self._schedule(now + 64 * t1, "L", transaction)
            cseq_number, _ = transaction.request.cseq
            pending = _Pending2xx(transaction, response, t1)
            key = ack_key(
                transaction.request.call_id, response.to_tag or "", cseq_number
            )
            self._pending_2xx[key] = pending
            self._schedule(now + t1, "2xx", pending)
            self._schedule(now + 64 * t1, "2xx-timeout", pending)
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
        transaction.state = TransactionState.COMPLETED
        wait = 0.0 if transaction.peer.reliable else 64 * self.timers.t1
        self._schedule(now + wait, "J", transaction)

    def forget(self, transaction: ServerTransaction) -> None:
        """Drop a server transaction without answering (a silently refused request)."""
        self._terminate(transaction)

    # -- client transactions ------------------------------------------------

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

    def fire_timers(self, now: float) -> list[Event]:
        """Run every timer due at ``now``; return the events they produce."""
        events: list[Event] = []
        while self._heap and self._heap[0].deadline <= now:
            timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                timer.cancelled = True
                events.extend(self._fire(timer, now))
        return events

    def _fire(self, timer: _Timer, now: float) -> list[Event]:
        handler = getattr(self, f"_timer_{timer.name.replace('-', '_')}")
        result: list[Event] = handler(timer.target, now)
        return result

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

    def _timer_L(self, transaction: ServerTransaction, now: float) -> list[Event]:
        self._terminate(transaction)
        return []

    def _timer_2xx(self, pending: _Pending2xx, now: float) -> list[Event]:
        # §13.3.1.4: retransmit the 2xx from T1 doubling up to T2 until the ACK.
        if pending.acked:
            return []
        self._send(pending.response, pending.invite.peer)
        pending.interval = min(2 * pending.interval, self.timers.t2)
        self._schedule(now + pending.interval, "2xx", pending)
        return []

    def _timer_2xx_timeout(self, pending: _Pending2xx, now: float) -> list[Event]:
        if pending.acked:
            return []
        self._cancel_timers(pending)
        cseq_number, _ = pending.invite.request.cseq
        key = ack_key(
            pending.invite.request.call_id, pending.response.to_tag or "", cseq_number
        )
        self._pending_2xx.pop(key, None)
        return [AckTimeout(pending.invite)]

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

    # -- helpers ------------------------------------------------------------

    def _terminate(self, transaction: ServerTransaction) -> None:
        transaction.state = TransactionState.TERMINATED
        self._cancel_timers(transaction)
        self._server.pop(transaction.key, None)

    def _send(self, message: Request | Response, peer: Peer) -> None:
        self.outbox.append(Outgoing(message, peer))

    def _schedule(
        self, deadline: float, name: str, target: _Timed, interval: float | None = None
    ) -> None:
        timer = _Timer(deadline, next(self._seq), name, target)
        heapq.heappush(self._heap, timer)
        # Keep only live timers so the list cannot grow with retransmissions.
        target.timers[:] = [t for t in target.timers if not t.cancelled]
        target.timers.append(timer)
        if interval is not None:
            target.interval = interval

    @staticmethod
    def _cancel_timers(target: _Timed) -> None:
        for timer in target.timers:
            timer.cancelled = True
        target.timers.clear()
