"""The Media Streams dialect: Twilio's field names and types, round trips, bad input."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.runner.protocol import (
    MAX_RUNNER_MESSAGE,
    RouterConnected,
    RouterDtmf,
    RouterMark,
    RouterMedia,
    RouterStart,
    RouterStop,
    RunnerClear,
    RunnerMark,
    RunnerMedia,
    RunnerProtocolError,
    StreamEncoder,
    new_stream_sid,
    parse_router_message,
    parse_runner_message,
    runner_clear,
    runner_mark,
    runner_media,
)

FRAME = bytes(range(160))  # 20 ms of mu-law at 8 kHz


def make_encoder(
    stream_sid: str = "MZ00000000000000000000000000000001",
) -> StreamEncoder:
    return StreamEncoder(stream_sid, account_sid="pipe_A", call_sid="call-1")


def load(text: str) -> dict[str, Any]:
    message = json.loads(text)
    assert isinstance(message, dict)
    return message


# Router -> runner: the exact shape Twilio sends.


def test_connected_names_the_call_protocol_version_1_0_0() -> None:
    assert load(make_encoder().connected()) == {
        "event": "connected",
        "protocol": "Call",
        "version": "1.0.0",
    }


def test_start_carries_twilio_fields_with_pipe_as_account_and_call_id_as_call_sid() -> (
    None
):
    encoder = make_encoder()
    message = load(encoder.start({"to": "+14155550100", "from": "+14155550111"}))

    assert message == {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": encoder.stream_sid,
        "start": {
            "streamSid": encoder.stream_sid,
            "accountSid": "pipe_A",
            "callSid": "call-1",
            "tracks": ["inbound"],
            "customParameters": {"to": "+14155550100", "from": "+14155550111"},
            "mediaFormat": {
                "encoding": "audio/x-mulaw",
                "sampleRate": 8000,
                "channels": 1,
            },
        },
    }


def test_start_without_custom_parameters_sends_an_empty_object() -> None:
    assert load(make_encoder().start())["start"]["customParameters"] == {}


def test_start_rejects_a_custom_parameter_value_that_is_not_a_string() -> None:
    with pytest.raises(RunnerProtocolError):
        make_encoder().start({"retries": 3})  # type: ignore[dict-item]


def test_media_sends_counters_as_strings_and_payload_as_base64() -> None:
    encoder = make_encoder()
    encoder.start()
    message = load(encoder.media(FRAME))

    assert message == {
        "event": "media",
        "sequenceNumber": "2",
        "streamSid": encoder.stream_sid,
        "media": {
            "track": "inbound",
            "chunk": "1",
            "timestamp": "0",
            "payload": base64.b64encode(FRAME).decode("ascii"),
        },
    }


def test_media_timestamp_advances_20_ms_per_160_byte_frame() -> None:
    encoder = make_encoder()
    timestamps = [load(encoder.media(FRAME))["media"]["timestamp"] for _ in range(4)]
    assert timestamps == ["0", "20", "40", "60"]


def test_skipped_media_leaves_a_gap_in_timestamp_but_not_in_sequence_or_chunk() -> None:
    encoder = make_encoder()
    encoder.media(FRAME)
    encoder.skip_media(len(FRAME))
    message = load(encoder.media(FRAME))

    assert message["sequenceNumber"] == "2"
    assert message["media"]["chunk"] == "2"
    assert message["media"]["timestamp"] == "40"


def test_media_escapes_a_stream_sid_that_needs_json_escaping() -> None:
    encoder = make_encoder('MZ"quoted\\%s{}')
    assert load(encoder.media(b"\x00"))["streamSid"] == 'MZ"quoted\\%s{}'


def test_dtmf_uses_inbound_track_and_the_digit_as_a_string() -> None:
    encoder = make_encoder()
    encoder.start()
    assert load(encoder.dtmf("5")) == {
        "event": "dtmf",
        "sequenceNumber": "2",
        "streamSid": encoder.stream_sid,
        "dtmf": {"track": "inbound_track", "digit": "5"},
    }


@pytest.mark.parametrize("digit", ["", "E", "55", "a", "+"])
def test_dtmf_rejects_anything_but_one_rfc_4733_digit(digit: str) -> None:
    with pytest.raises(RunnerProtocolError):
        make_encoder().dtmf(digit)


def test_mark_echoes_the_runner_mark_name() -> None:
    encoder = make_encoder()
    assert load(encoder.mark("greeting-done")) == {
        "event": "mark",
        "sequenceNumber": "1",
        "streamSid": encoder.stream_sid,
        "mark": {"name": "greeting-done"},
    }


def test_stop_names_the_pipe_and_the_call() -> None:
    encoder = make_encoder()
    assert load(encoder.stop()) == {
        "event": "stop",
        "sequenceNumber": "1",
        "streamSid": encoder.stream_sid,
        "stop": {"accountSid": "pipe_A", "callSid": "call-1"},
    }


def test_sequence_numbers_count_messages_after_connected_and_chunks_count_media() -> (
    None
):
    encoder = make_encoder()
    messages = [
        load(encoder.connected()),
        load(encoder.start()),
        load(encoder.media(FRAME)),
        load(encoder.dtmf("1")),
        load(encoder.media(FRAME)),
        load(encoder.stop()),
    ]

    assert "sequenceNumber" not in messages[0]
    assert [m["sequenceNumber"] for m in messages[1:]] == ["1", "2", "3", "4", "5"]
    assert [m["media"]["chunk"] for m in messages if m["event"] == "media"] == [
        "1",
        "2",
    ]


def test_new_stream_sid_is_twilio_shaped_and_unique() -> None:
    sids = {new_stream_sid() for _ in range(100)}
    assert len(sids) == 100
    assert all(sid.startswith("MZ") and len(sid) == 34 for sid in sids)


# Runner -> router.


def test_runner_media_is_decoded_to_mulaw_bytes() -> None:
    text = json.dumps(
        {
            "event": "media",
            "streamSid": "MZ1",
            "media": {"payload": base64.b64encode(FRAME).decode()},
        }
    )
    assert parse_runner_message(text) == RunnerMedia(FRAME)


def test_runner_mark_and_clear_are_parsed() -> None:
    assert parse_runner_message('{"event":"mark","mark":{"name":"m1"}}') == RunnerMark(
        "m1"
    )
    assert parse_runner_message('{"event":"clear","streamSid":"MZ1"}') == RunnerClear()


def test_runner_message_may_arrive_as_bytes() -> None:
    assert parse_runner_message(b'{"event":"clear"}') == RunnerClear()


def test_unknown_runner_event_is_ignored_not_an_error() -> None:
    assert parse_runner_message('{"event":"transcript","text":"hi"}') is None


def test_runner_builders_round_trip_through_the_parser() -> None:
    assert parse_runner_message(runner_media("MZ1", FRAME)) == RunnerMedia(FRAME)
    assert parse_runner_message(runner_mark("MZ1", "end")) == RunnerMark("end")
    assert parse_runner_message(runner_clear("MZ1")) == RunnerClear()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        '{"event":"media"',
        "[1, 2, 3]",
        '"media"',
        "{}",
        '{"event": 7}',
        '{"event":"media"}',
        '{"event":"media","media":"AAAA"}',
        '{"event":"media","media":{"payload":12}}',
        '{"event":"media","media":{"payload":"not base64!"}}',
        '{"event":"media","media":{"payload":"AAA"}}',
        '{"event":"media","media":{"payload":"AA\\nAA"}}',
        '{"event":"media","media":{"payload":"\u00e9\u00e9\u00e9\u00e9"}}',
        '{"event":"mark","mark":{}}',
        '{"event":"mark","mark":{"name":["m"]}}',
        '{"event":"mark"}',
    ],
)
def test_invalid_runner_message_raises_runner_protocol_error(text: str) -> None:
    with pytest.raises(RunnerProtocolError):
        parse_runner_message(text)


def test_invalid_utf8_bytes_raise_runner_protocol_error() -> None:
    with pytest.raises(RunnerProtocolError):
        parse_runner_message(b'{"event":"clear","x":"\xff"}')


def test_deeply_nested_json_raises_runner_protocol_error_not_recursion_error() -> None:
    with pytest.raises(RunnerProtocolError):
        parse_runner_message("[" * 100_000 + "]" * 100_000)


def test_runner_message_over_the_size_limit_is_refused_before_decoding() -> None:
    padding = "A" * MAX_RUNNER_MESSAGE
    text = '{"event":"media","media":{"payload":"' + padding + '"}}'
    with pytest.raises(RunnerProtocolError, match="exceeds"):
        parse_runner_message(text)


def test_runner_protocol_error_is_a_value_error() -> None:
    assert issubclass(RunnerProtocolError, ValueError)


# Router messages as a runner reads them (used by the echo runner).


def test_router_messages_round_trip_through_the_runner_side_parser() -> None:
    encoder = make_encoder()
    parameters = {"to": "+14155550100", "X-Tenant": "acme"}

    assert parse_router_message(encoder.connected()) == RouterConnected("Call", "1.0.0")
    assert parse_router_message(encoder.start(parameters)) == RouterStart(
        stream_sid=encoder.stream_sid,
        account_sid="pipe_A",
        call_sid="call-1",
        tracks=("inbound",),
        custom_parameters=parameters,
    )
    assert parse_router_message(encoder.media(FRAME)) == RouterMedia(2, 1, 0, FRAME)
    assert parse_router_message(encoder.dtmf("#")) == RouterDtmf("#")
    assert parse_router_message(encoder.mark("m")) == RouterMark("m")
    assert parse_router_message(encoder.stop()) == RouterStop()


@pytest.mark.parametrize(
    "text",
    [
        '{"event":"media","sequenceNumber":2,"media":{"chunk":"1","timestamp":"0","payload":""}}',
        '{"event":"media","sequenceNumber":"2",'
        '"media":{"chunk":"-1","timestamp":"0","payload":""}}',
        '{"event":"media","sequenceNumber":"\u0662","media":{"chunk":"1","timestamp":"0",'
        '"payload":""}}',
        '{"event":"start","start":{"streamSid":"MZ","accountSid":"a","callSid":"c",'
        '"tracks":"inbound","customParameters":{},'
        '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}',
        '{"event":"start","start":{"streamSid":"MZ","accountSid":"a","callSid":"c",'
        '"tracks":["inbound"],"customParameters":{"n":1},'
        '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}',
        '{"event":"start","start":{"streamSid":"MZ","accountSid":"a","callSid":"c",'
        '"tracks":["inbound"],"customParameters":{},'
        '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":"8000","channels":1}}}',
        '{"event":"dtmf","dtmf":{"digit":5}}',
        '{"event":"stop"}',
    ],
)
def test_router_message_with_wrong_field_types_raises(text: str) -> None:
    with pytest.raises(RunnerProtocolError):
        parse_router_message(text)


@given(st.binary(max_size=2000))
def test_any_audio_survives_a_media_round_trip_both_ways(audio: bytes) -> None:
    media = parse_router_message(make_encoder().media(audio))
    assert isinstance(media, RouterMedia)
    assert media.payload == audio
    assert parse_runner_message(runner_media("MZ1", audio)) == RunnerMedia(audio)


@given(
    st.text(max_size=50), st.dictionaries(st.text(max_size=20), st.text(max_size=20))
)
def test_any_names_and_parameters_survive_a_round_trip(
    name: str, parameters: dict[str, str]
) -> None:
    encoder = StreamEncoder(name, account_sid=name, call_sid=name)
    start = parse_router_message(encoder.start(parameters))
    assert isinstance(start, RouterStart)
    assert start.custom_parameters == parameters
    assert (start.stream_sid, start.account_sid, start.call_sid) == (name, name, name)
    assert parse_router_message(encoder.mark(name)) == RouterMark(name)
    assert parse_runner_message(runner_mark(name, name)) == RunnerMark(name)


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_input_either_parses_or_raises_runner_protocol_error(
    text: str | bytes,
) -> None:
    for parse in (parse_runner_message, parse_router_message):
        with contextlib.suppress(RunnerProtocolError):
            parse(text)
