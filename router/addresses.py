"""IP addresses read from what peers send: Via hosts, SDP connection addresses.

Every call's addresses are parsed several times as it is set up, and peers'
addresses repeat from call to call, so valid ones are kept for reuse, in one
cache bounded in count and in the length of what it keeps.
"""

from __future__ import annotations

import ipaddress

__all__ = ["ip_address", "is_unspecified"]


def is_unspecified(address: str) -> bool:
    """Return True for 0.0.0.0 or ::, the old way of putting a stream on hold."""
    parsed = ip_address(address)
    return parsed is not None and parsed.is_unspecified


_IP_ADDRESSES: dict[str, ipaddress.IPv4Address | ipaddress.IPv6Address] = {}
_MAX_KEPT_ADDRESSES = 1024
# The longest IPv6 text form is 45 characters; a zone (fe80::1%eth0) adds a few.
_LONGEST_KEPT_ADDRESS = 64


def ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Return ``text`` as an IP address, or None when it is not one.

    Every call's bind and SDP addresses come through here several times, and
    callers' addresses repeat from call to call, so valid ones are kept. What
    is kept is bounded in count and size: a caller's SDP can carry any text.
    """
    address = _IP_ADDRESSES.get(text)
    if address is not None:
        return address
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if len(text) <= _LONGEST_KEPT_ADDRESS:
        if len(_IP_ADDRESSES) >= _MAX_KEPT_ADDRESSES:
            del _IP_ADDRESSES[next(iter(_IP_ADDRESSES))]
        _IP_ADDRESSES[text] = address
    return address
