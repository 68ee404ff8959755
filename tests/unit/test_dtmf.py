"""DTMF digits from RFC 4733 telephone-event packets."""

from __future__ import annotations

import pytest

from router.media.dtmf import DtmfReceiver, TelephoneEvent, parse_telephone_event
from router.media.errors import RtpError
from router.media.rtp import RtpPacket

SSRC = 0x1234ABCD


def event_packet(
    payload: bytes,
    *,
    timestamp: int,
    sequence: int = 0,
    marker: bool = False,
    ssrc: int = SSRC,
    payload_type: int = 101,
) -> RtpPacket:
    return RtpPacket(payload_type, sequence, timestamp, ssrc, payload, marker)


def key_press(
    event: int, timestamp: int, *, first_sequence: int = 0
) -> list[RtpPacket]:
    """A typical key press: start, two updates, and the end packet sent three times."""
    updates = [(0x0A, 160), (0x0A, 320), (0x0A, 480)] + [(0x8A, 640)] * 3
    return [
        event_packet(
            bytes([event, flags]) + duration.to_bytes(2, "big"),
            timestamp=timestamp,
            sequence=first_sequence + index,
            marker=index == 0,
        )
        for index, (flags, duration) in enumerate(updates)
    ]


def digits_from(receiver: DtmfReceiver, packets: list[RtpPacket]) -> list[str]:
    return [digit for packet in packets if (digit := receiver.feed(packet)) is not None]


def test_c09_event_on_payload_type_96_without_marker_gives_exactly_one_digit():
    # Interop case C09: PT 96, same timestamp T, M=0 on the first packet, the end
    # packet (E bit) three times.
    payloads = ["050a00a0", "050a0140", "058a0320", "058a0320", "058a0320"]
    packets = [
        event_packet(bytes.fromhex(p), timestamp=48000, sequence=i, payload_type=96)
        for i, p in enumerate(payloads)
    ]

    assert digits_from(DtmfReceiver(), packets) == ["5"]


def test_the_digit_is_reported_on_the_first_packet_of_the_event():
    receiver = DtmfReceiver()
    first, *rest = key_press(5, timestamp=1000)

    assert receiver.feed(first) == "5"
    assert [receiver.feed(packet) for packet in rest] == [None] * len(rest)


@pytest.mark.parametrize(
    ("event", "digit"),
    [(0, "0"), (9, "9"), (10, "*"), (11, "#"), (12, "A"), (15, "D"), (16, "!")],
)
def test_event_codes_map_to_dtmf_characters(event, digit):
    assert digits_from(DtmfReceiver(), key_press(event, timestamp=0)) == [digit]


@pytest.mark.parametrize("event", [17, 32, 255])
def test_events_that_are_not_dtmf_are_ignored(event):
    assert digits_from(DtmfReceiver(), key_press(event, timestamp=0)) == []


def test_the_same_key_pressed_twice_gives_two_digits():
    packets = key_press(1, timestamp=8000) + key_press(
        1, timestamp=12000, first_sequence=6
    )

    assert digits_from(DtmfReceiver(), packets) == ["1", "1"]


def test_a_lost_first_packet_still_gives_the_digit_once():
    packets = key_press(7, timestamp=8000)[2:]

    assert digits_from(DtmfReceiver(), packets) == ["7"]


def test_only_an_end_packet_received_still_gives_the_digit():
    packets = key_press(3, timestamp=8000)[-1:]

    assert digits_from(DtmfReceiver(), packets) == ["3"]


def test_a_late_end_packet_of_the_previous_event_is_not_a_new_digit():
    first = key_press(1, timestamp=8000)
    second = key_press(2, timestamp=12000, first_sequence=6)
    reordered = first[:-1] + second[:2] + first[-1:] + second[2:]

    assert digits_from(DtmfReceiver(), reordered) == ["1", "2"]


def test_events_across_the_timestamp_wrap_are_told_apart():
    packets = key_press(4, timestamp=0xFFFFFF00) + key_press(6, timestamp=0x100)

    assert digits_from(DtmfReceiver(), packets) == ["4", "6"]


def test_a_new_ssrc_starts_a_new_stream_of_events():
    receiver = DtmfReceiver()
    first = key_press(8, timestamp=5000)
    second = [
        event_packet(packet.payload, timestamp=5000, ssrc=SSRC + 1) for packet in first
    ]

    assert digits_from(receiver, first + second) == ["8", "8"]


def test_segments_of_a_very_long_event_are_one_digit():
    # RFC 4733 §2.5.1.3: past the 16-bit duration, a new segment starts at the old
    # timestamp plus the old segment's duration; only the last segment ends.
    receiver = DtmfReceiver()
    segment_one = [
        event_packet(bytes.fromhex("0b0a") + d.to_bytes(2, "big"), timestamp=1000)
        for d in (160, 32000, 0xFFFF)
    ]
    segment_two = [
        event_packet(bytes.fromhex("0b0a00a0"), timestamp=1000 + 0xFFFF),
        event_packet(bytes.fromhex("0b8a0140"), timestamp=1000 + 0xFFFF),
    ]

    assert digits_from(receiver, segment_one + segment_two) == ["#"]


def test_a_new_event_after_a_finished_one_at_any_distance_is_a_digit():
    first = key_press(2, timestamp=1000)
    second = key_press(2, timestamp=1000 + 640, first_sequence=6)

    assert digits_from(DtmfReceiver(), first + second) == ["2", "2"]


def test_a_short_payload_raises_rtp_error():
    with pytest.raises(RtpError, match="too short"):
        DtmfReceiver().feed(event_packet(b"\x05\x0a\x00", timestamp=0))


def test_parse_reads_every_field_of_the_event_block():
    assert parse_telephone_event(bytes.fromhex("0b8a0320")) == TelephoneEvent(
        event=11, end=True, volume=10, duration=800
    )
