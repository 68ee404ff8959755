"""Media in worker processes: calls carried by ``media_workers=2`` routers.

Each test runs a router on 127.0.0.1 whose calls' media (RTP socket and
runner WebSocket) live in two worker processes, calls it from a test UA, and
checks what the caller hears and sees, and what every worker still holds
(asked of the workers themselves, not of the router's bookkeeping).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from router.api.health import router_status
from router.calls import Call
from router.media.workers import RemoteBridge, WorkerPool, WorkerPoolConfig
from router.settings import ConfigError, load_settings
from tests.integration.conftest import RouterEnv, RouterEnvFactory
from tests.integration.sipua import (
    Channel,
    RtpEndpoint,
    SipUA,
    UacCall,
    place_call,
    sdp_offer,
    voice_frame,
    voice_payloads,
    wait_until,
)

# One second of 20 ms frames.
VOICE_FRAMES = 50
# Seconds a worker may take to start again after it died (interpreter start).
RESTART_TIMEOUT = 10.0


async def workers_env(
    make_router_env: RouterEnvFactory, **settings: object
) -> RouterEnv:
    """A router whose media runs in two worker processes."""
    env = await make_router_env(media_workers=2, **settings)
    assert env.sip.workers is not None
    assert len(env.sip.workers.pids) == 2
    return env


def pool_of(env: RouterEnv) -> WorkerPool:
    """The router's media workers."""
    assert env.sip.workers is not None
    return env.sip.workers


async def new_call(
    env: RouterEnv, number: str | None = None
) -> tuple[UacCall, RtpEndpoint]:
    """A call from a new UA and RTP endpoint, placed and acknowledged."""
    ua, rtp = await SipUA.start(), await RtpEndpoint.start()
    call = UacCall(
        ua, env.address, number=number or env.number, sdp=sdp_offer(rtp.port)
    )
    await place_call(call, rtp)
    return call, rtp


def bridge_of(env: RouterEnv, call: UacCall) -> RemoteBridge:
    """The router's bridge for ``call``."""
    ours = [c for c in env.sip.calls.values() if _sip_call_id(c) == call.call_id]
    assert len(ours) == 1
    bridge = ours[0].media
    assert isinstance(bridge, RemoteBridge)
    return bridge


def _sip_call_id(call: Call) -> str:
    return call.invite.request.call_id


async def echo_round(rtp: RtpEndpoint, frames: int = VOICE_FRAMES) -> None:
    """Send ``frames`` voice frames and wait until all have come back in order."""
    already = len(voice_payloads(rtp.received))
    for index in range(frames):
        rtp.send(voice_frame(index), marker=index == 0)
    await rtp.wait_for(lambda got: len(voice_payloads(got)) >= already + frames)
    assert voice_payloads(rtp.received)[already:] == [
        voice_frame(i) for i in range(frames)
    ]


async def hang_up(env: RouterEnv, call: UacCall) -> None:
    """The caller's BYE, answered 200."""
    Channel(call.ua, env.address).send(call.in_dialog("BYE"))
    await call.ua.response(200, "BYE")


async def assert_workers_hold_nothing(pool: WorkerPool) -> None:
    """Every worker reports no bridge, no bound RTP port, nothing on its pacer."""
    for status in await pool.status():
        assert status["bridges"] == 0, status
        assert status["ports_in_use"] == 0, status
        assert status["pacer_streams"] == 0, status


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")


# -- calls through a worker -----------------------------------------------------------


