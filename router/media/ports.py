"""The pool of local RTP ports handed to calls.

RTP uses an even port and keeps the odd port above it for RTCP (RFC 3550 §11),
so the pool only hands out even ports whose odd neighbour is also in the range.
Ports are handed out in least-recently-released order: a port that has just been
freed goes to the back of the line, so late packets of an ended call cannot land
in the next call that would otherwise get the same port.
"""

from __future__ import annotations

from collections import deque

from .errors import PortsExhausted

# PortsExhausted is re-exported: it is what acquire() raises.
__all__ = ["MAX_RTP_PORT", "MIN_RTP_PORT", "PortsExhausted", "RtpPortPool"]

# Below 1024 are the system ports (RFC 6335 §6), which need privileges to bind.
MIN_RTP_PORT = 1024
# The highest even port whose RTCP port (one above) still exists.
MAX_RTP_PORT = 65534


class RtpPortPool:
    """Even UDP ports in ``low..high``, handed out round-robin.

    Args:
        low: lowest port of the range (inclusive).
        high: highest port of the range (inclusive); an RTP port is only used if
            its RTCP port, one above, is in the range too.

    Raises:
        ValueError: the range is empty, reversed, or outside 1024..65534, or holds
            no even port with its odd neighbour.
    """

    def __init__(self, low: int, high: int) -> None:
        if not MIN_RTP_PORT <= low < high <= MAX_RTP_PORT:
            raise ValueError(
                f"RTP port range {low}-{high} must satisfy "
                f"{MIN_RTP_PORT} <= low < high <= {MAX_RTP_PORT}"
            )
        first_even = low + (low & 1)
        ports = range(first_even, high, 2)
        if not ports:
            raise ValueError(f"RTP port range {low}-{high} holds no even/odd port pair")
        self.low = low
        self.high = high
        self._free: deque[int] = deque(ports)
        self._in_use: set[int] = set()
        self._capacity = len(ports)

    @property
    def capacity(self) -> int:
        """How many RTP ports the pool holds in total."""
        return self._capacity

    @property
    def in_use(self) -> int:
        """How many ports are handed out and not yet released."""
        return len(self._in_use)

    def acquire(self) -> int:
        """Hand out the free port that was released longest ago.

        Raises:
            PortsExhausted: every port is in use.
        """
        if not self._free:
            raise PortsExhausted(
                f"all {self._capacity} RTP ports in {self.low}-{self.high} are in use"
            )
        port = self._free.popleft()
        self._in_use.add(port)
        return port

    def release(self, port: int) -> None:
        """Give ``port`` back; it is handed out again after every other free port.

        Raises:
            ValueError: ``port`` is not currently handed out by this pool.
        """
        if port not in self._in_use:
            raise ValueError(
                f"RTP port {port} is not in use in pool {self.low}-{self.high}"
            )
        self._in_use.remove(port)
        self._free.append(port)

    def __repr__(self) -> str:
        return f"RtpPortPool({self.low}, {self.high}, in_use={self.in_use})"
