"""Trunks at the SIP edge: source allowlist, scanners, digest, default country, kinds.

Loopback addresses stand in for the interop document's carriers: 127.0.0.20 is
the US carrier, 127.0.0.30 the GB carrier and 127.0.0.66 the scanner.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets

from router.numbers.models import TrunkType
from router.sip.digest import parse_authorization
from tests.integration.conftest import RouterEnv, RouterEnvFactory
from tests.integration.sipua import (
    Channel,
    RtpEndpoint,
    SipUA,
    UacCall,
    expect_rejection,
    place_call,
    sdp_offer,
    wait_until,
)

US_CARRIER = "127.0.0.20"
GB_CARRIER = "127.0.0.30"
SCANNER = "127.0.0.66"


class CountingLookup:
    """Wraps the router's lookup and counts number lookups."""

    def __init__(self, env: RouterEnv) -> None:
        self.inner = env.sip.lookup
        self.routes = 0
        env.sip.lookup = self
        env.sip.gate.lookup = self

    async def route(self, e164: str) -> object:
        self.routes += 1
        return await self.inner.route(e164)

    async def trunk_for_address(self, ip: str) -> object:
        return await self.inner.trunk_for_address(ip)


async def edge_env(make_router_env: RouterEnvFactory, **overrides: object) -> RouterEnv:
    env = await make_router_env(allow_unlisted_sources=False, **overrides)
    await env.store.create_trunk(
        name="carrier-us",
        kind=TrunkType.UNPOD,
        allowed_addresses=(f"{US_CARRIER}/32",),
        default_country="US",
    )
    await env.store.create_trunk(
        name="carrier-gb",
        kind=TrunkType.UNPOD,
        allowed_addresses=(f"{GB_CARRIER}/32",),
        default_country="GB",
    )
    return env


async def call_from(
    env: RouterEnv, host: str, number: str, **fields: object
) -> UacCall:
    ua, rtp = await SipUA.start(host), await RtpEndpoint.start(host)
    return UacCall(
        ua, env.address, number=number, sdp=sdp_offer(rtp.port, host=host), **fields
    )


