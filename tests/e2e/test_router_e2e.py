"""End-to-end tests of the real router: SIPp plays the carrier, the echo runner the agent.

The router runs as ``sip-router run`` on a store seeded through the command line (see
conftest.py); SIPp places the calls with the shipped scenarios, and what the router
sends back to SIPp's media port is captured on ``lo`` and compared with the speech
SIPp sent. ``sip-router demo`` is started and called the way the README says.
"""

from __future__ import annotations

import shlex
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    ECHO_NUMBER,
    HANGUP_NUMBER,
    RUNNER_HANGUP_AFTER_S,
    SLOW_NUMBER,
    SLOW_RUNNER_DELAY_S,
    UNKNOWN_NUMBER,
    EchoMeasures,
    RouterProcess,
    RouterUnderTest,
    g711_reference,
    measure_echo,
    sip_router_command,
)
from tests.e2e.harness import (
    LOOPBACK,
    SIPP_SCENARIOS,
    SPEECH_PCMA_PCAP,
    SPEECH_PCMU_PCAP,
    RtpCapture,
    RtpPacket,
    SippMessage,
    SippResult,
    alaw_to_linear,
    free_port_range,
    raw_capture_available,
    read_pcap_rtp_payloads,
    run_sipp,
    sipp_available,
    start_sipp,
    ulaw_to_linear,
)

__all__: list[str] = []

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sipp_available(), reason="sipp is not installed"),
    # SIPp's play_pcap_audio and our capture both open raw sockets.
    pytest.mark.skipif(
        not raw_capture_available(), reason="raw sockets need root or CAP_NET_RAW"
    ),
]

# SIPp gives up on a call after this long. The longest scenario here lasts about
# 6.5 s (4.3 s of speech, then 1 s, then BYE); a call that hangs fails soon after.
SIPP_TIMEOUT_S = 15.0
# 4.28 s of speech in the shipped pcap: 215 packets of 20 ms.
SPEECH_PACKETS = 215
# RFC 3551 §6: static payload types of G.711.
PCMU, PCMA = 0, 8
# The echoed speech must come back almost whole: at most a few 20 ms frames lost
# on loopback, and sample for sample the same audio once decoded.
MIN_IDENTICAL_FRACTION = 0.95
MIN_CORRELATION = 0.99
# Unrelated audio leaves the decoded correlation near zero: reversed speech and
# noise measure < 0.3 here; the same words in the other G.711 law, read in the
# wrong one, about 0.8.
MAX_UNRELATED_CORRELATION = 0.3
MAX_WRONG_LAW_CORRELATION = 0.9
# How long the router gets to report the call as active once SIPp has started it.
CALL_UP_TIMEOUT_S = 5.0


# ---------------------------------------------------------------------------
# Placing calls
# ---------------------------------------------------------------------------


@dataclass
class PlacedCall:
    """What one SIPp call against the router showed."""

    result: SippResult
    packets: list[RtpPacket]  # RTP that arrived at SIPp's media port, in order
    during: dict[str, Any] | None  # /v1/status once the call was up
    after: dict[str, Any]  # /v1/status once the router was idle again
    seconds: float  # how long SIPp ran

    def payloads(self) -> list[bytes]:
        """The RTP payloads the router sent SIPp."""
        return [packet.payload for packet in self.packets]

    def received(self) -> list[str]:
        """Start lines of the messages SIPp received, in order."""
        return [
            m.first_line for m in self.result.messages() if m.direction == "received"
        ]

    def sent(self, method: str) -> SippMessage:
        """The first request of this method that SIPp sent."""
        sent = [m for m in self.result.messages() if m.direction == "sent"]
        return next(m for m in sent if m.first_line.startswith(f"{method} "))

    @property
    def sip_call_id(self) -> str:
        """The Call-ID SIPp gave the call."""
        return self.sent("INVITE").header("Call-ID") or ""


def place_call(
    router: RouterProcess,
    scenario: str,
    number: str,
    workdir: Path,
    *,
    watch: bool = False,
    tcp: bool = False,
) -> PlacedCall:
    """Run one SIPp call to ``number``, capturing the RTP it receives.

    With ``watch``, /v1/status is also read once the router reports the call;
    with ``tcp``, SIPp sends its SIP over one TCP connection instead of UDP.
    """
    media_port = free_port_range(4)[0]
    started = time.monotonic()
    with (
        RtpCapture(media_port) as capture,
        start_sipp(
            scenario,
            router.sip_target,
            service=number,
            local_port=free_port_range(1, tcp=tcp)[0],
            media_port=media_port,
            timeout=SIPP_TIMEOUT_S,
            extra=["-t", "t1"] if tcp else [],
            workdir=workdir,
        ) as sipp,
    ):
        during = None
        if watch:
            during = router.wait_for_status(
                lambda status: status["active_calls"] > 0, CALL_UP_TIMEOUT_S
            )
        result = sipp.wait()
    seconds = time.monotonic() - started
    after = router.wait_until_idle()
    return PlacedCall(result, capture.snapshot(), during, after, seconds)


