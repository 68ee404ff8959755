"""Counters of one call's media stream."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MediaStats"]


@dataclass(slots=True)
class MediaStats:
    """Counters of one media session, updated as packets come and go.

    Attributes:
        packets_in: datagrams received on the session's port, valid or not.
        bytes_in: bytes of those datagrams.
        packets_out: RTP packets sent.
        bytes_out: bytes of those packets.
        packets_invalid: datagrams that are not valid RTP (or bad telephone-event).
        packets_ignored_foreign_source: valid RTP from an address other than the
            caller's latched one (symmetric RTP).
        packets_ignored_payload_type: RTP with a payload type not negotiated.
        packets_ignored_late: RTP older than, or a duplicate of, one already used.
        packets_ignored_unconfigured: RTP received before media was configured.
        comfort_noise_packets: comfort-noise packets, each replaced by silence.
        dtmf_digits: digits decoded from telephone-event packets.
        frames_received: 20 ms μ-law frames delivered from the caller.
        frames_played: queued 20 ms frames of runner audio played to the caller.
        frames_dropped_overflow: queued frames dropped because the queue was full.
        silence_frames_sent: silence frames sent because nothing was queued.
        late_ticks: playout ticks that ran more than half a frame late.
        skipped_frames: frame periods skipped after the process stalled.
        socket_errors: errors the socket reported (such as ICMP unreachable).
    """

    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    packets_invalid: int = 0
    packets_ignored_foreign_source: int = 0
    packets_ignored_payload_type: int = 0
    packets_ignored_late: int = 0
    packets_ignored_unconfigured: int = 0
    comfort_noise_packets: int = 0
    dtmf_digits: int = 0
    frames_received: int = 0
    frames_played: int = 0
    frames_dropped_overflow: int = 0
    silence_frames_sent: int = 0
    late_ticks: int = 0
    skipped_frames: int = 0
    socket_errors: int = 0
