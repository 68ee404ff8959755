"""Call flows end to end: a test UA on loopback calls a running router.

Each test starts a router on 127.0.0.1 (free SIP port, a small RTP range, an
embedded store) with the echo runner behind it, plays the carrier with
:mod:`tests.integration.sipua`, and checks what the router sends back, over
SIP and RTP, and that the call leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import weakref

import pytest

from router.numbers.models import NumberStatus
from router.sip.transaction import Timers
from tests.integration.conftest import RouterEnv, RouterEnvFactory
from tests.integration.sipua import (
    Channel,
    RtpEndpoint,
    SipUA,
    UacCall,
    expect_rejection,
    parse_sdp_answer,
    place_call,
    sdp_offer,
    uri_of,
    voice_frame,
    voice_payloads,
    wait_until,
)

# The fixture's ringing timeout (seconds to reach the runner).
RINGING_TIMEOUT = 5.0

# How many frames the basic call sends: one second of audio.
VOICE_FRAMES = 50

# A T1 small enough that 64*T1 (the wait for an ACK) is about one second.
SHORT_T1 = 0.02


async def start_ua_and_rtp() -> tuple[SipUA, RtpEndpoint]:
    """A UA and an RTP endpoint on 127.0.0.1."""
    return await SipUA.start(), await RtpEndpoint.start()


async def new_call(env: RouterEnv, number: str) -> UacCall:
    """A call to ``number`` from a new UA, offering the base SDP."""
    ua, rtp = await start_ua_and_rtp()
    return UacCall(ua, env.address, number=number, sdp=sdp_offer(rtp.port))


async def test_basic_udp_call_echoes_audio_and_releases_everything_after_bye(
    router_env: RouterEnv,
) -> None:
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, sdp=sdp_offer(rtp.port))
    Channel(ua, router_env.address).send(call.invite())

    trying = await ua.response(100)
    ringing = await ua.response(180)
    ok = await ua.response(200)
    assert trying.to_tag is None
    assert ringing.to_tag and ringing.to_tag == ok.to_tag
    answer = parse_sdp_answer(ok.body)
    assert ok["Content-Type"] == "application/sdp"
    assert answer.address == "127.0.0.1"
    assert answer.payload_types == [0, 101]
    assert answer.rtpmaps[101] == "telephone-event/8000"
    assert answer.direction == "sendrecv"

    call.confirm(ok)
    rtp.target = (answer.address, answer.port)
    Channel(ua, router_env.address).send(call.ack(ok))
    for index in range(VOICE_FRAMES):
        rtp.send(voice_frame(index), marker=index == 0)
    await rtp.wait_for(lambda got: len(voice_payloads(got)) >= VOICE_FRAMES)

    echoed = voice_payloads(rtp.received)
    assert echoed == [voice_frame(i) for i in range(VOICE_FRAMES)]
    assert {p.payload_type for p in rtp.received} == {0}
    assert rtp.sources == {(answer.address, answer.port)}

    Channel(ua, router_env.address).send(call.in_dialog("BYE"))
    bye_ok = await ua.response(200, "BYE")
    assert bye_ok.call_id == call.call_id
    await router_env.wait_idle()
    assert len(router_env.runner.starts) == 1
    assert ua.unparsable == []


async def test_an_ended_call_is_freed_without_the_garbage_collector(
    router_env: RouterEnv,
) -> None:
    # A call's objects (the call, its bridge, media and runner sessions, the
    # runner connection) used to form cycles: about 120 objects a call that
    # only a collection freed, and at 400 calls/s full collections of 20 ms.
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, sdp=sdp_offer(rtp.port))
    gc.disable()
    try:
        Channel(ua, router_env.address).send(call.invite())
        ok = await ua.response(200)
        (live,) = router_env.sip.calls.values()
        assert live.media is not None
        freed = [weakref.ref(live), weakref.ref(live.media)]
        del live
        answer = parse_sdp_answer(ok.body)
        call.confirm(ok)
        rtp.target = (answer.address, answer.port)
        Channel(ua, router_env.address).send(call.ack(ok))
        for index in range(5):
            rtp.send(voice_frame(index), marker=index == 0)
        await rtp.wait_for(lambda got: len(voice_payloads(got)) >= 5)
        Channel(ua, router_env.address).send(call.in_dialog("BYE"))
        await ua.response(200, "BYE")
        await router_env.wait_idle()
        await asyncio.sleep(0.05)  # the runner connection's last callbacks

        assert [ref() for ref in freed] == [None, None]
    finally:
        gc.enable()


async def test_runner_hangup_sends_bye_to_caller_contact_in_dialog(
    router_env: RouterEnv,
) -> None:
    number = await router_env.add_number("hangup_after=1")
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, number=number, sdp=sdp_offer(rtp.port))
    ok = await place_call(call, rtp)

    bye = await ua.request("BYE")
    request = bye.message
    assert request.uri == call.contact
    assert request.call_id == call.call_id
    # RFC 3261 §12.2.1.1: our tags swap places in requests the router sends.
    assert request.from_tag == ok.to_tag
    assert request.to_tag == call.from_tag
    assert request.cseq[1] == "BYE"
    assert uri_of(request["From"]) == uri_of(ok["To"])
    assert request.get("Route") is None
    ua.answer(bye)

    await router_env.wait_idle()
    await asyncio.sleep(0.7)  # past T1: an answered BYE is not sent again
    assert ua.pending(lambda m: m.is_request and m.method == "BYE") == []


async def test_runner_hanging_up_before_our_200_is_acked_waits_for_the_ack_to_bye(
    router_env: RouterEnv,
) -> None:
    number = await router_env.add_number("hangup_after=0")
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, number=number, sdp=sdp_offer(rtp.port))
    Channel(ua, router_env.address).send(call.invite())
    ok = await ua.response(200)
    await wait_until(lambda: router_env.runner.sessions == 0)  # it has hung up

    await ua.response(200)  # the 2xx again (§13.3.1.4): still not acknowledged
    # RFC 3261 §15: the callee must not send BYE before the ACK for its 2xx.
    assert ua.pending(lambda m: m.is_request and m.method == "BYE") == []
    call.confirm(ok)
    Channel(ua, router_env.address).send(call.ack(ok))
    bye = await ua.request("BYE")

    assert bye.message.call_id == call.call_id
    ua.answer(bye)
    await router_env.wait_idle()


async def test_unanswered_bye_is_retransmitted_timer_e(router_env: RouterEnv) -> None:
    number = await router_env.add_number("hangup_after=1")
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, number=number, sdp=sdp_offer(rtp.port))
    await place_call(call, rtp)

    first = await ua.request("BYE")
    again = await ua.request("BYE", timeout=3.0)
    # §17.1.2.2: the same request (same branch and CSeq), T1 later.
    assert again.message.branch == first.message.branch
    assert again.message.cseq == first.message.cseq
    assert 0.3 <= again.at - first.at <= 2.0
    await router_env.wait_idle()
    ua.answer(again)


async def test_bye_to_contact_without_transport_goes_over_udp_and_says_so_in_via(
    router_env: RouterEnv,
) -> None:
    number = await router_env.add_number("hangup_after=0.5")
    ua, rtp = await SipUA.start(tcp=True), await RtpEndpoint.start()
    call = UacCall(
        ua, router_env.address, number=number, sdp=sdp_offer(rtp.port), transport="TCP"
    )
    call.contact = f"sip:+14155550111@{ua.host}:{ua.port}"  # no ;transport=tcp
    connection = await ua.connect(router_env.address)
    connection.send(call.invite())
    ok = await ua.response(200)
    call.confirm(ok)
    connection.send(call.ack(ok))

    bye = await ua.request("BYE")

    # RFC 3263 §4.1: a sip: URI with a numeric host and no transport means
    # UDP; RFC 3261 §18.1.1: Via names the transport the request goes over.
    assert bye.channel.transport == "UDP"
    assert bye.message.all("Via")[0].startswith("SIP/2.0/UDP ")
    ua.answer(bye)
    await router_env.wait_idle()


async def test_bye_to_contact_with_transport_tcp_goes_over_tcp_and_says_so_in_via(
    router_env: RouterEnv,
) -> None:
    number = await router_env.add_number("hangup_after=0.5")
    ua, rtp = await SipUA.start(tcp=True), await RtpEndpoint.start()
    call = UacCall(ua, router_env.address, number=number, sdp=sdp_offer(rtp.port))
    call.contact = f"sip:+14155550111@{ua.host}:{ua.port};transport=tcp"
    await place_call(call, rtp)  # INVITE over UDP

    bye = await ua.request("BYE")

    assert bye.channel.transport == "TCP"
    assert bye.message.all("Via")[0].startswith("SIP/2.0/TCP ")
    ua.answer(bye)
    await router_env.wait_idle()


async def test_cancel_while_runner_connects_answers_487_and_never_starts_runner(
    router_env: RouterEnv,
) -> None:
    number = await router_env.add_number("ready_delay=2")
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, number=number, sdp=sdp_offer(rtp.port))
    router = Channel(ua, router_env.address)
    router.send(call.invite())
    await ua.response(180)
    await asyncio.sleep(0.3)  # C07: the caller gives up 300 ms after the ringing

    router.send(call.cancel())
    cancel_ok = await ua.response(200, "CANCEL")
    terminated = await ua.response(487)
    assert cancel_ok.branch == call.branch
    assert terminated.to_tag is not None
    router.send(call.ack_non_2xx(terminated))

    await router_env.wait_idle()
    await asyncio.sleep(2.5)  # past the runner's ready delay: it never sees a start
    assert router_env.runner.starts == []
    assert router_env.is_idle()
    # §17.2.1: the ACK stopped Timer G, so the 487 is not sent again.
    assert ua.pending(lambda m: m.status == 487) == []
    assert ua.pending(lambda m: m.status == 200 and m.method == "INVITE") == []


async def test_cancel_after_200_has_no_effect_and_call_ends_by_bye(
    router_env: RouterEnv,
) -> None:
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, sdp=sdp_offer(rtp.port))
    await place_call(call, rtp)
    router = Channel(ua, router_env.address)

    router.send(call.cancel())
    # RFC 6026 keeps the INVITE transaction after the 2xx: 200, no effect.
    cancel_answer = await ua.expect(lambda m: m.method == "CANCEL")
    assert cancel_answer.message.status == 200
    for index in range(10):
        rtp.send(voice_frame(index))
    await rtp.wait_for(lambda got: len(voice_payloads(got)) >= 10)
    assert router_env.sip.active_calls == 1
    assert ua.pending(lambda m: m.is_request and m.method == "BYE") == []
    assert ua.pending(lambda m: m.status == 487) == []

    router.send(call.in_dialog("BYE"))
    await ua.response(200, "BYE")
    await router_env.wait_idle()


async def test_unknown_number_is_answered_404(router_env: RouterEnv) -> None:
    ua, _ = await start_ua_and_rtp()
    final = await expect_rejection(
        UacCall(ua, router_env.address, number="+14155550199")
    )

    assert (final.status, final.reason) == (404, "Not Found")
    assert final.to_tag is not None
    assert ua.pending(lambda m: m.status == 180) == []
    await router_env.wait_idle()
    assert router_env.runner.starts == []


async def test_number_not_attached_is_answered_480_with_retry_after(
    router_env: RouterEnv,
) -> None:
    number = await router_env.add_number(attach=False)
    final = await expect_rejection(await new_call(router_env, number))

    assert final.status == 480
    assert final["Retry-After"].isdigit()
    await router_env.wait_idle()


async def test_inactive_number_is_answered_480(router_env: RouterEnv) -> None:
    number = await router_env.add_number(status=NumberStatus.INACTIVE)
    final = await expect_rejection(await new_call(router_env, number))

    assert final.status == 480
    assert final.get("Retry-After") is not None
    await router_env.wait_idle()
    assert router_env.runner.starts == []


async def test_runner_refusing_the_stream_is_answered_480(
    router_env: RouterEnv,
) -> None:
    number = await router_env.add_number("reject=1")
    started = asyncio.get_running_loop().time()
    call = await new_call(router_env, number)
    final = await expect_rejection(call)
    ua = call.ua

    assert final.status == 480
    assert final.get("Retry-After") is not None
    assert asyncio.get_running_loop().time() - started < RINGING_TIMEOUT
    assert ua.pending(lambda m: m.status == 200) == []
    await router_env.wait_idle()


async def test_runner_port_closed_is_answered_480_within_ringing_timeout(
    router_env: RouterEnv,
) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    number = await router_env.add_number(runner_url=f"ws://127.0.0.1:{closed_port}/")
    started = asyncio.get_running_loop().time()
    final = await expect_rejection(await new_call(router_env, number))

    assert final.status == 480
    assert asyncio.get_running_loop().time() - started < RINGING_TIMEOUT
    await router_env.wait_idle()


# -- malformed and unexpected requests ---------------------------------------------


def raw_request(ua: SipUA, method: str, *, omit: str = "", **replace: str) -> bytes:
    """An out-of-dialog request with one header left out or replaced."""
    fields = {
        "Via": f"SIP/2.0/UDP {ua.host}:{ua.port};branch=z9hG4bK-{method.lower()}1",
        "Max-Forwards": "70",
        "From": f"<sip:+14155550111@{ua.host}>;tag=m1",
        "To": "<sip:+14155550100@127.0.0.1>",
        "Call-ID": f"{method.lower()}-malformed@{ua.host}",
        "CSeq": f"1 {method}",
        "Contact": f"<sip:+14155550111@{ua.host}:{ua.port}>",
    }
    for name, value in replace.items():
        fields[name.replace("_", "-")] = value
    fields.pop(omit, None)
    lines = [f"{method} sip:+14155550100@127.0.0.1 SIP/2.0"]
    lines += [f"{name}: {value}" for name, value in fields.items()]
    return ("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("CSeq", "1 BYE"),  # RFC 3261 §8.1.1.5: the method must match
        ("Max-Forwards", "many"),
        ("Contact", "<sip:@@@"),
    ],
)
async def test_bad_header_is_answered_400_naming_it_and_no_call_starts(
    router_env: RouterEnv, header: str, value: str
) -> None:
    ua = await SipUA.start()
    bad = raw_request(ua, "INVITE", **{header.replace("-", "_"): value})
    Channel(ua, router_env.address).send(bad)

    answer = await ua.expect(lambda m: m.status >= 300)

    assert answer.message.status == 400
    assert header.lower() in answer.message.reason.lower()
    assert ua.pending(lambda m: m.status == 180) == []
    await router_env.wait_idle()
    assert router_env.runner.starts == []


async def test_unanswerable_requests_are_dropped_and_router_keeps_working(
    router_env: RouterEnv,
) -> None:
    ua = await SipUA.start()
    router = Channel(ua, router_env.address)
    for broken in (
        raw_request(ua, "INVITE", omit="Call-ID"),
        raw_request(ua, "INVITE", CSeq="one INVITE"),
        raw_request(ua, "INVITE", Via="SIP/2.0/UDP"),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),
        b"hello there\r\n\r\n",
    ):
        router.send(broken)

    await ordinary_call_completes(router_env, ua)
    assert [m.message.status for m in ua.history if m.message.status == 100] == [100]
    assert not any(
        m.message.method == "INVITE" and m.message.status >= 300 for m in ua.history
    )


async def ordinary_call_completes(env: RouterEnv, ua: SipUA) -> None:
    """A normal call from ``ua`` is answered, carries audio and ends cleanly."""
    rtp = await RtpEndpoint.start()
    call = UacCall(ua, env.address, sdp=sdp_offer(rtp.port))
    await place_call(call, rtp)
    rtp.send(voice_frame(0))
    await rtp.wait_for(lambda got: len(voice_payloads(got)) >= 1)
    Channel(ua, env.address).send(call.in_dialog("BYE"))
    await ua.response(200, "BYE")
    await env.wait_idle()


async def test_update_refreshing_the_session_timer_is_answered_with_session_expires(
    router_env: RouterEnv,
) -> None:
    ua, rtp = await start_ua_and_rtp()
    timer = [("Supported", "timer"), ("Session-Expires", "120;refresher=uac")]
    call = UacCall(ua, router_env.address, sdp=sdp_offer(rtp.port), extra_headers=timer)
    ok = await place_call(call, rtp)
    assert ok["Session-Expires"].replace(" ", "") == "120;refresher=uac"

    refresh = [("Supported", "timer"), ("Session-Expires", "100;refresher=uac")]
    Channel(ua, router_env.address).send(call.in_dialog("UPDATE", headers=refresh))
    refreshed = await ua.response(200, "UPDATE")

    # RFC 4028 §9: the 2xx to a refresh carries the interval it restarted.
    assert refreshed["Session-Expires"].replace(" ", "") == "100;refresher=uac"
    assert "timer" in refreshed.all("Require")
    Channel(ua, router_env.address).send(call.in_dialog("BYE"))
    await ua.response(200, "BYE")
    await router_env.wait_idle()


async def test_invite_without_contact_is_answered_400_before_ringing(
    router_env: RouterEnv,
) -> None:
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, sdp=sdp_offer(rtp.port))
    invite = call.invite().replace(f"Contact: <{call.contact}>\r\n".encode(), b"")
    Channel(ua, router_env.address).send(invite)

    final = await ua.expect(lambda m: m.status >= 300)

    # RFC 3261 §8.1.1.8: an INVITE must carry a Contact; without one no
    # dialog can be set up, so the runner is never disturbed.
    assert final.message.status == 400
    assert "contact" in final.message.reason.lower()
    assert ua.pending(lambda m: m.status == 180) == []
    await router_env.wait_idle()
    assert router_env.runner.starts == []


async def test_session_expires_below_minimum_is_answered_422_with_min_se(
    router_env: RouterEnv,
) -> None:
    ua, rtp = await start_ua_and_rtp()
    short = [("Supported", "timer"), ("Session-Expires", "60")]
    call = UacCall(ua, router_env.address, sdp=sdp_offer(rtp.port), extra_headers=short)

    final = await expect_rejection(call)

    # RFC 4028 §6: 422 names our minimum in Min-SE, so the caller can retry.
    assert final.status == 422
    assert int(final["Min-SE"]) >= 90
    assert ua.pending(lambda m: m.status == 180) == []
    await router_env.wait_idle()
    assert router_env.runner.starts == []


async def test_reinvite_with_too_small_session_expires_is_422_and_call_continues(
    router_env: RouterEnv,
) -> None:
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, sdp=sdp_offer(rtp.port))
    await place_call(call, rtp)
    router = Channel(ua, router_env.address)

    short = [("Supported", "timer"), ("Session-Expires", "30")]
    branch = "z9hG4bK-short-refresh"
    offer = sdp_offer(rtp.port, version=2)
    router.send(call.in_dialog("INVITE", body=offer, headers=short, branch=branch))
    rejected = await ua.response(422)
    router.send(call.in_dialog("ACK", cseq=call.cseq, branch=branch))

    assert int(rejected["Min-SE"]) >= 90
    rtp.send(voice_frame(0))
    await rtp.wait_for(lambda got: len(voice_payloads(got)) >= 1)
    assert router_env.sip.active_calls == 1
    router.send(call.in_dialog("BYE"))
    await ua.response(200, "BYE")
    await router_env.wait_idle()


async def test_unknown_method_is_answered_501(router_env: RouterEnv) -> None:
    ua = await SipUA.start()
    Channel(ua, router_env.address).send(raw_request(ua, "FOO"))

    answer = await ua.response(501, "FOO")

    assert answer.reason == "Not Implemented"


async def test_subscribe_is_answered_405_with_allow(router_env: RouterEnv) -> None:
    ua = await SipUA.start()
    Channel(ua, router_env.address).send(raw_request(ua, "SUBSCRIBE", Event="presence"))

    answer = await ua.response(405, "SUBSCRIBE")

    assert {"INVITE", "BYE", "OPTIONS"} <= {m.strip() for m in answer.all("Allow")}
    assert "SUBSCRIBE" not in answer.all("Allow")


async def test_bye_for_unknown_dialog_is_answered_481(router_env: RouterEnv) -> None:
    ua = await SipUA.start()
    bye = raw_request(ua, "BYE", To="<sip:+14155550100@127.0.0.1>;tag=nosuchdialog")
    Channel(ua, router_env.address).send(bye)

    answer = await ua.response(481, "BYE")

    assert answer.to_tag == "nosuchdialog"


# -- retransmissions and timers ----------------------------------------------------


async def test_retransmitted_invite_while_ringing_makes_one_call_and_one_runner_stream(
    router_env: RouterEnv,
) -> None:
    number = await router_env.add_number("ready_delay=1")
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, number=number, sdp=sdp_offer(rtp.port))
    router = Channel(ua, router_env.address)
    router.send(call.invite())
    await ua.response(180)

    for _ in range(3):  # Timer A: the same INVITE, same branch
        router.send(call.invite())
        await ua.response(180)  # §17.2.1: the last provisional, sent again
    ok = await ua.response(200)

    assert router_env.sip.active_calls == 1
    assert router_env.sip.counters["calls_started"] == 1
    call.confirm(ok)
    router.send(call.ack(ok))
    router.send(call.in_dialog("BYE"))
    await ua.response(200, "BYE")
    await router_env.wait_idle()
    assert len(router_env.runner.starts) == 1


async def test_same_invite_on_a_second_branch_is_answered_482_and_makes_no_call(
    router_env: RouterEnv,
) -> None:
    number = await router_env.add_number("ready_delay=0.5")
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, number=number, sdp=sdp_offer(rtp.port))
    router = Channel(ua, router_env.address)
    router.send(call.invite())
    await ua.response(180)

    # The INVITE forked upstream reaches us again by another path: same
    # Call-ID, From tag and CSeq, another branch (RFC 3261 §8.2.2.2).
    first_branch, call.branch = call.branch, "z9hG4bK-second-path"
    router.send(call.invite())
    merged = await ua.expect(lambda m: m.status >= 300 and m.branch == call.branch)
    router.send(call.ack_non_2xx(merged.message))
    call.branch = first_branch
    ok = await ua.response(200)

    assert merged.message.status == 482
    assert ok.branch == first_branch
    assert router_env.sip.counters["calls_started"] == 1
    call.confirm(ok)
    router.send(call.ack(ok))
    router.send(call.in_dialog("BYE"))
    await ua.response(200, "BYE")
    await router_env.wait_idle()
    assert len(router_env.runner.starts) == 1


async def test_bye_on_the_early_dialog_answers_200_then_487_and_never_200(
    router_env: RouterEnv,
) -> None:
    number = await router_env.add_number("ready_delay=1")
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, number=number, sdp=sdp_offer(rtp.port))
    router = Channel(ua, router_env.address)
    router.send(call.invite())
    ringing = await ua.response(180)

    # RFC 3261 §15: the caller may end an early dialog (our 180's To-tag) with BYE.
    call.confirm(ringing)
    router.send(call.in_dialog("BYE"))
    bye_ok = await ua.response(200, "BYE")
    # §15.1.2: the pending INVITE is then answered 487.
    terminated = await ua.response(487)
    router.send(call.ack_non_2xx(terminated))

    assert bye_ok.to_tag == ringing.to_tag == terminated.to_tag
    await router_env.wait_idle()
    await asyncio.sleep(1.2)  # past the runner's ready delay
    assert router_env.runner.starts == []
    assert ua.pending(lambda m: m.status == 200 and m.method == "INVITE") == []


async def test_reinvite_before_our_200_is_answered_500_with_retry_after(
    router_env: RouterEnv,
) -> None:
    number = await router_env.add_number("ready_delay=0.5")
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, number=number, sdp=sdp_offer(rtp.port))
    router = Channel(ua, router_env.address)
    router.send(call.invite())
    ringing = await ua.response(180)

    call.confirm(ringing)
    branch = "z9hG4bK-early-reinvite"
    router.send(
        call.in_dialog("INVITE", body=sdp_offer(rtp.port, version=2), branch=branch)
    )
    early = await ua.expect(lambda m: m.method == "INVITE" and m.branch == branch)
    router.send(call.in_dialog("ACK", cseq=call.cseq, branch=branch))

    # RFC 3261 §14.2: a second INVITE before the first one's final response.
    assert early.message.status == 500
    assert early.message.get("Retry-After") is not None
    ok = await ua.response(200)
    call.confirm(ok)
    router.send(call.ack(ok))
    router.send(call.in_dialog("BYE"))
    await ua.response(200, "BYE")
    await router_env.wait_idle()


async def test_missing_ack_ends_call_with_bye_after_64_t1(
    router_env: RouterEnv,
) -> None:
    router_env.sip.layer.timers = Timers(t1=SHORT_T1, t2=8 * SHORT_T1, t4=10 * SHORT_T1)
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, router_env.address, sdp=sdp_offer(rtp.port))
    Channel(ua, router_env.address).send(call.invite())
    ok = await ua.response(200)

    retransmitted = await ua.response(200)  # §13.3.1.4: the 2xx again, from T1
    bye = await ua.request("BYE", timeout=64 * SHORT_T1 + 3.0)

    assert retransmitted.to_tag == ok.to_tag
    assert bye.at - ua.history[0].at >= 64 * SHORT_T1 * 0.9
    assert bye.message.from_tag == ok.to_tag
    ua.answer(bye)
    await router_env.wait_idle()


async def test_no_rtp_after_ack_ends_call_with_bye_after_rtp_timeout(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await make_router_env(rtp_timeout=1.0)
    ua, rtp = await start_ua_and_rtp()
    call = UacCall(ua, env.address, sdp=sdp_offer(rtp.port))
    await place_call(call, rtp)
    acked = asyncio.get_running_loop().time()

    bye = await ua.request("BYE")

    # The clock starts when media is set up, just before our 200.
    assert 0.5 <= asyncio.get_running_loop().time() - acked <= 3.0
    assert bye.message.call_id == call.call_id
    ua.answer(bye)
    await env.wait_idle()
