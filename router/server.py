"""The SIP side of the router: transports, transactions and request dispatch.

:class:`SipRouter` owns the transports and the sans-I/O
:class:`~router.sip.transaction.TransactionLayer`, drives its timers from the
event loop's monotonic clock, and sends each request to the right place:
OPTIONS is answered here, a new INVITE becomes a :class:`~router.calls.Call`,
and in-dialog requests go to the call that owns the dialog.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from router.call_table import CallTable
from router.calls import Call, CallConfig, CallServices, CallState
from router.edge import EdgePolicy, TrunkGate
from router.media.bridge import LocalBridge, MediaBridge, PortUsage
from router.media.ports import RtpPortPool
from router.media.workers import WorkerPool, WorkerPoolConfig
from router.numbers.cache import DirectLookup, Lookup
from router.numbers.store import Store
from router.overload import OverloadPolicy
from router.records import CallRecorder
from router.shedding import CallShedding
from router.sip.dialog import Dialog, new_tag
from router.sip.errors import SipParseError
from router.sip.message import Request, Response, make_response
from router.sip.transaction import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    Event,
    Outgoing,
    Peer,
    RequestReceived,
    ServerTransaction,
    Timers,
    TransactionLayer,
)
from router.transport import SipTransports, TransportLimits

__all__ = ["ALLOWED_METHODS", "RouterConfig", "SipRouter"]

log = structlog.get_logger("router.sip")

ALLOWED_METHODS = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"
# Methods we know but do not serve: 405 with Allow (RFC 3261 §8.2.1).
KNOWN_METHODS = frozenset(
    {"REGISTER", "SUBSCRIBE", "NOTIFY", "MESSAGE", "REFER", "PUBLISH", "PRACK"}
)
# Option tags we implement; anything else in Require gets 420 (§8.2.2.3).
SUPPORTED_EXTENSIONS = frozenset({"timer"})


@dataclass
class RouterConfig:
    """Settings the SIP side needs."""

    bind: str
    sip_port: int
    call: CallConfig
    rtp_ports: tuple[int, int]
    max_calls: int = 1000
    udp: bool = True
    tcp: bool = True
    limits: TransportLimits = field(default_factory=TransportLimits)
    edge: EdgePolicy = field(default_factory=EdgePolicy)
    timers: Timers = field(default_factory=Timers)
    overload: OverloadPolicy = field(default_factory=OverloadPolicy)
    # Processes carrying calls' media; 0 keeps media in this process.
    media_workers: int = 0
    # How the media workers log (the router's own logging is set up by its caller).
    log_level: str = "info"
    log_format: str = "auto"


class SipRouter:
    """Inbound SIP: receive, dispatch, answer, and keep calls' dialogs."""

    def __init__(
        self,
        config: RouterConfig,
        store: Store,
        lookup: Lookup | None = None,
        recorder: CallRecorder | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.lookup = lookup or DirectLookup(store)
        self.recorder = recorder
        self.gate = TrunkGate(store, self.lookup, config.edge)
        # The 100 Trying waits for the source check, so a refused scanner can
        # be dropped without a word (see router.edge).
        self.layer = TransactionLayer(config.timers, auto_trying=False)
        self.transports = SipTransports(self._message_received, limits=config.limits)
        self.workers = _worker_pool(config)
        self._rtp_pool: RtpPortPool | None = None
        self.port_pool: PortUsage
        """The RTP ports: this process's pool, or the workers' ports."""
        if self.workers is not None:
            self.port_pool = self.workers.ports
        else:
            self.port_pool = self._rtp_pool = RtpPortPool(*config.rtp_ports)
        self.calls = CallTable()
        self.counters: Counter[str] = Counter()
        self.shedding = CallShedding(
            config.overload, self.layer, self.transports, self.counters
        )
        self.overload = self.shedding.guard
        self.port = config.sip_port
        self.draining = False
        self.listening = False
        """Whether the SIP transports are open (from start() to stop())."""
        # The deadline the timer was set for, kept here: uvloop's handles round
        # when() to the millisecond, and a deadline already past gets a plain
        # Handle with no when() at all.
        self._timer: asyncio.Handle | None = None
        self._timer_deadline: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- life cycle ---------------------------------------------------------

    async def start(self) -> None:
        """Start the media workers (if any), then bind the SIP transports.

        The workers come first, so no INVITE arrives before media can be set up.

        Raises:
            MediaUnavailable: a media worker did not start.
            OSError: a SIP port could not be bound.
        """
        self._loop = asyncio.get_running_loop()
        if self.workers is not None:
            await self.workers.start()
        try:
            self.port = await self.transports.start(
                self.config.bind,
                self.config.sip_port,
                udp=self.config.udp,
                tcp=self.config.tcp,
            )
        except BaseException:
            if self.workers is not None:
                await self.workers.stop()
            raise
        self.shedding.start()
        self.listening = True
        log.info("sip_listening", bind=self.config.bind, port=self.port)

    async def stop(self) -> None:
        """Hang up every call (BYE), then close the transports."""
        self.draining = True
        self.listening = False
        await asyncio.gather(
            *(call.end("shutdown", send_bye=True) for call in self.calls.values()),
            return_exceptions=True,
        )
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
        self.shedding.stop()
        await self.transports.close()
        if self.workers is not None:
            await self.workers.stop()

    @property
    def active_calls(self) -> int:
        """Calls that have not ended yet."""
        return len(self.calls)

    @property
    def setting_up_calls(self) -> int:
        """Calls in set-up (routing or ringing), which the overload limit counts."""
        return self.calls.setting_up

    # -- receiving ----------------------------------------------------------

    def _message_received(self, message: Request | Response, peer: Peer) -> None:
        if self.gate.is_blocked(peer.host):
            return  # a blocked scanner costs no parsing of headers, no state
        now = self._now()
        try:
            if isinstance(message, Request):
                events = self.layer.receive_request(message, peer, now)
            else:
                events = self.layer.receive_response(message, peer, now)
            for event in events:
                self._dispatch(event)
        except SipParseError as error:
            # A header the transaction layer needed was unreadable.
            self.transports.parse_failed(error, peer)
        self._flush()

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            self._request(event.transaction)
        elif isinstance(event, AckReceived):
            call = self.calls.for_request(event.request)
            if call is not None:
                call.on_ack(event.request)
        elif isinstance(event, CancelReceived):
            call = self.calls.for_invite(event.invite)
            if call is not None:
                call.on_cancel()
        elif isinstance(event, AckTimeout):
            call = self.calls.for_invite(event.invite)
            if call is not None:
                call.on_ack_timeout()

    def _request(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        self.counters[f"requests_{request.method.lower()}"] += 1
        unsupported = _unsupported_extensions(request)
        if unsupported:
            response = make_response(request, 420, "Bad Extension")
            response.headers.add("Unsupported", ", ".join(unsupported))
            self.respond(transaction, response)
            return
        if request.to_tag:
            self._in_dialog(transaction)
        elif request.method == "INVITE":
            self._new_call(transaction)
        elif request.method == "OPTIONS":
            self._options(transaction)
        elif request.method in ("BYE", "INFO", "UPDATE"):
            self._simple(transaction, 481, "Call/Transaction Does Not Exist")
        elif request.method in KNOWN_METHODS:
            self._method_not_allowed(transaction)
        else:
            self._simple(transaction, 501, "Not Implemented")

    def _options(self, transaction: ServerTransaction) -> None:
        # RFC 3261 §11.2; carriers use OPTIONS as a keep-alive. While draining
        # we answer 503 so load balancers move traffic elsewhere.
        status = 503 if self.draining else 200
        response = make_response(transaction.request, status)
        response.headers.add("Allow", ALLOWED_METHODS)
        response.headers.add("Accept", "application/sdp")
        response.headers.add("Supported", ", ".join(sorted(SUPPORTED_EXTENSIONS)))
        self.respond(transaction, response)

    def _method_not_allowed(self, transaction: ServerTransaction) -> None:
        response = make_response(transaction.request, 405)
        response.headers.add("Allow", ALLOWED_METHODS)
        self.respond(transaction, response)

    def _simple(
        self, transaction: ServerTransaction, status: int, reason: str | None = None
    ) -> None:
        self.respond(transaction, make_response(transaction.request, status, reason))

    def _new_call(self, transaction: ServerTransaction) -> None:
        if self.draining or len(self.calls) >= self.config.max_calls:
            # 503 only for faults of the whole instance (RFC 3261 §21.5.4).
            self._refuse_new_call(transaction, "Call Limit Reached", 5)
            return
        request = transaction.request
        if self.shedding.sheds(self._now(), self.calls.setting_up, request.call_id):
            retry_after = self.config.overload.retry_after_s
            self._refuse_new_call(transaction, "Service Unavailable", retry_after)
            return
        if self.calls.is_merged(request):
            # RFC 3261 §8.2.2.2: the same INVITE again on another branch (it
            # forked upstream and came by two paths): a merged request.
            self._simple(transaction, 482, "Loop Detected")
            return
        call = Call(
            transaction,
            signalling=self,
            services=CallServices(
                self.gate, self.lookup, self._media_for, self.recorder
            ),
            config=self.config.call,
        )
        self.calls.add(call)
        self.counters["calls_started"] += 1
        call.start()

    def _refuse_new_call(
        self, transaction: ServerTransaction, reason: str, retry_after: int
    ) -> None:
        # RFC 3261 §8.2.6.2: a final response carries a To-tag; §21.5.4 and
        # §20.33: 503 says when to try again.
        response = make_response(transaction.request, 503, reason, to_tag=new_tag())
        response.headers.add("Retry-After", str(retry_after))
        self.respond(transaction, response)

    def _in_dialog(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        call = self.calls.for_request(request)
        if call is None or call.state is CallState.ENDED:
            # §12.2.2: a request for a dialog we do not know.
            self._simple(transaction, 481, "Call/Transaction Does Not Exist")
            return
        if request.method == "BYE":
            call.on_bye(transaction)
        elif request.method == "INVITE":
            call.on_reinvite(transaction)
        elif request.method in ("INFO", "UPDATE", "OPTIONS"):
            call.on_in_dialog_request(transaction)
        elif request.method in KNOWN_METHODS:
            self._method_not_allowed(transaction)
        else:
            self._simple(transaction, 501, "Not Implemented")

    def _media_for(self, call: Call) -> MediaBridge:
        """The call's media bridge: in a media worker, or in this process."""
        if self.workers is not None:
            return self.workers.bridge(call)
        assert self._rtp_pool is not None
        return LocalBridge(
            pool=self._rtp_pool,
            bind_host=self.config.bind,
            events=call,
            inactivity_timeout=self.config.call.rtp_timeout,
            max_queued_frames=self.config.call.max_queued_frames,
        )

    # -- Signalling (used by calls) -----------------------------------------

    def respond(self, transaction: ServerTransaction, response: Response) -> None:
        """Send a response in a server transaction."""
        self.layer.respond(transaction, response, self._now())
        self._flush()

    def forget(self, transaction: ServerTransaction) -> None:
        """Drop a request without answering it."""
        self.layer.forget(transaction)
        self._flush()

    def send_request(
        self,
        request: Request,
        peer: Peer,
        on_done: Callable[[Response | None], None],
    ) -> None:
        """Send an out-of-dialog request (REGISTER) in a client transaction.

        ``on_done`` gets the final response, or None when Timer F fires.
        """
        self.layer.send_request(request, peer, self._now(), on_done=on_done)
        self._flush()

    def send_in_dialog(self, dialog: Dialog, method: str) -> None:
        """Send an in-dialog request (BYE) in a client transaction."""
        try:
            hop_host, hop_port, transport = dialog.next_hop()
        except SipParseError as error:
            log.warning("no_route_for_request", method=method, reason=error.reason)
            return
        if (transport == "TCP" and not self.config.tcp) or transport not in (
            "UDP",
            "TCP",
        ):
            transport = "UDP"
        # RFC 3261 §18.1.1: Via names the transport the request goes over,
        # which may differ from the one the INVITE came on.
        request = dialog.build_request(
            method,
            via_host=self.config.call.advertise,
            via_port=self.port,
            transport=transport,
        )
        self.layer.send_request(
            request, Peer(transport, hop_host, hop_port), self._now()
        )
        self._flush()

    def dialog_established(self, call: Call) -> None:
        """Index a call by its dialog so in-dialog requests find it."""
        self.calls.answered(call)

    def call_ended(self, call: Call) -> None:
        """Forget a call that has ended."""
        self.calls.remove(call)
        # The INVITE transaction lingers 64*T1 past the answer (RFC 6026 §7.1)
        # to absorb retransmissions; the request's parsed values need not.
        call.invite.request.headers.compact()
        self.counters["calls_ended"] += 1
        if call.final_status is not None:
            self.counters[f"calls_final_{call.final_status}"] += 1

    def contact_header(self, transport: str) -> str:
        """Our Contact for dialogs, on the advertised address."""
        host = self.config.call.advertise
        host = f"[{host}]" if ":" in host else host
        suffix = ";transport=tcp" if transport == "TCP" else ""
        return f"<sip:{host}:{self.port}{suffix}>"

    # -- plumbing -----------------------------------------------------------

    def _now(self) -> float:
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    def _flush(self) -> None:
        outbox = self.layer.outbox
        if outbox:
            self.layer.outbox = []
            for outgoing in outbox:
                self._send(outgoing)
        self._reschedule()

    def _send(self, outgoing: Outgoing) -> None:
        try:
            self.transports.send(outgoing)
        except (OSError, SipParseError) as error:
            log.warning("sip_send_failed", error=str(error))
        message = outgoing.message
        if isinstance(message, Response) and message.status >= 200:
            # Sending read its Via again; a final response is kept by its
            # transaction only to be sent again (see Headers.compact).
            message.headers.compact()

    def _reschedule(self) -> None:
        deadline = self.layer.next_deadline()
        if self._timer is not None:
            if deadline is not None and self._timer_deadline == deadline:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._fire_timers)
            self._timer_deadline = deadline

    def _fire_timers(self) -> None:
        self._timer = None
        for event in self.layer.fire_timers(self._now()):
            self._dispatch(event)
        self._flush()


def _worker_pool(config: RouterConfig) -> WorkerPool | None:
    """The media workers ``config`` asks for (not started yet), if any.

    Raises:
        ValueError: the RTP range cannot give every worker a port.
    """
    if config.media_workers <= 0:
        return None
    return WorkerPool(
        WorkerPoolConfig(
            workers=config.media_workers,
            bind_host=config.bind,
            rtp_ports=config.rtp_ports,
            inactivity_timeout=config.call.rtp_timeout,
            max_queued_frames=config.call.max_queued_frames,
            log_level=config.log_level,
            log_format=config.log_format,
        )
    )


def _unsupported_extensions(request: Request) -> list[str]:
    if request.method in ("ACK", "CANCEL"):
        return []
    required = [tag.strip().lower() for tag in request.headers.get_all("Require")]
    return [tag for tag in required if tag and tag not in SUPPORTED_EXTENSIONS]
