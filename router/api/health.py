"""Probes and figures: ``/healthz``, ``/readyz``, ``/metrics`` and ``/v1/status``.

These routes need no credentials: load balancers, orchestrators and Prometheus call
them. They reveal counters only, never numbers, pipes or accounts.

* ``/healthz``: 200 while the process runs;
* ``/readyz``: 200 when the store answers and the router takes calls, 503 while it
  starts (SIP opens last), drains, or the store is unavailable;
* ``/metrics``: the counters in the Prometheus text format;
* ``/v1/status``: the same counters as JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from router.numbers.store import Store, StoreError

if TYPE_CHECKING:
    from router.server import SipRouter

__all__ = ["health_router", "router_status"]

# Prometheus text exposition format, version 0.0.4.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

health_router = APIRouter(tags=["health"])


def router_status(sip: SipRouter | None) -> dict[str, int]:
    """Figures about the running router, for /metrics and /v1/status.

    Empty when the API runs without a SIP side (tests, tools).
    """
    if sip is None:
        return {}
    status = {
        "active_calls": sip.active_calls,
        "setting_up_calls": sip.setting_up_calls,
        "loop_lag_ms": round(sip.overload.lag_s * 1000),
        "sip_receive_queue_ms": round(sip.overload.queue_wait_s * 1000),
        "overload_admit_percent": round(sip.overload.admit_share * 100),
        "sip_requests_last_second": sip.overload.window_requests,
        "sip_retransmissions_last_second": sip.overload.window_retransmissions,
        "rtp_ports_in_use": sip.port_pool.in_use,
        "sip_transactions": sip.layer.server_transactions
        + sip.layer.client_transactions,
        "sip_parse_errors": sip.transports.parse_errors,
        "tcp_connections": len(sip.transports.connections),
    }
    status.update({name: count for name, count in sorted(sip.counters.items())})
    return status


@health_router.get("/healthz", response_class=PlainTextResponse)
async def healthz() -> str:
    """200 while the process runs."""
    return "ok\n"


@health_router.get(
    "/readyz",
    response_class=PlainTextResponse,
    responses={503: {"description": "starting, draining, or the store is unavailable"}},
)
async def readyz(request: Request) -> PlainTextResponse:
    """200 when the store answers and the router takes calls; 503 otherwise."""
    sip: SipRouter | None = request.app.state.sip
    if sip is not None and sip.draining:
        return PlainTextResponse("draining\n", status_code=503)
    if sip is not None and not sip.listening:
        return PlainTextResponse("starting\n", status_code=503)
    store: Store = request.app.state.store
    try:
        await store.ping()
    except StoreError:
        return PlainTextResponse("store unavailable\n", status_code=503)
    return PlainTextResponse("ready\n")


@health_router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    """The router's counters in the Prometheus text format."""
    status = router_status(request.app.state.sip)
    lines = "".join(f"sip_router_{name} {value}\n" for name, value in status.items())
    return PlainTextResponse(lines, media_type=PROMETHEUS_CONTENT_TYPE)


@health_router.get("/v1/status")
async def status(request: Request) -> dict[str, int]:
    """The router's counters as JSON."""
    return router_status(request.app.state.sip)
