"""A call's side of SDP offer/answer (RFC 3264), across INVITE, ACK and re-INVITEs.

:class:`AnswerBuilder` keeps our current session description and its version,
answers the caller's offers, and handles a late offer (an INVITE without SDP,
RFC 3261 §13.2.1), where our 200 carries the offer and the ACK the answer.
"""

from __future__ import annotations

import secrets

from router.sip.errors import SipParseError
from router.sip.message import Request
from router.sip.sdp import (
    NegotiatedAudio,
    NoCommonCodec,
    SessionDescription,
    build_offer,
    negotiate_answer,
    negotiate_from_answer,
    parse_sdp,
)

__all__ = ["AnswerBuilder", "SdpRejected", "is_sdp"]


class SdpRejected(Exception):
    """An offer or answer we cannot use; ``status`` is the SIP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def is_sdp(request: Request) -> bool:
    """True when the request carries an SDP body."""
    if not request.body:
        return False
    content_type = (
        (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    )
    return content_type == "application/sdp"


class AnswerBuilder:
    """Our session description for one call and the offer/answer steps on it."""

    def __init__(self, local_address: str, local_port: int) -> None:
        self.local_address = local_address
        self.local_port = local_port
        self.session_id = secrets.randbelow(2**31) + 1
        self.version = 1
        self.sdp: SessionDescription | None = None
        self.audio: NegotiatedAudio | None = None
        self.waiting_for_answer = False
        self._our_offer: SessionDescription | None = None

    def current_sdp(self) -> bytes:
        """Our answer (or our offer for a late-offer call), serialised."""
        assert self.sdp is not None
        return self.sdp.serialise()

    def answer_offer(self, body: bytes | None) -> NegotiatedAudio | None:
        """Answer the INVITE's offer; with no offer, prepare ours (late offer).

        Raises:
            SdpRejected: 488 when no codec fits, 400 when the SDP is unreadable.
        """
        if body is None:
            self._our_offer = build_offer(
                local_address=self.local_address,
                local_port=self.local_port,
                session_id=self.session_id,
                session_version=self.version,
            )
            self.sdp = self._our_offer
            self.waiting_for_answer = True
            return None
        return self._negotiate(body)

    def take_answer(self, body: bytes | None) -> NegotiatedAudio:
        """Take the answer to our late offer from the ACK.

        Raises:
            SdpRejected: when the ACK has no answer or no codec fits.
        """
        assert self._our_offer is not None
        self.waiting_for_answer = False
        if body is None:
            raise SdpRejected(488, "No SDP answer in ACK")
        try:
            self.audio = negotiate_from_answer(self._our_offer, parse_sdp(body))
        except NoCommonCodec:
            raise SdpRejected(488, "Not Acceptable Here") from None
        except SipParseError as error:
            raise SdpRejected(400, error.reason) from None
        return self.audio

    def answer_reoffer(self, body: bytes | None) -> NegotiatedAudio | None:
        """Answer a re-INVITE's offer; the old session stays on failure (§8).

        A re-INVITE without SDP asks for our offer: we send our current
        description again and keep the media as it is.
        """
        if body is None:
            return None
        return self._negotiate(body, bump_version=True)

    def _negotiate(self, body: bytes, *, bump_version: bool = False) -> NegotiatedAudio:
        try:
            offer = parse_sdp(body)
            version = self.version + 1 if bump_version else self.version
            answer, audio = negotiate_answer(
                offer,
                local_address=self.local_address,
                local_port=self.local_port,
                session_id=self.session_id,
                session_version=version,
            )
        except NoCommonCodec:
            raise SdpRejected(488, "Not Acceptable Here") from None
        except SipParseError as error:
            raise SdpRejected(400, error.reason) from None
        # RFC 3264 §8: the version goes up only when a new answer is given.
        self.version = version
        self.sdp = answer
        self.audio = audio
        return audio
