"""Writing WebSocket text frames directly, with masking keys drawn in batches.

The sans-I/O protocol builds every outgoing frame through a ``Frame`` object, a
``BytesIO`` and one ``os.urandom`` call for its masking key. For the 50 media
messages a second of every call that is most of the cost of sending, so data
frames are serialised here instead; control frames (ping, pong, close) still go
through the protocol, which also keeps the connection's state.
"""

from __future__ import annotations

import os
import struct

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = ["MaskKeys", "encode_text_frame"]

# RFC 6455 §5.2: FIN set and opcode 0x1 (text) in the first byte; the MASK bit in
# the second byte, with a 7-bit length, or 126 / 127 announcing a 16- or 64-bit one.
_FIN_TEXT = 0x81
_MASK_BIT = 0x80
_SHORT_HEAD = struct.Struct("!BB")
_MEDIUM_HEAD = struct.Struct("!BBH")
_LONG_HEAD = struct.Struct("!BBQ")


class MaskKeys:
    """Masking keys for client frames, read from the OS random source in batches.

    RFC 6455 §5.3 asks for keys from a strong source of entropy that a server or
    proxy cannot predict from earlier ones. Each key here is a distinct slice of
    ``os.urandom`` output, as unpredictable as asking for four bytes at a time,
    but one system call serves :attr:`BATCH` frames instead of one.
    """

    BATCH = 1024

    def __init__(self) -> None:
        self._pool = b""
        self._next = 0
        # A process forked from this one must not reuse the keys left in the
        # pool, or two connections would be masked alike.
        os.register_at_fork(after_in_child=self.discard)

    def discard(self) -> None:
        """Forget the keys not yet used; the next key comes from a fresh batch."""
        self._pool = b""
        self._next = 0

    def take(self) -> bytes:
        """Return a fresh four-byte masking key."""
        start = self._next
        if start >= len(self._pool):
            self._pool = os.urandom(4 * self.BATCH)
            start = 0
        self._next = start + 4
        return self._pool[start : start + 4]


_KEYS = MaskKeys()


def encode_text_frame(payload: bytes, *, mask: bool) -> bytes:
    """Return one unfragmented text frame carrying ``payload`` (UTF-8 text).

    Args:
        payload: the message, already encoded as UTF-8.
        mask: True on the client side, where RFC 6455 §5.3 requires every frame
            to be masked; servers must not mask.
    """
    length = len(payload)
    mask_bit = _MASK_BIT if mask else 0
    if length < 126:
        head = _SHORT_HEAD.pack(_FIN_TEXT, mask_bit | length)
    elif length < 65536:
        head = _MEDIUM_HEAD.pack(_FIN_TEXT, mask_bit | 126, length)
    else:
        head = _LONG_HEAD.pack(_FIN_TEXT, mask_bit | 127, length)
    if not mask:
        return head + payload
    key = _KEYS.take()
    return b"".join((head, key, apply_mask(payload, key)))
