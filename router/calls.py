"""One :class:`Call` per inbound call: glue between SIP, numbers, media and runner.

The call is an orchestrator. Its set-up, from the INVITE to our 200 OK or a
refusal, is :mod:`router.call_setup`: it asks :mod:`router.routing` where the
call goes, :mod:`router.calls_sdp` what to answer, and a
:class:`~router.media.bridge.MediaBridge` for the RTP port and the runner
stream; the bridge relays audio between them itself, in this process or in a
media worker, so no frame passes through the call. Requests inside the dialog
are :mod:`router.call_dialog`. It talks SIP only through
the small :class:`Signalling` interface that :class:`~router.server.SipRouter`
implements. Every way a call can end goes through :meth:`Call.end`, which
releases the runner, the RTP port and the call's registrations exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from router.call_dialog import SessionExpiry, answer_in_dialog, answer_reinvite
from router.call_setup import set_up_call
from router.calls_sdp import AnswerBuilder, SdpRejected, is_sdp
from router.edge import TrunkGate
from router.media.bridge import MediaBridge
from router.media.stats import MediaStats
from router.numbers.cache import Lookup
from router.numbers.models import Route, Trunk
from router.records import CallRecorder, call_record
from router.sip.dialog import Dialog, new_tag
from router.sip.message import Request, Response, make_response
from router.sip.transaction import ServerTransaction

__all__ = ["Call", "CallConfig", "CallServices", "CallState", "Signalling"]

# One proxy for every call: each call binds its own fields onto it, which is
# a quarter of the cost of looking the logger up again per call.
_log = structlog.get_logger("router.call")

# The media figures the end-of-call line carries.
_MEDIA_STATS_FIELDS = tuple(field.name for field in dataclasses.fields(MediaStats))


class CallState(enum.Enum):
    """Where a call is in its life."""

    ROUTING = "routing"
    RINGING = "ringing"
    ANSWERED = "answered"
    CONFIRMED = "confirmed"
    ENDED = "ended"


class Signalling(Protocol):
    """What a call needs from the SIP side (implemented by the router)."""

    def respond(self, transaction: ServerTransaction, response: Response) -> None: ...

    def forget(self, transaction: ServerTransaction) -> None: ...

    def send_in_dialog(self, dialog: Dialog, method: str) -> None: ...

    def dialog_established(self, call: Call) -> None: ...

    def call_ended(self, call: Call) -> None: ...

    def contact_header(self, transport: str) -> str: ...


@dataclass(frozen=True)
class CallServices:
    """What a call uses besides SIP: the edge, lookups, and its media.

    ``media_factory`` makes the call's bridge, with the call as its events.
    """

    gate: TrunkGate
    lookup: Lookup
    media_factory: Callable[[Call], MediaBridge]
    recorder: CallRecorder | None = None


@dataclass(frozen=True)
class CallConfig:
    """Per-instance settings a call uses."""

    advertise: str
    default_country: str | None
    ringing_timeout: float
    rtp_timeout: float
    max_queued_frames: int
    server_header: str = "sip-router"


class Call:
    """An inbound call from INVITE to the end of its dialog."""

    def __init__(
        self,
        invite: ServerTransaction,
        *,
        signalling: Signalling,
        services: CallServices,
        config: CallConfig,
    ) -> None:
        self.invite = invite
        self.signalling = signalling
        self.services = services
        self.config = config
        self.call_id = "CA" + secrets.token_hex(16)
        self.local_tag = new_tag()
        self.state = CallState.ROUTING
        self.dialog: Dialog | None = None
        self.media: MediaBridge | None = None
        self.route: Route | None = None
        self.trunk: Trunk | None = None
        self.answer: AnswerBuilder | None = None
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.ended_reason: str | None = None
        self.final_status: int | None = None
        self.task: asyncio.Task[None] | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self.session_expiry = SessionExpiry(
            lambda: self._spawn_end("session-expired", send_bye=True)
        )
        self._hangup_after_ack: str | None = None
        self.log = _log.bind(call_id=self.call_id, sip_call_id=invite.request.call_id)

    # -- set-up -------------------------------------------------------------

    def start(self) -> None:
        """Run the set-up (router.call_setup) in a task of its own."""
        self.task = asyncio.get_running_loop().create_task(set_up_call(self))

    def ring(self) -> None:
        """180 Ringing while the runner connects (RFC 3261 §13.3.1.1)."""
        self._set_state(CallState.RINGING)
        self._provisional(180)

    def mark_answered(self) -> None:
        """Our 200 OK is about to go: the call is answered."""
        self._set_state(CallState.ANSWERED)
        self.final_status = 200
        self.answered_at = time.time()

    def dialog_headers(self) -> list[tuple[str, str]]:
        """Headers of every 2xx we send in the dialog."""
        return [
            ("Contact", self.signalling.contact_header(self.invite.peer.transport)),
            ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"),
            ("Supported", "timer"),
            ("Server", self.config.server_header),
        ]

    def _provisional(self, status: int) -> None:
        contact = self.signalling.contact_header(self.invite.peer.transport)
        response = make_response(
            self.invite.request,
            status,
            to_tag=self.local_tag,
            headers=[("Contact", contact)],
        )
        self.signalling.respond(self.invite, response)

    def reject(
        self,
        status: int,
        reason: str,
        retry_after: int | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Answer the INVITE with a final refusal (the set-up is over)."""
        self.log.info("call_rejected", status=status, reason=reason)
        response = make_response(
            self.invite.request, status, reason, to_tag=self.local_tag
        )
        if retry_after is not None:
            response.headers.add("Retry-After", str(retry_after))
        for name, value in headers:
            response.headers.add(name, value)
        self.final_status = status
        self.signalling.respond(self.invite, response)

    # -- in-dialog events ---------------------------------------------------

    def on_ack(self, ack: Request) -> None:
        """The caller acknowledged our 2xx (RFC 3261 §13.3.1.4)."""
        if self.state is not CallState.ANSWERED:
            return
        assert self.answer is not None and self.media is not None
        if self.answer.waiting_for_answer:
            try:
                audio = self.answer.take_answer(ack.body if is_sdp(ack) else None)
            except SdpRejected as error:
                # Late offer and the ACK has no usable answer: no media, hang up.
                self.log.info("late_offer_failed", reason=error.reason)
                self._spawn_end("no-media", send_bye=True)
                return
            self.media.configure(audio)
        self._set_state(CallState.CONFIRMED)
        if self._hangup_after_ack is not None:
            self._spawn_end(self._hangup_after_ack, send_bye=True)

    def on_ack_timeout(self) -> None:
        """No ACK in 64*T1: end the call with a BYE (§13.3.1.4)."""
        self._spawn_end("ack-timeout", send_bye=True)

    def on_cancel(self) -> None:
        """The caller cancelled while ringing: 487 and release everything (§9.2)."""
        self._abandon_set_up("caller-cancel")

    def on_bye(self, transaction: ServerTransaction) -> None:
        """The caller hung up (§15.1.2), or gave up ringing on the early dialog (§15)."""
        self.signalling.respond(transaction, make_response(transaction.request, 200))
        if self.state in (CallState.ROUTING, CallState.RINGING):
            # §15.1.2: the INVITE still pending on the dialog is answered 487.
            self._abandon_set_up("caller-bye")
            return
        self._spawn_end("caller-bye", send_bye=False)

    def _abandon_set_up(self, reason: str) -> None:
        if self.state not in (CallState.ROUTING, CallState.RINGING):
            return
        self.reject(487, "Request Terminated")
        self.ended_reason = reason
        if self.task is not None and not self.task.done():
            self.task.cancel()  # its handler ends the call
        else:
            self._spawn_end(reason, send_bye=False)

    def on_reinvite(self, transaction: ServerTransaction) -> None:
        """A re-INVITE: hold, resume, codec change or session refresh (§14.2)."""
        answer_reinvite(self, transaction)

    def on_in_dialog_request(self, transaction: ServerTransaction) -> None:
        """INFO, UPDATE and OPTIONS inside the dialog (see router.call_dialog)."""
        answer_in_dialog(self, transaction)

    # -- what the media bridge reports (BridgeEvents) -----------------------

    def on_dtmf(self, digit: str) -> None:
        """A digit from the caller (RFC 4733); the bridge gave it to the runner."""
        self.log.info("dtmf", digit=digit)

    def on_inactive(self) -> None:
        """No RTP from the caller for the RTP timeout."""
        if self.state is CallState.CONFIRMED:
            self._spawn_end("rtp-timeout", send_bye=True)

    def on_runner_closed(self, reason: str) -> None:
        """The runner hung up (or the bridge to it was lost): BYE the caller."""
        if self.state is CallState.ANSWERED:
            # RFC 3261 §15: no BYE before the ACK for our 2xx; on_ack sends it
            # (or on_ack_timeout, when the ACK never comes).
            self._hangup_after_ack = "runner-hangup"
        elif self.state is CallState.CONFIRMED:
            self._spawn_end("runner-hangup", send_bye=True)
        # While ringing, open() raises RunnerUnavailable and the set-up answers 480.

    # -- timers -------------------------------------------------------------

    def end_after(self, seconds: float, reason: str) -> None:
        """End the call with a BYE after ``seconds`` (unless it has ended by then)."""
        handle = asyncio.get_running_loop().call_later(
            seconds, lambda: self._spawn_end(reason, send_bye=True)
        )
        self._timers.append(handle)

    # -- the end ------------------------------------------------------------

    def _spawn_end(self, reason: str, *, send_bye: bool) -> None:
        if self.state is not CallState.ENDED:
            asyncio.get_running_loop().create_task(self.end(reason, send_bye=send_bye))

    async def end(self, reason: str, *, send_bye: bool) -> None:
        """End the call once: BYE if asked, stop the runner, free the media."""
        if self.state is CallState.ENDED:
            return
        was_answered = self.state in (CallState.ANSWERED, CallState.CONFIRMED)
        # The state changes now; its log line waits for the media figures below,
        # so the end of a call is one line, not two.
        self.state = CallState.ENDED
        self.ended_reason = reason
        self.ended_at = time.time()
        self.save_record()
        for handle in self._timers:
            handle.cancel()
        self.session_expiry.stop()
        if send_bye and was_answered and self.dialog is not None:
            self.signalling.send_in_dialog(self.dialog, "BYE")
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        try:
            if self.media is not None:
                await self.media.close(reason)
        finally:
            self._log_end(reason)
        self.signalling.call_ended(self)

    def _log_end(self, reason: str) -> None:
        fields: dict[str, object] = {}
        if self.media is not None:
            stats = self.media.stats
            fields = {name: getattr(stats, name) for name in _MEDIA_STATS_FIELDS}
        self.log.info(
            "call_state", state=CallState.ENDED.value, reason=reason, **fields
        )

    def save_record(self) -> None:
        """Queue the call's record as it stands now (once it is routed)."""
        recorder = self.services.recorder
        if (
            recorder is not None
            and self.route is not None
            and self.route.pipe is not None
        ):
            recorder.save(call_record(self, recorder.instance))

    def _set_state(self, state: CallState, **fields: object) -> None:
        self.state = state
        self.log.info("call_state", state=state.value, **fields)
