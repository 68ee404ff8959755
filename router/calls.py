"""One :class:`Call` per inbound call: glue between SIP, numbers, media and runner.

The call is an orchestrator. It asks :mod:`router.routing` where the call goes,
:mod:`router.sip.sdp` what to answer, and a
:class:`~router.media.bridge.MediaBridge` for the RTP port and the runner
stream; the bridge relays audio between them itself, in this process or in a
media worker, so no frame passes through the call. It talks SIP only through
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

from router.call_dialog import (
    SessionExpiry,
    answer_in_dialog,
    answer_reinvite,
    dialog_error_headers,
    refresh_session_timer,
)
from router.calls_sdp import AnswerBuilder, SdpRejected, is_sdp
from router.edge import EdgeRejected, TrunkGate
from router.media.bridge import MediaBridge, MediaUnavailable
from router.media.ports import PortsExhausted
from router.media.stats import MediaStats
from router.numbers.cache import Lookup
from router.numbers.models import Route, Trunk
from router.records import CallRecorder, call_record
from router.routing import (
    RETRY_AFTER_OVERLOAD,
    RouteRejected,
    caller_number,
    dialed_number,
    find_route,
)
from router.runner.client import RunnerUnavailable, StreamStart
from router.sip.dialog import (
    Dialog,
    DialogError,
    SessionTimer,
    new_tag,
)
from router.sip.errors import SipParseError
from router.sip.message import Request, Response, make_response
from router.sip.transaction import ServerTransaction

__all__ = ["Call", "CallConfig", "CallServices", "CallState", "Signalling"]

# RFC 3261 §20.33: Retry-After for a runner that cannot take the call.
RETRY_AFTER_RUNNER = 30

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
        """Run the set-up in a task of its own."""
        self.task = asyncio.get_running_loop().create_task(self._set_up())

    async def _set_up(self) -> None:
        try:
            await self._route_and_answer()
            return
        except EdgeRejected as error:
            if error.status == 0:
                self.signalling.forget(self.invite)  # stealth: no answer at all
            else:
                self._reject(error.status, error.reason, headers=error.headers)
        except RouteRejected as error:
            self._reject(error.status, error.reason, error.retry_after)
        except SdpRejected as error:
            self._reject(error.status, error.reason)
        except SipParseError as error:
            self._reject(400, error.reason)
        except DialogError as error:
            self._reject(
                error.status, error.reason, headers=dialog_error_headers(error)
            )
        except RunnerUnavailable as error:
            self.log.info("runner_unavailable", reason=error.reason)
            self._reject(480, "Runner Unavailable", RETRY_AFTER_RUNNER)
        except PortsExhausted:
            self._reject(503, "No Media Ports", RETRY_AFTER_OVERLOAD)
        except MediaUnavailable as error:
            self.log.warning("media_unavailable", reason=str(error))
            self._reject(503, "Media Unavailable", RETRY_AFTER_OVERLOAD)
        except asyncio.CancelledError:
            # Only on_cancel() and end() cancel the set-up; both answer first.
            await self.end(self.ended_reason or "cancelled", send_bye=False)
            raise
        except Exception:
            self.log.exception("call_setup_failed")
            self._reject(500, "Server Internal Error")
        await self.end(f"rejected-{self.final_status}", send_bye=False)

    async def _route_and_answer(self) -> None:
        request = self.invite.request

        # 1. Which trunk is calling? Nothing is looked up for a refused source.
        admission = await self.services.gate.admit(request, self.invite.peer.host)
        # RFC 3261 §17.2.1: 100 Trying as soon as we know we will answer.
        self.signalling.respond(self.invite, make_response(request, 100))
        self.trunk = admission.trunk
        _check_dialog_fields(request)

        # 2. Where does the call go?
        country = (self.trunk.default_country if self.trunk else None) or (
            self.config.default_country
        )
        # C13: a carrier that delivers to our registration names its username
        # in the Request-URI; then the number is in To.
        registered = self.trunk.username if self.trunk and self.trunk.register else None
        number = dialed_number(request, country, registered)
        self.log = self.log.bind(to=number.e164 or number.raw)
        self.route = await find_route(self.services.lookup, number, self.trunk)
        assert self.route.pipe is not None
        self.log = self.log.bind(pipe_id=self.route.pipe.pipe_id)
        self._save_record()

        # 3. Media: an RTP port, and an answer to the caller's offer (or our
        #    own offer for a late-offer INVITE, RFC 3261 §13.2.1).
        self.media = self.services.media_factory(self)
        port = await self.media.open()
        self.answer = AnswerBuilder(self.config.advertise, port)
        offer = request.body if is_sdp(request) else None
        audio = self.answer.answer_offer(offer)

        # 4. Ring while the runner connects (RFC 3261 §13.3.1.1).
        self._set_state(CallState.RINGING)
        self._provisional(180)
        await self.media.connect_runner(
            self.route.pipe.runner_url,
            self._stream_start(number.e164 or number.raw),
            self.config.ringing_timeout,
        )

        # 5. Ready: start media, then answer with our SDP.
        if audio is not None:
            self.media.configure(audio)
            await self.media.configured()
        self._answer()

    def _stream_start(self, to: str) -> StreamStart:
        request = self.invite.request
        assert self.route is not None and self.route.pipe is not None
        params = {
            "to": to,
            "from": caller_number(request),
            "pipe_id": self.route.pipe.pipe_id,
            "number_id": self.route.number.number_id,
            "sip_call_id": request.call_id,
        }
        for name, value in request.headers.items():
            if name.lower().startswith("x-"):
                params[name] = value
        return StreamStart(
            call_sid=self.call_id,
            stream_sid="MZ" + secrets.token_hex(16),
            account_sid=self.route.pipe.pipe_id,
            custom_parameters=params,
        )

    def _answer(self) -> None:
        assert self.answer is not None
        request = self.invite.request
        self.dialog = Dialog.from_invite(
            request, self.local_tag, self.invite.peer.transport
        )
        # RFC 4028 §9: echo the interval and say who refreshes.
        timer = SessionTimer.from_request(request)
        headers = self.dialog_headers() + refresh_session_timer(self, timer)
        response = make_response(
            request,
            200,
            to_tag=self.local_tag,
            headers=headers,
            body=self.answer.current_sdp(),
            content_type="application/sdp",
        )
        self._set_state(CallState.ANSWERED)
        self.final_status = 200
        self.answered_at = time.time()
        self._save_record()
        self.signalling.respond(self.invite, response)
        self.signalling.dialog_established(self)
        assert self.route is not None and self.route.pipe is not None
        self._call_later(
            self.route.pipe.max_call_duration_s,
            lambda: self._spawn_end("max-duration", send_bye=True),
        )

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

    def _reject(
        self,
        status: int,
        reason: str,
        retry_after: int | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
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
        self._reject(487, "Request Terminated")
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

    def _call_later(self, seconds: float, callback: Callable[[], None]) -> None:
        self._timers.append(asyncio.get_running_loop().call_later(seconds, callback))

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
        self._save_record()
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

    def _save_record(self) -> None:
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


def _check_dialog_fields(invite: Request) -> None:
    """Refuse, before ringing, an INVITE whose dialog we could not set up.

    Raises:
        SipParseError: no Contact (RFC 3261 §8.1.1.8: an INVITE must carry one).
        DialogError: a Session-Expires we refuse (RFC 4028 §6: 422 when too small).
    """
    if invite.contact is None:
        raise SipParseError("Missing Contact header")
    SessionTimer.from_request(invite)