def assert_idle(call: PlacedCall, router: RouterProcess) -> None:
    """The call is over on the router: no call active, no RTP port held."""
    assert call.after["active_calls"] == 0, (call.after, router.log_tail())
    assert call.after["rtp_ports_in_use"] == 0, (call.after, router.log_tail())


def through_ulaw(alaw_frames: list[bytes]) -> list[bytes]:
    """A-law frames as they come back after a trip through μ-law and back.

    The runner dialect is μ-law (audio/x-mulaw), so an A-law caller's audio is
    transcoded twice on its way through the echo; 16 of the 256 A-law codes have
    no μ-law twin and come back one step off. Nearest-value re-encoding with an
    independent encoder predicts the exact bytes.
    """
    ref = g711_reference()
    return [
        bytes(
            ref.linear_to_alaw(ulaw_to_linear(ref.linear_to_ulaw(alaw_to_linear(c))))
            for c in frame
        )
        for frame in alaw_frames
    ]


def pcma_only_scenario(directory: Path) -> Path:
    """Write a copy of uac_call.xml that offers only PCMA and plays the PCMA speech.

    Raises:
        AssertionError: uac_call.xml no longer has the lines this rewrites.
    """
    text = (SIPP_SCENARIOS / "uac_call.xml").read_text()
    edits = {
        "RTP/AVP 0 8 101": "RTP/AVP 8 101",
        "      a=rtpmap:0 PCMU/8000\n": "",
        'play_pcap_audio="speech-pcmu.pcap"': f'play_pcap_audio="{SPEECH_PCMA_PCAP}"',
    }
    for old, new in edits.items():
        assert text.count(old) == 1, f"uac_call.xml changed: {old!r}"
        text = text.replace(old, new)
    path = directory / "uac_call_pcma.xml"
    path.write_text(text)
    return path


def assert_echo_of(measures: EchoMeasures, call: PlacedCall) -> None:
    """The router sent back the speech that was sent (see MIN_* above)."""
    detail = f"{measures}; {len(call.packets)} packets\n{call.result.summary()}"
    assert measures.match.identical_fraction >= MIN_IDENTICAL_FRACTION, detail
    assert measures.median_correlation >= MIN_CORRELATION, detail


def assert_from_one_router_port(
    call: PlacedCall, router: RouterProcess, pt: int
) -> None:
    """Every packet is of payload type ``pt`` and came from one router RTP port."""
    sources = {packet.source for packet in call.packets}
    assert len(sources) == 1, sources
    host, port = sources.pop()
    assert host == LOOPBACK
    assert port in router.rtp_ports
    assert {packet.payload_type for packet in call.packets} == {pt}
    assert len({packet.ssrc for packet in call.packets}) == 1


