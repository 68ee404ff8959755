"""RTP packets (RFC 3550 §5.1): parsing, building, and numbering an outbound stream.

This module is sans-I/O: it turns bytes into :class:`RtpPacket` values and back.
It runs for every packet of every call (50 packets per second and direction per
call), so the hot paths use one precompiled :class:`struct.Struct` and avoid any
work that is not needed for a plain 12-byte header.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

from .errors import RtpError

__all__ = [
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "RtpPacket",
    "RtpPacketizer",
    "build_rtp",
    "parse_rtp",
]

# RFC 3550 §5.1: the only version in use.
RTP_VERSION = 2

# RFC 3550 §5.1: the fixed header (V/P/X/CC, M/PT, sequence, timestamp, SSRC).
RTP_HEADER_SIZE = 12

_HEADER = struct.Struct("!BBHII")
_PACK_HEADER = _HEADER.pack
# RFC 3550 §5.3.1: profile-defined 16 bits, then the extension length in 32-bit words.
_EXTENSION_HEADER = struct.Struct("!HH")

_VERSION_BITS = RTP_VERSION << 6
_SEQUENCE_MASK = 0xFFFF
_TIMESTAMP_MASK = 0xFFFFFFFF


@dataclass(slots=True)
class RtpPacket:
    """One parsed RTP packet; treat it as immutable.

    It is a plain (not frozen) dataclass because a frozen one costs five times as
    much to create, and one is created for every packet received.

    Attributes:
        payload_type: the 7-bit payload type (RFC 3551 §6 for the static ones).
        sequence: 16-bit sequence number.
        timestamp: 32-bit media timestamp (8 kHz clock for G.711 and telephone-event).
        ssrc: synchronisation source of the stream.
        payload: the payload, with any header extension and padding removed.
        marker: the marker bit (RFC 3551 §4.1: first packet of a talkspurt).
        padding: whether the packet carried padding (already stripped from payload).
        extension: whether the packet carried a header extension (skipped).
        csrcs: contributing sources, in order.
        version: always 2; kept so the value mirrors the header.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    padding: bool = False
    extension: bool = False
    csrcs: tuple[int, ...] = ()
    version: int = RTP_VERSION


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP datagram.

    Args:
        data: the whole UDP payload.

    Returns:
        The packet, its payload stripped of CSRCs, header extension and padding.

    Raises:
        RtpError: the datagram is shorter than the header, is not version 2, or
            its CSRC list, header extension or padding runs past its end.
    """
    size = len(data)
    if size < RTP_HEADER_SIZE:
        raise RtpError(f"{size}-byte datagram is shorter than the 12-byte RTP header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {first >> 6} is not 2")

    csrc_count = first & 0x0F
    offset = RTP_HEADER_SIZE + 4 * csrc_count
    if offset > size:
        raise RtpError(f"{csrc_count} CSRCs run past the end of a {size}-byte packet")
    csrcs = (
        struct.unpack_from(f"!{csrc_count}I", data, RTP_HEADER_SIZE)
        if csrc_count
        else ()
    )

    if first & 0x10:
        offset = _skip_extension(data, offset)
    end = _strip_padding(data, offset) if first & 0x20 else size

    return RtpPacket(
        second & 0x7F,
        sequence,
        timestamp,
        ssrc,
        data[offset:end],
        bool(second & 0x80),
        bool(first & 0x20),
        bool(first & 0x10),
        csrcs,
    )


def _skip_extension(data: bytes, offset: int) -> int:
    """Return the offset just past the header extension that starts at ``offset``."""
    # RFC 3550 §5.3.1: a 4-byte extension header, then `length` 32-bit words.
    if offset + _EXTENSION_HEADER.size > len(data):
        raise RtpError("RTP header extension runs past the end of the packet")
    words: int = _EXTENSION_HEADER.unpack_from(data, offset)[1]
    end = offset + _EXTENSION_HEADER.size + 4 * words
    if end > len(data):
        raise RtpError(
            f"RTP header extension of {words} words runs past the end of the packet"
        )
    return end


def _strip_padding(data: bytes, payload_start: int) -> int:
    """Return where the payload ends once the padding is removed."""
    # RFC 3550 §5.1: the last octet counts the padding octets, itself included,
    # so it is at least 1 and cannot reach back into the header.
    count = data[-1]
    if count == 0:
        raise RtpError("RTP padding count is zero")
    end = len(data) - count
    if end < payload_start:
        raise RtpError(f"RTP padding of {count} bytes is longer than the payload")
    return end


def build_rtp(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    *,
    marker: bool = False,
) -> bytes:
    """Build an RTP packet with a plain 12-byte header (no CSRCs, extension or padding).

    The numbers must already be in range (payload type 0-127, sequence 16 bits,
    timestamp and SSRC 32 bits); :class:`struct.error` is raised otherwise. Keeping
    validation out of this function keeps it at one ``pack`` and one concatenation.
    """
    second = payload_type | 0x80 if marker else payload_type
    return _HEADER.pack(_VERSION_BITS, second, sequence, timestamp, ssrc) + payload


class RtpPacketizer:
    """Numbers the packets of one outbound RTP stream.

    It owns the stream's SSRC, sequence number and timestamp. RFC 3550 §5.1 asks
    for random initial values of all three (so a new stream cannot be confused
    with an old one); pass explicit values only in tests.
    """

    __slots__ = ("sequence", "ssrc", "timestamp")

    def __init__(
        self,
        *,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.sequence = secrets.randbits(16) if sequence is None else sequence
        self.timestamp = secrets.randbits(32) if timestamp is None else timestamp

    def packetize(
        self, payload_type: int, payload: bytes, *, marker: bool = False
    ) -> bytes:
        """Build the next packet of the stream at the current timestamp.

        The sequence number grows by one for every packet built (RFC 3550 §5.1);
        the timestamp only moves with :meth:`advance`, because it follows the
        media clock, not the packet count.
        """
        # build_rtp() inlined: this runs for every packet sent.
        sequence = self.sequence
        self.sequence = (sequence + 1) & _SEQUENCE_MASK
        second = payload_type | 0x80 if marker else payload_type
        header = _PACK_HEADER(
            _VERSION_BITS, second, sequence, self.timestamp, self.ssrc
        )
        return header + payload

    def advance(self, samples: int) -> None:
        """Move the timestamp forward by ``samples`` sampling periods (mod 2**32)."""
        self.timestamp = (self.timestamp + samples) & _TIMESTAMP_MASK
