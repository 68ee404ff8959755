"""SDP session descriptions and offer/answer (RFC 4566, RFC 3264).

:func:`parse_sdp` reads what carriers send (tolerating LF-only line ends and
lines it does not know) and :meth:`SessionDescription.serialise` writes it
back. :func:`negotiate_answer` answers an offer with the one audio stream we
handle, G.711 (PCMU or PCMA) plus RFC 4733 telephone-event; :func:`build_offer`
and :func:`negotiate_from_answer` cover the late-offer case, where our 200
carries the offer and the ACK the answer (RFC 3261 §13.2.1).

The result of either exchange is a :class:`NegotiatedAudio`, which is all the
media layer needs to know.

One module per part: :mod:`.model` (the description and writing it),
:mod:`.parser` and :mod:`.offer_answer`.
"""

from __future__ import annotations

from .model import (
    DIRECTIONS,
    MAX_PAYLOAD_TYPE,
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
)
from .offer_answer import (
    DEFAULT_DTMF_EVENTS,
    DEFAULT_PTIME,
    G711_CLOCK_RATE,
    OFFER_DTMF_PAYLOAD_TYPE,
    NegotiatedAudio,
    NoCommonCodec,
    build_offer,
    negotiate_answer,
    negotiate_from_answer,
)
from .parser import parse_sdp

__all__ = [
    "DEFAULT_DTMF_EVENTS",
    "DEFAULT_PTIME",
    "DIRECTIONS",
    "G711_CLOCK_RATE",
    "MAX_PAYLOAD_TYPE",
    "OFFER_DTMF_PAYLOAD_TYPE",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Connection",
    "MediaDescription",
    "NegotiatedAudio",
    "NoCommonCodec",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "build_offer",
    "negotiate_answer",
    "negotiate_from_answer",
    "parse_sdp",
]
