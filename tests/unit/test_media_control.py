"""The media workers' control protocol and port split, without sockets or processes."""

from __future__ import annotations

import asyncio

import pytest

from router.media.control import (
    HEADER,
    MAX_MESSAGE_SIZE,
    ControlError,
    audio_from_wire,
    audio_to_wire,
    decode_body,
    encode_message,
    read_message,
    start_from_wire,
    start_to_wire,
    stats_from_wire,
)
from router.media.ports import RtpPortPool
from router.media.workers import split_port_range
from router.runner.client import StreamStart
from router.sip.sdp import NegotiatedAudio

AUDIO = NegotiatedAudio(
    payload_type=8,
    codec="PCMA",
    dtmf_payload_type=101,
    remote_address="192.0.2.10",
    remote_port=40_000,
    direction="sendrecv",
    ptime=20,
)
START = StreamStart(
    call_sid="CA01",
    stream_sid="MZ01",
    account_sid="pipe_01",
    custom_parameters={"to": "+14155550100", "X-Customer": "ACME"},
)


def reader_with(data: bytes) -> asyncio.StreamReader:
    """A stream reader holding ``data`` and then end of file."""
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


# -- framing --------------------------------------------------------------------------


def test_a_message_is_its_json_body_behind_a_four_byte_big_endian_length() -> None:
    frame = encode_message({"op": "open", "bridge": 7, "req": 1})

    (length,) = HEADER.unpack(frame[:4])
    assert length == len(frame) - 4
    assert decode_body(frame[4:]) == {"op": "open", "bridge": 7, "req": 1}


async def test_messages_read_back_in_order_then_end_of_file_raises() -> None:
    first, second = (
        {"ev": "ready", "pid": 12},
        {"ev": "dtmf", "bridge": 1, "digit": "#"},
    )
    reader = reader_with(encode_message(first) + encode_message(second))

    assert await read_message(reader) == first
    assert await read_message(reader) == second
    with pytest.raises(asyncio.IncompleteReadError):
        await read_message(reader)


async def test_a_length_past_the_limit_is_refused_before_reading_the_body() -> None:
    reader = reader_with(HEADER.pack(MAX_MESSAGE_SIZE + 1))

    with pytest.raises(ControlError, match="too large"):
        await read_message(reader)


def test_a_message_past_the_limit_is_not_encoded() -> None:
    with pytest.raises(ControlError, match="too large"):
        encode_message({"blob": "x" * MAX_MESSAGE_SIZE})


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b"\xff"])
def test_a_body_that_is_not_a_json_object_is_a_control_error(body: bytes) -> None:
    with pytest.raises(ControlError):
        decode_body(body)


# -- values on the wire ---------------------------------------------------------------


def test_negotiated_audio_survives_the_wire() -> None:
    assert (
        audio_from_wire(decode_body(encode_message(audio_to_wire(AUDIO))[4:])) == AUDIO
    )


def test_negotiated_audio_without_telephone_event_survives_the_wire() -> None:
    audio = NegotiatedAudio(0, "PCMU", None, "192.0.2.10", 40_000, "recvonly", 20)

    assert audio_from_wire(audio_to_wire(audio)) == audio


@pytest.mark.parametrize(
    "change",
    [
        {"remote_port": "40000"},
        {"payload_type": True},
        {"codec": 8},
        {"dtmf_payload_type": "101"},
        {"unknown": 1},
    ],
)
def test_negotiated_audio_with_a_bad_field_is_a_control_error(
    change: dict[str, object],
) -> None:
    with pytest.raises(ControlError, match="bad negotiated audio"):
        audio_from_wire({**audio_to_wire(AUDIO), **change})


def test_negotiated_audio_missing_a_field_is_a_control_error() -> None:
    data = audio_to_wire(AUDIO)
    del data["remote_address"]

    with pytest.raises(ControlError):
        audio_from_wire(data)


def test_stream_start_with_its_x_headers_survives_the_wire() -> None:
    assert start_from_wire(start_to_wire(START)) == START


@pytest.mark.parametrize(
    "change",
    [{"call_sid": 1}, {"custom_parameters": {"to": 5}}, {"custom_parameters": []}],
)
def test_stream_start_with_a_bad_field_is_a_control_error(
    change: dict[str, object],
) -> None:
    with pytest.raises(ControlError, match="bad stream start"):
        start_from_wire({**start_to_wire(START), **change})


def test_media_counters_keep_known_integer_fields_only() -> None:
    stats = stats_from_wire({"packets_in": 50, "frames_played": "9", "surprise": 1})

    assert stats.packets_in == 50
    assert stats.frames_played == 0
    assert not hasattr(stats, "surprise")
    assert stats_from_wire(None).packets_in == 0


# -- splitting the RTP range between workers ------------------------------------------


def test_two_workers_share_forty_ports_ten_pairs_each() -> None:
    assert split_port_range(30_000, 30_039, 2) == [(30_000, 30_019), (30_020, 30_039)]


@pytest.mark.parametrize(
    ("low", "high", "parts"),
    [
        (10_000, 20_000, 1),
        (10_000, 20_000, 3),
        (10_001, 10_050, 4),
        (30_000, 30_007, 4),
    ],
)
def test_every_slice_starts_even_holds_whole_pairs_and_none_overlap(
    low: int, high: int, parts: int
) -> None:
    ranges = split_port_range(low, high, parts)

    assert len(ranges) == parts
    pools = [RtpPortPool(*slice_) for slice_ in ranges]
    all_ports = [port for pool in pools for port in range(pool.low, pool.high + 1)]
    assert len(all_ports) == len(set(all_ports))
    assert all(low <= port <= high for port in all_ports)
    assert all(start % 2 == 0 and end % 2 == 1 for start, end in ranges)
    capacities = [pool.capacity for pool in pools]
    assert max(capacities) - min(capacities) <= 1
    assert sum(capacities) == RtpPortPool(low, high).capacity


def test_a_range_with_fewer_pairs_than_workers_cannot_be_split() -> None:
    with pytest.raises(ValueError, match="fewer than one for each of 3"):
        split_port_range(30_000, 30_003, 3)


def test_zero_workers_cannot_share_a_range() -> None:
    with pytest.raises(ValueError):
        split_port_range(30_000, 30_039, 0)
