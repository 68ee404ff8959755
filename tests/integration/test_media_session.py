"""A media session on real UDP sockets, with the caller played by a loopback socket.

Everything binds and sends on 127.0.0.1 only. Timing assertions are loose on
purpose (a loaded two-core machine must not make them flaky); they still fail
when pacing drifts, bursts or stops.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from router.media.errors import MediaError, PortsExhausted, UnsupportedMedia
from router.media.g711 import ALAW_TO_ULAW, ULAW_TO_ALAW
from router.media.pacer import Pacer, default_pacer
from router.media.ports import RtpPortPool
from router.media.rtp import RtpPacket, build_rtp, parse_rtp
from router.media.session import MediaSession
from router.sip.sdp import NegotiatedAudio

LOOPBACK = "127.0.0.1"
SILENCE = b"\xff" * 160


class Events:
    """Records what the session reports, with the loop time of each event."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.digits: list[str] = []
        self.marks: list[tuple[str, int]] = []
        self.inactive_at: list[float] = []
        self.session: MediaSession | None = None

    def on_audio(self, ulaw: bytes) -> None:
        self.frames.append(ulaw)

    def on_dtmf(self, digit: str) -> None:
        self.digits.append(digit)

    def on_mark_played(self, name: str) -> None:
        # Record how many queued frames had been played when the mark fired.
        assert self.session is not None
        self.marks.append((name, self.session.stats.frames_played))

    def on_inactive(self) -> None:
        self.inactive_at.append(asyncio.get_running_loop().time())