async def test_unlisted_source_gets_403_without_any_number_lookup(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await edge_env(make_router_env)
    counter = CountingLookup(env)
    call = await call_from(env, "127.0.0.77", env.number)
    response = await expect_rejection(call)
    assert response.status == 403
    assert counter.routes == 0
    assert env.sip.gate.rejected_sources == 1


async def test_listed_carrier_call_is_answered(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await edge_env(make_router_env)
    call = await call_from(env, US_CARRIER, env.number)
    ok = await place_call(call)
    assert ok.status == 200
    Channel(call.ua, env.address).send(call.in_dialog("BYE"))
    await call.ua.response(200, "BYE")


async def test_c02_trunk_default_country_makes_national_numbers_e164(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await edge_env(make_router_env)
    pipe = await env.store.create_pipe(name="pipe-C", runner_url=env.runner_url())
    gb = await env.store.create_number("+442079460123", country="GB")
    await env.store.attach(gb.number_id, pipe.pipe_id)

    us_call = await call_from(env, US_CARRIER, "4155550100")
    assert (await place_call(us_call)).status == 200
    gb_call = await call_from(env, GB_CARRIER, "02079460123")
    assert (await place_call(gb_call)).status == 200
    short = await call_from(env, GB_CARRIER, "0999")
    assert (await expect_rejection(short)).status == 404


async def test_c10_scanner_is_blocked_while_a_carrier_call_completes(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await edge_env(make_router_env, scanner_block_threshold=5)
    counter = CountingLookup(env)
    scanner = await SipUA.start(SCANNER)
    carrier_call = await call_from(env, US_CARRIER, env.number)
    carrier = asyncio.ensure_future(place_call(carrier_call))

    # 50 INVITEs for random users, as friendly-scanner sends them.
    for _ in range(50):
        probe = UacCall(
            scanner,
            env.address,
            number=str(secrets.randbelow(10**6)),
            extra_headers=[("User-Agent", "friendly-scanner")],
        )
        Channel(scanner, env.address).send(probe.invite())
        await asyncio.sleep(0.005)

    assert (await carrier).status == 200
    await wait_until(lambda: env.sip.gate.dropped_blocked >= 40)
    forbidden = scanner.pending(lambda m: m.status == 403)
    assert len(forbidden) == 5  # answered until the block, then silence
    assert counter.routes == 1  # only the carrier's call was looked up
    assert env.sip.gate.rejected_sources == 5
    assert env.sip.active_calls == 1


async def test_byo_number_is_refused_from_another_trunk(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await edge_env(make_router_env)
    own = await env.store.create_trunk(
        name="customer", kind=TrunkType.BYO, allowed_addresses=("127.0.0.40/32",)
    )
    pipe = await env.store.create_pipe(name="byo", runner_url=env.runner_url())
    byo = await env.store.create_number(
        "+14155550199", trunk_type=TrunkType.BYO, trunk_id=own.trunk_id
    )
    await env.store.attach(byo.number_id, pipe.pipe_id)

    from_platform = await call_from(env, US_CARRIER, "+14155550199")
    assert (await expect_rejection(from_platform)).status == 403
    from_customer = await call_from(env, "127.0.0.40", "+14155550199")
    assert (await place_call(from_customer)).status == 200
    unpod_from_customer = await call_from(env, "127.0.0.40", env.number)
    assert (await expect_rejection(unpod_from_customer)).status == 403


def digest_answer(
    challenge: str, *, password: str, uri: str, nc: str = "00000001"
) -> str:
    params = parse_authorization(challenge)
    algorithm = params["algorithm"]
    h = hashlib.sha256 if algorithm == "SHA-256" else hashlib.md5

    def hex_of(text: str) -> str:
        return h(text.encode()).hexdigest()

    ha1 = hex_of(f"acct77:{params['realm']}:{password}")
    ha2 = hex_of(f"INVITE:{uri}")
    response = hex_of(f"{ha1}:{params['nonce']}:{nc}:c0ffee:auth:{ha2}")
    return (
        f'Digest username="acct77", realm="{params["realm"]}", nonce="{params["nonce"]}", '
        f'uri="{uri}", response="{response}", algorithm={algorithm}, qop=auth, '
        f'nc={nc}, cnonce="c0ffee"'
    )


async def test_trunk_with_credentials_challenges_then_accepts_the_right_answer(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await edge_env(make_router_env)
    await env.store.create_trunk(
        name="secured",
        kind=TrunkType.UNPOD,
        allowed_addresses=("127.0.0.50/32",),
        username="acct77",
        password="s3cret",
    )
    first = await call_from(env, "127.0.0.50", env.number)
    challenge = await expect_rejection(first)
    assert challenge.status == 401
    offers = [v for name, v in challenge.headers if name.lower() == "www-authenticate"]
    assert [parse_authorization(v)["algorithm"] for v in offers] == ["SHA-256", "MD5"]

    wrong = await call_from(env, "127.0.0.50", env.number)
    wrong.extra_headers.append(
        (
            "Authorization",
            digest_answer(offers[0], password="guess", uri=wrong.request_uri),
        )
    )
    assert (await expect_rejection(wrong)).status == 401

    # SHA-256 and MD5 both work; one nonce serves several requests as the
    # nonce count goes up (RFC 7616 §3.4.5).
    for count, offer in enumerate(offers, start=1):
        right = await call_from(env, "127.0.0.50", env.number)
        nc = f"{count:08x}"
        header = digest_answer(offer, password="s3cret", uri=right.request_uri, nc=nc)
        right.extra_headers.append(("Authorization", header))
        assert (await place_call(right)).status == 200

    replay = await call_from(env, "127.0.0.50", env.number)
    replay.extra_headers.append(
        (
            "Authorization",
            digest_answer(offers[0], password="s3cret", uri=replay.request_uri),
        )
    )
    assert (await expect_rejection(replay)).status == 401  # each nonce use counts once
