#!/usr/bin/env python3
"""Turn an 8 kHz mono WAV file into an RTP capture that SIPp can play.

SIPp's ``play_pcap_audio`` action replays the UDP payloads of a pcap file from
the call's media port to the peer's SDP address, paced by the capture's own
timestamps. This script writes such a file: one Ethernet/IPv4/UDP/RTP packet
per 20 ms of audio, payload type 0 (PCMU) or 8 (PCMA), 160 payload bytes each.

The input is a RIFF/WAV file, 8000 Hz, one channel, either 16-bit linear PCM,
8-bit μ-law or 8-bit A-law. Make one from any recording with sox, e.g.::

    sox input.wav -r 8000 -c 1 -b 16 -e signed-integer speech-8k.wav

Then::

    python3 make_speech_pcap.py speech-8k.wav speech-pcmu.pcap
    python3 make_speech_pcap.py speech-8k.wav speech-pcma.pcap --codec pcma

Only the standard library is used, so the script runs anywhere SIPp does. The
output is deterministic: the same WAV always gives the same pcap bytes.
"""

from __future__ import annotations

import argparse
import struct
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "WavAudio",
    "WavError",
    "alaw_to_linear",
    "build_rtp_pcap",
    "encode_frames",
    "linear_to_alaw",
    "linear_to_ulaw",
    "main",
    "read_wav",
    "ulaw_to_linear",
]

# RFC 3551 §4.5.14: PCMU and PCMA are sampled at 8000 Hz, one byte per sample.
SAMPLE_RATE = 8000
# RFC 3551 §4.2: the default packetisation interval for audio is 20 ms.
PTIME_MS = 20
SAMPLES_PER_FRAME = SAMPLE_RATE * PTIME_MS // 1000
# RFC 3551 §6, table 4: static payload types of the two G.711 laws.
PAYLOAD_TYPES = {"pcmu": 0, "pcma": 8}
# G.711 code words for a zero sample, used to pad the last frame.
SILENCE_BYTES = {"pcmu": 0xFF, "pcma": 0xD5}

# WAVE format tags (Microsoft RIFF specification, mmreg.h).
WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_ALAW = 0x0006
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_EXTENSIBLE = 0xFFFE

# pcap file format: magic for microsecond timestamps, version 2.4, and
# LINKTYPE_ETHERNET, which SIPp's pcap reader accepts (with Linux SLL).
PCAP_MAGIC = 0xA1B2C3D4
PCAP_SNAPLEN = 65535
LINKTYPE_ETHERNET = 1

# Fixed header values keep the output reproducible. The addresses are
# loopback: SIPp rewrites them (and the ports) when it replays the capture.
CAPTURE_START_S = 1_704_067_200  # 2024-01-01T00:00:00Z
LOOPBACK = bytes((127, 0, 0, 1))
SOURCE_PORT = 40000
DESTINATION_PORT = 40002
RTP_SSRC = 0x5E1F_A0D1
RTP_FIRST_SEQUENCE = 4242
RTP_FIRST_TIMESTAMP = 160_000

# G.711 μ-law constants (ITU-T G.711, as in the classic Sun reference code):
# 14-bit magnitudes are clipped at 8159 and biased by 33 before the segment
# search; decoding works on the 16-bit scale, where the bias is 0x84.
ULAW_CLIP = 8159
ULAW_BIAS = 0x21
ULAW_DECODE_BIAS = 0x84
# G.711 A-law segment end points for the 13-bit magnitude.
ALAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


class WavError(ValueError):
    """The input file is not an 8 kHz mono WAV file this script can read."""


@dataclass(frozen=True)
class WavAudio:
    """Audio read from a WAV file: either linear samples or G.711 bytes."""

    encoding: str  # "linear16", "pcmu" or "pcma"
    data: bytes  # little-endian 16-bit samples, or one G.711 byte per sample


