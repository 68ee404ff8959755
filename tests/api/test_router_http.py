"""The router process serves the admin API and its probes on its HTTP port."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from router.app import Router
from router.numbers.embedded import EmbeddedStore
from router.settings import Settings

from .conftest import LOOPBACK, OPERATOR_TOKEN

# A block of RTP ports picked at random in a range other tests do not favour, so that
# routers started by parallel test runs rarely collide.
RTP_PORTS = 40
RTP_RANGE = (40_000, 50_000)


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def router_settings() -> Settings:
    """A router on loopback: ephemeral SIP port, a free HTTP port, random RTP ports."""
    low = random.randrange(*RTP_RANGE, 2)
    return Settings(
        bind=LOOPBACK,
        rtp_ports=f"{low}-{low + RTP_PORTS - 1}",
        http_bind=LOOPBACK,
        http_port=free_tcp_port(),
        api_token=OPERATOR_TOKEN,
    ).model_copy(update={"sip_port": 0})


@pytest.fixture
async def router(tmp_path: Path) -> AsyncIterator[Router]:
    store = await EmbeddedStore.open(tmp_path / "router.db")
    router = Router(router_settings(), store=store)
    await router.start()
    yield router
    await router.stop()
    await store.close()


async def test_the_router_serves_probes_figures_and_the_api(router: Router) -> None:
    base = f"http://{LOOPBACK}:{router.settings.http_port}"
    operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}

    async with httpx.AsyncClient(base_url=base) as http:
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
        status = await http.get("/v1/status")
        metrics = await http.get("/metrics")
        anonymous = await http.get("/v1/pipes")
        as_operator = await http.get("/v1/pipes", headers=operator)

    assert (health.status_code, ready.status_code) == (200, 200)
    assert status.json()["active_calls"] == 0
    assert "sip_router_active_calls 0\n" in metrics.text
    assert (anonymous.status_code, as_operator.json()) == (401, {"data": []})


async def test_stopping_the_router_closes_its_http_port(tmp_path: Path) -> None:
    store = await EmbeddedStore.open(tmp_path / "router.db")
    low = random.randrange(*RTP_RANGE, 2)
    settings = Settings(
        bind=LOOPBACK,
        rtp_ports=f"{low}-{low + RTP_PORTS - 1}",
        http_port=free_tcp_port(),
    ).model_copy(update={"sip_port": 0})
    router = Router(settings, store=store)
    await router.start()

    await router.stop()
    await store.close()

    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://{LOOPBACK}:{settings.http_port}/healthz")


async def test_sip_opens_last_after_the_api_and_the_start_up_hook(
    tmp_path: Path,
) -> None:
    # A call that came while start-up still ran waited for all of it (the CLI
    # settles the heap there, tens of milliseconds): SIP now opens last, and
    # /readyz says 503 until it has.
    store = await EmbeddedStore.open(tmp_path / "router.db")
    settings = router_settings()
    router = Router(settings, store=store)
    seen: list[tuple[bool, bool]] = []

    def before_serving() -> None:
        assert router.sip is not None
        seen.append((router.http is not None, router.sip.listening))

    try:
        await router.start(before_serving=before_serving)
        assert seen == [(True, False)]
        assert router.sip is not None and router.sip.listening
        base = f"http://{LOOPBACK}:{settings.http_port}"
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/readyz")).status_code == 200
            router.sip.listening = False  # as between the API and SIP opening
            starting = await http.get("/readyz")
        assert (starting.status_code, starting.text) == (503, "starting\n")
    finally:
        await router.stop()
        await store.close()
