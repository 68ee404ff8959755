"""Which trunk a call comes from: the longest prefix that holds its source address.

Both stores read every trunk and match here, so they pick the same trunk: the most
specific allowlist entry wins (a /32 beats a /24), and between equal prefixes the
smallest trunk id, so the answer is stable.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from .models import Trunk

__all__ = ["match_trunk"]

# Parsed addresses and networks are kept: every INVITE matches its source
# against every allowlist entry, and both sets are small and change rarely.
# Bounded, so a scan from many addresses cannot grow memory without limit.
_PARSED_CACHE_SIZE = 4096

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def match_trunk(trunks: Iterable[Trunk], ip: str) -> Trunk | None:
    """Return the trunk whose allowed addresses hold ``ip`` with the longest prefix."""
    address = _parse_source_address(ip)
    if address is None:
        return None
    candidates: list[tuple[int, str, Trunk]] = []
    for trunk in trunks:
        prefix = _longest_match(trunk.allowed_addresses, address)
        if prefix >= 0:
            candidates.append((-prefix, trunk.trunk_id, trunk))
    if not candidates:
        return None
    # Longest prefix first; the smallest trunk id breaks ties so the answer is stable.
    return min(candidates, key=lambda candidate: candidate[:2])[2]


@functools.lru_cache(maxsize=_PARSED_CACHE_SIZE)
def _parse_source_address(ip: str) -> Address | None:
    try:
        address = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d (RFC 4291 §2.5.5.2);
    # allowlists are written with plain IPv4 addresses.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _longest_match(networks: Iterable[str], address: Address) -> int:
    longest = -1
    for text in networks:
        network = _parse_network(text)
        if network is None:
            continue  # written by an older version with laxer checks: ignore it
        if network.version == address.version and address in network:
            longest = max(longest, network.prefixlen)
    return longest


@functools.lru_cache(maxsize=_PARSED_CACHE_SIZE)
def _parse_network(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        return None
