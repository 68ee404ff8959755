"""SDP parsing, serialising and offer/answer (RFC 4566, RFC 3264)."""

from __future__ import annotations

import pytest

from router.sip.sdp import (
    Connection,
    MediaDescription,
    NegotiatedAudio,
    NoCommonCodec,
    Origin,
    SdpError,
    SessionDescription,
    build_offer,
    negotiate_answer,
    negotiate_from_answer,
    parse_sdp,
)

SESSION = (
    "v=0\r\n"
    "o=- 1001 1 IN IP4 198.51.100.20\r\n"
    "s=-\r\n"
    "c=IN IP4 198.51.100.20\r\n"
    "t=0 0\r\n"
)

BASE_MEDIA = (
    "m=audio 40000 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
)

LOCAL = {
    "local_address": "127.0.0.1",
    "local_port": 30000,
    "session_id": 555,
    "session_version": 1,
}


def offer(media: str = BASE_MEDIA, session: str = SESSION) -> SessionDescription:
    return parse_sdp((session + media).encode())


def answer_to(media: str, session: str = SESSION) -> tuple[str, NegotiatedAudio]:
    answer, audio = negotiate_answer(offer(media, session), **LOCAL)  # type: ignore[arg-type]
    return answer.serialise().decode(), audio


# -- parsing ------------------------------------------------------------------------


def test_base_offer_parses_into_typed_fields() -> None:
    sdp = offer()

    assert sdp.version == 0
    assert sdp.origin == Origin("-", 1001, 1, "IN", "IP4", "198.51.100.20")
    assert sdp.session_name == "-"
    assert sdp.connection == Connection("IN", "IP4", "198.51.100.20")
    assert sdp.times == [(0, 0)]
    [audio] = sdp.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio",
        40000,
        "RTP/AVP",
        ["0", "8", "101"],
    )
    assert audio.rtpmap() == {
        0: ("PCMU", 8000, 1),
        8: ("PCMA", 8000, 1),
        101: ("TELEPHONE-EVENT", 8000, 1),
    }
    assert audio.fmtp() == {101: "0-15"}
    assert (audio.direction, audio.ptime) == ("sendrecv", 20)


def test_static_payload_types_are_known_without_rtpmap() -> None:
    sdp = offer("m=audio 40000 RTP/AVP 0 8 13 18 9\r\n")

    assert sdp.media[0].rtpmap() == {
        0: ("PCMU", 8000, 1),
        8: ("PCMA", 8000, 1),
        13: ("CN", 8000, 1),
        18: ("G729", 8000, 1),
        9: ("G722", 8000, 1),
    }


def test_rtpmap_channels_and_case() -> None:
    sdp = offer(
        "m=audio 40000 RTP/AVP 96 97\r\n"
        "a=rtpmap:96 opus/48000/2\r\n"
        "a=rtpmap:97 pcmu/8000\r\n"
    )

    assert sdp.media[0].rtpmap() == {96: ("OPUS", 48000, 2), 97: ("PCMU", 8000, 1)}


def test_lf_only_line_ends_and_blank_lines_are_tolerated() -> None:
    text = (SESSION + BASE_MEDIA).replace("\r\n", "\n") + "\n\n"

    sdp = parse_sdp(text.encode())

    assert sdp.media[0].formats == ["0", "8", "101"]


def test_unknown_line_types_are_ignored() -> None:
    sdp = offer(BASE_MEDIA + "y=unknown\r\n", SESSION + "q=also unknown\r\n")

    assert len(sdp.media) == 1


def test_optional_lines_are_kept_and_written_back_in_rfc_order() -> None:
    text = (
        "v=0\r\n"
        "o=carrier 1 2 IN IP4 198.51.100.20\r\n"
        "s=call\r\n"
        "i=info\r\n"
        "c=IN IP4 198.51.100.20\r\n"
        "b=AS:64\r\n"
        "t=0 0\r\n"
        "a=group:BUNDLE a\r\n"
        "m=audio 40000 RTP/AVP 0\r\n"
        "i=voice\r\n"
        "b=TIAS:64000\r\n"
        "a=rtcp:40001\r\n"
    )

    assert parse_sdp(text.encode()).serialise().decode() == text