async def test_call_in_a_worker_echoes_audio_and_bye_releases_port_and_bridge(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await workers_env(make_router_env)
    pool = pool_of(env)
    call, rtp = await new_call(env)

    bridge = bridge_of(env, call)
    assert bridge.worker_pid in pool.pids
    assert bridge.worker_pid != os.getpid()
    await echo_round(rtp)
    assert rtp.sources == {rtp.target}
    statuses = await pool.status()
    assert sorted(s["bridges"] for s in statuses) == [0, 1]
    assert sum(s["ports_in_use"] for s in statuses) == 1
    assert router_status(env.sip)["rtp_ports_in_use"] == 1
    assert router_status(env.sip)["active_calls"] == 1

    await hang_up(env, call)
    await env.wait_idle()
    await assert_workers_hold_nothing(pool)
    assert router_status(env.sip)["rtp_ports_in_use"] == 0
    assert router_status(env.sip)["active_calls"] == 0
    assert bridge.stats.frames_received >= VOICE_FRAMES
    assert bridge.stats.packets_out > 0


async def test_runner_hangup_in_a_worker_sends_bye_to_the_caller(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await workers_env(make_router_env)
    number = await env.add_number("hangup_after=0.5")
    call, _rtp = await new_call(env, number)

    bye = await call.ua.request("BYE")
    assert bye.message.call_id == call.call_id
    call.ua.answer(bye)
    await env.wait_idle()
    await assert_workers_hold_nothing(pool_of(env))


async def test_unreachable_runner_in_a_worker_answers_480(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await workers_env(make_router_env)
    number = await env.add_number("reject=1")
    ua, rtp = await SipUA.start(), await RtpEndpoint.start()
    call = UacCall(ua, env.address, number=number, sdp=sdp_offer(rtp.port))
    Channel(ua, env.address).send(call.invite())

    final = await ua.expect(lambda m: m.status >= 300 and m.method == "INVITE")
    assert final.message.status == 480
    Channel(ua, env.address).send(call.ack_non_2xx(final.message))
    await env.wait_idle()
    await assert_workers_hold_nothing(pool_of(env))


async def test_dtmf_in_a_worker_reaches_the_runner(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await workers_env(make_router_env)
    call, rtp = await new_call(env)

    stamp = rtp.timestamp
    for payload in ("050a00a0", "058a0320", "058a0320", "058a0320"):
        rtp.send(bytes.fromhex(payload), payload_type=101, timestamp=stamp)
    rtp.timestamp += 800
    await echo_round(rtp, 3)
    assert env.runner.digits == ["5"]
    await hang_up(env, call)
    await env.wait_idle()


async def test_no_rtp_in_a_worker_ends_the_call_with_bye_after_the_rtp_timeout(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await workers_env(make_router_env, rtp_timeout=1.0)
    call, _rtp = await new_call(env)
    acked = asyncio.get_running_loop().time()

    bye = await call.ua.request("BYE")
    assert 0.5 <= asyncio.get_running_loop().time() - acked <= 3.0
    assert bye.message.call_id == call.call_id
    call.ua.answer(bye)
    await env.wait_idle()
    await assert_workers_hold_nothing(pool_of(env))


async def test_calls_go_to_the_least_loaded_worker(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await workers_env(make_router_env)
    pool = pool_of(env)
    calls = [await new_call(env) for _ in range(4)]

    pids = [bridge_of(env, call).worker_pid for call, _rtp in calls]
    assert sorted(pids) == sorted(pool.pids * 2)
    assert sorted(s["bridges"] for s in await pool.status()) == [2, 2]
    for _call, rtp in calls:
        await echo_round(rtp, 5)
    for call, _rtp in calls:
        await hang_up(env, call)
    await env.wait_idle()
    await assert_workers_hold_nothing(pool)


# -- settings -------------------------------------------------------------------------


def test_media_workers_default_to_none_media_in_the_router_process() -> None:
    assert load_settings({"rtp_ports": "30000-30039"}).media_workers == 0


def test_more_media_workers_than_rtp_port_pairs_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="ROUTER_MEDIA_WORKERS"):
        load_settings({"rtp_ports": "30000-30007", "media_workers": 5})


# -- a worker that dies ---------------------------------------------------------------


async def test_killed_worker_ends_its_calls_with_bye_and_is_restarted(
    make_router_env: RouterEnvFactory,
) -> None:
    env = await workers_env(make_router_env)
    pool = pool_of(env)
    doomed, _doomed_rtp = await new_call(env)
    survivor, survivor_rtp = await new_call(env)
    victim = bridge_of(env, doomed).worker_pid
    assert victim is not None and victim != bridge_of(env, survivor).worker_pid

    os.kill(victim, signal.SIGKILL)
    bye = await doomed.ua.request("BYE")
    assert bye.message.call_id == doomed.call_id
    doomed.ua.answer(bye)

    await wait_until(
        lambda: len(pool.pids) == 2, RESTART_TIMEOUT, what=lambda: str(pool.pids)
    )
    assert victim not in pool.pids
    assert pool.restarts == 1
    await echo_round(survivor_rtp)  # the other worker's call carries on
    replacement = next(
        pid for pid in pool.pids if pid != bridge_of(env, survivor).worker_pid
    )
    newcomer, newcomer_rtp = await new_call(env)
    assert bridge_of(env, newcomer).worker_pid == replacement  # the least loaded
    await echo_round(newcomer_rtp)
    for call in (survivor, newcomer):
        await hang_up(env, call)
    await env.wait_idle()
    await assert_workers_hold_nothing(pool)


async def test_stopping_the_pool_stops_every_worker() -> None:
    pool = WorkerPool(
        WorkerPoolConfig(
            workers=2,
            bind_host="127.0.0.1",
            rtp_ports=(41_000, 41_039),
            inactivity_timeout=30.0,
            max_queued_frames=500,
        )
    )
    await pool.start()
    pids = pool.pids
    assert len(pids) == 2

    await pool.stop()
    assert all(process_gone(pid) for pid in pids)
    assert pool.pids == []


# The router's side of the pool, in a process of its own that the test kills.
_ORPHANING_ROUTER = textwrap.dedent(
    """
    import asyncio
    from router.logs import configure_logging
    from router.media.workers import WorkerPool, WorkerPoolConfig

    async def main():
        configure_logging("info", "json")  # on stderr: stdout carries the pid
        pool = WorkerPool(WorkerPoolConfig(1, "127.0.0.1", (41100, 41139), 30.0, 500))
        await pool.start()
        print(pool.pids[0], flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def test_workers_exit_when_the_router_process_dies() -> None:
    router = subprocess.Popen(
        [sys.executable, "-c", _ORPHANING_ROUTER],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert router.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(router.stdout.readline), 20)
        worker = int(line)
        assert not process_gone(worker)

        router.kill()
        await wait_until(
            lambda: process_gone(worker), 10.0, what=lambda: f"pid {worker}"
        )
    finally:
        router.kill()
        router.wait()
