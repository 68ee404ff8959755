"""DTMF digits from RFC 4733 telephone-event packets.

A key press is sent as a run of RTP packets that all carry the event's start
timestamp (RFC 4733 §2.5.1.1): a first packet, updates with a growing duration,
and an end packet (E bit) sent three times (§2.5.1.4). Senders often omit the
marker bit on the first packet, and any packet of the run may be lost, so an
event is recognised by its timestamp alone and reported on the first packet seen.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import RtpError
from .rtp import RtpPacket

__all__ = ["DTMF_EVENTS", "DtmfReceiver", "TelephoneEvent", "parse_telephone_event"]

# RFC 4733 §3.2 (table 7): events 0-9, *, #, A-D, then 16 for hook flash. The
# flash is reported as "!", the usual stand-in for it in dial strings.
DTMF_EVENTS = "0123456789*#ABCD!"

# RFC 4733 §2.3: event (8 bits), E, R, volume (6 bits), duration (16 bits).
_EVENT = struct.Struct("!BBH")
_END_BIT = 0x80
_VOLUME_MASK = 0x3F
_TIMESTAMP_MODULUS = 1 << 32
_HALF_TIMESTAMP_RANGE = 1 << 31
# RFC 4733 §2.3: the duration field is 16 bits.
_MAX_DURATION = 0xFFFF


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One event block of a telephone-event payload (RFC 4733 §2.3).

    Attributes:
        event: the event code (0-15 DTMF, 16 flash, others not DTMF).
        end: the E bit: this packet reports the end of the event.
        volume: power level in -dBm0 (0-63); meaningful for DTMF only.
        duration: duration so far, in timestamp units (1/8000 s for DTMF).
    """

    event: int
    end: bool
    volume: int
    duration: int


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    """Parse the first event block of a telephone-event payload.

    Raises:
        RtpError: the payload is shorter than one 4-byte event block.
    """
    if len(payload) < _EVENT.size:
        raise RtpError(f"telephone-event payload of {len(payload)} bytes is too short")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & _END_BIT), flags & _VOLUME_MASK, duration)


class DtmfReceiver:
    """Turns the telephone-event packets of one stream into digits, one per key press.

    Feed it only packets whose payload type is the negotiated telephone-event type.
    """

    def __init__(self) -> None:
        self._ssrc: int | None = None
        self._timestamp = 0
        self._event = -1
        self._duration = 0
        self._ended = True

    def feed(self, packet: RtpPacket) -> str | None:
        """Return the digit if ``packet`` starts a new event, else ``None``.

        Later packets of the same event, its retransmitted end packets and stray
        packets of older events all return ``None``; so do events that are not
        DTMF (codes above 16).

        Raises:
            RtpError: the payload is shorter than one event block.
        """
        # Limitation: only the first event block is read. RFC 4733 §2.5.1.5 lets a
        # sender pack back-to-back events into one packet; DTMF senders do not,
        # because digits are separated by pauses.
        block = parse_telephone_event(packet.payload)
        is_new = self._is_new_event(packet, block)
        self._remember(packet, block)
        if not is_new or block.event >= len(DTMF_EVENTS):
            return None
        return DTMF_EVENTS[block.event]

    def _is_new_event(self, packet: RtpPacket, block: TelephoneEvent) -> bool:
        if packet.ssrc != self._ssrc:
            return True
        if packet.timestamp == self._timestamp:
            return False
        if self._continues_long_event(packet, block):
            return False
        # RFC 3550 §5.1: timestamps wrap, so compare them modulo 2**32. A packet
        # from before the current event arrived late: its event was seen already.
        ahead = (packet.timestamp - self._timestamp) % _TIMESTAMP_MODULUS
        return ahead < _HALF_TIMESTAMP_RANGE

    def _continues_long_event(self, packet: RtpPacket, block: TelephoneEvent) -> bool:
        # RFC 4733 §2.5.1.3: an event longer than the 16-bit duration field is
        # sent in segments; a new segment's timestamp is the previous one plus the
        # previous segment's duration (the largest, 0xFFFF, unless the sender cut
        # it shorter), and only the last segment ends with the E bit.
        if self._ended or block.event != self._event:
            return False
        ahead = (packet.timestamp - self._timestamp) % _TIMESTAMP_MODULUS
        return ahead in (self._duration, _MAX_DURATION)

    def _remember(self, packet: RtpPacket, block: TelephoneEvent) -> None:
        if packet.ssrc == self._ssrc and not self._is_newer(packet.timestamp):
            if packet.timestamp == self._timestamp:
                self._duration = max(self._duration, block.duration)
                self._ended = self._ended or block.end
            return
        self._ssrc = packet.ssrc
        self._timestamp = packet.timestamp
        self._event = block.event
        self._duration = block.duration
        self._ended = block.end

    def _is_newer(self, timestamp: int) -> bool:
        ahead = (timestamp - self._timestamp) % _TIMESTAMP_MODULUS
        return 0 < ahead < _HALF_TIMESTAMP_RANGE