def linear_to_ulaw(sample: int) -> int:
    """Encode one signed 16-bit sample as a G.711 μ-law byte."""
    value = sample >> 2  # μ-law works on 14-bit samples
    mask = 0xFF
    if value < 0:
        mask = 0x7F
        value = -value
    value = min(value, ULAW_CLIP) + ULAW_BIAS
    segment = max(0, value.bit_length() - 6)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def ulaw_to_linear(code: int) -> int:
    """Decode one G.711 μ-law byte to a signed 16-bit sample."""
    code = ~code & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = (((code & 0x0F) << 3) + ULAW_DECODE_BIAS) << exponent
    magnitude -= ULAW_DECODE_BIAS
    return -magnitude if code & 0x80 else magnitude


def linear_to_alaw(sample: int) -> int:
    """Encode one signed 16-bit sample as a G.711 A-law byte."""
    value = sample >> 3  # A-law works on 13-bit samples
    if value >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        value = -value - 1
    segment = next((i for i, end in enumerate(ALAW_SEGMENT_ENDS) if value <= end), 8)
    if segment >= 8:
        return 0x7F ^ mask
    shift = 1 if segment < 2 else segment
    return ((segment << 4) | ((value >> shift) & 0x0F)) ^ mask


def alaw_to_linear(code: int) -> int:
    """Decode one G.711 A-law byte to a signed 16-bit sample."""
    code ^= 0x55
    segment = (code & 0x70) >> 4
    magnitude = (code & 0x0F) << 4
    if segment == 0:
        magnitude += 8
    else:
        magnitude = (magnitude + 0x108) << (segment - 1)
    return magnitude if code & 0x80 else -magnitude


def _riff_chunks(blob: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield (chunk id, chunk body) pairs of a RIFF/WAVE file."""
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    offset = 12
    while offset + 8 <= len(blob):
        chunk_id, size = struct.unpack_from("<4sI", blob, offset)
        body = blob[offset + 8 : offset + 8 + size]
        if len(body) < size and chunk_id != b"data":
            raise WavError(f"chunk {chunk_id!r} is truncated")
        yield chunk_id, body
        # RIFF chunks are padded to an even length.
        offset += 8 + size + (size & 1)


def _encoding_of(fmt: bytes) -> str:
    """Return the encoding named by a WAVE "fmt " chunk, checking rate and channels."""
    if len(fmt) < 16:
        raise WavError("fmt chunk is too short")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
        # The real format tag is the first two bytes of the SubFormat GUID.
        (tag,) = struct.unpack_from("<H", fmt, 24)
    if channels != 1 or rate != SAMPLE_RATE:
        raise WavError(
            f"need {SAMPLE_RATE} Hz mono, got {rate} Hz with {channels} channels"
        )
    encodings = {
        (WAVE_FORMAT_PCM, 16): "linear16",
        (WAVE_FORMAT_MULAW, 8): "pcmu",
        (WAVE_FORMAT_ALAW, 8): "pcma",
    }
    try:
        return encodings[(tag, bits)]
    except KeyError:
        raise WavError(
            f"unsupported sample format: tag {tag:#x}, {bits} bits"
        ) from None


def read_wav(path: Path) -> WavAudio:
    """Read an 8 kHz mono WAV file (16-bit PCM, μ-law or A-law).

    Raises:
        WavError: the file is not such a WAV file.
    """
    encoding = None
    for chunk_id, body in _riff_chunks(path.read_bytes()):
        if chunk_id == b"fmt ":
            encoding = _encoding_of(body)
        elif chunk_id == b"data":
            if encoding is None:
                raise WavError("data chunk before fmt chunk")
            if encoding == "linear16":
                body = body[: len(body) & ~1]
            return WavAudio(encoding, body)
    raise WavError("no data chunk")


def _samples(audio: WavAudio) -> list[int]:
    """Return the audio as signed 16-bit samples."""
    if audio.encoding == "pcmu":
        return [ulaw_to_linear(b) for b in audio.data]
    if audio.encoding == "pcma":
        return [alaw_to_linear(b) for b in audio.data]
    count = len(audio.data) // 2
    return list(struct.unpack(f"<{count}h", audio.data))


def encode_frames(audio: WavAudio, codec: str) -> list[bytes]:
    """Encode audio as 20 ms G.711 frames, padding the last one with silence."""
    if audio.encoding == codec:
        encoded = audio.data
    else:
        encode = linear_to_ulaw if codec == "pcmu" else linear_to_alaw
        encoded = bytes(encode(s) for s in _samples(audio))
    remainder = len(encoded) % SAMPLES_PER_FRAME
    if remainder:
        encoded += bytes([SILENCE_BYTES[codec]]) * (SAMPLES_PER_FRAME - remainder)
    return [
        encoded[i : i + SAMPLES_PER_FRAME]
        for i in range(0, len(encoded), SAMPLES_PER_FRAME)
    ]


def _internet_checksum(data: bytes) -> int:
    """Return the RFC 1071 one's-complement checksum of data."""
    if len(data) & 1:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _rtp_packet(index: int, payload_type: int, payload: bytes) -> bytes:
    """Build the RTP packet for the index-th frame of the stream."""
    # RFC 3550 §5.1: version 2; RFC 3551 §4.1: the marker flags the first
    # packet of a talkspurt, here the first packet of the stream.
    marker = 0x80 if index == 0 else 0x00
    sequence = (RTP_FIRST_SEQUENCE + index) & 0xFFFF
    timestamp = (RTP_FIRST_TIMESTAMP + index * SAMPLES_PER_FRAME) & 0xFFFFFFFF
    header = struct.pack(
        "!BBHII", 0x80, marker | payload_type, sequence, timestamp, RTP_SSRC
    )
    return header + payload


def _udp_ipv4_frame(index: int, rtp: bytes) -> bytes:
    """Wrap an RTP packet in UDP, IPv4 and Ethernet headers with valid checksums."""
    udp_length = 8 + len(rtp)
    pseudo = LOOPBACK + LOOPBACK + struct.pack("!BBH", 0, 17, udp_length)
    udp = struct.pack("!HHHH", SOURCE_PORT, DESTINATION_PORT, udp_length, 0) + rtp
    udp_sum = _internet_checksum(pseudo + udp) or 0xFFFF  # RFC 768: 0 means "none"
    udp = udp[:6] + struct.pack("!H", udp_sum) + udp[8:]
    # RFC 791 header: DSCP EF (RFC 3246) as voice gear marks it, DF set, TTL 64.
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0xB8,
        20 + udp_length,
        index & 0xFFFF,
        0x4000,
        64,
        17,
        0,
        LOOPBACK,
        LOOPBACK,
    )
    ip = ip[:10] + struct.pack("!H", _internet_checksum(ip)) + ip[12:]
    ethernet = bytes(6) + bytes(6) + struct.pack("!H", 0x0800)
    return ethernet + ip + udp


