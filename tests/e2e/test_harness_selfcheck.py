"""Self-check of the end-to-end tools, without the router.

The audio comparison, the pcap reader and the shipped speech are checked on
their own (no sockets). The SIPp scenarios are run against SIPp peers from
sipp-scenarios/, the RTP capture against the packets SIPp sends, and baresip
against a SIPp peer that echoes its audio, inside a private network namespace.
"""

from __future__ import annotations

import functools
import importlib.util
import random
import re
import socket
import struct
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

from tests.e2e.harness import (
    LOOPBACK,
    SIPP_SCENARIOS,
    SPEECH_PCMA_PCAP,
    SPEECH_PCMU_PCAP,
    BaresipAgent,
    LoopbackNamespace,
    RtpCapture,
    SippMessage,
    SippResult,
    alaw_to_linear,
    audio_matches,
    baresip_available,
    correlate_pcm,
    decode_g711,
    free_port_range,
    namespace_available,
    raw_capture_available,
    read_pcap_rtp,
    read_pcap_rtp_payloads,
    run_sipp,
    sipp_available,
    speech_samples,
    start_sipp,
    ulaw_to_linear,
    write_wav_samples,
)

__all__: list[str] = []

needs_sipp = pytest.mark.skipif(not sipp_available(), reason="sipp is not installed")
# SIPp's play_pcap_audio and our capture both open raw sockets.
needs_raw = pytest.mark.skipif(
    not raw_capture_available(), reason="raw sockets need root or CAP_NET_RAW"
)
needs_baresip = pytest.mark.skipif(
    not (baresip_available() and namespace_available()),
    reason="needs baresip and root for a private network namespace",
)

CALLED = "+14155550100"
SPEECH_PACKETS = 214  # 4.28 s of speech: 214 full 20 ms frames and a padded one


