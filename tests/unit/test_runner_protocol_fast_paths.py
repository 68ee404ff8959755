"""The media fast paths of router.runner.protocol.parse agree with the general parser.

A ``str`` may take the fast path; the same text as ``bytes`` always goes through
json.loads, so comparing the two checks the fast path against the general one.
"""

from __future__ import annotations

from typing import Any

import pytest

from router.runner.protocol import (
    RouterMedia,
    RouterMediaText,
    RunnerMedia,
    RunnerProtocolError,
    StreamEncoder,
    parse_router_message,
    parse_runner_message,
    read_router_message,
    runner_media,
)
from router.runner.protocol.messages import b64encode

SID = "MZ0123456789abcdef0123456789abcdef"
FRAME = bytes(range(160))
PAYLOAD = b64encode(FRAME)


def outcome(parse: Any, text: str | bytes) -> object:
    try:
        return parse(text)
    except RunnerProtocolError:
        return RunnerProtocolError


def router_media(sid: str = SID, payload: str = PAYLOAD, sequence: str = "3") -> str:
    return (
        f'{{"event":"media","sequenceNumber":"{sequence}","streamSid":"{sid}",'
        f'"media":{{"track":"inbound","chunk":"2","timestamp":"20","payload":"{payload}"}}}}'
    )


RUNNER_TEXTS = [
    runner_media(SID, FRAME),
    runner_media(SID, b""),
    runner_media('quote"and\\back', FRAME),
    f'{{"event":"media","streamSid":"a\nb","media":{{"payload":"{PAYLOAD}"}}}}',
    f'{{"event":"media","streamSid":"{SID}","media":{{"payload":"{PAYLOAD[:-1]}"}}}}',
    f'{{"event":"media","streamSid":"{SID}","media":{{"payload":"{PAYLOAD}=="}}}}',
    f'{{"event":"media","media":{{"payload":"{PAYLOAD}"}},"streamSid":"{SID}"}}',
    f'{{"event":"media","streamSid":"{SID}","media":{{"payload":"{PAYLOAD}"}}}} x',
]


@pytest.mark.parametrize("text", RUNNER_TEXTS)
def test_runner_media_fast_path_agrees_with_the_general_parser(text: str) -> None:
    assert outcome(parse_runner_message, text) == outcome(
        parse_runner_message, text.encode()
    )


def test_runner_media_fast_path_decodes_the_frame() -> None:
    assert parse_runner_message(runner_media(SID, FRAME)) == RunnerMedia(FRAME)


ROUTER_TEXTS = [
    router_media(),
    router_media(payload=""),
    router_media(sid="tab\there"),
    router_media(sequence="\u0663"),  # an Arabic-Indic digit is not a decimal string
    router_media(sequence="-1"),
    router_media(payload="A==="),
    router_media(payload=PAYLOAD + "\\n"),
]


@pytest.mark.parametrize("text", ROUTER_TEXTS)
def test_router_media_fast_path_agrees_with_the_general_parser(text: str) -> None:
    for parse in (parse_router_message, read_router_message):
        assert outcome(parse, text) == outcome(parse, text.encode())


def test_encoded_media_reads_back_with_its_counters_and_base64_text() -> None:
    encoder = StreamEncoder(SID, account_sid="pipe", call_sid="call")
    encoder.media(FRAME)
    text = encoder.media(FRAME)

    assert parse_router_message(text) == RouterMedia(2, 2, 20, FRAME)
    assert read_router_message(text) == RouterMediaText(2, 2, 20, PAYLOAD, len(FRAME))


def test_oversized_text_never_takes_the_fast_path() -> None:
    text = router_media(payload="AAAA" * (1024 * 1024 // 4))
    with pytest.raises(RunnerProtocolError, match="exceeds"):
        read_router_message(text)
