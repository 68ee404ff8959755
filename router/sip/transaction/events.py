"""The events the transaction layer reports to the transaction user (the call logic)."""

from __future__ import annotations

from dataclasses import dataclass

from router.sip.message import Request, Response

from .state import ClientTransaction, Peer, ServerTransaction

__all__ = [
    "AckReceived",
    "AckTimeout",
    "CancelReceived",
    "ClientTransactionTimeout",
    "Event",
    "RequestReceived",
    "ResponseReceived",
]


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
