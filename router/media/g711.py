"""G.711 μ-law and A-law (ITU-T G.711), without :mod:`audioop`.

Linear audio is signed 16-bit little-endian PCM at 8 kHz. The companding rules are
computed once into lookup tables:

* decoding is one 256-entry table per law;
* encoding is one 65,536-entry table per law, indexed by the raw 16-bit sample,
  built on first use so that importing this module stays cheap;
* μ-law <-> A-law transcoding is a 256-byte :meth:`bytes.translate` table, the
  fastest byte-wise mapping Python has (no decoding to linear on the hot path).

Negative samples are quantised by their one's complement (``~x``), as the ITU-T
G.191 reference coder does, so that decoding then encoding any code gives the
same code back.
"""

from __future__ import annotations

import sys
from array import array
from functools import cache

from .errors import CodecError

__all__ = [
    "ALAW_SILENCE",
    "ALAW_TO_ULAW",
    "FRAME_BYTES",
    "FRAME_DURATION",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "ULAW_SILENCE",
    "ULAW_TO_ALAW",
    "alaw_to_ulaw",
    "decode_alaw",
    "decode_alaw_sample",
    "decode_ulaw",
    "decode_ulaw_sample",
    "encode_alaw",
    "encode_alaw_sample",
    "encode_ulaw",
    "encode_ulaw_sample",
    "ulaw_to_alaw",
]

# RFC 3551 §4.5.14: PCMU and PCMA are sampled at 8,000 Hz, one byte per sample.
SAMPLE_RATE = 8000
# RFC 3551 §4.5: 20 ms is the default packetisation time for G.711.
FRAME_DURATION = 0.020
FRAME_SAMPLES = 160
FRAME_BYTES = FRAME_SAMPLES

# G.711 Table 2a (μ-law): the code for +0 (all bits inverted on the line).
ULAW_SILENCE = 0xFF
# G.711 Table 1a (A-law): the code for the smallest positive value (even bits inverted).
ALAW_SILENCE = 0xD5

# The μ-law bias (33 on the 14-bit scale of G.711, times 4 for 16-bit samples) and
# the largest magnitude that still fits the top segment once biased.
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635
# A-law inverts the even bits of every code on the line (G.711 §2).
_ALAW_XOR = 0x55
_SAMPLE_MIN = -32768
_SAMPLE_MAX = 32767


def encode_ulaw_sample(sample: int) -> int:
    """Return the μ-law code of one signed 16-bit sample.

    Raises:
        CodecError: the sample is outside -32768..32767.
    """
    _check_sample(sample)
    if sample < 0:
        magnitude, sign = ~sample, 0x80
    else:
        magnitude, sign = sample, 0x00
    biased = min(magnitude, _ULAW_CLIP) + _ULAW_BIAS
    # The biased magnitude lies in [2**(segment + 7), 2**(segment + 8)).
    segment = biased.bit_length() - 8
    mantissa = (biased >> (segment + 3)) & 0x0F
    return ~(sign | segment << 4 | mantissa) & 0xFF


def decode_ulaw_sample(code: int) -> int:
    """Return the signed 16-bit value of one μ-law code (the middle of its interval)."""
    code = ~_check_code(code) & 0xFF
    segment = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + _ULAW_BIAS) << segment) - _ULAW_BIAS
    return -magnitude if code & 0x80 else magnitude


def encode_alaw_sample(sample: int) -> int:
    """Return the A-law code of one signed 16-bit sample.

    Raises:
        CodecError: the sample is outside -32768..32767.
    """
    _check_sample(sample)
    if sample < 0:
        magnitude, sign = ~sample >> 3, 0x00
    else:
        magnitude, sign = sample >> 3, 0x80
    # A 12-bit magnitude: segment 0 covers 0..31 in steps of 2, segment s >= 1
    # covers [2**(s + 4), 2**(s + 5)) in steps of 2**s.
    segment = max(magnitude.bit_length() - 5, 0)
    shift = segment if segment else 1
    mantissa = (magnitude >> shift) & 0x0F
    return (sign | segment << 4 | mantissa) ^ _ALAW_XOR


def decode_alaw_sample(code: int) -> int:
    """Return the signed 16-bit value of one A-law code (the middle of its interval)."""
    code = _check_code(code) ^ _ALAW_XOR
    segment = (code >> 4) & 0x07
    step = (code & 0x0F) << 4
    # Segment 0 is linear like segment 1 (same step), without the leading one bit.
    magnitude = (step + 0x108) << (segment - 1) if segment else step + 8
    return magnitude if code & 0x80 else -magnitude


def _check_sample(sample: int) -> None:
    if not _SAMPLE_MIN <= sample <= _SAMPLE_MAX:
        raise CodecError(f"sample {sample} is outside the signed 16-bit range")


