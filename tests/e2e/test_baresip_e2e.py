"""End-to-end test of the real router with a real SIP client: baresip.

baresip binds the wildcard address, so it runs in a private network namespace that
has only its own loopback; the router and the echo runner run in the same namespace
(see conftest.py). baresip plays the shipped speech and records what it hears: with
the echo runner behind the router, what it hears is what it said.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    ECHO_NUMBER,
    EchoRunnerProcess,
    RouterProcess,
    SeededStore,
    measure_echo,
    running_echo_runner,
    running_router,
    ulaw_bytes,
)
from tests.e2e.harness import (
    LOOPBACK,
    SPEECH_PCMU_PCAP,
    BaresipAgent,
    LoopbackNamespace,
    baresip_available,
    correlate_pcm,
    namespace_available,
    read_pcap_rtp_payloads,
    speech_samples,
)

__all__: list[str] = []

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (baresip_available() and namespace_available()),
        reason="needs baresip and root for a private network namespace",
    ),
]

# Seconds baresip stays in the call once answered: the 4.3 s of speech and the
# last of its echo.
CALL_SECONDS = 5.5
SAMPLE_RATE = 8000
# baresip must hear at least the speech's length back (4.3 s at 8 kHz).
MIN_RECEIVED_SAMPLES = 4 * SAMPLE_RATE
# 20 ms frames the router must have carried each way: 4 s of the 4.3 s of speech.
MIN_FRAMES = 200
# What baresip hears must be what it sent: nearly every 20 ms frame of the speech,
# sample for sample once aligned. (baresip's own audio source may send a packet late
# on a busy machine, which shifts the echo by a frame; the measures allow for that.)
MIN_IDENTICAL_FRACTION = 0.9
MIN_CORRELATION = 0.99
# Unrelated audio leaves the correlation near zero.
MAX_UNRELATED_CORRELATION = 0.3


@pytest.fixture
def namespace() -> Iterator[LoopbackNamespace]:
    """A private network namespace with only loopback."""
    with LoopbackNamespace() as created:
        yield created


@pytest.fixture
def namespaced_runner(
    tmp_path: Path, namespace: LoopbackNamespace
) -> Iterator[EchoRunnerProcess]:
    """An echo runner inside the namespace."""
    with running_echo_runner(tmp_path / "runner", namespace) as runner:
        yield runner


@pytest.fixture
def namespaced_router(
    tmp_path: Path, namespace: LoopbackNamespace, namespaced_runner: EchoRunnerProcess
) -> Iterator[RouterProcess]:
    """``sip-router run`` inside the namespace, ECHO_NUMBER on the echo runner."""
    store = SeededStore(tmp_path / "router.db")
    store.add_number(ECHO_NUMBER, store.add_pipe("echo", namespaced_runner.url()))
    with running_router(tmp_path / "router", store, namespace) as process:
        yield process


def test_baresip_call_is_answered_and_hears_its_own_speech(
    tmp_path: Path,
    namespace: LoopbackNamespace,
    namespaced_router: RouterProcess,
    namespaced_runner: EchoRunnerProcess,
) -> None:
    agent = BaresipAgent(tmp_path / "baresip", namespace=namespace)
    uri = f"sip:{ECHO_NUMBER}@{LOOPBACK}:{namespaced_router.sip_port}"

    result = agent.call(uri, seconds=CALL_SECONDS)
    status = namespaced_router.wait_until_idle()

    # The call: ringing, answered, and still up when baresip hung up.
    assert result.status == 200, result.log[-3000:]
    assert 180 in result.provisional, result.provisional
    assert not result.closed_by_peer, result.reason
    # Audio both ways: what baresip heard is what it sent.
    assert correlate_pcm(speech_samples(), result.sent).coefficient > MIN_CORRELATION
    assert len(result.received) > MIN_RECEIVED_SAMPLES
    # baresip decodes μ-law exactly, so encoding its recording again gives the bytes.
    received = [ulaw_bytes(result.received)]
    heard = measure_echo(read_pcap_rtp_payloads(SPEECH_PCMU_PCAP), received)
    assert heard.match.identical_fraction >= MIN_IDENTICAL_FRACTION, heard
    assert heard.median_correlation >= MIN_CORRELATION, heard
    backwards = ulaw_bytes(speech_samples()[::-1])
    unrelated = measure_echo(
        [backwards[i : i + 160] for i in range(0, len(backwards), 160)], received
    )
    assert unrelated.match.identical_frames == 0, unrelated
    assert unrelated.median_correlation < MAX_UNRELATED_CORRELATION, unrelated
    # The router took baresip's RTP to the runner and the runner's media back.
    sessions = namespaced_router.events("runner session closed")
    assert len(sessions) == 1, namespaced_router.log_tail()
    assert sessions[0]["frames_sent"] >= MIN_FRAMES, sessions[0]
    assert sessions[0]["media_received"] >= MIN_FRAMES, sessions[0]
    assert len(namespaced_runner.sessions_started()) == 1
    # baresip's BYE ended the call on the router too.
    assert status["active_calls"] == 0 and status["rtp_ports_in_use"] == 0, status
