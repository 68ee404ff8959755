"""Offer/answer for the one audio stream we handle (RFC 3264).

:func:`negotiate_answer` answers an offer with G.711 (PCMU or PCMA) plus RFC 4733
telephone-event; :func:`build_offer` and :func:`negotiate_from_answer` cover the
late-offer case, where our 200 carries the offer and the ACK the answer
(RFC 3261 §13.2.1). Either way the result is a :class:`NegotiatedAudio`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .model import (
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
)

__all__ = [
    "DEFAULT_DTMF_EVENTS",
    "DEFAULT_PTIME",
    "G711_CLOCK_RATE",
    "OFFER_DTMF_PAYLOAD_TYPE",
    "NegotiatedAudio",
    "NoCommonCodec",
    "build_offer",
    "negotiate_answer",
    "negotiate_from_answer",
]

# RFC 3264 §6.1: the answerer's direction mirrors the offerer's.
_MIRRORED = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}

# RFC 3551 §4.5: G.711 is sent in 20 ms packets unless ptime says otherwise.
DEFAULT_PTIME = 20

# RFC 4733 §2.4.1: events 0-15 are the DTMF digits 0-9, *, #, A-D.
DEFAULT_DTMF_EVENTS = "0-15"

# Our offer's telephone-event payload type: the de facto common dynamic value.
OFFER_DTMF_PAYLOAD_TYPE = 101

G711_CLOCK_RATE = 8000


class NoCommonCodec(SdpError):
    """The offer has no audio stream we can take: answer 488 (RFC 3264 §6)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("No common codec", detail, status=488)


@dataclass(frozen=True)
class NegotiatedAudio:
    """The audio stream agreed with the caller in one offer/answer exchange.

    Attributes:
        payload_type: RTP payload type of the voice codec: 0 for PCMU, 8 for PCMA,
            or a dynamic payload type mapped to one of them.
        codec: ``"PCMU"`` or ``"PCMA"``.
        dtmf_payload_type: payload type of telephone-event (RFC 4733) the caller
            offered, e.g. 101 or 96; ``None`` when it offered none.
        remote_address: the caller's ``c=`` address; ``"0.0.0.0"`` is the
            old-style hold of RFC 2543 (send nothing).
        remote_port: the caller's RTP port from the ``m=`` line.
        direction: OUR direction: ``sendrecv``, ``sendonly``, ``recvonly`` or
            ``inactive``.
        ptime: packetisation time in milliseconds (20).
    """

    payload_type: int
    codec: str
    dtmf_payload_type: int | None
    remote_address: str
    remote_port: int
    direction: str
    ptime: int


@dataclass(frozen=True)
class _Choice:
    """What we take from one offered audio stream."""

    payload_type: int
    codec: str
    dtmf_payload_type: int | None
    dtmf_events: str


def negotiate_answer(
    offer: SessionDescription,
    *,
    local_address: str,
    local_port: int,
    session_id: int,
    session_version: int,
    supported: Iterable[str] = ("PCMU", "PCMA"),
) -> tuple[SessionDescription, NegotiatedAudio]:
    """Answer `offer` with one G.711 audio stream (RFC 3264 §6).

    Takes the first audio stream with a non-zero port whose formats include
    one of `supported` at 8000 Hz, choosing the first such format in the
    offer's order (§6.1), plus telephone-event/8000 when offered. Every other
    stream is rejected with port 0, so the answer has as many ``m=`` lines as
    the offer (§6). Our direction mirrors the offer's (§6.1).

    Raises:
        NoCommonCodec: when no offered audio stream has a codec we support.
    """
    names = {name.upper() for name in supported}
    chosen = next(
        (
            (index, choice)
            for index, media in enumerate(offer.media)
            if (choice := _choose_audio(media, names)) is not None
        ),
        None,
    )
    if chosen is None:
        raise NoCommonCodec("no audio stream offers " + "/".join(sorted(names)))
    index, choice = chosen
    offered = offer.media[index]
    direction = _MIRRORED[offered.direction]
    answer = SessionDescription(
        version=0,
        origin=_our_origin(local_address, session_id, session_version),
        session_name="-",
        connection=Connection.for_address(local_address),
        # RFC 3264 §6: the t= line of the answer equals the offer's.
        times=list(offer.times) or [(0, 0)],
        attributes=[],
        media=[
            _answer_media(choice, local_port, direction)
            if i == index
            else _rejected(media)
            for i, media in enumerate(offer.media)
        ],
    )
    return answer, _negotiated(offer, offered, choice, direction)


def _choose_audio(media: MediaDescription, names: set[str]) -> _Choice | None:
    """Pick codec and telephone-event from one offered stream, or None."""
    if media.media != "audio" or media.port == 0 or media.proto.upper() != "RTP/AVP":
        return None
    rtpmap = media.rtpmap()
    voice = next(
        (pt for pt in media.payload_types() if _is_g711(rtpmap.get(pt), names)), None
    )
    if voice is None:
        return None
    dtmf = next(
        (pt for pt in media.payload_types() if _is_telephone_event(rtpmap.get(pt))),
        None,
    )
    events = media.fmtp().get(dtmf, DEFAULT_DTMF_EVENTS) if dtmf is not None else ""
    return _Choice(voice, rtpmap[voice][0], dtmf, events or DEFAULT_DTMF_EVENTS)


