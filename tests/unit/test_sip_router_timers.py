"""SipRouter's transaction timer on uvloop, the production event loop.

uvloop's ``call_at`` returns a plain ``Handle`` (no ``when()``) for a deadline
that has already passed, which happens whenever the router falls behind. The
router must keep rescheduling its timer then, not raise inside every response
it sends.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from router.calls import CallConfig
from router.server import RouterConfig, SipRouter

uvloop = pytest.importorskip("uvloop")


def _router() -> SipRouter:
    config = RouterConfig(
        bind="127.0.0.1",
        sip_port=5060,
        rtp_ports=(40000, 40010),
        call=CallConfig(
            advertise="127.0.0.1",
            default_country=None,
            ringing_timeout=1.0,
            rtp_timeout=30.0,
            max_queued_frames=10,
        ),
    )
    store: Any = object()  # never used: no request is handled
    return SipRouter(config, store)


def test_reschedule_with_a_deadline_already_past_on_uvloop_does_not_raise() -> None:
    fired: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        router = _router()
        router._loop = loop
        past = loop.time() - 1.0
        router.layer.next_deadline = lambda: past  # type: ignore[method-assign]

        def record(now: float) -> list[object]:
            fired.append(now)
            return []

        router.layer.fire_timers = record  # type: ignore[method-assign,assignment]

        router._reschedule()  # uvloop hands back a Handle without when()
        router._reschedule()  # the same deadline again: must not raise
        await asyncio.sleep(0.01)

    uvloop.run(scenario())

    assert fired, "the overdue timer never fired"


def test_reschedule_keeps_one_timer_for_an_unchanged_future_deadline() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        router = _router()
        router._loop = loop
        future = loop.time() + 60.0
        router.layer.next_deadline = lambda: future  # type: ignore[method-assign]

        router._reschedule()
        first = router._timer
        router._reschedule()

        assert router._timer is first
        assert first is not None
        first.cancel()

    uvloop.run(scenario())
