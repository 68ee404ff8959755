"""Interop case C13: the carrier delivers only to a registered contact.

A test registrar on 127.0.0.9 challenges the router's REGISTER with digest,
grants a short binding, and must see it refreshed; then the carrier sends an
INVITE whose Request-URI names the registration's username and whose To
carries the number, and the call is routed on To.
"""

from __future__ import annotations

import time

from router.numbers.models import TrunkType
from router.sip.digest import DigestVerifier
from tests.integration.conftest import RouterEnvFactory
from tests.integration.sipua import (
    Channel,
    RtpEndpoint,
    SipUA,
    UacCall,
    build_message,
    sdp_offer,
)

CARRIER = "127.0.0.9"


def reply_headers(
    request_headers: list[tuple[str, str]], *extra: tuple[str, str]
) -> list[tuple[str, str]]:
    """A response's headers: the request's Via, From, To, Call-ID, CSeq (§8.2.6)."""
    copied = ("via", "from", "to", "call-id", "cseq")
    return [(n, v) for n, v in request_headers if n.lower() in copied] + list(extra)


async def test_c13_router_registers_refreshes_and_routes_on_to(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await make_router_env(allow_unlisted_sources=False)
    registrar = await SipUA.start(CARRIER)
    await env.store.create_trunk(
        name="registering-carrier",
        kind=TrunkType.UNPOD,
        allowed_addresses=(f"{CARRIER}/32",),
        termination_uri=f"sip:{CARRIER}:{registrar.port}",
        username="acct77",
        password="pw-77",
        register=True,
    )
    assert env.router.registrar is not None
    await env.router.registrar.reload()
    verifier = DigestVerifier("carrier.example")

    # 1. The first REGISTER is challenged.
    first = await registrar.request("REGISTER")
    assert first.message.get("Authorization") is None
    assert first.message.get("Contact") is not None
    challenge = verifier.challenge(time.time()).header_values[0]
    first.channel.send(
        build_message(
            "SIP/2.0 401 Unauthorized",
            reply_headers(first.message.headers, ("WWW-Authenticate", challenge)),
        )
    )

    # 2. The answer carries valid credentials; grant a 2 s binding.
    second = await registrar.request("REGISTER")
    authorization = second.message["Authorization"]
    verifier.verify(
        authorization,
        method="REGISTER",
        username="acct77",
        password="pw-77",
        now=time.time(),
    )
    contact = second.message["Contact"]
    second.channel.send(
        build_message(
            "SIP/2.0 200 OK",
            reply_headers(second.message.headers, ("Contact", f"{contact};expires=2")),
        )
    )

    # 3. It is refreshed before the 2 s run out.
    refresh = await registrar.request("REGISTER", timeout=3.0)
    assert refresh.message.cseq[0] > second.message.cseq[0]
    assert refresh.message.call_id == first.message.call_id  # same binding (§10.2.4)

    # 4. A call to the registered contact (Request-URI user acct77) routes on To.
    rtp = await RtpEndpoint.start(CARRIER)
    call = UacCall(
        registrar, env.address, number="acct77", sdp=sdp_offer(rtp.port, host=CARRIER)
    )
    invite = call.invite().replace(
        f"To: <sip:acct77@{env.address[0]}>".encode(),
        f"To: <sip:{env.number}@carrier.example>".encode(),
    )
    assert f"sip:{env.number}@carrier.example".encode() in invite
    Channel(registrar, env.address).send(invite)
    ok = await registrar.response(200)
    call.confirm(ok)
    Channel(registrar, env.address).send(call.ack(ok))
    assert env.sip.active_calls == 1