# ---------------------------------------------------------------------------
# Speech is echoed back: PCMU, PCMA, SIP over TCP
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pcmu_call(
    router: RouterUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> PlacedCall:
    """One answered call with speech (uac_call.xml), hung up by the caller."""
    workdir = tmp_path_factory.mktemp("pcmu-call")
    return place_call(router.process, "uac_call.xml", ECHO_NUMBER, workdir, watch=True)


def test_pcmu_call_hears_its_own_speech_echoed(
    pcmu_call: PlacedCall, router: RouterUnderTest
) -> None:
    sent = read_pcap_rtp_payloads(SPEECH_PCMU_PCAP)

    measures = measure_echo(sent, pcmu_call.payloads(), law="pcmu")

    assert pcmu_call.result.ok, pcmu_call.result.summary()
    assert len(pcmu_call.packets) >= SPEECH_PACKETS
    assert_from_one_router_port(pcmu_call, router.process, PCMU)
    assert_echo_of(measures, pcmu_call)


def test_pcma_only_offer_is_answered_in_pcma_and_hears_its_speech(
    router: RouterUnderTest, tmp_path: Path
) -> None:
    scenario = pcma_only_scenario(tmp_path)
    sent = read_pcap_rtp_payloads(SPEECH_PCMA_PCAP)

    call = place_call(router.process, str(scenario), ECHO_NUMBER, tmp_path / "sipp")

    assert call.result.ok, call.result.summary()
    answer = next(m for m in call.result.messages() if m.first_line == "SIP/2.0 200 OK")
    assert "RTP/AVP 8" in answer.text and "PCMU" not in answer.text, answer.text
    assert len(call.packets) >= SPEECH_PACKETS
    assert_from_one_router_port(call, router.process, PCMA)
    assert_echo_of(measure_echo(through_ulaw(sent), call.payloads(), law="pcma"), call)
    assert_idle(call, router.process)


def test_call_over_tcp_is_answered_on_its_connection_and_echoed(
    router: RouterUnderTest, tmp_path: Path
) -> None:
    sent = read_pcap_rtp_payloads(SPEECH_PCMU_PCAP)

    call = place_call(router.process, "uac_call.xml", ECHO_NUMBER, tmp_path, tcp=True)

    assert call.result.ok, f"{call.result.summary()}\n{router.process.log_tail()}"
    # RFC 3261 §18.2.2: responses go back on the connection the request came on.
    assert call.received()[-1] == "SIP/2.0 200 OK"
    assert_echo_of(measure_echo(sent, call.payloads(), law="pcmu"), call)
    assert_idle(call, router.process)


def test_the_echo_does_not_match_other_audio(pcmu_call: PlacedCall) -> None:
    """The comparison that passes above can fail: other audio scores low."""
    speech = b"".join(read_pcap_rtp_payloads(SPEECH_PCMU_PCAP))
    backwards = speech[::-1]
    other_speech = [backwards[i : i + 160] for i in range(0, len(backwards), 160)]
    # The same words in A-law are other bytes, and other audio when read as μ-law.
    other_pcap = read_pcap_rtp_payloads(SPEECH_PCMA_PCAP)

    reversed_speech = measure_echo(other_speech, pcmu_call.payloads(), law="pcmu")
    wrong_law = measure_echo(other_pcap, pcmu_call.payloads(), law="pcmu")

    assert reversed_speech.match.identical_frames == 0, reversed_speech
    assert reversed_speech.median_correlation < MAX_UNRELATED_CORRELATION, (
        reversed_speech
    )
    assert not reversed_speech.match.matched, reversed_speech
    assert wrong_law.match.identical_frames == 0, wrong_law
    assert wrong_law.median_correlation < MAX_WRONG_LAW_CORRELATION, wrong_law
    assert not wrong_law.match.matched, wrong_law


# ---------------------------------------------------------------------------
# Unknown number, CANCEL while ringing, OPTIONS
# ---------------------------------------------------------------------------


def test_unknown_number_is_answered_404(
    router: RouterUnderTest, tmp_path: Path
) -> None:
    call = place_call(
        router.process, "uac_unknown_number.xml", UNKNOWN_NUMBER, tmp_path
    )

    assert call.result.ok, call.result.summary()
    assert call.received()[-1] == "SIP/2.0 404 Not Found"
    assert call.packets == []
    assert_idle(call, router.process)


def test_cancel_while_ringing_answers_487_and_the_runner_never_starts(
    router: RouterUnderTest, tmp_path: Path
) -> None:
    started = time.monotonic()

    call = place_call(router.process, "uac_cancel.xml", SLOW_NUMBER, tmp_path)
    # Let the slow runner finish its delayed handshake: a router that kept the
    # connection would now send `start`.
    time.sleep(max(0.0, started + SLOW_RUNNER_DELAY_S + 1.0 - time.monotonic()))

    assert call.result.ok, call.result.summary()
    assert call.received()[-2:] == ["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]
    router_calls = router.process.events("call_state", sip_call_id=call.sip_call_id)
    assert router_calls, router.process.log_tail()
    call_sid = router_calls[0]["call_id"]
    assert router.runner.sessions_started(call_id=call_sid) == []
    assert router.runner.sessions_started(pipe_id=router.pipe_of[SLOW_NUMBER]) == []
    assert_idle(call, router.process)
    assert router.process.status()["active_calls"] == 0


def test_options_is_answered_200_with_allow(
    router: RouterUnderTest, tmp_path: Path
) -> None:
    call = place_call(router.process, "uac_options.xml", ECHO_NUMBER, tmp_path)

    assert call.result.ok, call.result.summary()
    answer = [m for m in call.result.messages() if m.direction == "received"]
    assert [m.first_line for m in answer] == ["SIP/2.0 200 OK"]
    # RFC 3261 §11.2: the answer to OPTIONS SHOULD list the methods in Allow.
    assert "INVITE" in (answer[0].header("Allow") or ""), answer[0].text


# ---------------------------------------------------------------------------
# Hang-up from either side leaves nothing behind
# ---------------------------------------------------------------------------


def test_caller_bye_ends_the_call_and_frees_its_ports(
    pcmu_call: PlacedCall, router: RouterUnderTest
) -> None:
    assert pcmu_call.result.ok, pcmu_call.result.summary()
    assert pcmu_call.received()[-1] == "SIP/2.0 200 OK"  # the answer to the BYE
    assert pcmu_call.during is not None
    assert pcmu_call.during["active_calls"] == 1, pcmu_call.during
    assert pcmu_call.during["rtp_ports_in_use"] >= 1, pcmu_call.during
    assert_idle(pcmu_call, router.process)


def test_runner_hangup_sends_bye_and_frees_the_call(
    router: RouterUnderTest, tmp_path: Path
) -> None:
    call = place_call(
        router.process,
        "uac_call_runner_hangup.xml",
        HANGUP_NUMBER,
        tmp_path,
        watch=True,
    )

    assert call.result.ok, call.result.summary()
    assert call.received()[-1].startswith("BYE sip:"), call.received()
    assert call.during is not None and call.during["active_calls"] == 1, call.during
    # The BYE came from the runner's hangup, well before the speech had finished.
    assert call.seconds < RUNNER_HANGUP_AFTER_S + 4.0
    router_calls = router.process.events("call_state", sip_call_id=call.sip_call_id)
    assert router_calls, router.process.log_tail()
    call_sid = router_calls[0]["call_id"]
    assert router.runner.events("echo runner hanging up", call_id=call_sid)
    assert_idle(call, router.process)


# ---------------------------------------------------------------------------
# `sip-router demo`, called as it says
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PrintedCall:
    """The SIPp command ``sip-router demo`` prints, taken apart."""

    scenario: Path
    number: str
    target: str
    local_ip: str


def printed_sipp_command(output: str) -> PrintedCall:
    """Find the ``sipp …`` command in the demo's output and read its arguments."""
    joined = output.replace("\\\n", " ")  # the command is continued with backslashes
    line = next(
        line for line in joined.splitlines() if line.strip().startswith("sipp ")
    )
    words = iter(shlex.split(line)[1:])
    options: dict[str, str] = {}
    targets = []
    for word in words:
        # Every SIPp option in the printed line takes a value but -bind_local; the
        # rest is the target.
        if word == "-bind_local":
            options[word] = ""
        elif word.startswith("-"):
            options[word] = next(words, "")
        else:
            targets.append(word)
    assert options.keys() >= {"-sf", "-s", "-i"}, line
    assert len(targets) == 1, line
    return PrintedCall(Path(options["-sf"]), options["-s"], targets[0], options["-i"])


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[RouterProcess]:
    """``sip-router demo`` with its ports set through ROUTER_* and flags, --db in tmp."""
    runner_port = free_port_range(1, tcp=True)[0]
    argv = [*sip_router_command(), "demo", "--db", str(tmp_path / "demo.db")]
    argv += ["--runner-port", str(runner_port)]
    process = RouterProcess(tmp_path, argv=argv, name="demo")
    try:
        process.start()
        yield process
    finally:
        running = process.running()
        # The README stops the demo with Ctrl-C.
        code = process.stop(signal.SIGINT)
    assert running, process.log_tail()
    assert code == 0, process.log_tail()


def test_demo_answers_the_call_it_prints(demo: RouterProcess, tmp_path: Path) -> None:
    demo.wait_for_output("Ctrl-C stops the demo")
    printed = printed_sipp_command(demo.output())
    assert printed.scenario == SIPP_SCENARIOS / "uac_call.xml"
    assert printed.target == demo.sip_target
    assert printed.local_ip == LOOPBACK
    media_port = free_port_range(4)[0]

    # run_sipp adds the loopback-only options the README lists (-mi, -bind_local, -ci)
    # and picks free ports in place of -p 5070.
    with RtpCapture(media_port) as capture:
        result = run_sipp(
            str(printed.scenario),
            printed.target,
            service=printed.number,
            local_port=free_port_range(1)[0],
            media_port=media_port,
            timeout=SIPP_TIMEOUT_S,
            workdir=tmp_path / "sipp",
        )
    status = demo.wait_until_idle()

    assert result.ok, f"{result.summary()}\n{demo.log_tail()}"
    assert (result.successful, result.failed) == (1, 0)
    assert (tmp_path / "demo.db").is_file()
    echo = measure_echo(read_pcap_rtp_payloads(SPEECH_PCMU_PCAP), capture.payloads())
    assert echo.match.identical_fraction >= MIN_IDENTICAL_FRACTION, echo
    assert status["active_calls"] == 0 and status["rtp_ports_in_use"] == 0, status
