"""Media: RTP, G.711, RFC 4733 events, RTP ports and 20 ms paced playout.

The sans-I/O parts (:mod:`.rtp`, :mod:`.g711`, :mod:`.dtmf`, :mod:`.receiver`,
:mod:`.playout`, :mod:`.outbound`) turn bytes into values and back, and
:mod:`.outbound` decides when each outbound frame goes out on the call's own
20 ms grid; :mod:`.session` puts one call's stream on a UDP socket, and
:mod:`.pacer` ticks every session's outbound stream from a single timer.
"""

from __future__ import annotations

from .dtmf import DtmfReceiver
from .errors import CodecError, MediaError, PortsExhausted, RtpError, UnsupportedMedia
from .pacer import Pacer, default_pacer
from .ports import RtpPortPool
from .rtp import RtpPacket, build_rtp, parse_rtp
from .session import MediaEvents, MediaSession
from .stats import MediaStats

__all__ = [
    "CodecError",
    "DtmfReceiver",
    "MediaError",
    "MediaEvents",
    "MediaSession",
    "MediaStats",
    "Pacer",
    "PortsExhausted",
    "RtpError",
    "RtpPacket",
    "RtpPortPool",
    "UnsupportedMedia",
    "build_rtp",
    "default_pacer",
    "parse_rtp",
]
