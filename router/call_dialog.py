"""Requests inside an established call's dialog: re-INVITE, UPDATE, INFO, OPTIONS.

A re-INVITE may put the call on hold, resume it, change the codec or refresh
the session timer (RFC 3261 §14.2, RFC 4028); the call survives every one of
them, and an offer we cannot accept is refused with the old session left as it
was (RFC 3264 §6). :class:`SessionExpiry` keeps the RFC 4028 timer that ends a
call nobody refreshes.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from router.calls_sdp import SdpRejected, is_sdp
from router.sip.dialog import MIN_SESSION_EXPIRES, DialogError, SessionTimer
from router.sip.message import make_response
from router.sip.transaction import ServerTransaction

if TYPE_CHECKING:
    from router.calls import Call

__all__ = [
    "SessionExpiry",
    "answer_in_dialog",
    "answer_reinvite",
    "dialog_error_headers",
]


def _never() -> None:
    """``on_expired`` of a stopped timer."""


class SessionExpiry:
    """The RFC 4028 timer: ends the call when no refresh comes in time."""

    def __init__(self, on_expired: Callable[[], None]) -> None:
        self.on_expired = on_expired
        self._handle: asyncio.TimerHandle | None = None

    def arm(self, timer: SessionTimer) -> None:
        """(Re)start the timer for ``timer.interval``."""
        # RFC 4028 §10: without a refresh before the interval ends the session
        # is over; we BYE at the interval less min(32 s, interval/3).
        self.cancel()
        grace = min(32.0, timer.interval / 3)
        self._handle = asyncio.get_running_loop().call_later(
            timer.interval - grace, self.on_expired
        )

    def cancel(self) -> None:
        """Stop the timer (the session has no timer any more, or the call ended)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def stop(self) -> None:
        """Stop the timer for good, and let go of ``on_expired`` (the call ended)."""
        self.cancel()
        self.on_expired = _never


def dialog_error_headers(error: DialogError) -> tuple[tuple[str, str], ...]:
    """Headers a refusal must carry; RFC 4028 §6: a 422 carries Min-SE."""
    if error.status == 422:
        return (("Min-SE", str(MIN_SESSION_EXPIRES)),)
    return ()


def answer_reinvite(call: Call, transaction: ServerTransaction) -> None:
    """Answer a re-INVITE: new SDP answer, new target, refreshed timer (§14.2)."""
    request = transaction.request
    if call.dialog is None or call.answer is None or call.media is None:
        # §14.2: an INVITE on the early dialog, before our final response to
        # the first one: 500 with a random Retry-After of 0-10 s.
        response = make_response(request, 500, "Initial INVITE Pending")
        response.headers.add("Retry-After", str(secrets.randbelow(11)))
        call.signalling.respond(transaction, response)
        return
    try:
        call.dialog.check_remote_cseq(request)
        timer = SessionTimer.from_request(request)
        audio = call.answer.answer_reoffer(request.body if is_sdp(request) else None)
    except DialogError as error:
        _refuse(
            call, transaction, error.status, error.reason, dialog_error_headers(error)
        )
        return
    except SdpRejected as error:
        # RFC 3264 §6: rejecting the new offer leaves the old session as it was.
        _refuse(call, transaction, error.status, error.reason)
        return
    call.dialog.update_target(request)
    headers = call.dialog_headers() + refresh_session_timer(call, timer)
    if audio is not None:
        call.media.configure(audio)
    response = make_response(
        request,
        200,
        headers=headers,
        body=call.answer.current_sdp(),
        content_type="application/sdp",
    )
    call.signalling.respond(transaction, response)
    call.log.info("call_reinvite", direction=audio.direction if audio else None)


def answer_in_dialog(call: Call, transaction: ServerTransaction) -> None:
    """INFO, UPDATE without SDP and OPTIONS inside the dialog get a 200.

    An UPDATE is a session refresh too (RFC 4028 §9), like a re-INVITE.
    """
    request = transaction.request
    refresh = request.method == "UPDATE"
    try:
        if call.dialog is not None:
            call.dialog.check_remote_cseq(request)
        timer = SessionTimer.from_request(request) if refresh else None
    except DialogError as error:
        _refuse(
            call, transaction, error.status, error.reason, dialog_error_headers(error)
        )
        return
    if refresh and is_sdp(request):
        # Limitation: an offer in UPDATE (RFC 3311) is declined with 488; the
        # session carries on unchanged, as RFC 3264 requires.
        _refuse(call, transaction, 488, "Not Acceptable Here")
        return
    headers = refresh_session_timer(call, timer) if refresh else []
    call.signalling.respond(transaction, make_response(request, 200, headers=headers))


def refresh_session_timer(
    call: Call, timer: SessionTimer | None
) -> list[tuple[str, str]]:
    """Restart or stop the session timer on a refresh; return the 2xx headers.

    RFC 4028 §9: the 2xx echoes Session-Expires and restarts the timer; a
    refresh without Session-Expires gets a 2xx without one, which leaves the
    session with no timer (§7.4), so ours stops too.
    """
    if call.dialog is None:
        return []  # not answered yet: the 200 to the INVITE sets the timer
    call.dialog.session_timer = timer
    if timer is None:
        call.session_expiry.cancel()
        return []
    call.session_expiry.arm(timer)
    return [("Session-Expires", timer.header_value()), ("Require", "timer")]


def _refuse(
    call: Call,
    transaction: ServerTransaction,
    status: int,
    reason: str,
    headers: tuple[tuple[str, str], ...] = (),
) -> None:
    response = make_response(transaction.request, status, reason)
    for name, value in headers:
        response.headers.add(name, value)
    call.signalling.respond(transaction, response)
