"""G.711 μ-law and A-law against values from ITU-T G.711."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.media import g711
from router.media.errors import CodecError

# G.711 Table 5 and Table 6: the "digital milliwatt", a 1 kHz sine at 0 dBm0
# sampled at pi/8 + k*pi/4, as its eight repeating codes (positive half first).
ULAW_DIGITAL_MILLIWATT = bytes.fromhex("9e8b8b9e1e0b0b1e")
ALAW_DIGITAL_MILLIWATT = bytes.fromhex("b4a1a1b434212134")

# Peak of a 0 dBm0 sine on the 16-bit scale: full scale is +3.17 dBm0 for μ-law
# (8159 on its 14-bit scale) and +3.14 dBm0 for A-law (4096 on its 13-bit scale).
ULAW_0_DBM0_PEAK = 8159 * 4 / 10 ** (3.17 / 20)
ALAW_0_DBM0_PEAK = 4096 * 8 / 10 ** (3.14 / 20)


def milliwatt_samples(peak: float) -> list[int]:
    return [round(peak * math.sin(math.pi * (2 * k + 1) / 8)) for k in range(8)]


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def test_silence_codes_are_the_codes_of_zero():
    assert g711.ULAW_SILENCE == 0xFF
    assert g711.ALAW_SILENCE == 0xD5
    assert g711.encode_ulaw_sample(0) == g711.ULAW_SILENCE
    assert g711.encode_alaw_sample(0) == g711.ALAW_SILENCE


@pytest.mark.parametrize(
    ("code", "value"),
    [(0xFF, 0), (0x7F, 0), (0x80, 32124), (0x00, -32124), (0xFE, 8), (0x7E, -8)],
)
def test_ulaw_decodes_to_the_middle_of_each_interval(code, value):
    assert g711.decode_ulaw_sample(code) == value


@pytest.mark.parametrize(
    ("code", "value"),
    [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0xD4, 24)],
)
def test_alaw_decodes_to_the_middle_of_each_interval(code, value):
    assert g711.decode_alaw_sample(code) == value


def test_ulaw_encodes_the_digital_milliwatt_of_table_5():
    samples = milliwatt_samples(ULAW_0_DBM0_PEAK)

    assert g711.encode_ulaw(pcm(*samples)) == ULAW_DIGITAL_MILLIWATT
    assert bytes(map(g711.encode_ulaw_sample, samples)) == ULAW_DIGITAL_MILLIWATT


def test_alaw_encodes_the_digital_milliwatt_of_table_6():
    samples = milliwatt_samples(ALAW_0_DBM0_PEAK)

    assert g711.encode_alaw(pcm(*samples)) == ALAW_DIGITAL_MILLIWATT
    assert bytes(map(g711.encode_alaw_sample, samples)) == ALAW_DIGITAL_MILLIWATT


def test_transcoding_the_digital_milliwatt_gives_the_other_laws_milliwatt():
    assert g711.ulaw_to_alaw(ULAW_DIGITAL_MILLIWATT) == ALAW_DIGITAL_MILLIWATT
    assert g711.alaw_to_ulaw(ALAW_DIGITAL_MILLIWATT) == ULAW_DIGITAL_MILLIWATT


def test_full_scale_clips_to_the_loudest_code():
    assert g711.encode_ulaw(pcm(32767, -32768)) == b"\x80\x00"
    assert g711.encode_alaw(pcm(32767, -32768)) == b"\xaa\x2a"


def test_every_ulaw_code_but_negative_zero_survives_decode_then_encode():
    codes = bytes(code for code in range(256) if code != 0x7F)

    assert g711.encode_ulaw(g711.decode_ulaw(codes)) == codes


def test_every_alaw_code_survives_decode_then_encode():
    codes = bytes(range(256))

    assert g711.encode_alaw(g711.decode_alaw(codes)) == codes


def test_buffer_decoding_matches_sample_decoding_in_little_endian():
    codes = bytes(range(256))

    ulaw = struct.unpack("<256h", g711.decode_ulaw(codes))
    alaw = struct.unpack("<256h", g711.decode_alaw(codes))

    assert list(ulaw) == [g711.decode_ulaw_sample(code) for code in codes]
    assert list(alaw) == [g711.decode_alaw_sample(code) for code in codes]


@given(st.lists(st.integers(-32768, 32767), max_size=50))
def test_buffer_encoding_matches_sample_encoding(samples):
    data = pcm(*samples)

    assert list(g711.encode_ulaw(data)) == [g711.encode_ulaw_sample(s) for s in samples]
    assert list(g711.encode_alaw(data)) == [g711.encode_alaw_sample(s) for s in samples]


@given(st.integers(-32768, 32767))
def test_quantisation_error_stays_within_half_a_step(sample):
    # Half the widest step: 1024 on the 16-bit scale for both laws' top segment,
    # and the clipped tails (above 32124 / 32256) are further out.
    ulaw_error = abs(g711.decode_ulaw_sample(g711.encode_ulaw_sample(sample)) - sample)
    alaw_error = abs(g711.decode_alaw_sample(g711.encode_alaw_sample(sample)) - sample)

    assert ulaw_error <= max(512, abs(sample) - 32124 + 1)
    assert alaw_error <= max(512, abs(sample) - 32256 + 1)


def test_transcoding_tables_map_silence_and_keep_the_sign():
    assert g711.ulaw_to_alaw(b"\xff") == b"\xd5"
    for code in range(256):
        alaw = g711.ULAW_TO_ALAW[code]
        ulaw = g711.ALAW_TO_ULAW[code]
        assert (g711.decode_alaw_sample(alaw) > 0) == (
            g711.decode_ulaw_sample(code) >= 0
        )
        assert (g711.decode_ulaw_sample(ulaw) >= 0) == (
            g711.decode_alaw_sample(code) > 0
        )


def test_transcoding_moves_a_value_by_at_most_one_step_of_the_coarser_law():
    for code in range(256):
        value = g711.decode_ulaw_sample(code)
        through_alaw = g711.decode_alaw_sample(g711.ULAW_TO_ALAW[code])
        assert abs(through_alaw - value) <= max(16, abs(value) // 16)


def test_transcoding_is_a_byte_translation_of_any_length():
    frame = bytes(range(160))

    assert g711.alaw_to_ulaw(frame) == bytes(g711.ALAW_TO_ULAW[b] for b in frame)
    assert len(g711.ULAW_TO_ALAW) == len(g711.ALAW_TO_ULAW) == 256


def test_odd_length_pcm_is_rejected():
    with pytest.raises(CodecError, match="odd length"):
        g711.encode_ulaw(b"\x00\x00\x00")


@pytest.mark.parametrize("sample", [-32769, 32768])
def test_out_of_range_sample_is_rejected(sample):
    with pytest.raises(CodecError, match="16-bit range"):
        g711.encode_alaw_sample(sample)


@pytest.mark.parametrize("code", [-1, 256])
def test_out_of_range_code_is_rejected(code):
    with pytest.raises(CodecError, match="not a byte"):
        g711.decode_ulaw_sample(code)


def test_a_frame_is_twenty_milliseconds_of_eight_kilohertz_audio():
    assert g711.FRAME_SAMPLES == g711.SAMPLE_RATE * g711.FRAME_DURATION == 160
    assert g711.FRAME_BYTES == 160
