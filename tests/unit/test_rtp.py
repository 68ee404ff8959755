"""RTP packet parsing and building (RFC 3550 §5.1)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.media.errors import MediaError, RtpError
from router.media.rtp import RtpPacket, RtpPacketizer, build_rtp, parse_rtp

# A PCMU packet as it appears on the wire: V=2, M=1, PT=0, seq 0x1234,
# timestamp 0x00000A00, SSRC 0xDEADBEEF, then four payload bytes.
WIRE_PACKET = bytes.fromhex("80801234 00000a00 deadbeef ff7f0080")


def test_parses_every_fixed_header_field():
    packet = parse_rtp(WIRE_PACKET)

    assert packet == RtpPacket(
        payload_type=0,
        sequence=0x1234,
        timestamp=0x0A00,
        ssrc=0xDEADBEEF,
        payload=bytes.fromhex("ff7f0080"),
        marker=True,
    )
    assert packet.version == 2


def test_builds_the_same_bytes_it_parses():
    built = build_rtp(
        0, 0x1234, 0x0A00, 0xDEADBEEF, bytes.fromhex("ff7f0080"), marker=True
    )

    assert built == WIRE_PACKET


def test_payload_type_keeps_seven_bits_when_the_marker_is_clear():
    packet = parse_rtp(build_rtp(101, 1, 2, 3, b"\x05\x0a\x00\xa0"))

    assert (packet.payload_type, packet.marker) == (101, False)


def test_csrc_list_is_read_and_skipped():
    header = bytes.fromhex("82 08 0001 00000002 00000003")
    csrcs = struct.pack("!II", 0x11111111, 0x22222222)

    packet = parse_rtp(header + csrcs + b"\xff" * 160)

    assert packet.csrcs == (0x11111111, 0x22222222)
    assert packet.payload == b"\xff" * 160


def test_header_extension_is_skipped():
    header = bytes.fromhex("90 00 0001 00000002 00000003")
    extension = bytes.fromhex("bede 0002 11223344 55667788")

    packet = parse_rtp(header + extension + b"voice")

    assert packet.extension is True
    assert packet.payload == b"voice"


def test_padding_is_stripped_from_the_payload():
    header = bytes.fromhex("a0 00 0001 00000002 00000003")

    packet = parse_rtp(header + b"voice" + b"\x00\x00\x03")

    assert packet.padding is True
    assert packet.payload == b"voice"


def test_padding_may_fill_the_whole_payload():
    header = bytes.fromhex("a0 00 0001 00000002 00000003")

    assert parse_rtp(header + b"\x00\x00\x00\x04").payload == b""


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter than the 12-byte"),
        (WIRE_PACKET[:11], "shorter than the 12-byte"),
        (b"\x40" + WIRE_PACKET[1:], "version 1"),
        (b"\xc0" + WIRE_PACKET[1:], "version 3"),
        (bytes.fromhex("83 00 0001 00000002 00000003 00000004"), "CSRCs run past"),
        (bytes.fromhex("90 00 0001 00000002 00000003 bede"), "extension runs past"),
        (bytes.fromhex("90 00 0001 00000002 00000003 bede0002 11223344"), "2 words"),
        (bytes.fromhex("a0 00 0001 00000002 00000003 aabb00"), "padding count is zero"),
        (
            bytes.fromhex("a0 00 0001 00000002 00000003 aabb04"),
            "longer than the payload",
        ),
    ],
)
def test_invalid_datagrams_raise_rtp_error_naming_the_fault(data, reason):
    with pytest.raises(RtpError, match=reason):
        parse_rtp(data)


def test_rtp_error_belongs_to_the_media_family_and_is_a_value_error():
    with pytest.raises(MediaError):
        parse_rtp(b"short")
    assert issubclass(RtpError, ValueError)


@given(
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=400),
    marker=st.booleans(),
)
def test_any_built_packet_parses_back_to_its_fields(
    payload_type, sequence, timestamp, ssrc, payload, marker
):
    packet = parse_rtp(
        build_rtp(payload_type, sequence, timestamp, ssrc, payload, marker=marker)
    )

    assert packet == RtpPacket(payload_type, sequence, timestamp, ssrc, payload, marker)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_either_parse_or_raise_rtp_error(data):
    try:
        packet = parse_rtp(data)
    except RtpError:
        return
    assert len(packet.payload) <= len(data) - 12


def test_packetizer_numbers_packets_and_follows_the_media_clock():
    packetizer = RtpPacketizer(ssrc=7, sequence=0xFFFF, timestamp=0xFFFFFFF0)

    first = parse_rtp(packetizer.packetize(0, b"a", marker=True))
    packetizer.advance(160)
    second = parse_rtp(packetizer.packetize(8, b"b"))
    packetizer.advance(160)

    assert (first.sequence, first.timestamp, first.marker) == (0xFFFF, 0xFFFFFFF0, True)
    # Both counters wrap (RFC 3550 §5.1).
    assert (second.sequence, second.timestamp, second.marker) == (0, 0x90, False)
    assert (second.ssrc, second.payload_type) == (7, 8)
    assert packetizer.timestamp == 0x130


def test_packetizer_starts_from_random_numbers():
    streams = [RtpPacketizer() for _ in range(8)]

    assert len({stream.ssrc for stream in streams}) > 1
    assert len({stream.sequence for stream in streams}) > 1
    assert len({stream.timestamp for stream in streams}) > 1
