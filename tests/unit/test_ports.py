"""The RTP port pool."""

from __future__ import annotations

import pytest

from router.media.errors import MediaError, PortsExhausted
from router.media.ports import RtpPortPool


def test_hands_out_only_even_ports_with_their_rtcp_port_in_range():
    pool = RtpPortPool(10001, 10010)

    ports = [pool.acquire() for _ in range(pool.capacity)]

    assert ports == [10002, 10004, 10006, 10008]
    assert all(port % 2 == 0 and port + 1 <= 10010 for port in ports)


def test_an_even_upper_bound_is_not_used_without_its_rtcp_port():
    assert RtpPortPool(20000, 20004).capacity == 2


def test_counts_capacity_and_ports_in_use():
    pool = RtpPortPool(30000, 30099)

    first = pool.acquire()
    pool.acquire()

    assert (pool.capacity, pool.in_use) == (50, 2)
    pool.release(first)
    assert pool.in_use == 1


def test_a_released_port_is_reused_only_after_every_other_free_port():
    pool = RtpPortPool(40000, 40007)
    first = pool.acquire()
    pool.release(first)

    following = [pool.acquire() for _ in range(pool.capacity)]

    assert following == [40002, 40004, 40006, 40000]


def test_ports_are_not_always_the_lowest_free_one():
    pool = RtpPortPool(40000, 40099)
    held = pool.acquire()
    pool.acquire()
    pool.release(held)

    assert pool.acquire() != held


def test_acquiring_from_a_full_pool_raises_ports_exhausted():
    pool = RtpPortPool(50000, 50003)
    pool.acquire()
    pool.acquire()

    with pytest.raises(PortsExhausted, match="all 2 RTP ports in 50000-50003"):
        pool.acquire()
    assert issubclass(PortsExhausted, MediaError)


def test_releasing_a_port_that_is_not_in_use_is_an_error():
    pool = RtpPortPool(50000, 50003)
    port = pool.acquire()
    pool.release(port)

    with pytest.raises(ValueError, match=f"port {port} is not in use"):
        pool.release(port)
    with pytest.raises(ValueError, match="port 50001 is not in use"):
        pool.release(50001)
    assert pool.in_use == 0


@pytest.mark.parametrize(
    ("low", "high"),
    [(20000, 20000), (20010, 20000), (80, 20000), (1023, 2000), (60000, 65535), (0, 0)],
)
def test_a_bad_range_raises_value_error_naming_it(low, high):
    with pytest.raises(ValueError, match=f"RTP port range {low}-{high}"):
        RtpPortPool(low, high)


def test_a_range_without_an_even_odd_pair_is_rejected():
    with pytest.raises(ValueError, match="no even/odd port pair"):
        RtpPortPool(1025, 1026)


def test_the_widest_range_is_accepted():
    pool = RtpPortPool(1024, 65534)

    assert pool.capacity == (65534 - 1024) // 2
