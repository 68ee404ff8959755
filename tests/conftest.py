"""Fixtures shared by every test directory.

``redis_url`` names the Redis the integration and end-to-end tests use. Tests that need
Redis fail (never skip) when it is not running: a skipped store test looks like a
passing one.
"""

from __future__ import annotations

import os

import pytest
import redis

from router.logs import configure_logging

__all__ = ["redis_url"]

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"

# Tests log as the router does in production (plain JSON lines); structlog's
# unconfigured default renders tracebacks richly, which stalls the event loop
# for a tenth of a second per logged exception and skews timing tests.
configure_logging("info", "json")

# Long enough for a loaded CI machine, short enough that a missing server fails fast.
_PROBE_TIMEOUT_S = 2.0


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis URL (env ROUTER_TEST_REDIS_URL), checked to answer PING."""
    url = os.environ.get("ROUTER_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    client = redis.Redis.from_url(
        url, socket_connect_timeout=_PROBE_TIMEOUT_S, socket_timeout=_PROBE_TIMEOUT_S
    )
    problem: Exception | None = None
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        problem = exc
    finally:
        client.close()
    if problem is not None:
        pytest.fail(
            f"Redis is not reachable at {url} ({problem}): start it with "
            "`redis-server --bind 127.0.0.1 --port 6379 --save '' --daemonize yes`, "
            "or point ROUTER_TEST_REDIS_URL at a running one",
            pytrace=False,
        )
    return url