def _check_code(code: int) -> int:
    if not 0 <= code <= 0xFF:
        raise CodecError(f"G.711 code {code} is not a byte")
    return code


_ULAW_DECODE = [decode_ulaw_sample(code) for code in range(256)]
_ALAW_DECODE = [decode_alaw_sample(code) for code in range(256)]
# The little-endian low and high byte of every decoded value, as translate tables.
_ULAW_LOW_BYTES = bytes(value & 0xFF for value in _ULAW_DECODE)
_ULAW_HIGH_BYTES = bytes((value >> 8) & 0xFF for value in _ULAW_DECODE)
_ALAW_LOW_BYTES = bytes(value & 0xFF for value in _ALAW_DECODE)
_ALAW_HIGH_BYTES = bytes((value >> 8) & 0xFF for value in _ALAW_DECODE)

# The direct conversions give exactly what decoding to 16-bit linear and encoding
# again gives, which is what a transcoding gateway in the path would produce. The
# conversion tables printed in G.711 work on each law's exact levels instead of a
# shared 16-bit scale and differ from these by one step for a few loud codes.
ULAW_TO_ALAW: bytes = bytes(encode_alaw_sample(value) for value in _ULAW_DECODE)
"""``bytes.translate`` table from μ-law to A-law codes."""

ALAW_TO_ULAW: bytes = bytes(encode_ulaw_sample(value) for value in _ALAW_DECODE)
"""``bytes.translate`` table from A-law to μ-law codes."""


def ulaw_to_alaw(data: bytes) -> bytes:
    """Transcode μ-law bytes to A-law bytes, one code per byte."""
    return data.translate(ULAW_TO_ALAW)


def alaw_to_ulaw(data: bytes) -> bytes:
    """Transcode A-law bytes to μ-law bytes, one code per byte."""
    return data.translate(ALAW_TO_ULAW)


def decode_ulaw(data: bytes) -> bytes:
    """Decode μ-law bytes to signed 16-bit little-endian PCM (two bytes per code)."""
    return _decode(data, _ULAW_LOW_BYTES, _ULAW_HIGH_BYTES)


def decode_alaw(data: bytes) -> bytes:
    """Decode A-law bytes to signed 16-bit little-endian PCM (two bytes per code)."""
    return _decode(data, _ALAW_LOW_BYTES, _ALAW_HIGH_BYTES)


def _decode(data: bytes, low_bytes: bytes, high_bytes: bytes) -> bytes:
    # Two translations and two strided slice assignments run in C: about ten
    # times faster than mapping every code through a Python-level lookup.
    pcm = bytearray(2 * len(data))
    pcm[0::2] = data.translate(low_bytes)
    pcm[1::2] = data.translate(high_bytes)
    return bytes(pcm)


def encode_ulaw(pcm: bytes) -> bytes:
    """Encode signed 16-bit little-endian PCM to μ-law, one byte per sample.

    Raises:
        CodecError: ``pcm`` has an odd number of bytes.
    """
    return bytes(map(_ulaw_encode_table().__getitem__, _unsigned_samples(pcm)))


def encode_alaw(pcm: bytes) -> bytes:
    """Encode signed 16-bit little-endian PCM to A-law, one byte per sample.

    Raises:
        CodecError: ``pcm`` has an odd number of bytes.
    """
    return bytes(map(_alaw_encode_table().__getitem__, _unsigned_samples(pcm)))


@cache
def _ulaw_encode_table() -> bytes:
    # μ-law quantises the top 14 bits of a 16-bit sample, so one code per group of
    # four raw values; the table is indexed by the sample read as unsigned.
    codes = [encode_ulaw_sample(sample << 2) for sample in range(-(1 << 13), 1 << 13)]
    return _spread(codes, 4)


@cache
def _alaw_encode_table() -> bytes:
    # A-law quantises the top 13 bits: one code per group of eight raw values.
    codes = [encode_alaw_sample(sample << 3) for sample in range(-(1 << 12), 1 << 12)]
    return _spread(codes, 8)


def _spread(codes_from_most_negative: list[int], repeat: int) -> bytes:
    """Turn codes for ascending samples into a table indexed by ``sample & 0xFFFF``."""
    table = bytes(code for code in codes_from_most_negative for _ in range(repeat))
    half = len(table) // 2
    # Unsigned indices 0..32767 are the non-negative samples, 32768.. the negative ones.
    return table[half:] + table[:half]


def _unsigned_samples(pcm: bytes) -> memoryview:
    if len(pcm) % 2:
        raise CodecError(f"16-bit PCM of {len(pcm)} bytes has an odd length")
    if sys.byteorder == "little":
        return memoryview(pcm).cast("B").cast("H")
    samples = array("H", pcm)
    samples.byteswap()
    return memoryview(samples)
