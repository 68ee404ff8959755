"""The media layer's exception family.

Every error raised on purpose by :mod:`router.media` derives from
:class:`MediaError`, so callers can catch the whole layer in one place.
"""

from __future__ import annotations

__all__ = ["CodecError", "MediaError", "PortsExhausted", "RtpError", "UnsupportedMedia"]


class MediaError(Exception):
    """Base class of every error raised on purpose by the media layer."""


class RtpError(MediaError, ValueError):
    """A datagram is not a valid RTP packet, or an RTP payload is malformed."""


class CodecError(MediaError, ValueError):
    """Audio handed to a G.711 function is malformed (odd length, out of range)."""


class PortsExhausted(MediaError):
    """Every RTP port of the pool is in use or could not be bound."""


class UnsupportedMedia(MediaError, ValueError):
    """A negotiated audio stream has a codec or direction this layer cannot run."""
