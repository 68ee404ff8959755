"""SDP session descriptions and offer/answer (RFC 4566, RFC 3264).

For now this module only holds :class:`NegotiatedAudio`, the result of an
offer/answer exchange that the media layer consumes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NegotiatedAudio"]


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
