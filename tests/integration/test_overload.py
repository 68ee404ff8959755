"""Overload control end to end: past the set-up limit new INVITEs get 503 at once.

A router limited to two calls in set-up, with a runner that takes its time to
accept streams, holds two ringing calls; the third INVITE is refused with 503
and Retry-After, while the call already up and the ringing calls carry on.
"""

from __future__ import annotations

import asyncio
import time

from router.api.health import router_status
from router.overload import MIN_RETRANSMISSIONS
from tests.integration.conftest import RouterEnv, RouterEnvFactory
from tests.integration.sipua import (
    Channel,
    RtpEndpoint,
    SipUA,
    UacCall,
    place_call,
    sdp_offer,
    wait_until,
)
from tests.integration.test_interop_cases import options_request

# Long enough that the ringing calls are still in set-up while the test runs.
RUNNER_DELAY_S = 1.5


async def _call(env: RouterEnv, number: str) -> tuple[UacCall, RtpEndpoint]:
    ua, rtp = await SipUA.start(), await RtpEndpoint.start()
    return UacCall(ua, env.address, number=number, sdp=sdp_offer(rtp.port)), rtp


async def test_past_the_set_up_limit_invites_get_503_and_calls_up_carry_on(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await make_router_env(overload_max_setup_calls=2, overload_retry_after_s=7)
    slow = await env.add_number(f"ready_delay={RUNNER_DELAY_S}")

    # 1. A call that is up before the overload.
    up, up_rtp = await _call(env, env.number)
    await place_call(up, up_rtp)
    assert env.sip.setting_up_calls == 0

    # 2. Two calls ringing while the runner takes its time: the limit is reached.
    ringing = [await _call(env, slow) for _ in range(2)]
    for call, _ in ringing:
        Channel(call.ua, env.address).send(call.invite())
    for call, _ in ringing:
        await call.ua.response(180)
    await wait_until(lambda: env.sip.setting_up_calls == 2)

    # 3. The next INVITE is refused at once, with a To-tag and a Retry-After.
    refused, _ = await _call(env, env.number)
    channel = Channel(refused.ua, env.address)
    channel.send(refused.invite())
    final = await refused.ua.response(503)
    assert (final.status, final.reason) == (503, "Service Unavailable")
    assert final["Retry-After"] == "7"
    assert final.to_tag is not None
    assert refused.ua.pending(lambda m: m.status in (100, 180)) == []
    status = router_status(env.sip)
    assert status["calls_shed"] == 1
    assert status["calls_shed_setup_limit"] == 1
    assert status["setting_up_calls"] == 2

    # 4. A retransmission of the refused INVITE is absorbed by its transaction
    #    (RFC 3261 §17.2.1): the same 503 again, no second shed call.
    channel.send(refused.invite())
    again = await refused.ua.response(503)
    assert again.to_tag == final.to_tag
    assert router_status(env.sip)["calls_shed"] == 1
    channel.send(refused.ack_non_2xx(final))

    # 5. The call that was up is unaffected: its BYE goes through.
    Channel(up.ua, env.address).send(up.in_dialog("BYE"))
    await up.ua.response(200, "BYE")

    # 6. CANCEL goes through too, and the other ringing call is answered.
    cancelled, answered = ringing[0][0], ringing[1][0]
    Channel(cancelled.ua, env.address).send(cancelled.cancel())
    await cancelled.ua.response(200, "CANCEL")
    terminated = await cancelled.ua.response(487)
    Channel(cancelled.ua, env.address).send(cancelled.ack_non_2xx(terminated))
    ok = await answered.ua.response(200, timeout=RUNNER_DELAY_S + 3)
    answered.confirm(ok)
    Channel(answered.ua, env.address).send(answered.ack(ok))
    assert env.sip.setting_up_calls == 0

    # 7. Below the limit again, a new call is taken.
    later, later_rtp = await _call(env, env.number)
    await place_call(later, later_rtp)
    for call in (answered, later):
        Channel(call.ua, env.address).send(call.in_dialog("BYE"))
        await call.ua.response(200, "BYE")
    await env.wait_idle()
    assert router_status(env.sip)["calls_shed"] == 1


async def test_an_invite_read_after_a_loop_stall_gets_503_and_the_next_is_taken(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await make_router_env(overload_max_loop_lag_ms=50)
    await asyncio.sleep(0.1)  # the lag monitor has ticked
    call, _ = await _call(env, env.number)
    channel = Channel(call.ua, env.address)

    channel.send(call.invite())
    time.sleep(0.3)  # the router shares this loop: a 300 ms stall, like a long pause

    final = await call.ua.response(503)
    assert final["Retry-After"] == "2"
    channel.send(call.ack_non_2xx(final))
    assert router_status(env.sip)["calls_shed_loop_lag"] == 1
    await asyncio.sleep(0.1)  # on time again
    later, later_rtp = await _call(env, env.number)
    await place_call(later, later_rtp)
    Channel(later.ua, env.address).send(later.in_dialog("BYE"))
    await later.ua.response(200, "BYE")
    await env.wait_idle()


async def test_callers_retransmitting_get_503_until_a_second_passes_without(
    make_router_env: RouterEnvFactory,
) -> None:
    # Requests sent twice (same branch) are what a caller does when our answer
    # took longer than T1: the second copy is a retransmission (RFC 3261
    # §17.1.2.2), a sign that requests queue before the router reads them.
    env = await make_router_env()
    pinger = await SipUA.start()
    channel = Channel(pinger, env.address)
    for index in range(MIN_RETRANSMISSIONS + 5):
        options = options_request(pinger, env.address, index)
        channel.send(options)
        channel.send(options)
    await wait_until(
        lambda: env.sip.overload.window_retransmissions >= MIN_RETRANSMISSIONS
    )

    call, _ = await _call(env, env.number)
    Channel(call.ua, env.address).send(call.invite())
    final = await call.ua.response(503)
    assert final["Retry-After"] == "2"
    Channel(call.ua, env.address).send(call.ack_non_2xx(final))
    status = router_status(env.sip)
    assert status["calls_shed_retransmissions"] == 1
    assert status["sip_retransmissions_last_second"] >= MIN_RETRANSMISSIONS

    # A second later the window holds no retransmission: calls are taken again.
    await wait_until(lambda: env.sip.overload.window_retransmissions == 0, timeout=3)
    later, later_rtp = await _call(env, env.number)
    await place_call(later, later_rtp)
    Channel(later.ua, env.address).send(later.in_dialog("BYE"))
    await later.ua.response(200, "BYE")
    await env.wait_idle()


async def test_a_few_retransmissions_are_not_overload(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await make_router_env()
    pinger = await SipUA.start()
    channel = Channel(pinger, env.address)
    for index in range(MIN_RETRANSMISSIONS - 1):
        options = options_request(pinger, env.address, index)
        channel.send(options)
        channel.send(options)
    await wait_until(
        lambda: env.sip.overload.window_retransmissions == MIN_RETRANSMISSIONS - 1
    )

    call, rtp = await _call(env, env.number)
    await place_call(call, rtp)
    Channel(call.ua, env.address).send(call.in_dialog("BYE"))
    await call.ua.response(200, "BYE")
    await env.wait_idle()
    assert router_status(env.sip)["calls_shed"] == 0


async def test_a_bad_overload_setting_stops_start_up_naming_it() -> None:
    import pytest

    from router.settings import ConfigError, load_settings

    for name, value in (
        ("overload_max_setup_calls", 0),
        ("overload_max_loop_lag_ms", -1),
        ("overload_retry_after_s", 0),
        ("overload_max_retransmission_percent", 101),
    ):
        with pytest.raises(ConfigError, match=f"ROUTER_{name.upper()}"):
            load_settings({name: value})
