"""Live routing across instances: attach through one router, call through another.

Two ``sip-router run`` processes share one Redis (a key prefix of this test's
own). A change made through the first one's admin API must decide the very
next INVITE that reaches the second one, which caches lookups and relies on the
pub/sub invalidation to drop them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest

from router.client import AsyncClient
from router.runner.echo import EchoRunner, serve_echo_runner
from tests.e2e.harness import free_tcp_port, free_udp_port
from tests.integration.conftest import delete_prefixed_keys
from tests.integration.sipua import (
    Channel,
    RtpEndpoint,
    SipUA,
    UacCall,
    place_call,
    sdp_offer,
    wait_until,
)

TOKEN = "op-" + secrets.token_hex(8)


def free_sip_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both)."""
    for _ in range(50):
        port = free_udp_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no port free for both UDP and TCP")


class RouterProcess:
    """A ``sip-router run`` subprocess on loopback."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.sip_port = free_sip_port()
        self.http_port = free_tcp_port()
        low = 42000 + secrets.randbelow(500) * 8
        env = {
            **os.environ,
            "ROUTER_BIND": "127.0.0.1",
            "ROUTER_SIP_PORT": str(self.sip_port),
            "ROUTER_RTP_PORTS": f"{low}-{low + 7}",
            "ROUTER_HTTP_PORT": str(self.http_port),
            "ROUTER_REDIS_URL": redis_url,
            "ROUTER_REDIS_PREFIX": prefix,
            "ROUTER_API_TOKEN": TOKEN,
            "ROUTER_ALLOW_UNLISTED_SOURCES": "1",
            "ROUTER_LOG_FORMAT": "json",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "router.cli", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def wait_ready(self) -> None:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                if self.process.poll() is not None:
                    assert self.process.stderr is not None
                    raise AssertionError(self.process.stderr.read().decode())
                try:
                    if (await http.get(f"{self.api}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("router did not become ready")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    value = f"test-live-{secrets.token_hex(4)}:"
    yield value
    delete_prefixed_keys(redis_url, value)


@asynccontextmanager
async def routers(redis_url: str, prefix: str) -> AsyncIterator[list[RouterProcess]]:
    started = [RouterProcess(redis_url, prefix) for _ in range(2)]
    try:
        await asyncio.gather(*(r.wait_ready() for r in started))
        yield started
    finally:
        for router in started:
            router.stop()


async def call_through(router: RouterProcess, number: str) -> None:
    ua, rtp = await SipUA.start(), await RtpEndpoint.start()
    call = UacCall(
        ua, ("127.0.0.1", router.sip_port), number=number, sdp=sdp_offer(rtp.port)
    )
    await place_call(call)
    Channel(ua, call.router).send(call.in_dialog("BYE"))
    await ua.response(200, "BYE")
    await ua.close()
    rtp.close()


async def test_attach_through_one_instance_routes_the_next_call_on_the_other(
    redis_url: str, prefix: str
) -> None:
    first_runner: EchoRunner = await serve_echo_runner("127.0.0.1", 0)
    second_runner: EchoRunner = await serve_echo_runner("127.0.0.1", 0)
    try:
        async with (
            routers(redis_url, prefix) as (admin_side, call_side),
            AsyncClient(api_key=TOKEN, base_url=admin_side.api) as client,
        ):
            pipe_a = await client.pipes.create(
                name="a", runner_url=f"ws://127.0.0.1:{first_runner.port}/"
            )
            pipe_b = await client.pipes.create(
                name="b", runner_url=f"ws://127.0.0.1:{second_runner.port}/"
            )
            number = await client.numbers.create(number="+14155550100")
            await client.numbers.attach(number.number_id, pipe_a.pipe_id)

            # Warm the call side's cache with pipe A.
            await call_through(call_side, "+14155550100")
            await wait_until(lambda: len(first_runner.starts) == 1)

            # Move the number; the very next call on the other instance follows.
            await client.numbers.attach(number.number_id, pipe_b.pipe_id)
            await call_through(call_side, "+14155550100")
            await wait_until(lambda: len(second_runner.starts) == 1)
            assert len(first_runner.starts) == 1

            # Detach: the next call is refused (480), not routed from a stale cache.
            await client.numbers.detach(number.number_id)
            ua = await SipUA.start()
            call = UacCall(ua, ("127.0.0.1", call_side.sip_port), sdp=sdp_offer(40000))
            Channel(ua, call.router).send(call.invite())
            refused = await ua.expect(lambda m: m.status >= 300)
            assert refused.message.status == 480
            await ua.close()
    finally:
        await first_runner.close()
        await second_runner.close()
