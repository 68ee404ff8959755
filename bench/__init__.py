"""Benchmarks of sip-router against SIPp, measured in the same run.

``python -m bench.run`` measures answered calls per second (the router and
SIPp's own UAS under the same SIPp caller), bridged calls per core (the router
and a plain RTP relay under the same compiled load generator) and the set-up
time of a call, and prints each figure as a ratio against its reference.
"""

from __future__ import annotations

__all__: list[str] = []
