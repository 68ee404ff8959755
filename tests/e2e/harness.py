"""Helpers for end-to-end tests: SIPp, RTP capture, audio comparison and baresip.

Everything here binds to and sends on loopback only, on ports chosen free at the
time of the call. The pieces:

* ports: :func:`free_udp_port`, :func:`free_tcp_port`, :func:`free_port_range`;
* SIPp: :func:`run_sipp` (blocking) and :func:`start_sipp` (a background peer,
  e.g. a UAS), both returning a :class:`SippResult` with the parsed call counts;
* RTP: :class:`RtpCapture` records what arrives at a UDP port even while another
  process (SIPp) owns it, through an ``AF_PACKET`` socket on ``lo`` (needs root
  or ``CAP_NET_RAW``); :func:`read_pcap_rtp_payloads` reads the shipped speech;
* audio: :func:`audio_matches` decides whether received μ-law contains the sent
  speech, :func:`correlate_pcm` does the same for linear samples;
* baresip: :class:`BaresipAgent` places one call from a real SIP client, plays
  a WAV into it and returns what it heard.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import operator
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "LOOPBACK",
    "SIPP_SCENARIOS",
    "SPEECH_PCMA_PCAP",
    "SPEECH_PCMU_PCAP",
    "BaresipAgent",
    "BaresipError",
    "BaresipResult",
    "CaptureUnavailable",
    "Correlation",
    "HarnessError",
    "LoopbackNamespace",
    "MatchResult",
    "RtpCapture",
    "RtpPacket",
    "SippMessage",
    "SippProcess",
    "SippResult",
    "alaw_to_linear",
    "audio_matches",
    "baresip_available",
    "correlate_pcm",
    "decode_g711",
    "free_port_range",
    "free_tcp_port",
    "free_udp_port",
    "namespace_available",
    "raw_capture_available",
    "read_pcap_rtp",
    "read_pcap_rtp_payloads",
    "read_wav_samples",
    "run_sipp",
    "sipp_available",
    "speech_samples",
    "start_sipp",
    "ulaw_to_linear",
    "write_wav_samples",
]

LOOPBACK = "127.0.0.1"
SIPP_SCENARIOS = Path(__file__).resolve().parents[2] / "sipp-scenarios"
SPEECH_PCMU_PCAP = SIPP_SCENARIOS / "speech-pcmu.pcap"
SPEECH_PCMA_PCAP = SIPP_SCENARIOS / "speech-pcma.pcap"

# RFC 3551 §4.5.14: G.711 samples at 8000 Hz.
SAMPLE_RATE = 8000

# Port ranges: pick test ports below Linux's default ephemeral range
# (net.ipv4.ip_local_port_range = 32768-60999) so the kernel does not hand the
# same port to some other socket between our check and SIPp's bind.
PORT_RANGE_FLOOR = 20000
PORT_RANGE_CEILING = 32000
PORT_RANGE_ATTEMPTS = 200

# SIPp's embedded scenarios (sipp -h, "-sn").
SIPP_EMBEDDED_SCENARIOS = frozenset({"uac", "uas", "regexp", "branchc", "branchs"})
# SIPp binds its media port and the port two above it (audio and video echo).
SIPP_MEDIA_PORTS = 4
# Time SIPp gets beyond its own -timeout before we kill it.
SIPP_KILL_GRACE_S = 5.0
# Time SIPp gets to parse its scenario and bind its SIP port.
SIPP_BIND_TIMEOUT_S = 5.0


class HarnessError(Exception):
    """A test tool could not be started or used as asked."""


class CaptureUnavailable(HarnessError):
    """Raw packet capture needs root or CAP_NET_RAW, which this process lacks."""


class BaresipError(HarnessError):
    """baresip did not start, or its control socket failed."""


# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------


def free_udp_port(host: str = LOOPBACK) -> int:
    """Return a UDP port on host that is free at the time of the call."""
    with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_tcp_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on host that is free at the time of the call."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_range(
    n: int, host: str = LOOPBACK, *, tcp: bool = False
) -> tuple[int, int]:
    """Return (lo, hi), both inclusive, of n consecutive free UDP ports.

    lo is even, as RTP wants (RFC 3550 §11: RTP on an even port, RTCP on the
    next odd one). With tcp=True the ports must be free for TCP as well.

    Raises:
        HarnessError: no free range was found.
    """
    for _ in range(PORT_RANGE_ATTEMPTS):
        lo = random.randrange(PORT_RANGE_FLOOR, PORT_RANGE_CEILING - n) & ~1
        if all(_port_is_free(host, port, tcp) for port in range(lo, lo + n)):
            return lo, lo + n - 1
    raise HarnessError(f"no {n} consecutive free ports on {host}")


def _family(host: str) -> socket.AddressFamily:
    """Return the address family of a literal IP address."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _port_is_free(host: str, port: int, tcp: bool) -> bool:
    """Tell whether port can be bound on host for UDP (and TCP if asked)."""
    kinds = [socket.SOCK_DGRAM, socket.SOCK_STREAM] if tcp else [socket.SOCK_DGRAM]
    for kind in kinds:
        with socket.socket(_family(host), kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


# ---------------------------------------------------------------------------
# G.711 and WAV files
# ---------------------------------------------------------------------------


def ulaw_to_linear(code: int) -> int:
    """Decode one G.711 μ-law byte to a signed 16-bit sample."""
    code = ~code & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return -magnitude if code & 0x80 else magnitude


def alaw_to_linear(code: int) -> int:
    """Decode one G.711 A-law byte to a signed 16-bit sample."""
    code ^= 0x55
    segment = (code & 0x70) >> 4
    magnitude = (code & 0x0F) << 4
    magnitude = magnitude + 8 if segment == 0 else (magnitude + 0x108) << (segment - 1)
    return magnitude if code & 0x80 else -magnitude


_ULAW_TABLE = tuple(ulaw_to_linear(code) for code in range(256))
_ALAW_TABLE = tuple(alaw_to_linear(code) for code in range(256))


def decode_g711(data: bytes, law: str = "pcmu") -> list[int]:
    """Decode PCMU ("pcmu") or PCMA ("pcma") bytes to 16-bit samples."""
    table = _ULAW_TABLE if law == "pcmu" else _ALAW_TABLE
    return [table[code] for code in data]


def read_wav_samples(path: Path) -> list[int]:
    """Read a mono 16-bit PCM WAV file and return its samples.

    Raises:
        HarnessError: the file is not mono 16-bit PCM.
    """
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise HarnessError(f"{path}: need mono 16-bit PCM")
        frames = wav.readframes(wav.getnframes())
    count = len(frames) // 2
    return list(struct.unpack(f"<{count}h", frames[: count * 2]))


def write_wav_samples(
    path: Path, samples: Sequence[int], rate: int = SAMPLE_RATE
) -> None:
    """Write samples as a mono 16-bit PCM WAV file."""
    clipped = [max(-32768, min(32767, int(s))) for s in samples]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(struct.pack(f"<{len(clipped)}h", *clipped))


def speech_samples() -> list[int]:
    """Return the shipped speech (speech-pcmu.pcap) as 8 kHz 16-bit samples."""
    return decode_g711(b"".join(read_pcap_rtp_payloads(SPEECH_PCMU_PCAP)))


# ---------------------------------------------------------------------------
# Packets: IP/UDP/RTP parsing and pcap files
# ---------------------------------------------------------------------------

# RFC 3550 §5.1: fixed header length and version.
RTP_HEADER_LEN = 12
RTP_VERSION = 2
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
IPPROTO_UDP = 17


@dataclass(frozen=True)
class RtpPacket:
    """One RTP packet seen on the wire or read from a capture file."""

    source: tuple[str, int]
    destination: tuple[str, int]
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    arrival: float  # time.monotonic() for live captures, file time for pcaps


@dataclass(frozen=True)
class _Datagram:
    """A UDP datagram taken out of an IP packet."""

    source: tuple[str, int]
    destination: tuple[str, int]
    payload: bytes


def _parse_ip_udp(packet: bytes) -> _Datagram | None:
    """Return the UDP datagram in an IPv4 or IPv6 packet, or None if there is none."""
    if len(packet) < 1:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        header_len = (packet[0] & 0x0F) * 4
        fragment = struct.unpack_from("!H", packet, 6)[0] & 0x1FFF
        if packet[9] != IPPROTO_UDP or fragment:
            return None
        source_ip = socket.inet_ntop(socket.AF_INET, packet[12:16])
        destination_ip = socket.inet_ntop(socket.AF_INET, packet[16:20])
    elif version == 6 and len(packet) >= 40:
        # Limitation: IPv6 extension headers are not walked; loopback RTP has none.
        header_len = 40
        if packet[6] != IPPROTO_UDP:
            return None
        source_ip = socket.inet_ntop(socket.AF_INET6, packet[8:24])
        destination_ip = socket.inet_ntop(socket.AF_INET6, packet[24:40])
    else:
        return None
    udp = packet[header_len:]
    if len(udp) < 8:
        return None
    source_port, destination_port, length = struct.unpack_from("!HHH", udp)
    payload = udp[8:length] if length >= 8 else b""
    return _Datagram(
        (source_ip, source_port), (destination_ip, destination_port), payload
    )


def _parse_rtp(datagram: _Datagram, arrival: float) -> RtpPacket | None:
    """Parse an RTP packet (RFC 3550 §5.1), or return None if it is not one."""
    data = datagram.payload
    if len(data) < RTP_HEADER_LEN or data[0] >> 6 != RTP_VERSION:
        return None
    # RFC 5761 §4: a second byte of 192-223 is an RTCP packet type, not
    # the marker bit and a payload type.
    if 192 <= data[1] <= 223:
        return None
    offset = RTP_HEADER_LEN + 4 * (data[0] & 0x0F)  # CSRC list
    if data[0] & 0x10:  # RFC 3550 §5.3.1: header extension
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    end = len(data)
    if data[0] & 0x20 and end > offset:  # RFC 3550 §5.1: padding, count in last byte
        end -= data[-1]
    if end < offset:
        return None
    sequence, timestamp, ssrc = struct.unpack_from("!HII", data, 2)
    return RtpPacket(
        source=datagram.source,
        destination=datagram.destination,
        payload_type=data[1] & 0x7F,
        marker=bool(data[1] & 0x80),
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=data[offset:end],
        arrival=arrival,
    )


# pcap link types (tcpdump.org link-layer header types) and where IP starts.
_PCAP_LINK_OFFSETS = {1: 14, 101: 0, 113: 16, 228: 0, 229: 0}
_PCAP_MAGICS = {
    0xA1B2C3D4: ("<", 1e-6),
    0xD4C3B2A1: (">", 1e-6),
    0xA1B23C4D: ("<", 1e-9),
    0x4D3CB2A1: (">", 1e-9),
}


def _pcap_records(blob: bytes, path: Path) -> Iterator[tuple[float, bytes]]:
    """Yield (time, IP packet) for each record of a classic pcap file."""
    if len(blob) < 24:
        raise HarnessError(f"{path}: not a pcap file")
    magic = struct.unpack_from("<I", blob)[0]
    if magic not in _PCAP_MAGICS:
        raise HarnessError(f"{path}: not a classic pcap file (magic {magic:#x})")
    endian, tick = _PCAP_MAGICS[magic]
    link_type = struct.unpack_from(endian + "I", blob, 20)[0] & 0x0FFFFFFF
    if link_type not in _PCAP_LINK_OFFSETS:
        raise HarnessError(f"{path}: unsupported link type {link_type}")
    ip_offset = _PCAP_LINK_OFFSETS[link_type]
    offset = 24
    while offset + 16 <= len(blob):
        seconds, fraction, caplen, _ = struct.unpack_from(endian + "IIII", blob, offset)
        record = blob[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        yield seconds + fraction * tick, record[ip_offset:]


def read_pcap_rtp(path: Path) -> list[RtpPacket]:
    """Return the RTP packets of a pcap file, in file order.

    Raises:
        HarnessError: the file is not a pcap file this reader understands.
    """
    packets = []
    for when, ip_packet in _pcap_records(path.read_bytes(), path):
        datagram = _parse_ip_udp(ip_packet)
        rtp = _parse_rtp(datagram, when) if datagram else None
        if rtp is not None:
            packets.append(rtp)
    return packets


def read_pcap_rtp_payloads(path: Path) -> list[bytes]:
    """Return the RTP payloads of a pcap file, in file order."""
    return [packet.payload for packet in read_pcap_rtp(path)]


# ---------------------------------------------------------------------------
# A private network namespace with only a loopback interface
# ---------------------------------------------------------------------------

# linux/sched.h: the namespace type passed to setns(2).
CLONE_NEWNET = 0x40000000
NAMESPACE_STOP_TIMEOUT_S = 5.0


def namespace_available() -> bool:
    """Tell whether private network namespaces can be made here.

    That takes root and the unshare, nsenter and ip commands.
    """
    tools = ("unshare", "nsenter", "ip")
    return os.geteuid() == 0 and all(shutil.which(tool) for tool in tools)


class LoopbackNamespace:
    """A private network namespace whose only interface is its own loopback.

    Programs that bind the wildcard address (baresip 1.0 does, for RTP and DNS)
    run inside one, so that nothing they open is reachable from, or sends to,
    anything but the other programs inside. A holder process (unshare) keeps
    the namespace alive; it exits when the context ends, or when this process
    dies, since it only waits for its standard input to close.

    Run programs inside with :meth:`command`; open sockets inside with
    :meth:`open_socket`.

    Raises:
        HarnessError: on entry, if the namespace cannot be created.
    """

    def __init__(self) -> None:
        self._holder: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LoopbackNamespace:
        script = "ip link set lo up && echo ready && exec cat >/dev/null"
        try:
            self._holder = subprocess.Popen(
                ["unshare", "--net", "--", "sh", "-c", script],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise HarnessError(f"cannot start unshare: {exc}") from exc
        assert self._holder.stdout is not None
        if self._holder.stdout.readline().strip() != b"ready":
            self._stop_holder()
            raise HarnessError("cannot create a network namespace (needs root)")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_holder()

    @property
    def path(self) -> str:
        """The namespace's file, for nsenter --net= and setns(2)."""
        if self._holder is None:
            raise HarnessError("the namespace is not open")
        return f"/proc/{self._holder.pid}/ns/net"

    def command(self, argv: Sequence[str]) -> list[str]:
        """Return argv wrapped to run inside the namespace.

        nsenter execs the program, so the process keeps the PID Popen reports.
        """
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def open_socket(self, family: int, kind: int, proto: int = 0) -> socket.socket:
        """Create a socket inside the namespace.

        setns(2) moves only the calling thread, so a short-lived thread enters
        the namespace and creates the socket, which stays there for good.

        Raises:
            HarnessError: the socket could not be created there.
        """
        made: list[socket.socket | BaseException] = []
        thread = threading.Thread(
            target=self._make_socket, args=(family, kind, proto, made)
        )
        thread.start()
        thread.join()
        if isinstance(made[0], BaseException):
            raise HarnessError(f"cannot open a socket in the namespace: {made[0]}")
        return made[0]

    def _make_socket(
        self,
        family: int,
        kind: int,
        proto: int,
        made: list[socket.socket | BaseException],
    ) -> None:
        """Thread body of :meth:`open_socket`: enter the namespace, create a socket."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(self.path, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, os.strerror(error))
            finally:
                os.close(fd)
            made.append(socket.socket(family, kind, proto))
        except Exception as exc:  # handed over to the calling thread
            made.append(exc)

    def _stop_holder(self) -> None:
        """End the holder by closing its stdin; kill it by PID if it lingers."""
        holder, self._holder = self._holder, None
        if holder is None:
            return
        for stream in (holder.stdin, holder.stdout):
            if stream is not None:
                stream.close()
        try:
            holder.wait(NAMESPACE_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()


# ---------------------------------------------------------------------------
# Live RTP capture on the loopback interface
# ---------------------------------------------------------------------------

# Linux constants (linux/if_ether.h, linux/if_packet.h, asm-generic/socket.h).
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
ETH_HEADER_LEN = 14
# A generous kernel buffer so a slow test thread loses nothing (4 MiB).
CAPTURE_BUFFER_BYTES = 4 * 1024 * 1024
CAPTURE_POLL_S = 0.05


def raw_capture_available() -> bool:
    """Tell whether this process may open an AF_PACKET socket (root or CAP_NET_RAW)."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except (OSError, AttributeError):
        return False
    sock.close()
    return True


def _bpf_udp_destination_port(port: int) -> bytes:
    """Return a classic BPF program keeping UDP packets to port on an Ethernet link.

    The kernel then copies only those packets to our socket, so a busy loopback
    (SIP, WebSockets, Redis) cannot fill its buffer. Fragments are dropped: RTP
    datagrams are far below the loopback MTU.
    """
    # (opcode, jump-if-true label, jump-if-false label, constant); labels are
    # instruction indexes resolved into relative offsets below.
    accept, drop, ipv6 = 14, 15, 9
    program = [
        (0x28, None, None, 12),  # 0: A = ethertype
        (0x15, 2, ipv6, ETHERTYPE_IPV4),  # 1: IPv4?
        (0x30, None, None, ETH_HEADER_LEN + 9),  # 2: A = IPv4 protocol
        (0x15, 4, drop, IPPROTO_UDP),  # 3: UDP?
        (0x28, None, None, ETH_HEADER_LEN + 6),  # 4: A = flags and fragment offset
        (0x45, drop, 6, 0x1FFF),  # 5: a fragment?
        (0xB1, None, None, ETH_HEADER_LEN),  # 6: X = IPv4 header length
        (0x48, None, None, ETH_HEADER_LEN + 2),  # 7: A = UDP destination port
        (0x15, accept, drop, port),  # 8: our port?
        (0x15, 10, drop, ETHERTYPE_IPV6),  # 9: IPv6?
        (0x30, None, None, ETH_HEADER_LEN + 6),  # 10: A = IPv6 next header
        (0x15, 12, drop, IPPROTO_UDP),  # 11: UDP?
        (0x28, None, None, ETH_HEADER_LEN + 40 + 2),  # 12: A = UDP destination port
        (0x15, accept, drop, port),  # 13: our port?
        (0x06, None, None, 0x40000),  # 14: accept, up to 256 KiB
        (0x06, None, None, 0),  # 15: drop
    ]
    code = b""
    for index, (opcode, if_true, if_false, constant) in enumerate(program):
        jt = 0 if if_true is None else if_true - index - 1
        jf = 0 if if_false is None else if_false - index - 1
        code += struct.pack("HBBI", opcode, jt, jf, constant)
    return code


def _attach_filter(sock: socket.socket, program: bytes) -> None:
    """Attach a classic BPF program (struct sock_fprog) to sock."""
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class RtpCapture:
    """Record the RTP packets that arrive at a UDP port on loopback.

    Works while another process owns the port (SIPp does, for its media), because
    it reads copies of the packets from an AF_PACKET socket on ``lo`` instead of
    binding the port. On loopback the kernel hands such a socket every packet
    twice, once leaving and once arriving; only the arriving copy is kept, so
    each datagram is recorded once.

    With a namespace, it captures on that namespace's loopback instead.

    Use as a context manager; the packets are in :attr:`packets` in arrival order::

        with RtpCapture(media_port) as capture:
            run_sipp(...)
        frames = capture.payloads()

    Raises:
        CaptureUnavailable: on entry, without root or CAP_NET_RAW.
    """

    def __init__(
        self,
        port: int,
        host: str = LOOPBACK,
        *,
        interface: str = "lo",
        namespace: LoopbackNamespace | None = None,
    ) -> None:
        self.port = port
        self.host = host
        self.interface = interface
        self.namespace = namespace
        self.packets: list[RtpPacket] = []
        self.ignored = 0  # UDP datagrams to the port that were not RTP
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RtpCapture:
        kind = (socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            if self.namespace is None:
                sock = socket.socket(*kind)
            else:
                sock = self.namespace.open_socket(*kind)
        except (OSError, AttributeError, HarnessError) as exc:
            raise CaptureUnavailable(f"AF_PACKET capture needs root: {exc}") from exc
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, CAPTURE_BUFFER_BYTES)
            _attach_filter(sock, _bpf_udp_destination_port(self.port))
            sock.bind((self.interface, ETH_P_ALL))
            sock.settimeout(CAPTURE_POLL_S)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._thread = threading.Thread(target=self._read_loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._sock is not None:
            self._sock.close()

    def snapshot(self) -> list[RtpPacket]:
        """Return a copy of the packets recorded so far."""
        with self._lock:
            return list(self.packets)

    def payloads(self) -> list[bytes]:
        """Return the payloads recorded so far, in arrival order."""
        return [packet.payload for packet in self.snapshot()]

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until count packets have arrived; False if timeout passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.packets) >= count:
                    return True
            time.sleep(CAPTURE_POLL_S)
        with self._lock:
            return len(self.packets) >= count

    def _read_loop(self) -> None:
        """Read frames until stopped, then drain what the kernel still holds."""
        assert self._sock is not None
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self._record(*self._sock.recvfrom(65535))
        self._sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                self._record(*self._sock.recvfrom(65535))

    def _record(self, frame: bytes, address: tuple[Any, ...]) -> None:
        """Keep frame if it is an arriving UDP datagram to our host and port."""
        arrival = time.monotonic()
        if address[2] == PACKET_OUTGOING or len(frame) < ETH_HEADER_LEN:
            return
        datagram = _parse_ip_udp(frame[ETH_HEADER_LEN:])
        if datagram is None or datagram.destination != (self.host, self.port):
            return
        rtp = _parse_rtp(datagram, arrival)
        with self._lock:
            if rtp is None:
                self.ignored += 1
            else:
                self.packets.append(rtp)


# ---------------------------------------------------------------------------
# Audio comparison
# ---------------------------------------------------------------------------

# A frame whose RMS is below this (about -56 dBFS) counts as silence: digital
# silence is 0xFF/0x7F in μ-law, and comfort noise or dither stays well under it.
SILENCE_RMS = 50.0
# The envelope used to find a coarse alignment: 10 ms blocks.
ENVELOPE_BLOCK = 80
# Envelope lags refined at sample level, and how far each refinement looks.
COARSE_CANDIDATES = 3
REFINE_SPAN = ENVELOPE_BLOCK
# Refinement scores every 4th sample: 2 kHz is enough to rank lags of speech.
REFINE_STRIDE = 4
# Default verdict thresholds of MatchResult.matched: an echo scores ~1.0 on
# both measures; unrelated audio scores ~0 identical frames and < 0.3.
MIN_IDENTICAL_FRACTION = 0.9
MIN_CORRELATION = 0.9


@dataclass(frozen=True)
class Correlation:
    """Best alignment of two signals: received[i + lag] lines up with sent[i]."""

    lag: int
    coefficient: float  # normalised cross-correlation at lag, -1.0 .. 1.0


@dataclass(frozen=True)
class MatchResult:
    """How much of the sent speech was found in the received stream."""

    speech_frames: int  # non-silent frames of the sent speech that were looked for
    identical_frames: int  # of those, found byte-identical and in order
    offset: int | None  # samples from sent to received at the first identical frame
    correlation: Correlation  # of the decoded audio, as a second measure

    @property
    def identical_fraction(self) -> float:
        """The fraction of speech frames found byte-identical, 0.0 .. 1.0."""
        return self.identical_frames / self.speech_frames if self.speech_frames else 0.0

    @property
    def matched(self) -> bool:
        """True if either measure says the received stream holds the speech."""
        return (
            self.identical_fraction >= MIN_IDENTICAL_FRACTION
            or self.correlation.coefficient >= MIN_CORRELATION
        )

    def __str__(self) -> str:
        return (
            f"{self.identical_frames}/{self.speech_frames} speech frames identical "
            f"({self.identical_fraction:.0%}, offset {self.offset}), correlation "
            f"{self.correlation.coefficient:.3f} at lag {self.correlation.lag}"
        )


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    """Return the dot product of a and b (over the shorter of the two)."""
    return float(sum(map(operator.mul, a, b)))


def _rms(samples: Sequence[int]) -> float:
    """Return the root mean square of samples (0.0 for none)."""
    if not samples:
        return 0.0
    return math.sqrt(_dot(samples, samples) / len(samples))


def _is_silent(frame: bytes, law: str) -> bool:
    """Tell whether a G.711 frame is silence or close to it."""
    return _rms(decode_g711(frame, law)) < SILENCE_RMS


def _speech_span(frames: Sequence[bytes], law: str) -> tuple[int, int]:
    """Return [start, end) of frames without the leading and trailing silence."""
    loud = [i for i, frame in enumerate(frames) if not _is_silent(frame, law)]
    return (loud[0], loud[-1] + 1) if loud else (0, 0)


def audio_matches(
    sent: Sequence[bytes], received: Sequence[bytes], *, law: str = "pcmu"
) -> MatchResult:
    """Decide whether the received G.711 stream contains the sent speech.

    Leading and trailing silence of the sent frames is stripped. Each remaining
    non-silent frame is then searched for, byte for byte and in order, in the
    concatenated received payloads; frame boundaries need not line up, so a
    stream re-cut into other packet sizes still matches, and lost frames only
    lower the count. The second measure decodes both to linear PCM and takes
    the normalised cross-correlation at the best alignment.

    Args:
        sent: the frames that were sent (e.g. :func:`read_pcap_rtp_payloads`).
        received: the payloads that arrived (e.g. :meth:`RtpCapture.payloads`).
        law: "pcmu" or "pcma", the encoding of both streams.
    """
    start, end = _speech_span(sent, law)
    speech = sent[start:end]
    stream = b"".join(received)
    sent_bytes_before = sum(len(frame) for frame in sent[:start])

    # 1. Byte-identical frames, in order.
    loud = [(i, frame) for i, frame in enumerate(speech) if not _is_silent(frame, law)]
    found = _find_in_order([frame for _, frame in loud], stream)
    offset = None
    if found:
        index, position = next(
            (loud[k][0], at) for k, at in enumerate(found) if at >= 0
        )
        offset = position - sent_bytes_before - sum(len(f) for f in speech[:index])
    identical = sum(1 for at in found if at >= 0)

    # 2. Correlation of the decoded audio, trying the alignment found above too.
    hint = None if offset is None else offset + sent_bytes_before
    correlation = correlate_pcm(
        decode_g711(b"".join(speech), law), decode_g711(stream, law), lag_hint=hint
    )
    lag = correlation.lag - sent_bytes_before  # relative to all of sent
    return MatchResult(
        len(loud), identical, offset, Correlation(lag, correlation.coefficient)
    )


def _find_in_order(frames: Sequence[bytes], stream: bytes) -> list[int]:
    """Return where each frame occurs in stream after the previous one found, or -1.

    An empty list if none is found at all.
    """
    positions, cursor = [], 0
    for frame in frames:
        at = stream.find(frame, cursor)
        positions.append(at)
        if at >= 0:
            cursor = at + len(frame)
    return positions if any(at >= 0 for at in positions) else []


def correlate_pcm(
    sent: Sequence[int], received: Sequence[int], *, lag_hint: int | None = None
) -> Correlation:
    """Find where sent best lines up in received and how well it matches there.

    The coefficient is sum(s·r) / sqrt(sum(s²) · sum(r²)) over the whole of sent
    against the received samples it lines up with, so received audio that is
    missing, cut short or unrelated lowers it, while a change of gain does not.
    The search aligns 10 ms energy envelopes first, then refines the best few
    candidates (and lag_hint, if given) sample by sample.
    """
    if _rms(sent) == 0.0 or _rms(received) == 0.0:
        return Correlation(0, 0.0)
    candidates = [block * ENVELOPE_BLOCK for block in _envelope_lags(sent, received)]
    if lag_hint is not None:
        candidates.append(lag_hint)
    best = max(
        (_refine_lag(sent, received, lag) for lag in candidates),
        key=lambda lag: _coefficient(sent, received, lag),
    )
    return Correlation(best, _coefficient(sent, received, best))


def _envelope(samples: Sequence[int]) -> list[float]:
    """Return the mean absolute value of each 10 ms block, minus their mean."""
    blocks = [
        sum(map(abs, samples[i : i + ENVELOPE_BLOCK])) / ENVELOPE_BLOCK
        for i in range(0, len(samples), ENVELOPE_BLOCK)
    ]
    mean = sum(blocks) / len(blocks)
    return [b - mean for b in blocks]


def _envelope_lags(sent: Sequence[int], received: Sequence[int]) -> list[int]:
    """Return the block lags at which the envelopes of the signals agree best."""
    env_sent, env_received = _envelope(sent), _envelope(received)
    scores = []
    for lag in range(-len(env_sent) + 1, len(env_received)):
        scores.append((_overlap_coefficient(env_sent, env_received, lag), lag))
    scores.sort(reverse=True)
    return [lag for _, lag in scores[:COARSE_CANDIDATES]]


def _overlap_coefficient(a: Sequence[float], b: Sequence[float], lag: int) -> float:
    """Normalised correlation of a with b shifted by lag, over a's full length."""
    lo, hi = max(0, -lag), min(len(a), len(b) - lag)
    if hi <= lo:
        return 0.0
    dot = _dot(a[lo:hi], b[lo + lag : hi + lag])
    energy_a = _dot(a, a)
    energy_b = _dot(b[lo + lag : hi + lag], b[lo + lag : hi + lag])
    return dot / math.sqrt(energy_a * energy_b) if energy_a and energy_b else 0.0


def _refine_lag(sent: Sequence[int], received: Sequence[int], lag: int) -> int:
    """Return the sample lag near lag with the highest (sub-sampled) correlation."""
    sparse_sent = sent[::REFINE_STRIDE]

    def score(candidate: int) -> float:
        lo = max(0, -candidate)
        lo += -lo % REFINE_STRIDE
        shifted = received[lo + candidate :: REFINE_STRIDE]
        return _overlap_coefficient(sparse_sent[lo // REFINE_STRIDE :], shifted, 0)

    span = range(lag - REFINE_SPAN, lag + REFINE_SPAN + 1)
    return max(span, key=score)


def _coefficient(sent: Sequence[int], received: Sequence[int], lag: int) -> float:
    """Normalised cross-correlation of all of sent against received at lag."""
    lo, hi = max(0, -lag), min(len(sent), len(received) - lag)
    if hi <= lo:
        return 0.0
    window = received[lo + lag : hi + lag]
    dot = _dot(sent[lo:hi], window)
    energy_sent = _dot(sent, sent)
    energy_window = _dot(window, window)
    if not energy_sent or not energy_window:
        return 0.0
    return dot / math.sqrt(energy_sent * energy_window)


# ---------------------------------------------------------------------------
# SIPp
# ---------------------------------------------------------------------------


def sipp_available() -> bool:
    """Tell whether the sipp binary is on PATH."""
    return shutil.which("sipp") is not None


@dataclass(frozen=True)
class SippMessage:
    """One SIP message from a SIPp -trace_msg log."""

    direction: str  # "sent" or "received"
    text: str

    @property
    def first_line(self) -> str:
        """The request line or status line."""
        return self.text.split("\n", 1)[0].strip()

    def header(self, name: str) -> str | None:
        """Return the value of the first header called name (case-insensitive)."""
        prefix = name.lower() + ":"
        for line in self.text.split("\n")[1:]:
            if not line.strip():
                return None
            if line.lower().startswith(prefix):
                return line[len(prefix) :].strip()
        return None


@dataclass
class SippResult:
    """What one SIPp run did: exit status, output, call counts and trace files."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    successful: int
    failed: int
    timed_out: bool
    workdir: Path
    trace_err: Path
    trace_stat: Path
    trace_msg: Path
    media_port: int

    @property
    def ok(self) -> bool:
        """True if SIPp exited 0 (every call successful) on its own."""
        return self.returncode == 0 and not self.timed_out

    def errors(self) -> str:
        """Return the -trace_err log (unexpected messages, timeouts), or ""."""
        return _read_text(self.trace_err)

    def messages(self) -> list[SippMessage]:
        """Return the SIP messages SIPp sent and received, from its -trace_msg log."""
        return _parse_message_log(_read_text(self.trace_msg))

    def summary(self) -> str:
        """A few lines for an assertion message: status, counts and errors."""
        killed = " (killed at timeout)" if self.timed_out else ""
        return "\n".join(
            [
                f"sipp exit {self.returncode}{killed}: "
                f"{self.successful} successful, {self.failed} failed",
                "command: " + " ".join(self.command),
                "errors: " + (self.errors()[-2000:] or "-"),
                "stderr: " + (self.stderr[-2000:] or "-"),
            ]
        )


def _read_text(path: Path) -> str:
    """Return the text of path, or "" if it does not exist."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


_MESSAGE_SEPARATOR = re.compile(r"^-{20,} \d{4}-\d\d-\d\d [\d:.]+$", re.MULTILINE)


def _parse_message_log(log: str) -> list[SippMessage]:
    """Split a SIPp -trace_msg log into messages."""
    messages = []
    for chunk in _MESSAGE_SEPARATOR.split(log):
        heading, _, body = chunk.strip("\n").partition("\n")
        if " message sent " in heading:
            direction = "sent"
        elif " message received " in heading:
            direction = "received"
        else:
            continue
        messages.append(SippMessage(direction, body.strip("\n").replace("\r\n", "\n")))
    return messages


_COUNTER = r"^\s*{name}\s*\|\s*\d+\s*\|\s*(\d+)"


def _final_count(screen: str, name: str) -> int:
    """Return the last cumulative value of a counter on SIPp's statistics screen."""
    values = re.findall(_COUNTER.format(name=name), screen, re.MULTILINE)
    return int(values[-1]) if values else 0


class SippProcess:
    """A SIPp run in progress; :meth:`wait` returns its :class:`SippResult`."""

    def __init__(
        self,
        command: list[str],
        workdir: Path,
        timeout: float,
        media_port: int,
        namespace: LoopbackNamespace | None = None,
    ) -> None:
        self.command = command
        self.workdir = workdir
        self.timeout = timeout
        self.media_port = media_port
        self._stdout = (workdir / "stdout.txt").open("wb")
        self._stderr = (workdir / "stderr.txt").open("wb")
        self._process = subprocess.Popen(
            namespace.command(command) if namespace else command,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
        )
        self._started = time.monotonic()
        self._result: SippResult | None = None

    @property
    def pid(self) -> int:
        """The process id of SIPp."""
        return self._process.pid

    def wait_until_bound(self, port: int, timeout: float = SIPP_BIND_TIMEOUT_S) -> None:
        """Wait until SIPp has bound its SIP port (or has exited, or timeout passed).

        SIPp parses its scenario before it binds, so a peer started just before
        a caller may not be listening yet. Reading /proc/<pid>/net/{udp,tcp} sees the
        sockets of SIPp's own network namespace without touching the port.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._process.poll() is None:
            if _port_bound(self.pid, port):
                return
            time.sleep(0.02)

    def __enter__(self) -> SippProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait up to timeout seconds for SIPp to exit, then kill it (by PID).

        By default, wait until SIPp's own -timeout plus a short grace period
        has passed since it started.
        """
        if self._result is not None:
            return self._result
        if timeout is None:
            deadline = self._started + self.timeout + SIPP_KILL_GRACE_S
            timeout = max(0.0, deadline - time.monotonic())
        timed_out = False
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self._process.kill()
            self._process.wait()
        self._result = self._collect(timed_out)
        return self._result

    def stop(self) -> SippResult:
        """Ask SIPp to finish its calls and exit (SIGUSR1), then wait for it briefly."""
        if self._result is None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGUSR1)
        return self.wait(SIPP_KILL_GRACE_S)

    def _collect(self, timed_out: bool) -> SippResult:
        """Build the result from the exit status and SIPp's output files."""
        self._stdout.close()
        self._stderr.close()
        stdout = _read_text(self.workdir / "stdout.txt")
        screen = stdout + _read_text(self.workdir / "screen.log")
        return SippResult(
            command=self.command,
            returncode=self._process.returncode,
            stdout=stdout,
            stderr=_read_text(self.workdir / "stderr.txt"),
            successful=_final_count(screen, "Successful call"),
            failed=_final_count(screen, "Failed call"),
            timed_out=timed_out,
            workdir=self.workdir,
            trace_err=self.workdir / "errors.log",
            trace_stat=self.workdir / "stat.csv",
            trace_msg=self.workdir / "messages.log",
            media_port=self.media_port,
        )


def _port_bound(pid: int, port: int) -> bool:
    """Tell whether a socket in the network namespace of pid is bound to port."""
    suffix = f":{port:04X}"
    for table in ("udp", "udp6", "tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 1 and fields[1].endswith(suffix):
                    return True
    return False


def _scenario_arguments(scenario: str) -> list[str]:
    """Return -sn for an embedded scenario, else -sf with the scenario file's path."""
    if scenario in SIPP_EMBEDDED_SCENARIOS:
        return ["-sn", scenario]
    path = Path(scenario)
    if not path.is_file():
        path = SIPP_SCENARIOS / scenario
    if not path.is_file():
        raise HarnessError(
            f"no SIPp scenario {scenario!r} (looked in {SIPP_SCENARIOS})"
        )
    return ["-sf", str(path.resolve())]


def start_sipp(
    scenario: str,
    target: str = "",
    *,
    service: str | None = None,
    calls: int = 1,
    local_port: int,
    media_port: int | None = None,
    timeout: float,
    extra: Sequence[str] = (),
    trace_messages: bool = True,
    workdir: Path | None = None,
    namespace: LoopbackNamespace | None = None,
) -> SippProcess:
    """Start SIPp in the background and return a handle to wait for it.

    Every address SIPp uses is loopback: -i and -mi set 127.0.0.1 for the SIP
    headers and the SDP, -bind_local binds the SIP socket there, and -ci binds
    the control socket (which SIPp otherwise opens on 0.0.0.0:8888).

    Args:
        scenario: an embedded scenario ("uas", "uac") or a file name in
            sipp-scenarios/ (or any path) for -sf.
        target: "host:port" of the peer; "" for a UAS, which only answers.
        service: the Request-URI user (-s), e.g. "+14155550100".
        calls: stop after this many calls (-m).
        local_port: the SIP port (-p).
        media_port: the RTP port (-mp); a free one is chosen when None. SIPp
            also binds media_port + 2.
        timeout: seconds before SIPp gives up and fails (-timeout, -timeout_error).
        extra: more SIPp options, e.g. ["-rtp_echo"] or ["-d", "2000"].
        trace_messages: keep a log of every SIP message (-trace_msg).
        workdir: where SIPp runs and writes its logs; a new temporary directory
            when None.
        namespace: run SIPp inside this network namespace.
    """
    if not sipp_available():
        raise HarnessError("sipp is not installed (Debian package sip-tester)")
    workdir = Path(tempfile.mkdtemp(prefix="sipp-")) if workdir is None else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    while media_port is None or local_port in range(
        media_port, media_port + SIPP_MEDIA_PORTS
    ):
        # SIPp binds -mp and the ports above it (video on -mp + 2): the free
        # range found must not take in the SIP port we were given.
        media_port = free_port_range(SIPP_MEDIA_PORTS)[0]
    command = ["sipp", *([target] if target else []), *_scenario_arguments(scenario)]
    command += ["-i", LOOPBACK, "-mi", LOOPBACK, "-bind_local"]
    command += ["-p", str(local_port), "-mp", str(media_port)]
    command += ["-ci", LOOPBACK, "-cp", str(free_udp_port())]
    command += ["-m", str(calls), "-nostdin"]
    command += ["-timeout", f"{timeout:g}s", "-timeout_error"]
    command += ["-trace_err", "-error_file", str(workdir / "errors.log")]
    command += ["-trace_stat", "-stf", str(workdir / "stat.csv"), "-fd", "1"]
    command += ["-trace_screen", "-screen_file", str(workdir / "screen.log")]
    if trace_messages:
        command += ["-trace_msg", "-message_file", str(workdir / "messages.log")]
    if service is not None:
        command += ["-s", service]
    command += list(extra)
    process = SippProcess(command, workdir, timeout, media_port, namespace)
    process.wait_until_bound(local_port)
    return process


def run_sipp(
    scenario: str,
    target: str,
    *,
    service: str | None = None,
    calls: int = 1,
    local_port: int,
    media_port: int | None = None,
    timeout: float,
    extra: Sequence[str] = (),
    trace_messages: bool = True,
    workdir: Path | None = None,
    namespace: LoopbackNamespace | None = None,
) -> SippResult:
    """Run SIPp to completion (or kill it past timeout) and return the result.

    Takes the arguments of :func:`start_sipp`.
    """
    process = start_sipp(
        scenario,
        target,
        service=service,
        calls=calls,
        local_port=local_port,
        media_port=media_port,
        timeout=timeout,
        extra=extra,
        trace_messages=trace_messages,
        workdir=workdir,
        namespace=namespace,
    )
    return process.wait()


# ---------------------------------------------------------------------------
# baresip
# ---------------------------------------------------------------------------

BARESIP_MODULES = Path("/usr/lib/baresip/modules")
# Extra silence after the requested call length, so the audio source never runs
# dry first: baresip 1.0 hangs up when its aufile source reaches end of file.
BARESIP_AUDIO_MARGIN_S = 3.0
BARESIP_START_TIMEOUT_S = 5.0
BARESIP_EXIT_TIMEOUT_S = 5.0
_STATUS_CODE = re.compile(r"^([1-6]\d\d)\b")
_PROGRESS = re.compile(r"call: SIP Progress: (\d{3})")


def baresip_available() -> bool:
    """Tell whether baresip and the modules the agent loads are installed."""
    modules = ("g711", "aufile", "aubridge", "sndfile", "ctrl_tcp", "menu", "account")
    return shutil.which("baresip") is not None and all(
        (BARESIP_MODULES / f"{name}.so").exists() for name in modules
    )


@dataclass
class BaresipResult:
    """What baresip saw of one call it placed."""

    returncode: int | None
    status: int | None  # final SIP status: 200 if answered, else the error response
    provisional: list[int]  # the 1xx statuses it received, in order
    reason: str  # why the call ended, as baresip reported it
    established: bool
    closed_by_peer: bool  # the far end ended the call before we hung up
    received: list[int]  # the decoded audio it received, 16-bit samples at 8 kHz
    sent: list[int]  # the audio it encoded and sent
    events: list[dict[str, Any]]
    log: str


def _netstring(payload: dict[str, Any]) -> bytes:
    """Encode a ctrl_tcp command as a netstring (length:json,)."""
    data = json.dumps(payload).encode()
    return str(len(data)).encode() + b":" + data + b","


@dataclass
class _CallLog:
    """The ctrl_tcp messages of one call, and whether we hung it up."""

    events: list[dict[str, Any]] = field(default_factory=list)
    hangup_sent: bool = False


class _ControlConnection:
    """The JSON-over-netstring control socket of baresip's ctrl_tcp module."""

    def __init__(
        self, port: int, deadline: float, namespace: LoopbackNamespace | None
    ) -> None:
        self._buffer = b""
        self._sock = self._connect(port, deadline, namespace)
        self._token = 0

    @staticmethod
    def _connect(
        port: int, deadline: float, namespace: LoopbackNamespace | None
    ) -> socket.socket:
        """Connect to 127.0.0.1:port, retrying while baresip starts up."""
        while True:
            if namespace is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            else:
                sock = namespace.open_socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(0.5)
            try:
                sock.connect((LOOPBACK, port))
                return sock
            except OSError as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise BaresipError(f"baresip control port {port}: {exc}") from exc
                time.sleep(0.05)

    def send(self, command: str, params: str = "") -> None:
        """Send a command such as "dial" or "hangup"."""
        self._token += 1
        message = {"command": command, "params": params, "token": str(self._token)}
        self._sock.sendall(_netstring(message))

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """Return the next event or response, or None if none came within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._pop()
            if message is not None:
                return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(65536)
            except (TimeoutError, OSError):
                return None
            if not data:
                return None
            self._buffer += data

    def _pop(self) -> dict[str, Any] | None:
        """Take one complete netstring off the buffer, if there is one."""
        length, colon, rest = self._buffer.partition(b":")
        if not colon or not length.isdigit() or len(rest) < int(length) + 1:
            return None
        size = int(length)
        self._buffer = rest[size + 1 :]
        message: dict[str, Any] = json.loads(rest[:size])
        return message

    def close(self) -> None:
        """Close the connection."""
        self._sock.close()


class BaresipAgent:
    """A baresip user agent that places one call and records what it hears.

    It writes its own configuration into workdir: SIP on 127.0.0.1 at a free
    port, no registrar, G.711 only, the aufile module as audio source (the given
    speech followed by silence), the sndfile filter to record both directions,
    and ctrl_tcp on a free loopback port to dial and hang up. Incoming calls
    are not answered (answermode=manual, one call at a time).

    Run it inside a :class:`LoopbackNamespace` (with the peer it calls): baresip
    1.0 binds its RTP and RTCP sockets, and libre's DNS client its two UDP
    sockets, to the wildcard address, and no setting changes that. Inside the
    namespace the wildcard holds only a private loopback. namespace=None runs it
    on the host, where those sockets are reachable from other hosts.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        namespace: LoopbackNamespace | None,
        audio: Sequence[int] | None = None,
        user: str = "+14155550111",
    ) -> None:
        self.workdir = workdir
        self.namespace = namespace
        self.audio = list(speech_samples() if audio is None else audio)
        self.user = user
        self.sip_port = free_port_range(2, tcp=True)[0]  # TLS would take sip_port + 1
        self.control_port = free_tcp_port()

    def call(self, uri: str, seconds: float, *, timeout: float = 20.0) -> BaresipResult:
        """Dial uri, stay in the call for seconds once answered, hang up and quit.

        Returns what happened; a rejected or unanswered call is a result too.

        Raises:
            BaresipError: baresip could not be started or controlled.
        """
        config_dir, recordings = self._write_config(seconds)
        log_path = self.workdir / "baresip.log"
        deadline = time.monotonic() + timeout
        # -v and -s: verbose log with a SIP trace; -t: quit on its own at the timeout.
        command = [
            "baresip",
            "-f",
            str(config_dir),
            "-v",
            "-s",
            "-t",
            str(math.ceil(timeout)),
        ]
        if self.namespace is not None:
            command = self.namespace.command(command)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
            try:
                call_log = self._drive(uri, seconds, deadline)
            finally:
                returncode = self._finish(process)
        return self._result(returncode, call_log, recordings, _read_text(log_path))

    def _write_config(self, seconds: float) -> tuple[Path, Path]:
        """Write config, account and source WAV; return config and recording dirs."""
        config_dir, recordings = self.workdir / "config", self.workdir / "recordings"
        config_dir.mkdir(parents=True, exist_ok=True)
        recordings.mkdir(exist_ok=True)
        padding = int((seconds + BARESIP_AUDIO_MARGIN_S) * SAMPLE_RATE)
        source = self.workdir / "source.wav"
        write_wav_samples(source, self.audio + [0] * padding)
        rtp_lo, rtp_hi = free_port_range(16)
        settings = {
            "poll_method": "epoll",
            "sip_listen": f"{LOOPBACK}:{self.sip_port}",
            "net_interface": LOOPBACK,
            "call_local_timeout": "30",
            "call_max_calls": "1",
            "audio_source": f"aufile,{source}",
            "audio_player": f"aubridge,sink-{self.sip_port}",
            "audio_alert": f"aubridge,alert-{self.sip_port}",
            "ausrc_srate": str(SAMPLE_RATE),
            "auplay_srate": str(SAMPLE_RATE),
            "ausrc_channels": "1",
            "auplay_channels": "1",
            "rtp_ports": f"{rtp_lo}-{rtp_hi}",
            "rtcp_mux": "no",
            "jitter_buffer_delay": "5-10",
            "module_path": str(BARESIP_MODULES),
            "snd_path": str(recordings),
            "ctrl_tcp_listen": f"{LOOPBACK}:{self.control_port}",
        }
        lines = [f"{key}\t{value}" for key, value in settings.items()]
        lines += [
            f"module\t{name}.so" for name in ("g711", "aufile", "aubridge", "sndfile")
        ]
        lines += [
            "module_tmp\taccount.so",
            "module_app\tmenu.so",
            "module_app\tctrl_tcp.so",
        ]
        (config_dir / "config").write_text("\n".join(lines) + "\n")
        account = f"<sip:{self.user}@{LOOPBACK}>;regint=0;answermode=manual"
        (config_dir / "accounts").write_text(account + ";audio_codecs=pcmu,pcma\n")
        (config_dir / "contacts").write_text("")
        return config_dir, recordings

    def _drive(self, uri: str, seconds: float, deadline: float) -> _CallLog:
        """Dial, wait for the answer, hang up after seconds, quit; return the events."""
        start_deadline = min(deadline, time.monotonic() + BARESIP_START_TIMEOUT_S)
        control = _ControlConnection(self.control_port, start_deadline, self.namespace)
        call_log = _CallLog()
        try:
            control.send("dial", uri)
            self._follow_call(control, call_log, seconds, deadline)
            control.send("quit")
        finally:
            control.close()
        return call_log

    @staticmethod
    def _follow_call(
        control: _ControlConnection, call_log: _CallLog, seconds: float, deadline: float
    ) -> None:
        """Record events until the call closes, hanging up seconds after the answer."""
        hangup_at: float | None = None
        while time.monotonic() < deadline:
            wait = (hangup_at or deadline) - time.monotonic()
            message = control.receive(max(0.0, wait))
            if message is None and hangup_at is not None:
                control.send("hangup")
                call_log.hangup_sent = True
                hangup_at = None
                continue
            if message is None:
                return
            call_log.events.append(message)
            if message.get("type") == "CALL_ESTABLISHED":
                hangup_at = time.monotonic() + seconds
            elif message.get("type") == "CALL_CLOSED":
                return

    @staticmethod
    def _finish(process: subprocess.Popen[bytes]) -> int | None:
        """Wait for baresip to exit after quit; kill it by PID if it does not."""
        try:
            return process.wait(BARESIP_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None

    def _result(
        self,
        returncode: int | None,
        call_log: _CallLog,
        recordings: Path,
        log: str,
    ) -> BaresipResult:
        """Turn the events, the log and the recordings into a result."""
        events = call_log.events
        types = [event.get("type") for event in events]
        established = "CALL_ESTABLISHED" in types
        closed = [e for e in events if e.get("type") == "CALL_CLOSED"]
        reason = str(closed[-1].get("param", "")) if closed else ""
        status = 200 if established else _status_of(reason)
        return BaresipResult(
            returncode=returncode,
            status=status,
            provisional=[int(code) for code in _PROGRESS.findall(log)],
            reason=reason,
            established=established,
            closed_by_peer=bool(closed) and established and not call_log.hangup_sent,
            received=_recording(recordings, "dec"),
            sent=_recording(recordings, "enc"),
            events=events,
            log=log,
        )


def _status_of(reason: str) -> int | None:
    """Return the SIP status code at the start of baresip's close reason, if any."""
    match = _STATUS_CODE.match(reason)
    return int(match.group(1)) if match else None


def _recording(recordings: Path, direction: str) -> list[int]:
    """Return the samples of the newest sndfile dump for direction ("dec" or "enc")."""
    files = sorted(recordings.glob(f"dump-*-{direction}.wav"), key=os.path.getmtime)
    return read_wav_samples(files[-1]) if files else []
