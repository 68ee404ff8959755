"""Data frames written by router.runner.ws.framing, read back by websockets' own parser."""

from __future__ import annotations

import os

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side

from router.runner.ws import framing
from router.runner.ws.framing import MaskKeys, encode_text_frame


def read_frames(side: Side, data: bytes) -> list[Frame]:
    """Feed ``data`` to a websockets protocol of ``side`` and return its frames."""
    protocol = Protocol(side, max_size=None)
    protocol.receive_data(data)
    assert protocol.parser_exc is None
    return [event for event in protocol.events_received() if isinstance(event, Frame)]


# 125 and 126 straddle the 7-bit length; 65535 and 65536 the 16-bit one (RFC 6455 §5.2).
@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 200_000])
@pytest.mark.parametrize("mask", [True, False])
def test_text_frame_of_any_length_reads_back_as_one_final_text_frame(
    length: int, mask: bool
) -> None:
    text = (b"media" * length)[:length]
    # A server reads masked (client) frames, a client unmasked ones.
    reader = Side.SERVER if mask else Side.CLIENT

    (frame,) = read_frames(reader, encode_text_frame(text, mask=mask))

    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert frame.data == text


def test_client_frames_are_masked_and_server_frames_are_not() -> None:
    payload = b'{"event":"media"}'
    assert (
        encode_text_frame(payload, mask=False) == bytes([0x81, len(payload)]) + payload
    )
    masked = encode_text_frame(payload, mask=True)
    assert masked[1] == 0x80 | len(payload)
    assert masked[6:] != payload


def test_an_unmasked_frame_is_refused_by_a_server() -> None:
    # Guards the test above: websockets fails a connection on an unmasked client frame.
    protocol = Protocol(Side.SERVER)
    protocol.receive_data(encode_text_frame(b"hi", mask=False))
    assert protocol.parser_exc is not None


def test_consecutive_frames_get_different_mask_keys() -> None:
    keys = {encode_text_frame(b"x", mask=True)[2:6] for _ in range(2000)}
    assert len(keys) > 1990  # 32-bit random keys: a handful of repeats at most


def test_mask_keys_come_from_os_urandom_one_call_per_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real_urandom = os.urandom

    def urandom(size: int) -> bytes:
        calls.append(size)
        return real_urandom(size)

    monkeypatch.setattr(framing.os, "urandom", urandom)
    keys = MaskKeys()

    taken = [keys.take() for _ in range(MaskKeys.BATCH + 1)]

    assert calls == [4 * MaskKeys.BATCH, 4 * MaskKeys.BATCH]
    assert all(len(key) == 4 for key in taken)
    assert len(set(taken)) > MaskKeys.BATCH - 5


def test_discarded_keys_are_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    batches = iter([b"\x01" * 4 * MaskKeys.BATCH, b"\x02" * 4 * MaskKeys.BATCH])
    monkeypatch.setattr(framing.os, "urandom", lambda size: next(batches))
    keys = MaskKeys()
    assert keys.take() == b"\x01" * 4

    keys.discard()  # as in a forked child

    assert keys.take() == b"\x02" * 4
