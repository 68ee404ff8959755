"""The compiled load generator (``bench/rtpload.c``): build it, feed it speech, run it.

The generator places calls over UDP SIP and, in media mode, streams 20 ms
PCMU frames of the shipped speech with a stamp in the first 8 payload bytes
(frame counter, call tag), so every echoed frame is matched to the moment it
was sent. It prints one JSON object; :func:`run_generator` returns it parsed.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.system import REPO, BenchError

__all__ = [
    "BUILD_DIR",
    "GENERATOR_SOURCE",
    "GeneratorLoad",
    "build_generator",
    "run_generator",
    "speech_frames_file",
]

BENCH_DIR = REPO / "bench"
BUILD_DIR = BENCH_DIR / "build"
GENERATOR_SOURCE = BENCH_DIR / "rtpload.c"
GENERATOR_BINARY = BUILD_DIR / "rtpload"
SPEECH_PCAP = REPO / "sipp-scenarios" / "speech-pcmu.pcap"
SPEECH_FRAMES = BUILD_DIR / "speech-pcmu.frames"

# RFC 3551 §4.5.14: 20 ms of PCMU at 8000 Hz.
FRAME_BYTES = 160
# RFC 3550 §5.1: the fixed RTP header.
RTP_HEADER = 12
# Classic pcap: 24-byte file header, 16-byte record headers; Ethernet + IPv4 + UDP.
PCAP_HEADER = 24
PCAP_RECORD_HEADER = 16
ETHERNET_HEADER = 14
UDP_HEADER = 8
# Time the generator gets beyond its own schedule before it is killed.
GENERATOR_GRACE_S = 30.0


def build_generator() -> Path:
    """Compile the generator with the system ``cc`` unless it is up to date.

    Raises:
        BenchError: there is no C compiler, or the build failed.
    """
    if (
        GENERATOR_BINARY.exists()
        and GENERATOR_BINARY.stat().st_mtime >= GENERATOR_SOURCE.stat().st_mtime
    ):
        return GENERATOR_BINARY
    compiler = shutil.which("cc")
    if compiler is None:
        raise BenchError("no C compiler (cc) to build the load generator")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    command = [compiler, "-O2", "-Wall", "-o", str(GENERATOR_BINARY)]
    result = subprocess.run(
        [*command, str(GENERATOR_SOURCE)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise BenchError(f"building the load generator failed:\n{result.stderr}")
    return GENERATOR_BINARY


def speech_frames_file() -> Path:
    """Write the shipped speech as back-to-back 160-byte PCMU frames; return the file.

    Raises:
        BenchError: the speech capture is missing or holds no PCMU frames.
    """
    if SPEECH_FRAMES.exists():
        return SPEECH_FRAMES
    frames = _pcap_payloads(SPEECH_PCAP.read_bytes())
    if not frames:
        raise BenchError(f"{SPEECH_PCAP.name}: no 20 ms PCMU frames found")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    SPEECH_FRAMES.write_bytes(b"".join(frames))
    return SPEECH_FRAMES


def _pcap_payloads(blob: bytes) -> list[bytes]:
    """The 160-byte PCMU payloads of a little-endian Ethernet/IPv4/UDP pcap."""
    if len(blob) < PCAP_HEADER or blob[:4] != b"\xd4\xc3\xb2\xa1":
        raise BenchError(f"{SPEECH_PCAP.name}: not a little-endian classic pcap")
    frames, offset = [], PCAP_HEADER
    while offset + PCAP_RECORD_HEADER <= len(blob):
        caplen = struct.unpack_from("<I", blob, offset + 8)[0]
        packet = blob[
            offset + PCAP_RECORD_HEADER : offset + PCAP_RECORD_HEADER + caplen
        ]
        offset += PCAP_RECORD_HEADER + caplen
        ip_header = (packet[ETHERNET_HEADER] & 0x0F) * 4
        rtp = packet[ETHERNET_HEADER + ip_header + UDP_HEADER :]
        # RFC 3551 §6: payload type 0 is PCMU.
        if len(rtp) == RTP_HEADER + FRAME_BYTES and rtp[1] & 0x7F == 0:
            frames.append(rtp[RTP_HEADER:])
    return frames


@dataclass(frozen=True)
class GeneratorLoad:
    """One run of the generator.

    Attributes:
        calls: calls to place.
        rate: calls placed (and hung up) per second.
        media: stream speech and match echoes (bridged calls), or signalling only.
        window_s: length of the measured window (media mode).
        warmup_s: time between the last answer and the window.
        drain_s: time after the window for late echoes, before the BYEs.
        hold_s: signalling mode: seconds from each answer to its BYE.
        late_ms: an echo later than this after its frame was sent is late.
    """

    calls: int
    rate: float
    media: bool = True
    window_s: float = 10.0
    warmup_s: float = 2.0
    drain_s: float = 1.0
    hold_s: float = 0.0
    late_ms: float = 40.0

    @property
    def expected_s(self) -> float:
        """How long the run should take when the peer keeps up."""
        setup = self.calls / self.rate
        if self.media:
            return 2 * setup + self.warmup_s + self.window_s + self.drain_s
        return setup + self.hold_s


def run_generator(
    target: tuple[str, int],
    load: GeneratorLoad,
    *,
    core: int | None,
    watch: tuple[int, ...] = (),
    log_path: Path,
    latency_log: Path | None = None,
) -> dict[str, Any]:
    """Run the generator against ``target`` and return its JSON report.

    Args:
        target: the SIP address of the peer that answers the calls.
        load: what to place.
        core: the core to pin the generator to (None: not pinned).
        watch: PIDs whose CPU time and RSS are sampled at the window's edges.
        log_path: where the generator's progress lines go.
        latency_log: where to write every echo's latency, one line each
            (``call frame sent_ns latency_ns``), for a closer look at a step.

    Raises:
        BenchError: the generator failed or printed no report.
    """
    binary = build_generator()
    argv = [str(binary), "--target", f"{target[0]}:{target[1]}"]
    argv += ["--calls", str(load.calls), "--rate", f"{load.rate:g}"]
    argv += [
        "--media",
        "1" if load.media else "0",
        "--frames",
        str(speech_frames_file()),
    ]
    argv += ["--window", f"{load.window_s:g}", "--warmup", f"{load.warmup_s:g}"]
    argv += ["--drain", f"{load.drain_s:g}", "--hold", f"{load.hold_s:g}"]
    argv += ["--late-ms", f"{load.late_ms:g}"]
    for pid in watch:
        argv += ["--watch", str(pid)]
    if latency_log is not None:
        argv += ["--latency-log", str(latency_log)]
    if core is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(core), *argv]
    timeout = load.expected_s + GENERATOR_GRACE_S
    with log_path.open("wb") as log:
        try:
            result = subprocess.run(
                argv, stdout=subprocess.PIPE, stderr=log, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise BenchError(
                f"the load generator did not finish in {timeout:.0f} s"
            ) from error
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise BenchError(
            f"the load generator exited {result.returncode} without a report:\n"
            + log_path.read_text(errors="replace")[-2000:]
        ) from error
    return report