@functools.cache
def load_generator() -> ModuleType:
    """Import sipp-scenarios/make_speech_pcap.py, which is a script, not a package."""
    path = SIPP_SCENARIOS / "make_speech_pcap.py"
    spec = importlib.util.spec_from_file_location("make_speech_pcap", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def frames_of(stream: bytes, size: int = 160) -> list[bytes]:
    """Cut a byte stream into payloads of size bytes."""
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def branch_of(message: SippMessage) -> str:
    """Return the branch parameter of the message's top Via."""
    via = message.header("Via") or ""
    match = re.search(r";branch=([^;,\s]+)", via)
    assert match, via
    return match.group(1)


def message_starting(messages: list[SippMessage], prefix: str) -> SippMessage:
    """Return the first message whose start line begins with prefix."""
    return next(m for m in messages if m.first_line.startswith(prefix))


@pytest.fixture
def speech() -> list[bytes]:
    """The shipped speech as 20 ms PCMU payloads."""
    return read_pcap_rtp_payloads(SPEECH_PCMU_PCAP)


# ---------------------------------------------------------------------------
# The shipped speech and its generator
# ---------------------------------------------------------------------------


def test_speech_pcap_is_4_seconds_of_pcmu_in_20ms_rtp_packets() -> None:
    packets = read_pcap_rtp(SPEECH_PCMU_PCAP)

    assert len(packets) == SPEECH_PACKETS + 1
    assert {p.payload_type for p in packets} == {0}
    assert {len(p.payload) for p in packets} == {160}
    assert [p.marker for p in packets[:2]] == [True, False]
    first = packets[0]
    for index, packet in enumerate(packets):
        assert packet.sequence == (first.sequence + index) & 0xFFFF
        assert packet.timestamp == first.timestamp + 160 * index
        assert packet.arrival == pytest.approx(first.arrival + 0.020 * index)
        assert packet.source[0] == packet.destination[0] == LOOPBACK


def test_pcma_pcap_carries_the_same_speech_as_pcmu(speech: list[bytes]) -> None:
    pcma = read_pcap_rtp(SPEECH_PCMA_PCAP)
    linear_pcmu = decode_g711(b"".join(speech))
    linear_pcma = decode_g711(b"".join(p.payload for p in pcma), "pcma")

    assert {p.payload_type for p in pcma} == {8}
    assert correlate_pcm(linear_pcmu, linear_pcma).coefficient > 0.999


def test_g711_decoders_invert_the_generator_encoders() -> None:
    generator = load_generator()

    # μ-law has two zeros (0xFF and 0x7F); the encoder writes 0xFF.
    ulaw_codes = [c for c in range(256) if c != 0x7F]
    assert [
        generator.linear_to_ulaw(ulaw_to_linear(c)) for c in ulaw_codes
    ] == ulaw_codes
    assert [generator.linear_to_alaw(alaw_to_linear(c)) for c in range(256)] == list(
        range(256)
    )


def test_generator_turns_a_16bit_wav_into_a_pcap_the_reader_agrees_with(
    tmp_path: Path,
) -> None:
    generator = load_generator()
    samples = [int(8000 * (-1) ** (i // 20)) for i in range(1000)]  # 1000: 6.25 frames
    write_wav_samples(tmp_path / "tone.wav", samples)

    status = generator.main([str(tmp_path / "tone.wav"), str(tmp_path / "tone.pcap")])

    payloads = read_pcap_rtp_payloads(tmp_path / "tone.pcap")
    expected = bytes(generator.linear_to_ulaw(s) for s in samples) + b"\xff" * 120
    assert status == 0
    assert payloads == frames_of(expected)


def test_generator_rejects_a_wav_that_is_not_8khz_mono(tmp_path: Path) -> None:
    generator = load_generator()
    write_wav_samples(tmp_path / "wideband.wav", [0] * 1600, rate=16000)

    status = generator.main([str(tmp_path / "wideband.wav"), str(tmp_path / "x.pcap")])

    assert status == 1
    assert not (tmp_path / "x.pcap").exists()


# ---------------------------------------------------------------------------
# Audio comparison
# ---------------------------------------------------------------------------


def test_an_echo_of_the_same_frames_matches_completely(speech: list[bytes]) -> None:
    result = audio_matches(speech, speech)

    assert result.identical_fraction == 1.0
    assert result.offset == 0
    assert result.correlation.coefficient == pytest.approx(1.0)
    assert result.matched


def test_a_delayed_stream_cut_into_other_packet_sizes_matches_at_its_offset(
    speech: list[bytes],
) -> None:
    stream = b"\xff" * 1234 + b"".join(speech) + b"\xff" * 500

    result = audio_matches(speech, frames_of(stream, 240))

    assert result.identical_fraction == 1.0
    assert result.offset == 1234
    assert result.correlation.lag == 1234
    assert result.matched


def test_dropped_frames_lower_the_identical_fraction_by_as_much(
    speech: list[bytes],
) -> None:
    received = [frame for i, frame in enumerate(speech) if i % 20 != 7]

    result = audio_matches(speech, received)

    assert 0.92 <= result.identical_fraction < 0.97
    assert result.matched


def test_silence_does_not_match(speech: list[bytes]) -> None:
    result = audio_matches(speech, [b"\xff" * 160] * 300)

    assert result.identical_frames == 0
    assert result.correlation.coefficient == 0.0
    assert not result.matched


def test_random_noise_does_not_match(speech: list[bytes]) -> None:
    noise = random.Random(7).randbytes(160 * 300)

    result = audio_matches(speech, frames_of(noise))

    assert result.identical_frames == 0
    assert abs(result.correlation.coefficient) < 0.2
    assert not result.matched


def test_other_speech_does_not_match(speech: list[bytes]) -> None:
    backwards = b"".join(speech)[::-1]

    result = audio_matches(speech, frames_of(backwards))

    assert result.identical_frames == 0
    assert result.correlation.coefficient < 0.3
    assert not result.matched


def test_speech_transcoded_through_pcma_matches_by_correlation(
    speech: list[bytes],
) -> None:
    generator = load_generator()
    via_pcma = [generator.linear_to_alaw(s) for s in decode_g711(b"".join(speech))]
    back = bytes(generator.linear_to_ulaw(alaw_to_linear(c)) for c in via_pcma)

    result = audio_matches(speech, frames_of(b"\xff" * 777 + back))

    assert result.identical_fraction < 0.5
    assert result.correlation.lag == 777
    assert result.correlation.coefficient > 0.99
    assert result.matched


def test_correlation_ignores_gain_but_not_missing_audio() -> None:
    samples = speech_samples()
    quieter = [0] * 333 + [s // 4 for s in samples]

    assert correlate_pcm(samples, quieter).coefficient > 0.99
    assert correlate_pcm(samples, quieter).lag == 333
    assert correlate_pcm(samples, samples[: len(samples) // 2]).coefficient < 0.85


# ---------------------------------------------------------------------------
# Ports and RTP capture
# ---------------------------------------------------------------------------


def test_free_port_range_is_even_aligned_and_bindable() -> None:
    lo, hi = free_port_range(4)

    assert lo % 2 == 0
    assert hi == lo + 3
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
    for port, sock in zip(range(lo, hi + 1), sockets, strict=True):
        sock.bind((LOOPBACK, port))
    for sock in sockets:
        sock.close()


def rtp(sequence: int, payload: bytes) -> bytes:
    """A minimal PCMU RTP packet."""
    return struct.pack("!BBHII", 0x80, 0, sequence, sequence * 160, 0x1234) + payload


@pytest.mark.e2e
@needs_raw
def test_capture_records_each_loopback_datagram_once_in_order() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind((LOOPBACK, 0))
        sender.bind((LOOPBACK, 0))
        port, source = receiver.getsockname()[1], sender.getsockname()
        with RtpCapture(port) as capture:
            sender.sendto(b"not rtp", (LOOPBACK, port))
            sender.sendto(rtp(99, b"x" * 160), (LOOPBACK, port + 1))  # another port
            for sequence in range(40):
                sender.sendto(rtp(sequence, bytes([sequence]) * 160), (LOOPBACK, port))
            # Loopback keeps order, so once the 40th is in, all before it are.
            assert capture.wait_for(40, timeout=2.0)

    assert [p.sequence for p in capture.packets] == list(range(40))
    assert capture.payloads()[5] == bytes([5]) * 160
    assert {p.source for p in capture.packets} == {source}
    assert capture.ignored == 1


# ---------------------------------------------------------------------------
# SIPp scenarios against SIPp peers
# ---------------------------------------------------------------------------


@contextmanager
def sipp_peer(
    scenario: str, tmp_path: Path, *extra: str, calls: int = 1
) -> Iterator[tuple[int, int]]:
    """Run a SIPp peer (UAS) for the duration; yield its SIP and media ports."""
    port, media_port = free_port_range(1)[0], free_port_range(4)[0]
    with start_sipp(
        scenario,
        local_port=port,
        media_port=media_port,
        calls=calls,
        timeout=20,
        extra=list(extra),
        workdir=tmp_path / "peer",
    ) as peer:
        yield port, media_port
        result = peer.wait(10)
        assert result.ok, result.summary()


def run_caller(
    scenario: str,
    peer_port: int,
    tmp_path: Path,
    *,
    media_port: int | None = None,
    calls: int = 1,
    extra: Sequence[str] = (),
    trace_messages: bool = True,
) -> SippResult:
    """Run a SIPp UAC scenario against a peer on loopback."""
    return run_sipp(
        scenario,
        f"{LOOPBACK}:{peer_port}",
        service=CALLED,
        calls=calls,
        local_port=free_port_range(1)[0],
        media_port=media_port,
        timeout=20,
        extra=extra,
        trace_messages=trace_messages,
        workdir=tmp_path / "caller",
    )


@pytest.mark.e2e
@needs_sipp
@needs_raw
def test_uac_call_sends_speech_from_its_sdp_port_and_hears_the_echo(
    tmp_path: Path, speech: list[bytes]
) -> None:
    caller_media = free_port_range(4)[0]
    with (
        sipp_peer("uas_answer.xml", tmp_path, "-rtp_echo") as (port, peer_media),
        RtpCapture(peer_media) as to_peer,
        RtpCapture(caller_media) as to_caller,
    ):
        result = run_caller("uac_call.xml", port, tmp_path, media_port=caller_media)

    assert result.ok, result.summary()
    assert len(to_peer.packets) == SPEECH_PACKETS + 1
    assert {p.source for p in to_peer.packets} == {(LOOPBACK, caller_media)}
    assert audio_matches(speech, to_peer.payloads()).identical_fraction == 1.0
    assert audio_matches(speech, to_caller.payloads()).identical_fraction == 1.0


@pytest.mark.e2e
@needs_sipp
@needs_raw
def test_uac_call_runner_hangup_answers_the_far_end_bye(tmp_path: Path) -> None:
    with sipp_peer("uas_hangup.xml", tmp_path, "-d", "1000") as (port, _):
        result = run_caller("uac_call_runner_hangup.xml", port, tmp_path)

    assert result.ok, result.summary()
    received = [m for m in result.messages() if m.direction == "received"]
    assert received[-1].first_line.startswith("BYE ")


@pytest.mark.e2e
@needs_sipp
def test_uac_unknown_number_acks_the_404_on_the_invite_branch(tmp_path: Path) -> None:
    with sipp_peer("uas_404.xml", tmp_path) as (port, _):
        result = run_caller("uac_unknown_number.xml", port, tmp_path)

    assert result.ok, result.summary()
    sent = [m for m in result.messages() if m.direction == "sent"]
    invite, ack = message_starting(sent, "INVITE "), message_starting(sent, "ACK ")
    assert branch_of(ack) == branch_of(invite)
    assert ";tag=" in (ack.header("To") or "")


@pytest.mark.e2e
@needs_sipp
def test_uac_cancel_sends_cancel_and_ack_on_the_invite_branch(tmp_path: Path) -> None:
    with sipp_peer("uas_cancel.xml", tmp_path) as (port, _):
        result = run_caller("uac_cancel.xml", port, tmp_path)

    assert result.ok, result.summary()
    messages = result.messages()
    sent = [m for m in messages if m.direction == "sent"]
    received = [m.first_line for m in messages if m.direction == "received"]
    invite = message_starting(sent, "INVITE ")
    cancel, ack = message_starting(sent, "CANCEL "), message_starting(sent, "ACK ")
    assert branch_of(cancel) == branch_of(ack) == branch_of(invite)
    assert cancel.first_line.split()[1] == invite.first_line.split()[1]
    assert received[-2:] == ["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]


@pytest.mark.e2e
@needs_sipp
def test_uac_options_gets_200(tmp_path: Path) -> None:
    with sipp_peer("uas_options.xml", tmp_path) as (port, _):
        result = run_caller("uac_options.xml", port, tmp_path)

    assert result.ok, result.summary()
    assert result.successful == 1


@pytest.mark.e2e
@needs_sipp
def test_uac_load_places_many_calls_without_media(tmp_path: Path) -> None:
    with sipp_peer("uas_answer.xml", tmp_path, calls=20) as (port, _):
        result = run_caller(
            "uac_load.xml",
            port,
            tmp_path,
            calls=20,
            extra=["-r", "40", "-d", "200"],
            trace_messages=False,
        )

    assert result.ok, result.summary()
    assert (result.successful, result.failed) == (20, 0)


@pytest.mark.e2e
@needs_sipp
def test_a_scenario_fails_when_the_peer_answers_otherwise(tmp_path: Path) -> None:
    port = free_port_range(1)[0]
    with start_sipp(
        "uas_404.xml", local_port=port, timeout=10, workdir=tmp_path / "peer"
    ) as peer:
        result = run_caller(
            "uac_options.xml", port, tmp_path, extra=["-recv_timeout", "1000"]
        )
        peer.stop()

    assert not result.ok
    assert result.failed == 1


@pytest.mark.e2e
@needs_sipp
def test_run_sipp_reports_a_peer_that_never_answers(tmp_path: Path) -> None:
    silent_port = free_port_range(1)[0]

    result = run_sipp(
        "uac_options.xml",
        f"{LOOPBACK}:{silent_port}",
        local_port=free_port_range(1)[0],
        timeout=2,
        workdir=tmp_path,
    )

    assert not result.ok
    assert result.successful == 0


# ---------------------------------------------------------------------------
# baresip against SIPp peers, in a private network namespace
# ---------------------------------------------------------------------------


@contextmanager
def namespaced_peer(
    namespace: LoopbackNamespace, scenario: str, tmp_path: Path, *extra: str
) -> Iterator[int]:
    """Run a SIPp peer inside the namespace; yield its SIP port."""
    port = free_port_range(1)[0]
    with start_sipp(
        scenario,
        local_port=port,
        timeout=20,
        extra=list(extra),
        workdir=tmp_path / "peer",
        namespace=namespace,
    ) as peer:
        yield port
        result = peer.wait(10)
        assert result.ok, result.summary()


@pytest.fixture
def namespace() -> Iterator[LoopbackNamespace]:
    """A private network namespace with only loopback, for baresip and its peer."""
    with LoopbackNamespace() as created:
        yield created


@pytest.mark.e2e
@needs_sipp
@needs_baresip
def test_baresip_hears_its_own_speech_from_an_echoing_peer(
    tmp_path: Path, namespace: LoopbackNamespace
) -> None:
    agent = BaresipAgent(tmp_path / "baresip", namespace=namespace)
    with namespaced_peer(namespace, "uas_answer.xml", tmp_path, "-rtp_echo") as port:
        result = agent.call(f"sip:{CALLED}@{LOOPBACK}:{port}", seconds=5)

    assert result.status == 200, result.log[-3000:]
    assert result.provisional == [100, 180]
    assert not result.closed_by_peer
    assert len(result.received) > 4 * 8000
    assert correlate_pcm(speech_samples(), result.received).coefficient > 0.99
    assert correlate_pcm(speech_samples(), result.sent).coefficient > 0.99


@pytest.mark.e2e
@needs_sipp
@needs_baresip
def test_baresip_reports_the_404_of_a_rejecting_peer(
    tmp_path: Path, namespace: LoopbackNamespace
) -> None:
    agent = BaresipAgent(tmp_path / "baresip", namespace=namespace)
    with namespaced_peer(namespace, "uas_404.xml", tmp_path) as port:
        result = agent.call(f"sip:{CALLED}@{LOOPBACK}:{port}", seconds=1)

    assert result.status == 404
    assert not result.established
    assert result.received == []


@pytest.mark.e2e
@needs_sipp
@needs_baresip
def test_baresip_notices_the_far_end_hanging_up(
    tmp_path: Path, namespace: LoopbackNamespace
) -> None:
    agent = BaresipAgent(tmp_path / "baresip", namespace=namespace)
    with namespaced_peer(namespace, "uas_hangup.xml", tmp_path, "-d", "1000") as port:
        result = agent.call(f"sip:{CALLED}@{LOOPBACK}:{port}", seconds=10)

    assert result.status == 200
    assert result.closed_by_peer
    assert result.returncode == 0