def _is_g711(entry: RtpMap | None, names: set[str]) -> bool:
    return entry is not None and entry[0] in names and entry[1:] == (G711_CLOCK_RATE, 1)


def _is_telephone_event(entry: RtpMap | None) -> bool:
    return (
        entry is not None
        and entry[0] == "TELEPHONE-EVENT"
        and entry[1] == G711_CLOCK_RATE
    )


def _our_origin(local_address: str, session_id: int, session_version: int) -> Origin:
    connection = Connection.for_address(local_address)
    return Origin(
        "-", session_id, session_version, "IN", connection.addrtype, local_address
    )


def _answer_media(choice: _Choice, local_port: int, direction: str) -> MediaDescription:
    # CN (payload type 13) and every other format are left out on purpose:
    # the media layer handles G.711 and telephone-event only.
    formats = [str(choice.payload_type)]
    attributes: list[Attribute] = [
        ("rtpmap", f"{choice.payload_type} {choice.codec}/{G711_CLOCK_RATE}")
    ]
    if choice.dtmf_payload_type is not None:
        dtmf = choice.dtmf_payload_type
        formats.append(str(dtmf))
        attributes += [
            ("rtpmap", f"{dtmf} telephone-event/{G711_CLOCK_RATE}"),
            ("fmtp", f"{dtmf} {choice.dtmf_events}"),
        ]
    attributes += [("ptime", str(DEFAULT_PTIME)), (direction, None)]
    return MediaDescription("audio", local_port, "RTP/AVP", formats, None, attributes)


def _rejected(media: MediaDescription) -> MediaDescription:
    # RFC 3264 §6: a rejected stream keeps its m= line with port 0 and at
    # least one format.
    return MediaDescription(media.media, 0, media.proto, list(media.formats) or ["0"])


def _negotiated(
    session: SessionDescription,
    media: MediaDescription,
    choice: _Choice,
    direction: str,
) -> NegotiatedAudio:
    connection = session.connection_for(media)
    if connection is None:  # parse_sdp guarantees one for an active stream
        raise SdpError("Bad SDP: missing c= line")
    return NegotiatedAudio(
        payload_type=choice.payload_type,
        codec=choice.codec,
        dtmf_payload_type=choice.dtmf_payload_type,
        # RFC 3264 §8.4: "0.0.0.0" (old-style hold) is kept; the media layer
        # sends nothing to it.
        remote_address=connection.address.partition("/")[0],
        remote_port=media.port,
        direction=direction,
        ptime=media.ptime or DEFAULT_PTIME,
    )


def build_offer(
    *, local_address: str, local_port: int, session_id: int, session_version: int
) -> SessionDescription:
    """Return our offer for a late-offer INVITE: PCMU, PCMA, telephone-event 101."""
    dtmf = OFFER_DTMF_PAYLOAD_TYPE
    media = MediaDescription(
        media="audio",
        port=local_port,
        proto="RTP/AVP",
        formats=["0", "8", str(dtmf)],
        attributes=[
            ("rtpmap", f"0 PCMU/{G711_CLOCK_RATE}"),
            ("rtpmap", f"8 PCMA/{G711_CLOCK_RATE}"),
            ("rtpmap", f"{dtmf} telephone-event/{G711_CLOCK_RATE}"),
            ("fmtp", f"{dtmf} {DEFAULT_DTMF_EVENTS}"),
            ("ptime", str(DEFAULT_PTIME)),
            ("sendrecv", None),
        ],
    )
    return SessionDescription(
        version=0,
        origin=_our_origin(local_address, session_id, session_version),
        session_name="-",
        connection=Connection.for_address(local_address),
        times=[(0, 0)],
        attributes=[],
        media=[media],
    )


def negotiate_from_answer(
    offer: SessionDescription,
    answer: SessionDescription,
    *,
    supported: Iterable[str] = ("PCMU", "PCMA"),
) -> NegotiatedAudio:
    """Read the caller's answer to our `offer` (the ACK of a late-offer call).

    Raises:
        SdpError: when the answer does not have one ``m=`` line per offered one
            (RFC 3264 §6).
        NoCommonCodec: when the answer rejects our audio stream or picks a
            codec we did not offer.
    """
    if len(answer.media) != len(offer.media):
        raise SdpError("Bad SDP: answer does not match offer", "m= line count differs")
    names = {name.upper() for name in supported}
    for ours, theirs in zip(offer.media, answer.media, strict=True):
        if ours.media != "audio" or ours.port == 0 or theirs.port == 0:
            continue
        choice = _choose_audio(theirs, names)
        if choice is not None and str(choice.payload_type) in ours.formats:
            return _negotiated(answer, theirs, choice, _MIRRORED[theirs.direction])
    raise NoCommonCodec("the answer accepts none of our audio formats")
