"""A call's set-up: from its INVITE to our 200 OK, or to a final refusal.

:func:`set_up_call` is the body of the task a new :class:`~router.calls.Call`
starts. It checks the source, routes the dialed number, opens the RTP port,
answers the caller's offer, rings while the runner connects and, once the
runner has its ``start``, answers 200 with our SDP. Each way the set-up can
fail becomes one final response here (the errors of every layer meet in one
place), after which the call ends.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING

from router.call_dialog import dialog_error_headers, refresh_session_timer
from router.calls_sdp import AnswerBuilder, SdpRejected, is_sdp
from router.edge import EdgeRejected
from router.media.bridge import MediaUnavailable
from router.media.ports import PortsExhausted
from router.routing import (
    RETRY_AFTER_OVERLOAD,
    RouteRejected,
    caller_number,
    dialed_number,
    find_route,
)
from router.runner.client import RunnerUnavailable, StreamStart
from router.sip.dialog import Dialog, DialogError, SessionTimer
from router.sip.errors import SipParseError
from router.sip.message import Request, make_response

if TYPE_CHECKING:
    from router.calls import Call

__all__ = ["RETRY_AFTER_RUNNER", "set_up_call"]

# RFC 3261 §20.33: Retry-After for a runner that cannot take the call.
RETRY_AFTER_RUNNER = 30


async def set_up_call(call: Call) -> None:
    """Route and answer ``call``; on failure, refuse it and end it."""
    try:
        await _route_and_answer(call)
        return
    except EdgeRejected as error:
        if error.status == 0:
            call.signalling.forget(call.invite)  # stealth: no answer at all
        else:
            call.reject(error.status, error.reason, headers=error.headers)
    except RouteRejected as error:
        call.reject(error.status, error.reason, error.retry_after)
    except SdpRejected as error:
        call.reject(error.status, error.reason)
    except SipParseError as error:
        call.reject(400, error.reason)
    except DialogError as error:
        call.reject(error.status, error.reason, headers=dialog_error_headers(error))
    except RunnerUnavailable as error:
        call.log.info("runner_unavailable", reason=error.reason)
        call.reject(480, "Runner Unavailable", RETRY_AFTER_RUNNER)
    except PortsExhausted:
        call.reject(503, "No Media Ports", RETRY_AFTER_OVERLOAD)
    except MediaUnavailable as error:
        call.log.warning("media_unavailable", reason=str(error))
        call.reject(503, "Media Unavailable", RETRY_AFTER_OVERLOAD)
    except asyncio.CancelledError:
        # Only on_cancel() and end() cancel the set-up; both answer first.
        await call.end(call.ended_reason or "cancelled", send_bye=False)
        raise
    except Exception:
        call.log.exception("call_setup_failed")
        call.reject(500, "Server Internal Error")
    await call.end(f"rejected-{call.final_status}", send_bye=False)


async def _route_and_answer(call: Call) -> None:
    request = call.invite.request

    # 1. Which trunk is calling? Nothing is looked up for a refused source.
    admission = await call.services.gate.admit(request, call.invite.peer.host)
    # RFC 3261 §17.2.1: 100 Trying as soon as we know we will answer.
    call.signalling.respond(call.invite, make_response(request, 100))
    call.trunk = trunk = admission.trunk
    _check_dialog_fields(request)

    # 2. Where does the call go?
    country = (trunk.default_country if trunk else None) or call.config.default_country
    # C13: a carrier that delivers to our registration names its username
    # in the Request-URI; then the number is in To.
    registered = trunk.username if trunk and trunk.register else None
    number = dialed_number(request, country, registered)
    call.log = call.log.bind(to=number.e164 or number.raw)
    call.route = route = await find_route(call.services.lookup, number, trunk)
    assert route.pipe is not None
    call.log = call.log.bind(pipe_id=route.pipe.pipe_id)
    call.save_record()

    # 3. Media: an RTP port, and an answer to the caller's offer (or our
    #    own offer for a late-offer INVITE, RFC 3261 §13.2.1).
    call.media = media = call.services.media_factory(call)
    port = await media.open()
    call.answer = AnswerBuilder(call.config.advertise, port)
    offer = request.body if is_sdp(request) else None
    audio = call.answer.answer_offer(offer)

    # 4. Ring while the runner connects (RFC 3261 §13.3.1.1).
    call.ring()
    await media.connect_runner(
        route.pipe.runner_url,
        _stream_start(call, number.e164 or number.raw),
        call.config.ringing_timeout,
    )

    # 5. Ready: start media, then answer with our SDP.
    if audio is not None:
        media.configure(audio)
        await media.configured()
    _answer(call)


def _stream_start(call: Call, to: str) -> StreamStart:
    """The runner's ``start``: who called whom, and the INVITE's X- headers."""
    request = call.invite.request
    assert call.route is not None and call.route.pipe is not None
    params = {
        "to": to,
        "from": caller_number(request),
        "pipe_id": call.route.pipe.pipe_id,
        "number_id": call.route.number.number_id,
        "sip_call_id": request.call_id,
    }
    for name, value in request.headers.items():
        if name.lower().startswith("x-"):
            params[name] = value
    return StreamStart(
        call_sid=call.call_id,
        stream_sid="MZ" + secrets.token_hex(16),
        account_sid=call.route.pipe.pipe_id,
        custom_parameters=params,
    )


def _answer(call: Call) -> None:
    """200 OK with our SDP: the dialog is set up (RFC 3261 §12.1.1)."""
    assert call.answer is not None
    request = call.invite.request
    call.dialog = Dialog.from_invite(
        request, call.local_tag, call.invite.peer.transport
    )
    # RFC 4028 §9: echo the interval and say who refreshes.
    timer = SessionTimer.from_request(request)
    headers = call.dialog_headers() + refresh_session_timer(call, timer)
    response = make_response(
        request,
        200,
        to_tag=call.local_tag,
        headers=headers,
        body=call.answer.current_sdp(),
        content_type="application/sdp",
    )
    call.mark_answered()
    call.save_record()
    call.signalling.respond(call.invite, response)
    call.signalling.dialog_established(call)
    assert call.route is not None and call.route.pipe is not None
    call.end_after(call.route.pipe.max_call_duration_s, "max-duration")


def _check_dialog_fields(invite: Request) -> None:
    """Refuse, before ringing, an INVITE whose dialog we could not set up.

    Raises:
        SipParseError: no Contact (RFC 3261 §8.1.1.8: an INVITE must carry one).
        DialogError: a Session-Expires we refuse (RFC 4028 §6: 422 when too small).
    """
    if invite.contact is None:
        raise SipParseError("Missing Contact header")
    SessionTimer.from_request(invite)