class Peer(asyncio.DatagramProtocol):
    """The caller's RTP endpoint: a loopback socket that records what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[float, RtpPacket]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.sequence = 1
        self.timestamp = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((asyncio.get_running_loop().time(), parse_rtp(data)))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    @property
    def packets(self) -> list[RtpPacket]:
        return [packet for _, packet in self.received]

    def send_rtp(
        self, session: MediaSession, payload_type: int, payload: bytes
    ) -> None:
        assert self.transport is not None
        data = build_rtp(payload_type, self.sequence, self.timestamp, 0xCA11E2, payload)
        self.sequence += 1
        self.timestamp += 160
        self.transport.sendto(data, (LOOPBACK, session.local_port))


async def open_peer() -> Peer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(Peer, local_addr=(LOOPBACK, 0))
    return peer


def audio_for(peer: Peer, **changes: object) -> NegotiatedAudio:
    audio = NegotiatedAudio(
        payload_type=0,
        codec="PCMU",
        dtmf_payload_type=101,
        remote_address=LOOPBACK,
        remote_port=peer.port,
        direction="sendrecv",
        ptime=20,
    )
    return replace(audio, **changes)  # type: ignore[arg-type]


def voice(seed: int) -> bytes:
    return bytes([seed % 0x60 + 0x10]) * 160


async def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def other_tasks() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[arg-type]


@pytest.fixture
def pool() -> RtpPortPool:
    return RtpPortPool(42000, 42199)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    peer = await open_peer()
    yield peer
    assert peer.transport is not None
    peer.transport.close()


@pytest.fixture
async def events() -> Events:
    return Events()


@pytest.fixture
async def session(pool: RtpPortPool, events: Events) -> AsyncIterator[MediaSession]:
    session = MediaSession(pool=pool, bind_host=LOOPBACK, events=events)
    events.session = session
    await session.open()
    yield session
    await session.close()


# -- ports and lifecycle ---------------------------------------------------------


async def test_open_binds_an_even_port_of_the_pool_on_the_host(session, pool):
    assert session.local_port % 2 == 0
    assert 42000 <= session.local_port < 42199
    assert pool.in_use == 1


async def test_a_port_taken_by_someone_else_is_skipped(events):
    pool = RtpPortPool(42200, 42207)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        squatter.bind((LOOPBACK, 42200))
        session = MediaSession(pool=pool, bind_host=LOOPBACK, events=events)

        port = await session.open()

        assert port == 42202
        assert pool.in_use == 1
        await session.close()
    finally:
        squatter.close()


async def test_a_pool_whose_ports_are_all_taken_raises_ports_exhausted(events):
    pool = RtpPortPool(42210, 42211)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        squatter.bind((LOOPBACK, 42210))
        session = MediaSession(pool=pool, bind_host=LOOPBACK, events=events)

        with pytest.raises(PortsExhausted, match="could be bound"):
            await session.open()
        assert pool.in_use == 0
    finally:
        squatter.close()


async def test_close_releases_the_port_and_leaves_nothing_running(pool, peer, events):
    tasks_before = other_tasks()
    session = MediaSession(pool=pool, bind_host=LOOPBACK, events=events)
    events.session = session
    port = await session.open()
    session.configure(audio_for(peer))
    await eventually(lambda: len(peer.received) >= 3)

    await session.close()
    await session.close()  # idempotent

    assert pool.in_use == 0
    assert not default_pacer().running
    assert other_tasks() == tasks_before
    # The port is really free again.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((LOOPBACK, port))
    probe.close()


async def test_no_packet_is_sent_and_no_callback_fires_after_close(
    session, peer, events
):
    session.configure(audio_for(peer))
    await eventually(lambda: len(peer.received) >= 2)
    # A mark on an empty queue is reported at once: queue audio before it, so
    # that it is still pending when the session closes.
    session.play(b"".join(voice(seed) for seed in range(5)))
    session.mark("never")
    await session.close()
    sent = len(peer.received)

    peer.send_rtp(session, 0, voice(1))
    await asyncio.sleep(0.2)

    assert len(peer.received) == sent
    assert events.frames == []
    assert events.marks == []
    assert session.clear() == []


async def test_configure_before_open_and_after_close_is_an_error(pool, events, peer):
    session = MediaSession(pool=pool, bind_host=LOOPBACK, events=events)
    with pytest.raises(MediaError, match="open media session"):
        session.configure(audio_for(peer))

    await session.open()
    await session.close()

    with pytest.raises(MediaError, match="open media session"):
        session.configure(audio_for(peer))


@pytest.mark.parametrize(
    "changes",
    [
        {"codec": "G729", "payload_type": 18},
        {"direction": "sideways"},
        {"payload_type": 200},
    ],
)
async def test_configure_rejects_media_it_cannot_run(session, peer, changes):
    with pytest.raises(UnsupportedMedia):
        session.configure(audio_for(peer, **changes))


def test_bind_host_must_be_an_ip_address(pool, events):
    with pytest.raises(ValueError, match="'localhost' is not an IP address"):
        MediaSession(pool=pool, bind_host="localhost", events=events)


# -- inbound ---------------------------------------------------------------------


async def test_caller_audio_reaches_on_audio_as_frames(session, peer, events):
    session.configure(audio_for(peer))

    for seed in range(5):
        peer.send_rtp(session, 0, voice(seed))
    await eventually(lambda: len(events.frames) == 5)

    assert events.frames == [voice(seed) for seed in range(5)]
    assert session.caller_address == (LOOPBACK, peer.port)


async def test_media_latches_to_the_first_source_and_ignores_a_second(session, events):
    sdp_peer, caller, intruder = await open_peer(), await open_peer(), await open_peer()
    try:
        session.configure(audio_for(sdp_peer))
        # Before the caller's first packet, audio goes to the SDP address.
        await eventually(lambda: len(sdp_peer.received) >= 2)

        caller.send_rtp(session, 0, voice(1))
        await eventually(lambda: len(events.frames) == 1)
        intruder.send_rtp(session, 0, voice(2))
        caller.send_rtp(session, 0, voice(3))
        await eventually(lambda: len(events.frames) == 2)
        await eventually(lambda: len(caller.received) >= 3)

        assert events.frames == [voice(1), voice(3)]
        assert session.stats.packets_ignored_foreign_source == 1
        assert session.caller_address == (LOOPBACK, caller.port)
        assert intruder.received == []
    finally:
        for peer in (sdp_peer, caller, intruder):
            assert peer.transport is not None
            peer.transport.close()


async def test_c09_telephone_event_on_pt_96_gives_one_digit(session, peer, events):
    session.configure(audio_for(peer, dtmf_payload_type=96))

    for payload in ["050a00a0", "050a0140", "058a0320", "058a0320", "058a0320"]:
        peer.timestamp = 48000  # every packet of one event has its start timestamp
        peer.send_rtp(session, 96, bytes.fromhex(payload))
    await eventually(lambda: session.stats.packets_in == 5)

    assert events.digits == ["5"]
    assert events.frames == []


async def test_pcma_from_the_caller_is_delivered_as_ulaw(session, peer, events):
    session.configure(audio_for(peer, payload_type=8, codec="PCMA"))
    alaw = bytes(range(80, 240))

    peer.send_rtp(session, 8, alaw)
    await eventually(lambda: len(events.frames) == 1)

    assert events.frames == [alaw.translate(ALAW_TO_ULAW)]


# -- outbound --------------------------------------------------------------------


async def test_runner_audio_goes_out_as_pcma_when_pcma_was_negotiated(session, peer):
    session.configure(audio_for(peer, payload_type=8, codec="PCMA"))
    frames = [voice(seed) for seed in range(3)]

    session.play(b"".join(frames))
    await eventually(lambda: session.stats.frames_played == 3)
    await eventually(
        lambda: any(
            p.payload == frames[2].translate(ULAW_TO_ALAW) for p in peer.packets
        )
    )

    payloads = [p.payload for p in peer.packets if p.payload != b"\xd5" * 160]
    assert payloads == [frame.translate(ULAW_TO_ALAW) for frame in frames]
    assert {p.payload_type for p in peer.packets} == {8}


async def test_silence_fills_the_gaps_and_voice_starts_a_talkspurt(session, peer):
    session.configure(audio_for(peer))
    await eventually(lambda: len(peer.received) >= 3)

    session.play(voice(1) + voice(2))
    await eventually(lambda: any(p.payload == voice(2) for p in peer.packets))
    await eventually(lambda: peer.packets[-1].payload == SILENCE)

    packets = peer.packets
    first_voice = next(i for i, p in enumerate(packets) if p.payload == voice(1))
    assert all(p.payload == SILENCE for p in packets[:first_voice])
    assert packets[first_voice].marker
    assert packets[first_voice + 1].payload == voice(2)
    assert not packets[first_voice + 1].marker
    assert packets[0].marker  # the stream's first packet
    assert not any(p.marker for p in packets[1:first_voice])


async def test_packets_are_numbered_continuously_with_one_ssrc(session, peer):
    session.configure(audio_for(peer))
    await eventually(lambda: len(peer.received) >= 20)

    packets = peer.packets[:20]
    assert len({p.ssrc for p in packets}) == 1
    for previous, current in itertools.pairwise(packets):
        assert current.sequence == (previous.sequence + 1) & 0xFFFF
        assert current.timestamp == (previous.timestamp + 160) & 0xFFFFFFFF


async def test_pacing_sends_100_frames_in_2_seconds_without_drift(session, peer):
    session.configure(audio_for(peer))
    session.play(b"".join(voice(seed) for seed in range(101)))

    await eventually(lambda: len(peer.received) >= 101, timeout=5.0)

    times = [arrival for arrival, _ in peer.received[:101]]
    assert 1.7 <= times[100] - times[0] <= 2.3
    # Deadlines are absolute: no packet strays far from t0 + n * 20 ms.
    worst = max(abs(t - times[0] - n * 0.020) for n, t in enumerate(times))
    assert worst < 0.1


async def test_runner_audio_played_while_the_stream_is_due_goes_out_at_once(
    session, peer
):
    session.configure(audio_for(peer))
    await eventually(lambda: len(peer.received) >= 3)
    loop = asyncio.get_running_loop()

    # Play just before a slot: inside its window, before its silence fill.
    for _attempt in range(50):
        slot = session.next_slot
        assert slot is not None
        await asyncio.sleep(max(0.0, slot - 0.001 - loop.time()))
        if session.next_slot == slot and loop.time() < slot + 0.003:
            break
    else:
        pytest.fail("never woke up inside a slot's window")
    played_at = loop.time()
    session.play(voice(1))
    await eventually(lambda: any(p.payload == voice(1) for p in peer.packets))

    arrival = next(t for t, p in peer.received if p.payload == voice(1))
    # Loopback takes microseconds; the old shared clock waited for its next tick.
    assert arrival - played_at < 0.004


async def test_a_burst_of_50_frames_goes_out_one_every_20_ms(session, peer):
    session.configure(audio_for(peer))
    await eventually(lambda: len(peer.received) >= 3)

    session.play(b"".join(voice(seed) for seed in range(50)))
    await eventually(
        lambda: sum(p.payload != SILENCE for p in peer.packets) >= 50, timeout=3.0
    )

    times = [t for t, p in peer.received if p.payload != SILENCE]
    assert [p.payload for p in peer.packets if p.payload != SILENCE] == [
        voice(seed) for seed in range(50)
    ]
    # The first may go at once; from the second on, one every 20 ms.
    assert 0.008 <= times[1] - times[0] <= 0.035
    assert 0.94 <= times[49] - times[1] <= 1.02
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.008
    worst = max(abs(t - times[1] - n * 0.020) for n, t in enumerate(times[1:]))
    assert worst < 0.05


class EchoEvents(Events):
    """An in-process runner that plays every frame of the caller straight back."""

    def on_audio(self, ulaw: bytes) -> None:
        assert self.session is not None
        self.session.play(ulaw)


async def test_an_echo_in_any_phase_adds_at_most_about_half_a_frame(pool):
    # Ten calls whose callers send at phases 2 ms apart: on the old shared
    # 20 ms clock each call's echo waited 0-20 ms depending on its phase.
    loop = asyncio.get_running_loop()
    calls = []
    for index in range(10):
        events = EchoEvents()
        session = MediaSession(pool=pool, bind_host=LOOPBACK, events=events)
        events.session = session
        await session.open()
        peer = await open_peer()
        session.configure(audio_for(peer))
        calls.append((session, peer, index * 0.002))
    try:
        sent: dict[bytes, float] = {}
        start = loop.time() + 0.05

        async def speak(session: MediaSession, peer: Peer, phase: float) -> None:
            for n in range(40):
                await asyncio.sleep(max(0.0, start + phase + n * 0.02 - loop.time()))
                payload = (
                    bytes([0x10 + n]) + peer.port.to_bytes(2, "big") + b"\x55" * 157
                )
                sent[payload] = loop.time()
                peer.send_rtp(session, 0, payload)

        await asyncio.gather(*(speak(*call) for call in calls))

        def echoed(peer: Peer) -> int:
            return sum(1 for _, p in peer.received if p.payload in sent)

        # Every echo comes back (a stall of the machine only delays them) ...
        await eventually(lambda: all(echoed(peer) == 40 for _, peer, _ in calls))
        # ... and most go out on arrival, whatever the phase.
        for _session, peer, _phase in calls:
            latencies = sorted(
                arrival - sent[p.payload]
                for arrival, p in peer.received
                if p.payload in sent
            )
            assert len(latencies) == 40
            # Half a frame (the tolerance window) plus a tick and loop slack.
            assert latencies[len(latencies) // 2] < 0.014
    finally:
        for session, peer, _phase in calls:
            await session.close()
            assert peer.transport is not None
            peer.transport.close()


async def test_marks_fire_after_the_audio_before_them_in_order(session, peer, events):
    session.configure(audio_for(peer))

    session.play(voice(1) + voice(2) + voice(3))
    session.mark("first")
    session.play(voice(4) + voice(5))
    session.mark("second")
    await eventually(lambda: len(events.marks) == 2)
    await eventually(lambda: any(p.payload == voice(5) for p in peer.packets))

    assert events.marks == [("first", 3), ("second", 5)]
    sent = [p.payload for p in peer.packets if p.payload != SILENCE]
    assert sent[:3] == [voice(1), voice(2), voice(3)]


async def test_clear_drops_queued_audio_and_returns_pending_marks(
    session, peer, events
):
    session.configure(audio_for(peer))
    session.play(b"".join(voice(seed) for seed in range(100)))
    session.mark("after-speech")
    session.mark("later")
    await eventually(lambda: session.stats.frames_played >= 2)

    pending = session.clear()
    await asyncio.sleep(0.1)

    assert pending == ["after-speech", "later"]
    assert session.queued_frames == 0
    assert session.stats.frames_played < 20
    assert events.marks == []
    assert peer.packets[-1].payload == SILENCE


async def test_overflow_drops_the_oldest_frames(pool, peer, events):
    session = MediaSession(
        pool=pool, bind_host=LOOPBACK, events=events, max_queued_frames=5
    )
    events.session = session
    await session.open()
    try:
        session.play(b"".join(voice(seed) for seed in range(12)))
        session.mark("end")
        session.configure(audio_for(peer))
        await eventually(lambda: events.marks != [])
        await eventually(lambda: any(p.payload == voice(11) for p in peer.packets))

        sent = [p.payload for p in peer.packets if p.payload != SILENCE]
        assert sent == [voice(seed) for seed in range(7, 12)]
        assert session.stats.frames_dropped_overflow == 7
        assert events.marks == [("end", 5)]
    finally:
        await session.close()


# -- hold, re-INVITE and inactivity ---------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"direction": "recvonly"},
        {"direction": "inactive"},
        {"remote_address": "0.0.0.0"},
        {"remote_port": 0},
    ],
)
async def test_nothing_is_sent_while_the_call_is_held(session, peer, changes):
    session.configure(audio_for(peer, **changes))
    # Even with the caller's address latched from its own packets.
    peer.send_rtp(session, 0, voice(1))
    await eventually(lambda: session.caller_address is not None)
    session.play(voice(2))

    await asyncio.sleep(0.2)

    assert peer.received == []


async def test_resuming_after_hold_sends_again_with_the_marker_bit(session, peer):
    session.configure(audio_for(peer))
    await eventually(lambda: len(peer.received) >= 2)
    session.configure(audio_for(peer, direction="recvonly"))
    await asyncio.sleep(0.1)
    held_count = len(peer.received)
    await asyncio.sleep(0.1)
    assert len(peer.received) == held_count

    session.configure(audio_for(peer))
    await eventually(lambda: len(peer.received) > held_count)

    resumed = peer.packets[held_count]
    before = peer.packets[held_count - 1]
    assert resumed.marker
    # The media clock ran on during the hold: the timestamp jumped ahead.
    assert (resumed.timestamp - before.timestamp) % 2**32 >= 160 * 5


async def test_a_codec_switch_keeps_the_stream_and_changes_the_payload_type(
    session, peer
):
    session.configure(audio_for(peer))
    await eventually(lambda: len(peer.received) >= 2)

    session.configure(audio_for(peer, payload_type=8, codec="PCMA"))
    await eventually(lambda: peer.packets[-1].payload_type == 8)

    packets = peer.packets
    switch = next(i for i, p in enumerate(packets) if p.payload_type == 8)
    assert packets[switch].payload == b"\xd5" * 160
    assert packets[switch].ssrc == packets[switch - 1].ssrc
    assert packets[switch].sequence == (packets[switch - 1].sequence + 1) & 0xFFFF


async def test_inactivity_is_reported_once_when_the_caller_stops_sending(
    pool, peer, events
):
    session = MediaSession(
        pool=pool, bind_host=LOOPBACK, events=events, inactivity_timeout=0.2
    )
    events.session = session
    await session.open()
    try:
        session.configure(audio_for(peer))
        start = asyncio.get_running_loop().time()
        for seed in range(10):
            peer.send_rtp(session, 0, voice(seed))
            await asyncio.sleep(0.02)
        stopped = asyncio.get_running_loop().time()
        await eventually(lambda: events.inactive_at != [])
        await asyncio.sleep(0.3)

        assert len(events.inactive_at) == 1
        assert events.inactive_at[0] - stopped >= 0.15
        assert events.inactive_at[0] - start >= 0.3
    finally:
        await session.close()


async def test_no_inactivity_while_the_caller_is_not_meant_to_send(pool, peer, events):
    session = MediaSession(
        pool=pool, bind_host=LOOPBACK, events=events, inactivity_timeout=0.1
    )
    await session.open()
    try:
        session.configure(audio_for(peer, direction="inactive"))
        await asyncio.sleep(0.35)
        session.configure(audio_for(peer, direction="sendonly"))
        await asyncio.sleep(0.35)

        assert events.inactive_at == []
    finally:
        await session.close()


# -- the shared pacer ------------------------------------------------------------


async def test_sessions_share_one_pacer_that_stops_with_the_last_one(pool, peer):
    pacer = Pacer()
    first = MediaSession(pool=pool, bind_host=LOOPBACK, events=Events(), pacer=pacer)
    second = MediaSession(pool=pool, bind_host=LOOPBACK, events=Events(), pacer=pacer)
    await first.open()
    await second.open()
    assert not pacer.running

    first.configure(audio_for(peer))
    second.configure(audio_for(peer))
    await eventually(lambda: len(peer.received) >= 10)

    assert pacer.running and len(pacer) == 2
    await first.close()
    assert pacer.running
    await second.close()
    assert not pacer.running


async def test_after_a_stall_the_pacer_skips_ahead_instead_of_bursting(session, peer):
    session.configure(audio_for(peer))
    await eventually(lambda: len(peer.received) >= 5)

    time.sleep(0.3)  # the whole process stalls for 15 frame periods
    stalled_at = asyncio.get_running_loop().time()
    await asyncio.sleep(0.1)

    burst = [p for arrival, p in peer.received if 0 <= arrival - stalled_at < 0.015]
    assert len(burst) <= 2
    assert session.stats.skipped_frames >= 10
    timestamps = [packet.timestamp for packet in peer.packets]
    gaps = [(b - a) % 2**32 for a, b in itertools.pairwise(timestamps)]
    assert max(gaps) >= 160 * 10


class BusyStream:
    """A paced stream whose every tick costs 5 ms of CPU, like a few hundred calls."""

    def __init__(self) -> None:
        self.ticks: list[float] = []

    def on_tick(self, now: float) -> None:
        self.ticks.append(now)
        busy_until = time.perf_counter() + 0.005
        while time.perf_counter() < busy_until:
            pass


async def test_time_spent_in_each_tick_does_not_slow_the_schedule():
    # A loop that sleeps 20 ms after each round would tick every 25 ms here.
    pacer, stream = Pacer(), BusyStream()
    pacer.register(stream)
    await asyncio.sleep(1.0)
    pacer.unregister(stream)

    # Every tick sends a packet: count ticks, not frame periods (skipping ahead
    # would hide a slow schedule in the period count).
    first, last = stream.ticks[0], stream.ticks[-1]
    assert 45 <= len(stream.ticks) <= 52
    assert abs((last - first) / (len(stream.ticks) - 1) - 0.020) < 0.001


class Asking:
    """A stream that asks for a tick every 7 ms, and records what it asked and got."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.asked: list[float] = []

    def on_tick(self, now: float) -> float:
        self.ticks.append(now)
        self.asked.append((self.asked[-1] if self.asked else now) + 0.007)
        return self.asked[-1]


