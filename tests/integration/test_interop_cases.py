"""Carrier interop cases C04-C15, end to end against a running router.

The inputs follow the interop catalogue's base INVITE and per-case changes,
with every documentation address replaced by a loopback one (127.0.0.x) and
free ports, so nothing the router sends can leave the machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from router.media.g711 import ALAW_TO_ULAW, ULAW_SILENCE, ULAW_TO_ALAW
from tests.integration.conftest import RouterEnv
from tests.integration.sipua import (
    Channel,
    RtpEndpoint,
    RtpPacket,
    SipMessage,
    SipUA,
    UacCall,
    expect_rejection,
    parse_sdp_answer,
    place_call,
    sdp_offer,
    uri_of,
    voice_frame,
    voice_payloads,
)

# The base INVITE's offer with only G.729 (C04) and with PT 96 events (C09).
G729_ONLY = {
    "payload_types": "18 101",
    "rtpmaps": ("18 G729/8000", "101 telephone-event/8000"),
    "fmtps": ("18 annexb=no",),
}
DTMF_96 = {
    "payload_types": "0 96",
    "rtpmaps": ("0 PCMU/8000", "96 telephone-event/8000"),
    "fmtps": ("96 0-16",),
}
PCMA_ONLY = {"payload_types": "8", "rtpmaps": ("8 PCMA/8000",), "fmtps": ()}
WITH_COMFORT_NOISE = {
    "payload_types": "0 13 101",
    "rtpmaps": ("0 PCMU/8000", "13 CN/8000", "101 telephone-event/8000"),
}


async def caller(
    env: RouterEnv, offer: Mapping[str, Any] | None = None, **call_options: Any
) -> tuple[UacCall, RtpEndpoint]:
    """A UA and RTP endpoint on 127.0.0.1, and a call offering the base SDP.

    ``offer`` changes the offer (see :func:`sdp_offer`); ``sdp=None`` in
    ``call_options`` makes a late-offer INVITE.
    """
    ua, rtp = await SipUA.start(), await RtpEndpoint.start()
    call_options.setdefault("sdp", sdp_offer(rtp.port, **(offer or {})))
    return UacCall(ua, env.address, **call_options), rtp


def is_bye(message: SipMessage) -> bool:
    """A BYE request from the router."""
    return message.is_request and message.method == "BYE"


# -- C04 ------------------------------------------------------------------------


async def test_c04_g729_only_offer_is_answered_488_without_ringing(
    router_env: RouterEnv,
) -> None:
    call, _ = await caller(router_env, G729_ONLY)

    final = await expect_rejection(call)

    assert (final.status, final.reason) == (488, "Not Acceptable Here")
    assert call.ua.pending(lambda m: m.status in (180, 183, 200)) == []
    await router_env.wait_idle()
    assert router_env.runner.starts == []


# -- C05 ------------------------------------------------------------------------


async def test_c05_late_offer_gets_our_offer_and_media_flows_after_ack_answer(
    router_env: RouterEnv,
) -> None:
    call, rtp = await caller(router_env, sdp=None)
    router = Channel(call.ua, router_env.address)
    router.send(call.invite())

    ok = await call.ua.response(200)
    offer = parse_sdp_answer(ok.body)
    assert ok["Content-Type"] == "application/sdp"
    assert offer.address == "127.0.0.1" and offer.port > 0
    assert {0, 8} <= set(offer.payload_types)
    assert offer.direction == "sendrecv"

    call.confirm(ok)
    rtp.target = (offer.address, offer.port)
    answer = sdp_offer(
        rtp.port,
        payload_types="0 101",
        rtpmaps=("0 PCMU/8000", "101 telephone-event/8000"),
    )
    router.send(call.ack(ok, body=answer))
    for index in range(10):
        rtp.send(voice_frame(index))
    await rtp.wait_for(lambda got: len(voice_payloads(got)) >= 10)

    assert voice_payloads(rtp.received) == [voice_frame(i) for i in range(10)]
    router.send(call.in_dialog("BYE"))
    await call.ua.response(200, "BYE")
    await router_env.wait_idle()


async def test_c05_late_offer_ack_without_answer_ends_call_with_bye(
    router_env: RouterEnv,
) -> None:
    call, _ = await caller(router_env, sdp=None)
    router = Channel(call.ua, router_env.address)
    router.send(call.invite())
    ok = await call.ua.response(200)
    call.confirm(ok)

    router.send(call.ack(ok))

    bye = await call.ua.request("BYE")
    assert bye.message.call_id == call.call_id
    call.ua.answer(bye)
    await router_env.wait_idle()


# -- C06 ------------------------------------------------------------------------


def send_reinvite(
    call: UacCall, sdp: bytes, headers: tuple[tuple[str, str], ...] = ()
) -> tuple[str, int]:
    """Send a re-INVITE; return its branch and CSeq number."""
    branch = "z9hG4bK-re" + str(call.cseq + 1)
    request = call.in_dialog("INVITE", body=sdp, headers=headers, branch=branch)
    Channel(call.ua, call.router).send(request)
    return branch, call.cseq


async def test_c06_reinvites_hold_resume_switch_codec_and_survive_a_rejected_offer(
    router_env: RouterEnv,
) -> None:
    call, rtp = await caller(router_env)
    await place_call(call, rtp)
    router = Channel(call.ua, router_env.address)

    # CSeq 2: hold (sendonly) with a session-timer refresh.
    timer = (("Supported", "timer"), ("Session-Expires", "1800;refresher=uac"))
    send_reinvite(call, sdp_offer(rtp.port, direction="sendonly", version=2), timer)
    held = await call.ua.response(200)
    assert parse_sdp_answer(held.body).direction == "recvonly"
    assert held["Session-Expires"].replace(" ", "") == "1800;refresher=uac"
    assert "timer" in held.all("Require")
    router.send(call.ack(held))

    # CSeq 3: resume.
    send_reinvite(call, sdp_offer(rtp.port, version=3))
    resumed = await call.ua.response(200)
    assert parse_sdp_answer(resumed.body).direction == "sendrecv"
    router.send(call.ack(resumed))

    # CSeq 4: PCMA only; the router follows and sends PCMA from then on.
    send_reinvite(call, sdp_offer(rtp.port, version=4, **PCMA_ONLY))
    switched = await call.ua.response(200)
    answer = parse_sdp_answer(switched.body)
    assert answer.payload_types == [8]
    assert answer.rtpmaps[8] == "PCMA/8000"
    router.send(call.ack(switched))
    await assert_echo_in_pcma(rtp)

    # CSeq 5: G.729 only: 488, the call and the PCMA session carry on.
    branch, cseq = send_reinvite(call, sdp_offer(rtp.port, version=5, **G729_ONLY))
    rejected = await call.ua.response(488)
    router.send(call.in_dialog("ACK", cseq=cseq, branch=branch))
    await assert_echo_in_pcma(rtp)
    assert call.ua.pending(is_bye) == []
    assert router_env.sip.active_calls == 1
    assert rejected.to_tag == call.to_tag

    router.send(call.in_dialog("BYE"))
    await call.ua.response(200, "BYE")
    await router_env.wait_idle()
    assert len(router_env.runner.starts) == 1


async def assert_echo_in_pcma(rtp: RtpEndpoint) -> None:
    """Send ten A-law frames; they come back in A-law (PT 8), unchanged."""
    start = len(rtp.received)
    # A-law frames of the pattern; μ-law in between, so compare via the tables.
    frames = [voice_frame(i).translate(ULAW_TO_ALAW) for i in range(10)]
    expected = [f.translate(ALAW_TO_ULAW).translate(ULAW_TO_ALAW) for f in frames]
    for frame in frames:
        rtp.send(frame, payload_type=8)

    def echoed(got: list[RtpPacket]) -> list[RtpPacket]:
        return [p for p in got[start:] if p.payload in expected]

    await rtp.wait_for(lambda got: len(echoed(got)) >= 10)
    assert [p.payload for p in echoed(rtp.received)] == expected
    assert {p.payload_type for p in echoed(rtp.received)} == {8}
    # A μ-law packet sent just before the switch may still arrive; none after.
    after = rtp.received[start:]
    first_pcma = next(i for i, p in enumerate(after) if p.payload_type == 8)
    assert {p.payload_type for p in after[first_pcma:]} == {8}


# -- C08 ------------------------------------------------------------------------


def options_request(ua: SipUA, router: tuple[str, int], index: int) -> bytes:
    """The C08 OPTIONS keepalive, with its own branch and Call-ID."""
    lines = [
        f"OPTIONS sip:{router[0]}:{router[1]} SIP/2.0",
        f"Via: SIP/2.0/UDP {ua.host}:{ua.port};branch=z9hG4bK-opt{index}",
        "Max-Forwards: 70",
        f"From: <sip:ping@{ua.host}>;tag=p{index}",
        f"To: <sip:{router[0]}>",
        f"Call-ID: opt{index}@{ua.host}",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_c08_options_is_answered_200_with_allow_and_accept(
    router_env: RouterEnv,
) -> None:
    ua = await SipUA.start()
    Channel(ua, router_env.address).send(options_request(ua, router_env.address, 0))

    ok = await ua.response(200, "OPTIONS")

    allowed = {method.strip() for method in ok.all("Allow")}
    assert {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"} <= allowed
    assert ok["Accept"] == "application/sdp"
    assert router_env.sip.active_calls == 0


async def test_c08_burst_of_50_options_gets_50_answers_200(
    router_env: RouterEnv,
) -> None:
    ua = await SipUA.start()
    router = Channel(ua, router_env.address)
    for index in range(50):
        router.send(options_request(ua, router_env.address, index))

    answers = [await ua.response(200, "OPTIONS") for _ in range(50)]

    assert len({answer.call_id for answer in answers}) == 50
    assert ua.pending(lambda m: m.status != 200) == []
    assert router_env.sip.active_calls == 0


# -- C09 ------------------------------------------------------------------------


async def test_c09_dtmf_on_payload_type_96_reaches_runner_once(
    router_env: RouterEnv,
) -> None:
    call, rtp = await caller(router_env, DTMF_96)
    ok = await place_call(call, rtp)

    answer = parse_sdp_answer(ok.body)
    assert answer.payload_types == [0, 96]
    assert answer.rtpmaps[96] == "telephone-event/8000"
    for index in range(3):
        rtp.send(voice_frame(index))
    stamp = rtp.timestamp
    events = [bytes.fromhex("050a00a0"), bytes.fromhex("050a0140")]
    events += [bytes.fromhex("058a0320")] * 3  # RFC 4733 §2.5.1.4: the end, thrice
    for payload in events:  # no marker bit on the first: C09's carrier omits it
        rtp.send(payload, payload_type=96, timestamp=stamp)
    rtp.timestamp += 800
    for index in range(3, 6):
        rtp.send(voice_frame(index))

    # The runner reads the stream in order: once the audio sent after the
    # event has come back, every digit the event made has reached it.
    await rtp.wait_for(lambda got: len(voice_payloads(got)) >= 6)
    assert router_env.runner.digits == ["5"]


# -- C11 ------------------------------------------------------------------------


async def test_c11_require_100rel_is_answered_420_and_nothing_more(
    router_env: RouterEnv,
) -> None:
    call, _ = await caller(router_env, extra_headers=[("Require", "100rel")])

    final = await expect_rejection(call)

    assert final.status == 420
    assert [tag.strip() for tag in final.all("Unsupported")] == ["100rel"]
    await asyncio.sleep(0.5)
    others = call.ua.pending(lambda m: m.status not in (100,))
    assert others == []
    await router_env.wait_idle()
    assert router_env.runner.starts == []


async def test_c11_supported_100rel_alone_is_a_normal_call(
    router_env: RouterEnv,
) -> None:
    call, rtp = await caller(router_env, extra_headers=[("Supported", "100rel")])

    ok = await place_call(call, rtp)

    assert ok.get("RSeq") is None
    assert "100rel" not in ok.all("Require")
    Channel(call.ua, router_env.address).send(call.in_dialog("BYE"))
    await call.ua.response(200, "BYE")
    await router_env.wait_idle()


# -- C12 ------------------------------------------------------------------------


async def test_c12_comfort_noise_never_reaches_runner_as_audio(
    router_env: RouterEnv,
) -> None:
    call, rtp = await caller(router_env, WITH_COMFORT_NOISE)
    ok = await place_call(call, rtp)
    assert 13 not in parse_sdp_answer(ok.body).payload_types

    for index in range(20):
        rtp.send(voice_frame(index))
    for _ in range(3):
        rtp.send(b"\x40", payload_type=13)  # RFC 3389 §3: a noise level of -64 dBov
    for index in range(20, 40):
        rtp.send(voice_frame(index))
    await rtp.wait_for(lambda got: len(voice_payloads(got)) >= 40)

    assert voice_payloads(rtp.received) == [voice_frame(i) for i in range(40)]
    # Everything else is the router's silence: no frame carries the CN bytes.
    silence = bytes([ULAW_SILENCE]) * 160
    assert {p.payload for p in rtp.received} - set(voice_payloads(rtp.received)) <= {
        silence
    }


# -- C14 ------------------------------------------------------------------------


async def test_c14_bye_goes_to_record_route_proxy_with_contact_as_request_uri(
    router_env: RouterEnv,
) -> None:
    number = await router_env.add_number("hangup_after=0.5")
    proxy = await SipUA.start("127.0.0.5")
    gateway = await SipUA.start("127.0.0.7")  # the Contact: must never be sent to
    record_route = f"<sip:{proxy.host}:{proxy.port};lr>"
    contact = f"sip:+14155550111@{gateway.host}:{gateway.port}"
    call, rtp = await caller(
        router_env,
        number=number,
        contact=contact,
        extra_headers=[("Record-Route", record_route)],
    )

    ok = await place_call(call, rtp)
    assert ok.all("Record-Route") == [record_route]

    bye = await proxy.request("BYE")
    assert bye.message.uri == contact
    assert bye.message.all("Route") == [record_route]
    assert bye.channel.address == (router_env.address[0], router_env.address[1])
    proxy.answer(bye)
    await router_env.wait_idle()
    assert gateway.history == []


# -- C15 ------------------------------------------------------------------------


async def test_c15_tcp_responses_use_the_connection_then_a_new_one_to_via(
    router_env: RouterEnv,
) -> None:
    number = await router_env.add_number("ready_delay=1")
    ua, rtp = await SipUA.start(tcp=True), await RtpEndpoint.start()
    call = UacCall(
        ua, router_env.address, number=number, sdp=sdp_offer(rtp.port), transport="TCP"
    )
    connection = await ua.connect(router_env.address)
    assert connection.address == router_env.address
    connection.send(call.invite())

    trying = await ua.expect(lambda m: m.status == 100)
    assert trying.channel is connection
    connection.close()
    await connection.closed

    ok = await ua.expect(lambda m: m.status == 200 and m.method == "INVITE")
    assert ok.channel is not connection
    assert ok.channel.inbound  # type: ignore[attr-defined]  # to our Via sent-by
    # §13.3.1.4: until the ACK, the 2xx is sent again, on the connection just made.
    again = await ua.expect(lambda m: m.status == 200 and m.method == "INVITE")
    assert again.channel is ok.channel
    assert [c for c in ua.connections if c.inbound] == [ok.channel]
    call.confirm(ok.message)
    assert ";transport=tcp" in uri_of(ok.message["Contact"]).lower()
    ok.channel.send(call.ack(ok.message))

    ok.channel.send(call.in_dialog("BYE"))
    bye_ok = await ua.expect(lambda m: m.status == 200 and m.method == "BYE")
    assert bye_ok.channel is ok.channel
    await router_env.wait_idle()
