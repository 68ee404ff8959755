"""The caller's half of a media stream: RTP datagrams in, μ-law frames and digits out.

:class:`RtpReceiver` is sans-I/O: the session hands it each datagram with its
source address, and it calls back with 20 ms μ-law frames and DTMF digits. It
latches onto the caller's address (symmetric RTP), drops packets that arrive
late or twice, transcodes PCMA to μ-law, replaces comfort noise by silence and
re-cuts audio of any packet size into 160-byte frames.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from ..sip.sdp import NegotiatedAudio
from .dtmf import DtmfReceiver
from .errors import RtpError
from .g711 import ALAW_TO_ULAW, FRAME_BYTES, ULAW_SILENCE
from .rtp import RTP_HEADER_SIZE, RTP_VERSION, RtpPacket, parse_rtp
from .stats import MediaStats

__all__ = [
    "COMFORT_NOISE_PAYLOAD_TYPE",
    "PCMA_PAYLOAD_TYPE",
    "PCMU_PAYLOAD_TYPE",
    "Address",
    "RtpReceiver",
]

Address = tuple[Any, ...]
"""A socket address as asyncio gives it: ``(host, port)`` (IPv6 adds flow, scope)."""

# RFC 3551 §6 (table 4): the static payload types this layer understands.
PCMU_PAYLOAD_TYPE = 0
PCMA_PAYLOAD_TYPE = 8
COMFORT_NOISE_PAYLOAD_TYPE = 13

# RFC 3550 appendix A.1: a packet up to this many sequence numbers behind the
# newest is a late or duplicated one; further back, the sender has restarted.
MAX_MISORDER = 100
_SEQUENCE_MODULUS = 1 << 16
_HALF_SEQUENCE_RANGE = 1 << 15

_SILENCE_FRAME = bytes([ULAW_SILENCE]) * FRAME_BYTES

# RFC 3550 §5.1: the first octet of a plain packet (version 2, no padding, no
# header extension, no CSRCs), which is nearly every packet a caller sends.
_PLAIN_FIRST_OCTET = RTP_VERSION << 6
# The second octet, sequence number and (skipping the timestamp) SSRC.
_PLAIN_FIELDS = struct.Struct("!xBH4xI").unpack_from

_Handler = Callable[[RtpPacket], None]


def _ignore(value: object) -> None:
    """A callback of a detached receiver."""


class RtpReceiver:
    """Turns the caller's RTP into 20 ms μ-law frames and DTMF digits.

    Args:
        on_audio: called with every 160-byte μ-law frame, in order.
        on_dtmf: called once per key press with the digit (``0-9 * # A-D !``).
        stats: counters to update.
    """

    def __init__(
        self,
        *,
        on_audio: Callable[[bytes], None],
        on_dtmf: Callable[[str], None],
        stats: MediaStats,
    ) -> None:
        self._on_audio = on_audio
        self._on_dtmf = on_dtmf
        self._stats = stats
        self._handlers: dict[int, _Handler] = {}
        # Payload types of plain audio, handled without an RtpPacket: whether
        # each is A-law (to transcode).
        self._audio_types: dict[int, bool] = {}
        self._dtmf = DtmfReceiver()
        self._partial = bytearray()
        self._ssrc: int | None = None
        self._highest_sequence = 0
        self.latched_source: Address | None = None
        """The caller's address, once its first valid RTP packet arrived."""

    def detach(self) -> None:
        """Deliver nothing more: drop the callbacks (their owner is closing).

        The payload-type handlers are this receiver's own methods: cleared, the
        receiver is freed with its session rather than by the collector.
        """
        self._on_audio = _ignore
        self._on_dtmf = _ignore
        self._handlers.clear()

    def configure(self, audio: NegotiatedAudio) -> None:
        """Accept the payload types of ``audio`` from now on.

        PCMU (0), PCMA (8) and comfort noise (13) are static payload types
        (RFC 3551 §6) and always understood, so packets of the previous codec
        still in flight after a codec switch are decoded rather than dropped. The
        negotiated types take precedence when a dynamic type reuses one of them.
        """
        handlers: dict[int, _Handler] = {
            PCMU_PAYLOAD_TYPE: self._receive_ulaw,
            PCMA_PAYLOAD_TYPE: self._receive_alaw,
            COMFORT_NOISE_PAYLOAD_TYPE: self._receive_comfort_noise,
        }
        if audio.codec == "PCMA":
            handlers[audio.payload_type] = self._receive_alaw
        else:
            handlers[audio.payload_type] = self._receive_ulaw
        if audio.dtmf_payload_type is not None:
            handlers[audio.dtmf_payload_type] = self._receive_event
        self._handlers = handlers
        self._audio_types = {
            payload_type: handler == self._receive_alaw
            for payload_type, handler in handlers.items()
            if handler in (self._receive_ulaw, self._receive_alaw)
        }

    def unlatch(self) -> None:
        """Forget the caller's address: the next valid packet's source is latched."""
        self.latched_source = None

    def receive(self, data: bytes, source: Address) -> bool:
        """Handle one datagram from ``source``.

        Returns:
            Whether the datagram was RTP from the caller (counts as activity),
            even if it was then dropped as late or duplicated.
        """
        stats = self._stats
        if not self._handlers:
            stats.packets_ignored_unconfigured += 1
            return False
        if len(data) > RTP_HEADER_SIZE and data[0] == _PLAIN_FIRST_OCTET:
            second, sequence, ssrc = _PLAIN_FIELDS(data)
            alaw = self._audio_types.get(second & 0x7F)
            if alaw is not None:
                return self._receive_plain_audio(data, source, sequence, ssrc, alaw)
        try:
            packet = parse_rtp(data)
        except RtpError:
            stats.packets_invalid += 1
            return False
        handler = self._handlers.get(packet.payload_type)
        if handler is None:
            stats.packets_ignored_payload_type += 1
            return False
        if not self._is_from_caller(source):
            stats.packets_ignored_foreign_source += 1
            return False
        if self._is_late_or_duplicate(packet.ssrc, packet.sequence):
            stats.packets_ignored_late += 1
            return True
        try:
            handler(packet)
        except RtpError:
            stats.packets_invalid += 1
        return True

    def _receive_plain_audio(
        self, data: bytes, source: Address, sequence: int, ssrc: int, alaw: bool
    ) -> bool:
        """The common case, without building an RtpPacket: the same checks as
        :meth:`receive` makes, in the same order."""
        if not self._is_from_caller(source):
            self._stats.packets_ignored_foreign_source += 1
            return False
        if self._is_late_or_duplicate(ssrc, sequence):
            self._stats.packets_ignored_late += 1
            return True
        payload = data[RTP_HEADER_SIZE:]
        self._deliver(payload.translate(ALAW_TO_ULAW) if alaw else payload)
        return True

    def _is_from_caller(self, source: Address) -> bool:
        # Symmetric RTP (RFC 4961): the caller sends from where it receives. The
        # first packet with a negotiated payload type fixes that address; packets
        # from anywhere else are stray or spoofed.
        # Limitation: if a NAT in front of the caller changes its mapping mid-call
        # without a re-INVITE, the new address is not followed; its packets are
        # counted as foreign and the call ends by the inactivity timeout.
        if self.latched_source is None:
            self.latched_source = source
            return True
        return source == self.latched_source

    def _is_late_or_duplicate(self, ssrc: int, sequence: int) -> bool:
        if ssrc != self._ssrc:
            self._ssrc = ssrc
            self._highest_sequence = sequence
            return False
        ahead = (sequence - self._highest_sequence) % _SEQUENCE_MODULUS
        if ahead == 0:
            return True
        if ahead < _HALF_SEQUENCE_RANGE:
            self._highest_sequence = sequence
            return False
        if _SEQUENCE_MODULUS - ahead <= MAX_MISORDER:
            return True
        # RFC 3550 appendix A.1: far behind means the sender restarted its numbering.
        self._highest_sequence = sequence
        return False

    def _receive_ulaw(self, packet: RtpPacket) -> None:
        self._deliver(packet.payload)

    def _receive_alaw(self, packet: RtpPacket) -> None:
        self._deliver(packet.payload.translate(ALAW_TO_ULAW))

    def _receive_comfort_noise(self, packet: RtpPacket) -> None:
        # RFC 3389 §3: the payload is a noise level (and spectral shape), not
        # audio; decoding it as μ-law would be loud garbage. One frame of silence
        # stands in for it.
        self._stats.comfort_noise_packets += 1
        self._deliver(_SILENCE_FRAME)

    def _receive_event(self, packet: RtpPacket) -> None:
        digit = self._dtmf.feed(packet)
        if digit is not None:
            self._stats.dtmf_digits += 1
            self._on_dtmf(digit)

    def _deliver(self, ulaw: bytes) -> None:
        partial = self._partial
        if not partial and len(ulaw) == FRAME_BYTES:
            self._stats.frames_received += 1
            self._on_audio(ulaw)
            return
        # Other packet sizes (ptime 10, 30, 60 ...) are re-cut into 20 ms frames.
        partial += ulaw
        while len(partial) >= FRAME_BYTES:
            frame = bytes(partial[:FRAME_BYTES])
            del partial[:FRAME_BYTES]
            self._stats.frames_received += 1
            self._on_audio(frame)