def build_rtp_pcap(frames: Sequence[bytes], codec: str) -> bytes:
    """Return a pcap file holding one RTP packet per frame, 20 ms apart."""
    payload_type = PAYLOAD_TYPES[codec]
    parts = [
        struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, PCAP_SNAPLEN, LINKTYPE_ETHERNET)
    ]
    for index, payload in enumerate(frames):
        frame = _udp_ipv4_frame(index, _rtp_packet(index, payload_type, payload))
        offset_us = index * PTIME_MS * 1000
        seconds, micros = divmod(offset_us, 1_000_000)
        parts.append(
            struct.pack(
                "<IIII", CAPTURE_START_S + seconds, micros, len(frame), len(frame)
            )
        )
        parts.append(frame)
    return b"".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: WAV in, pcap out. Returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "wav", type=Path, help="8 kHz mono WAV (16-bit PCM, μ-law or A-law)"
    )
    parser.add_argument("pcap", type=Path, help="pcap file to write")
    parser.add_argument("--codec", choices=sorted(PAYLOAD_TYPES), default="pcmu")
    args = parser.parse_args(argv)
    try:
        frames = encode_frames(read_wav(args.wav), args.codec)
    except (OSError, WavError) as exc:
        print(f"{args.wav}: {exc}", file=sys.stderr)
        return 1
    args.pcap.write_bytes(build_rtp_pcap(frames, args.codec))
    seconds = len(frames) * PTIME_MS / 1000
    codec = args.codec.upper()
    print(f"{args.pcap}: {len(frames)} RTP packets, {seconds:.2f} s of {codec}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