async def test_a_stream_is_ticked_when_it_asks_and_wake_brings_a_tick_forward():
    pacer, stream = Pacer(), Asking()
    pacer.register(stream)
    await asyncio.sleep(0.2)
    asked = len(stream.ticks)

    # Each tick is the first of the 2.5 ms ticks at or after the time asked.
    pairs = zip(stream.asked[:-1], stream.ticks[1:], strict=True)
    waits = [got - wanted for wanted, got in pairs]
    assert 24 <= asked <= 30
    assert min(waits) >= 0
    assert sorted(waits)[len(waits) // 2] < 0.0025 + 0.001

    loop = asyncio.get_running_loop()
    woken_at = loop.time()
    pacer.wake(stream, woken_at)
    await eventually(lambda: len(stream.ticks) > asked)
    pacer.unregister(stream)

    assert stream.ticks[asked] - woken_at < 0.005
    assert not pacer.running


class Unregistering:
    """A stream that, on its first tick, leaves the pacer and brings in another."""

    def __init__(self, pacer: Pacer, successor: BusyStream) -> None:
        self.pacer = pacer
        self.successor = successor

    def on_tick(self, now: float) -> None:
        self.pacer.unregister(self)
        self.pacer.register(self.successor)


async def test_streams_swapped_inside_a_tick_keep_one_tick_every_20_ms():
    pacer = Pacer()
    successor = BusyStream()
    pacer.register(Unregistering(pacer, successor))
    await asyncio.sleep(0.5)
    pacer.unregister(successor)

    assert 20 <= len(successor.ticks) <= 26
    assert not pacer.running


async def test_a_failing_stream_does_not_stop_the_others():
    class Failing:
        def on_tick(self, now: float) -> None:
            raise RuntimeError("boom")

    pacer, healthy, failing = Pacer(), BusyStream(), Failing()
    pacer.register(failing)
    pacer.register(healthy)
    await asyncio.sleep(0.2)
    pacer.unregister(failing)
    pacer.unregister(healthy)

    assert len(healthy.ticks) >= 8
    assert pacer.failed_ticks >= 8


async def test_ipv6_loopback_carries_audio_both_ways(pool, events):
    probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    finally:
        probe.close()
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(Peer, local_addr=("::1", 0))
    session = MediaSession(pool=pool, bind_host="::1", events=events)
    await session.open()
    try:
        session.configure(audio_for(peer, remote_address="::1"))
        session.play(voice(7))
        assert peer.transport is not None
        peer.transport.sendto(
            build_rtp(0, 1, 0, 9, voice(8)), ("::1", session.local_port)
        )

        await eventually(lambda: events.frames == [voice(8)])
        await eventually(lambda: any(p.payload == voice(7) for p in peer.packets))
    finally:
        await session.close()
        assert peer.transport is not None
        peer.transport.close()


def test_addresses_kept_for_reuse_are_valid_short_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from router import addresses

    kept: dict[str, object] = {}
    monkeypatch.setattr(addresses, "_IP_ADDRESSES", kept)
    monkeypatch.setattr(addresses, "_MAX_KEPT_ADDRESSES", 4)

    assert addresses.ip_address("x" * 60_000) is None
    assert addresses.ip_address("fe80::1%" + "z" * 60_000) is not None
    assert kept == {}  # neither garbage nor an oversized zone is kept
    for n in range(10):
        assert str(addresses.ip_address(f"192.0.2.{n}")) == f"192.0.2.{n}"
    assert list(kept) == [f"192.0.2.{n}" for n in range(6, 10)]
