"""Property tests: whatever bytes arrive, the SIP layer raises only SipParseError.

Random bytes, and random mutations of a valid INVITE and of its SDP, go
through :func:`parse_message`, :class:`StreamFramer`, :func:`parse_sdp`, the
URI parsers and every lazily decoded property. Anything but a parsed value or
a :class:`SipParseError` fails the test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.sip.errors import SipParseError
from router.sip.message import (
    Request,
    Response,
    StreamFramer,
    make_response,
    parse_message,
)
from router.sip.name_address import parse_name_address
from router.sip.sdp import negotiate_answer, parse_sdp
from router.sip.uri import parse_uri
from router.sip.via import parse_via

SDP = (
    b"v=0\r\n"
    b"o=- 1001 1 IN IP4 198.51.100.20\r\n"
    b"s=-\r\n"
    b"c=IN IP4 198.51.100.20\r\n"
    b"t=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:+14155550100;npdi;rn=+14155550199@192.0.2.10:5060;user=phone"
    b" SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP [2001:db8::20]:5060;branch=z9hG4bK-base1;rport\r\n"
    b"v: SIP/2.0/TCP 198.51.100.5;branch=z9hG4bK-p1, SIP/2.0/UDP 198.51.100.6\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "Caller \\"One\\"" <sip:+14155550111@198.51.100.20>;tag=c1\r\n'
    b"To: <tel:+14155550100>\r\n"
    b"Call-ID: base1@198.51.100.20\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:+14155550111@198.51.100.20:5060;transport=udp>;expires=60\r\n"
    b"Record-Route: <sip:198.51.100.5;lr>, <sip:[2001:db8::5];lr>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\n"
    b"Subject: folded\r\n value\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)

# Characters that steer the parsers into their branches.
SIP_SPECIALS = [
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b'"',
    b"\\",
    b"[",
    b"]",
    b"@",
    b"=",
    b"?",
    b"&",
    b"%",
    b"/",
    b"\x00",
    b"\xff",
    b"\xc3\xa9",
    b"0",
    b"99999999999999999999",
    b"9" * 5000,  # past int()'s 4,300-digit limit
    b"SIP/2.0",
    b"\r\n\r\n",
    b"\r\n ",
    b"Content-Length: 5\r\n",
    b"l: 0\r\n",
    b"m=audio 0 RTP/AVP 0\r\n",
    b"a=rtpmap:",
    b"c=IN IP6 ::1\r\n",
]

FUZZ = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` with a few random insertions, deletions and replacements."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        if action == "insert":
            piece = draw(
                st.one_of(st.sampled_from(SIP_SPECIALS), st.binary(max_size=8))
            )
            data[position:position] = piece
        elif action == "delete":
            data[position : position + draw(st.integers(1, 40))] = b""
        elif action == "replace" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        else:
            end = min(len(data), position + draw(st.integers(1, 60)))
            data[position:position] = data[position:end]
    return bytes(data)


def read_everything(message: Request | Response) -> None:
    """Touch every lazily decoded property, then answer and re-serialise."""
    readers: list[Callable[[], object]] = [
        lambda: message.call_id,
        lambda: message.cseq,
        lambda: message.vias,
        lambda: message.top_via,
        lambda: message.from_,
        lambda: message.to,
        lambda: message.from_tag,
        lambda: message.to_tag,
        lambda: message.contact,
        lambda: message.record_route,
        lambda: message.content_type,
        lambda: message.content_length,
        lambda: message.from_.parsed_uri(),
        lambda: message.to.parsed_uri(),
    ]
    if isinstance(message, Request):
        readers += [
            lambda: message.request_uri,
            lambda: message.max_forwards,
            lambda: message.route,
            lambda: message.require,
            lambda: message.supported,
            lambda: make_response(message, 200, to_tag="r1").serialise(),
        ]
    for read in readers:
        with contextlib.suppress(SipParseError):
            read()
    data = message.serialise()
    # What we serialise, we parse back to the same bytes.
    assert parse_message(data).serialise() == data


def parse_and_read(data: bytes) -> None:
    try:
        message = parse_message(data)
    except SipParseError:
        return
    read_everything(message)


def test_the_seed_invite_is_valid() -> None:
    message = parse_message(INVITE)

    assert isinstance(message, Request)
    assert len(message.vias) == 3
    assert message.headers.get("Subject") == "folded value"
    read_everything(message)


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_raise_only_sip_parse_errors(data: bytes) -> None:
    parse_and_read(data)


@FUZZ
@given(mutated(INVITE))
def test_mutated_invites_raise_only_sip_parse_errors(data: bytes) -> None:
    parse_and_read(data)


@FUZZ
@given(
    st.lists(
        st.sampled_from([*SIP_SPECIALS, INVITE[:80], b"Via: ", b"To: "]), max_size=30
    )
)
def test_sequences_of_special_tokens_raise_only_sip_parse_errors(
    pieces: list[bytes],
) -> None:
    parse_and_read(INVITE[:40] + b"".join(pieces))


@FUZZ
@given(mutated(INVITE), st.lists(st.integers(1, 400), max_size=12))
def test_stream_framer_raises_only_sip_parse_errors(
    data: bytes, cuts: list[int]
) -> None:
    framer = StreamFramer()
    stream = b"\r\n\r\n" + data + INVITE
    try:
        for chunk in chunked(stream, cuts):
            for message in framer.feed(chunk):
                read_everything(message)
    except SipParseError:
        assert framer.failed


@FUZZ
@given(st.integers(1, 4), st.lists(st.integers(1, 300), max_size=20))
def test_stream_framer_finds_every_message_however_the_stream_is_cut(
    count: int, cuts: list[int]
) -> None:
    framer = StreamFramer()
    messages = [INVITE.replace(b"base1@", f"call{n}@".encode()) for n in range(count)]

    received = [
        m for chunk in chunked(b"".join(messages), cuts) for m in framer.feed(chunk)
    ]

    assert [m.call_id for m in received] == [
        f"call{n}@198.51.100.20" for n in range(count)
    ]
    assert framer.buffered == 0


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """Split `data` into pieces of the given lengths, the rest in one piece."""
    pieces = []
    for size in cuts:
        pieces.append(data[:size])
        data = data[size:]
    return [*pieces, data]


def parse_and_negotiate(data: bytes) -> None:
    try:
        sdp = parse_sdp(data)
    except SipParseError:
        return
    text = sdp.serialise()
    assert parse_sdp(text).serialise() == text
    assert b"\r\r" not in text and b"\x00" not in text
    for media in sdp.media:
        media.rtpmap(), media.fmtp(), media.direction, media.ptime
    with contextlib.suppress(SipParseError):
        negotiate_answer(
            sdp,
            local_address="127.0.0.1",
            local_port=30000,
            session_id=1,
            session_version=1,
        )


@FUZZ
@given(st.binary(max_size=1000))
def test_random_bytes_as_sdp_raise_only_sip_parse_errors(data: bytes) -> None:
    parse_and_negotiate(data)


@FUZZ
@given(mutated(SDP))
def test_mutated_sdp_raises_only_sip_parse_errors(data: bytes) -> None:
    parse_and_negotiate(data)


@FUZZ
@given(st.text(max_size=120))
def test_uri_and_header_value_parsers_raise_only_sip_parse_errors(text: str) -> None:
    for parse in (parse_uri, parse_name_address, parse_via):
        with contextlib.suppress(SipParseError):
            parse(text)


@FUZZ
@given(mutated(b'"A \\"b\\"" <sip:+1415;npdi@[::1]:5060;lr?h=v>;tag=x'))
def test_mutated_name_addresses_raise_only_sip_parse_errors(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for parse in (parse_uri, parse_name_address, parse_via):
        try:
            value = parse(text)
        except SipParseError:
            continue
        str(value)
