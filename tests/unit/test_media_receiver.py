"""The caller's RTP turned into μ-law frames and digits, without sockets."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from router.media.g711 import (
    ALAW_TO_ULAW,
    ULAW_SILENCE,
    ULAW_TO_ALAW,
    decode_alaw,
    decode_ulaw,
)
from router.media.receiver import RtpReceiver
from router.media.rtp import build_rtp
from router.media.stats import MediaStats
from router.sip.sdp import NegotiatedAudio

CALLER = ("127.0.0.1", 40000)
STRANGER = ("127.0.0.1", 40002)
SSRC = 0x5EED
SILENCE_FRAME = bytes([ULAW_SILENCE]) * 160

PCMU_WITH_EVENTS = NegotiatedAudio(
    payload_type=0,
    codec="PCMU",
    dtmf_payload_type=101,
    remote_address="127.0.0.1",
    remote_port=40000,
    direction="sendrecv",
    ptime=20,
)


class Recorder:
    """Collects what the receiver reports."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.digits: list[str] = []
        self.stats = MediaStats()
        self.receiver = RtpReceiver(
            on_audio=self.frames.append, on_dtmf=self.digits.append, stats=self.stats
        )


class Caller:
    """Numbers the packets of one caller stream like a real sender would."""

    def __init__(self, *, ssrc: int = SSRC) -> None:
        self.ssrc = ssrc
        self.sequence = 1000
        self.timestamp = 8000

    def packet(self, payload_type: int, payload: bytes, *, samples: int = 160) -> bytes:
        data = build_rtp(
            payload_type, self.sequence, self.timestamp, self.ssrc, payload
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp += samples
        return data


@pytest.fixture
def recorder() -> Recorder:
    recorder = Recorder()
    recorder.receiver.configure(PCMU_WITH_EVENTS)
    return recorder


def assert_same_sound(pcm: bytes, expected: bytes) -> None:
    """Equal within one quantisation step of the coarser law (1/16 of the level)."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    wanted = struct.unpack(f"<{len(expected) // 2}h", expected)
    assert all(
        abs(a - b) <= max(16, abs(b) // 16)
        for a, b in zip(samples, wanted, strict=True)
    )


def voice(seed: int, size: int = 160) -> bytes:
    """A recognisable μ-law payload that never equals silence or CN bytes."""
    return bytes((seed * 7 + index) % 0x70 + 0x10 for index in range(size))


def test_c12_comfort_noise_becomes_silence_and_voice_around_it_is_intact(recorder):
    caller = Caller()
    before = [voice(i) for i in range(20)]
    after = [voice(100 + i) for i in range(20)]
    packets = [caller.packet(0, payload) for payload in before]
    # RFC 3389: a CN payload is a one-byte noise level (here -78 dBov).
    packets += [caller.packet(13, b"\x4e") for _ in range(3)]
    packets += [caller.packet(0, payload) for payload in after]

    for data in packets:
        recorder.receiver.receive(data, CALLER)

    assert len(recorder.frames) == 43
    assert recorder.frames[:20] == before
    assert recorder.frames[20:23] == [SILENCE_FRAME] * 3
    assert recorder.frames[23:] == after
    assert not any(b"\x4e" in frame for frame in recorder.frames[20:23])
    assert recorder.stats.comfort_noise_packets == 3


def test_c09_telephone_event_on_payload_type_96_gives_one_digit_and_no_audio():
    recorder = Recorder()
    recorder.receiver.configure(replace(PCMU_WITH_EVENTS, dtmf_payload_type=96))
    caller = Caller()
    payloads = ["050a00a0", "050a0140", "058a0320", "058a0320", "058a0320"]

    for payload in payloads:
        recorder.receiver.receive(
            caller.packet(96, bytes.fromhex(payload), samples=0), CALLER
        )

    assert recorder.digits == ["5"]
    assert recorder.frames == []


def test_the_first_valid_packet_latches_its_source_and_others_are_ignored(recorder):
    caller, stranger = Caller(), Caller(ssrc=0xBAD)

    assert recorder.receiver.receive(caller.packet(0, voice(1)), CALLER)
    assert not recorder.receiver.receive(stranger.packet(0, voice(2)), STRANGER)
    assert recorder.receiver.receive(caller.packet(0, voice(3)), CALLER)

    assert recorder.receiver.latched_source == CALLER
    assert recorder.frames == [voice(1), voice(3)]
    assert recorder.stats.packets_ignored_foreign_source == 1


def test_packets_with_an_unknown_payload_type_neither_latch_nor_play(recorder):
    stranger, caller = Caller(ssrc=0xBAD), Caller()

    assert not recorder.receiver.receive(stranger.packet(18, voice(1, 20)), STRANGER)
    assert recorder.receiver.receive(caller.packet(0, voice(2)), CALLER)

    assert recorder.receiver.latched_source == CALLER
    assert recorder.frames == [voice(2)]
    assert recorder.stats.packets_ignored_payload_type == 1


def test_unlatching_lets_the_next_source_in(recorder):
    recorder.receiver.receive(Caller().packet(0, voice(1)), CALLER)

    recorder.receiver.unlatch()
    recorder.receiver.receive(Caller(ssrc=2).packet(0, voice(2)), STRANGER)

    assert recorder.receiver.latched_source == STRANGER


def test_pcma_is_transcoded_to_ulaw():
    recorder = Recorder()
    recorder.receiver.configure(replace(PCMU_WITH_EVENTS, payload_type=8, codec="PCMA"))
    alaw = bytes(range(96, 256))

    recorder.receiver.receive(Caller().packet(8, alaw), CALLER)

    (ulaw,) = recorder.frames
    assert ulaw == alaw.translate(ALAW_TO_ULAW)
    assert_same_sound(decode_ulaw(ulaw), decode_alaw(alaw))


def test_a_dynamic_payload_type_can_carry_pcmu():
    recorder = Recorder()
    recorder.receiver.configure(replace(PCMU_WITH_EVENTS, payload_type=110))

    recorder.receiver.receive(Caller().packet(110, voice(9)), CALLER)

    assert recorder.frames == [voice(9)]


def test_static_pcma_in_flight_after_a_switch_to_pcmu_is_still_decoded(recorder):
    alaw = voice(4).translate(ULAW_TO_ALAW)

    recorder.receiver.receive(Caller().packet(8, alaw), CALLER)

    assert recorder.frames == [alaw.translate(ALAW_TO_ULAW)]


@pytest.mark.parametrize("packet_size", [80, 240, 480, 100])
def test_audio_in_other_packet_sizes_is_recut_into_20_ms_frames(recorder, packet_size):
    caller = Caller()
    audio = voice(3, 160 * 12)

    for start in range(0, len(audio), packet_size):
        chunk = audio[start : start + packet_size]
        recorder.receiver.receive(caller.packet(0, chunk, samples=len(chunk)), CALLER)

    assert all(len(frame) == 160 for frame in recorder.frames)
    assert b"".join(recorder.frames) == audio


def test_duplicated_and_late_packets_are_dropped(recorder):
    caller = Caller()
    first = caller.packet(0, voice(1))
    second = caller.packet(0, voice(2))
    third = caller.packet(0, voice(3))

    for data in (first, second, second, third, first):
        recorder.receiver.receive(data, CALLER)

    assert recorder.frames == [voice(1), voice(2), voice(3)]
    assert recorder.stats.packets_ignored_late == 2


def test_a_sender_restarting_its_sequence_far_behind_is_followed(recorder):
    caller = Caller()
    recorder.receiver.receive(caller.packet(0, voice(1)), CALLER)
    caller.sequence = (caller.sequence - 5000) & 0xFFFF

    recorder.receiver.receive(caller.packet(0, voice(2)), CALLER)

    assert recorder.frames == [voice(1), voice(2)]


def test_sequence_numbers_wrap_without_losing_audio(recorder):
    caller = Caller()
    caller.sequence = 0xFFFE

    for index in range(4):
        recorder.receiver.receive(caller.packet(0, voice(index)), CALLER)

    assert recorder.frames == [voice(index) for index in range(4)]


def test_invalid_datagrams_are_counted_and_ignored(recorder):
    assert not recorder.receiver.receive(b"\x00" * 20, CALLER)
    assert not recorder.receiver.receive(b"RTP", CALLER)

    assert recorder.stats.packets_invalid == 2
    assert recorder.receiver.latched_source is None


def test_a_truncated_telephone_event_is_counted_as_invalid(recorder):
    recorder.receiver.receive(Caller().packet(101, b"\x05\x0a"), CALLER)

    assert recorder.digits == []
    assert recorder.stats.packets_invalid == 1


def test_nothing_is_accepted_before_media_is_configured():
    recorder = Recorder()

    assert not recorder.receiver.receive(Caller().packet(0, voice(1)), CALLER)
    assert recorder.stats.packets_ignored_unconfigured == 1
    assert recorder.frames == []


def test_plain_and_decorated_packets_of_one_stream_are_handled_alike(recorder):
    # Plain packets take a shorter path than ones with CSRCs, a header
    # extension or padding; both must end the same, late checks included.
    caller = Caller()
    plain = caller.packet(0, voice(1))
    csrc = bytearray(caller.packet(0, b"\x00" * 4 + voice(2)))
    csrc[0] |= 0x01  # one CSRC
    padded = bytearray(caller.packet(0, voice(3) + b"\x00\x00\x03"))
    padded[0] |= 0x20
    alaw_payload = bytes(range(80, 240))
    alaw = caller.packet(8, alaw_payload)

    for data in (plain, bytes(csrc), bytes(padded), plain, bytes(csrc), alaw):
        recorder.receiver.receive(data, CALLER)
    recorder.receiver.receive(caller.packet(0, voice(5)), STRANGER)

    expected = [voice(1), voice(2), voice(3), alaw_payload.translate(ALAW_TO_ULAW)]
    assert recorder.frames == expected
    assert recorder.stats.packets_ignored_late == 2
    assert recorder.stats.packets_ignored_foreign_source == 1


def test_an_empty_datagram_is_counted_as_invalid(recorder):
    assert not recorder.receiver.receive(b"", CALLER)

    assert recorder.stats.packets_invalid == 1