def test_ipv6_connection_address() -> None:
    sdp = offer(session=SESSION.replace("IN IP4 198.51.100.20", "IN IP6 2001:db8::20"))

    assert sdp.connection == Connection("IN", "IP6", "2001:db8::20")
    assert sdp.origin.addrtype == "IP6"


def test_media_level_connection_overrides_session_level() -> None:
    sdp = offer(BASE_MEDIA + "c=IN IP4 198.51.100.21\r\n")

    assert sdp.connection_for(sdp.media[0]) == Connection("IN", "IP4", "198.51.100.21")


def test_media_level_direction_overrides_session_level() -> None:
    session = SESSION + "a=sendonly\r\n"

    sdp = offer("m=audio 1 RTP/AVP 0\r\nm=audio 2 RTP/AVP 0\r\na=inactive\r\n", session)

    assert sdp.direction == "sendonly"
    assert [media.direction for media in sdp.media] == ["sendonly", "inactive"]


def test_ptime_tolerates_decimals_and_is_none_when_absent() -> None:
    assert offer("m=audio 1 RTP/AVP 0\r\na=ptime:30.0\r\n").media[0].ptime == 30
    assert offer("m=audio 1 RTP/AVP 0\r\n").media[0].ptime is None


def test_ptime_with_thousands_of_digits_is_ignored() -> None:
    assert (
        offer("m=audio 1 RTP/AVP 0\r\na=ptime:" + "9" * 5000 + "\r\n").media[0].ptime
        is None
    )


def test_port_count_is_parsed_and_serialised() -> None:
    sdp = offer("m=audio 40000/2 RTP/AVP 0\r\n")

    assert (sdp.media[0].port, sdp.media[0].port_count) == (40000, 2)
    assert b"m=audio 40000/2 RTP/AVP 0\r\n" in sdp.serialise()


def test_stream_without_connection_anywhere_is_rejected() -> None:
    session = SESSION.replace("c=IN IP4 198.51.100.20\r\n", "")

    with pytest.raises(SdpError) as caught:
        offer(session=session)

    assert caught.value.reason == "Bad SDP: missing c= line"


def test_rejected_stream_needs_no_connection() -> None:
    session = SESSION.replace("c=IN IP4 198.51.100.20\r\n", "")

    sdp = offer(
        "m=video 0 RTP/AVP 31\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 127.0.0.1\r\n",
        session,
    )

    assert [media.port for media in sdp.media] == [0, 4000]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "Bad SDP: missing v=0 line"),
        ("hello world", "Bad SDP: malformed line"),
        ("v=1\r\n", "Bad SDP: missing v=0 line"),
        ("o=- 1 1 IN IP4 h\r\nv=0\r\n", "Bad SDP: missing v=0 line"),
        ("v=0\r\ns=-\r\n", "Bad SDP: missing o= line"),
        ("v=0\r\no=- x 1 IN IP4 h\r\n", "Bad SDP: bad o= line"),
        ("v=0\r\no=- 1 1 IN IP4\r\n", "Bad SDP: bad o= line"),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\no=- 1 1 IN IP4 h\r\n",
            "Bad SDP: more than one o= line",
        ),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4\r\n", "Bad SDP: bad c= line"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nt=0\r\n", "Bad SDP: bad t= line"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio\r\n", "Bad SDP: bad m= line"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio x RTP/AVP 0\r\n", "Bad SDP: bad m= line"),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 70000 RTP/AVP 0\r\n",
            "Bad SDP: bad m= line",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP PCMU\r\n",
            "Bad SDP: bad m= line",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 128\r\n",
            "Bad SDP: bad m= line",
        ),
        ("v=0\r\no=- 1 1 IN IP4 h\r\na=\r\n", "Bad SDP: bad a= line"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\na=rtpmap:x\r\n", "Bad SDP: bad rtpmap attribute"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nX=upper\r\n", "Bad SDP: malformed line"),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\na=fmtp:101 0-15\rx\r\n",
            "Bad SDP: malformed line",
        ),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=\x00\r\n", "Bad SDP: malformed line"),
    ],
)
def test_garbage_is_rejected_with_a_reason_naming_the_problem(
    text: str, reason: str
) -> None:
    with pytest.raises(SdpError) as caught:
        parse_sdp(text.encode())

    assert caught.value.reason == reason
    assert caught.value.status == 400


def test_serialise_round_trips_the_base_offer() -> None:
    text = SESSION + BASE_MEDIA

    assert parse_sdp(text.encode()).serialise() == text.encode()


# -- negotiate_answer ---------------------------------------------------------------


def test_base_offer_is_answered_with_pcmu_and_telephone_event() -> None:
    text, audio = answer_to(BASE_MEDIA)

    assert text == (
        "v=0\r\n"
        "o=- 555 1 IN IP4 127.0.0.1\r\n"
        "s=-\r\n"
        "c=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\n"
        "m=audio 30000 RTP/AVP 0 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-15\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )
    assert audio == NegotiatedAudio(
        payload_type=0,
        codec="PCMU",
        dtmf_payload_type=101,
        remote_address="198.51.100.20",
        remote_port=40000,
        direction="sendrecv",
        ptime=20,
    )


def test_offer_order_decides_pcma_first() -> None:
    # RFC 3264 §6.1: the answerer should prefer the offerer's order.
    text, audio = answer_to("m=audio 40000 RTP/AVP 8 0\r\n")

    assert (audio.payload_type, audio.codec) == (8, "PCMA")
    assert "m=audio 30000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n" in text


def test_pcma_only_offer_is_accepted() -> None:
    _, audio = answer_to("m=audio 40000 RTP/AVP 8\r\n")

    assert (audio.codec, audio.dtmf_payload_type) == ("PCMA", None)


def test_dynamic_payload_type_for_g711_is_kept() -> None:
    _, audio = answer_to("m=audio 40000 RTP/AVP 112\r\na=rtpmap:112 PCMU/8000\r\n")

    assert (audio.payload_type, audio.codec) == (112, "PCMU")


def test_g711_at_another_clock_rate_is_not_g711() -> None:
    with pytest.raises(NoCommonCodec):
        answer_to("m=audio 40000 RTP/AVP 112\r\na=rtpmap:112 PCMU/16000\r\n")


def test_telephone_event_on_payload_type_96_is_answered_with_96() -> None:
    # Interop C09: the fmtp range the caller offered is echoed.
    text, audio = answer_to(
        "m=audio 40000 RTP/AVP 0 96\r\n"
        "a=rtpmap:96 telephone-event/8000\r\n"
        "a=fmtp:96 0-16\r\n"
    )

    assert audio.dtmf_payload_type == 96
    assert "m=audio 30000 RTP/AVP 0 96\r\n" in text
    assert "a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\n" in text


def test_telephone_event_without_fmtp_gets_0_15() -> None:
    text, _ = answer_to(
        "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )

    assert "a=fmtp:101 0-15\r\n" in text


def test_wideband_telephone_event_is_not_used_with_g711() -> None:
    _, audio = answer_to(
        "m=audio 40000 RTP/AVP 0 100\r\na=rtpmap:100 telephone-event/16000\r\n"
    )

    assert audio.dtmf_payload_type is None


def test_g729_only_offer_has_no_common_codec() -> None:
    # Interop C04: answered 488, never 400.
    media = (
        "m=audio 40000 RTP/AVP 18 101\r\n"
        "a=rtpmap:18 G729/8000\r\n"
        "a=fmtp:18 annexb=no\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
    )

    with pytest.raises(NoCommonCodec) as caught:
        answer_to(media)

    assert (caught.value.status, caught.value.reason) == (488, "No common codec")
    assert isinstance(caught.value, SdpError)


def test_offer_without_audio_has_no_common_codec() -> None:
    with pytest.raises(NoCommonCodec):
        answer_to("m=video 40000 RTP/AVP 31\r\n")


def test_srtp_offer_has_no_common_codec() -> None:
    with pytest.raises(NoCommonCodec):
        answer_to("m=audio 40000 RTP/SAVP 0\r\n")


def test_comfort_noise_is_never_answered() -> None:
    # Interop C12.
    text, audio = answer_to(
        "m=audio 40000 RTP/AVP 0 13 101\r\n"
        "a=rtpmap:13 CN/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
    )

    assert audio.payload_type == 0
    assert "m=audio 30000 RTP/AVP 0 101\r\n" in text
    assert "CN" not in text
    assert " 13" not in text


@pytest.mark.parametrize(
    ("offered", "ours"),
    [
        ("sendrecv", "sendrecv"),
        ("sendonly", "recvonly"),
        ("recvonly", "sendonly"),
        ("inactive", "inactive"),
    ],
)
def test_direction_is_mirrored(offered: str, ours: str) -> None:
    # RFC 3264 §6.1; sendonly is the caller putting us on hold (interop C06).
    text, audio = answer_to(BASE_MEDIA.replace("sendrecv", offered))

    assert audio.direction == ours
    assert text.endswith(f"a={ours}\r\n")


def test_session_level_direction_is_mirrored_too() -> None:
    _, audio = answer_to("m=audio 40000 RTP/AVP 0\r\n", SESSION + "a=sendonly\r\n")

    assert audio.direction == "recvonly"


def test_video_stream_is_rejected_with_port_0_and_line_count_kept() -> None:
    media = "m=video 40002 RTP/AVP 31 34\r\na=rtpmap:31 H261/90000\r\n" + BASE_MEDIA

    text, audio = answer_to(media)
    answer = parse_sdp(text.encode())

    assert [(m.media, m.port) for m in answer.media] == [("video", 0), ("audio", 30000)]
    assert answer.media[0].formats == ["31", "34"]
    assert audio.remote_port == 40000


def test_second_audio_stream_is_rejected() -> None:
    media = BASE_MEDIA + "m=audio 40002 RTP/AVP 8\r\n"

    answer = parse_sdp(answer_to(media)[0].encode())

    assert [m.port for m in answer.media] == [30000, 0]


def test_disabled_first_audio_stream_is_skipped() -> None:
    media = "m=audio 0 RTP/AVP 0\r\nm=audio 40002 RTP/AVP 8\r\n"

    text, audio = answer_to(media)

    assert (audio.remote_port, audio.codec) == (40002, "PCMA")
    assert [m.port for m in parse_sdp(text.encode()).media] == [0, 30000]


def test_first_audio_stream_without_a_common_codec_is_skipped() -> None:
    media = "m=audio 40000 RTP/AVP 18\r\nm=audio 40002 RTP/AVP 0\r\n"

    _, audio = answer_to(media)

    assert audio.remote_port == 40002


def test_ipv6_offer_and_ipv6_local_address() -> None:
    session = SESSION.replace("IN IP4 198.51.100.20", "IN IP6 2001:db8::20")
    answer, audio = negotiate_answer(
        offer(session=session),
        local_address="::1",
        local_port=30000,
        session_id=1,
        session_version=2,
    )

    text = answer.serialise().decode()

    assert audio.remote_address == "2001:db8::20"
    assert "o=- 1 2 IN IP6 ::1\r\n" in text
    assert "c=IN IP6 ::1\r\n" in text


def test_old_style_hold_address_is_kept() -> None:
    # RFC 3264 §8.4: c=0.0.0.0 means "send nothing"; the media layer decides.
    _, audio = answer_to(
        BASE_MEDIA, SESSION.replace("c=IN IP4 198.51.100.20", "c=IN IP4 0.0.0.0")
    )

    assert audio.remote_address == "0.0.0.0"


def test_offered_ptime_is_what_we_send() -> None:
    _, audio = answer_to(BASE_MEDIA.replace("a=ptime:20", "a=ptime:30"))

    assert audio.ptime == 30


def test_answer_copies_the_offer_time_line() -> None:
    text, _ = answer_to(BASE_MEDIA, SESSION.replace("t=0 0", "t=3034423619 0"))

    assert "t=3034423619 0\r\n" in text


def test_supported_codecs_can_be_narrowed() -> None:
    with pytest.raises(NoCommonCodec):
        negotiate_answer(
            offer("m=audio 1 RTP/AVP 0\r\n"),
            supported=("PCMA",),
            **LOCAL,  # type: ignore[arg-type]
        )


# -- late offer: build_offer and negotiate_from_answer --------------------------------


def our_offer() -> SessionDescription:
    return build_offer(
        local_address="127.0.0.1", local_port=30000, session_id=9, session_version=1
    )


def test_our_offer_lists_pcmu_pcma_and_telephone_event_101() -> None:
    assert our_offer().serialise().decode() == (
        "v=0\r\n"
        "o=- 9 1 IN IP4 127.0.0.1\r\n"
        "s=-\r\n"
        "c=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\n"
        "m=audio 30000 RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-15\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )


def test_answer_in_ack_gives_the_agreed_stream() -> None:
    # Interop C05: the ACK answers with m=audio 40000 RTP/AVP 0 101.
    answer = offer(
        "m=audio 40000 RTP/AVP 0 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
    )

    audio = negotiate_from_answer(our_offer(), answer)

    assert audio == NegotiatedAudio(
        0, "PCMU", 101, "198.51.100.20", 40000, "sendrecv", 20
    )


def test_answer_choosing_pcma_without_dtmf() -> None:
    audio = negotiate_from_answer(
        our_offer(), offer("m=audio 40000 RTP/AVP 8\r\na=recvonly\r\n")
    )

    assert (audio.codec, audio.dtmf_payload_type, audio.direction) == (
        "PCMA",
        None,
        "sendonly",
    )


def test_answer_rejecting_our_audio_has_no_common_codec() -> None:
    with pytest.raises(NoCommonCodec):
        negotiate_from_answer(our_offer(), offer("m=audio 0 RTP/AVP 0\r\n"))


def test_answer_with_a_codec_we_did_not_offer_has_no_common_codec() -> None:
    with pytest.raises(NoCommonCodec):
        negotiate_from_answer(
            our_offer(),
            offer("m=audio 40000 RTP/AVP 112\r\na=rtpmap:112 PCMU/8000\r\n"),
        )


def test_answer_with_another_number_of_streams_is_bad_sdp() -> None:
    answer = offer(BASE_MEDIA + "m=video 0 RTP/AVP 31\r\n")

    with pytest.raises(SdpError) as caught:
        negotiate_from_answer(our_offer(), answer)

    assert caught.value.reason == "Bad SDP: answer does not match offer"


# -- building descriptions by hand ---------------------------------------------------


def test_session_fills_in_its_direction_for_media_built_by_hand() -> None:
    media = MediaDescription("audio", 1, "RTP/AVP", ["0"])

    SessionDescription(
        0,
        Origin("-", 1, 1, "IN", "IP4", "127.0.0.1"),
        "-",
        Connection.for_address("127.0.0.1"),
        [(0, 0)],
        [("recvonly", None)],
        [media],
    )

    assert media.direction == "recvonly"
