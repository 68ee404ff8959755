"""Trunks at the edge with SIPp as the carrier: source allowlist and digest.

The router runs as ``sip-router run`` with no unlisted sources allowed. First no
trunk lists 127.0.0.1, so SIPp's INVITE is refused 403; then a trunk for
127.0.0.1 with credentials is added through the CLI, and SIPp must answer the
digest challenge (with ``-au``/``-ap``) to get its call through.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    ECHO_NUMBER,
    EchoRunnerProcess,
    RouterProcess,
    SeededStore,
    running_echo_runner,
    sip_router_command,
    subprocess_environment,
)
from tests.e2e.harness import free_port_range, run_sipp, sipp_available

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sipp_available(), reason="sipp is not installed"),
]

PASSWORD = "s3cret-trunk"


@pytest.fixture(scope="module")
def edge_router(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RouterProcess, SeededStore]]:
    workdir = tmp_path_factory.mktemp("edge")
    store = SeededStore(workdir / "router.db")
    with running_echo_runner(workdir) as runner:
        assert isinstance(runner, EchoRunnerProcess)
        pipe_id = store.add_pipe("edge", runner.url())
        store.add_number(ECHO_NUMBER, pipe_id)
        router = RouterProcess(
            workdir,
            settings={
                "ROUTER_DB_PATH": str(store.path),
                "ROUTER_ALLOW_UNLISTED_SOURCES": "0",
                # SIPp answers MD5 challenges only; it reads the first one.
                "ROUTER_DIGEST_ALGORITHMS": "MD5,SHA-256",
            },
        )
        router.start()
        try:
            yield router, store
        finally:
            router.stop()


def add_trunk_for_loopback(store: SeededStore) -> None:
    argv = [*sip_router_command(), "trunks", "create", "--name", "sipp-carrier"]
    argv += ["--kind", "unpod", "--allow", "127.0.0.1/32", "--username", "acct77"]
    argv += ["--password-stdin", "--db", str(store.path)]
    done = subprocess.run(
        argv,
        input=PASSWORD.encode(),
        env=subprocess_environment(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert PASSWORD.encode() not in done.stdout  # write-only secret


def sipp(router: RouterProcess, scenario: str, tmp_path: Path, *extra: str) -> int:
    result = run_sipp(
        scenario,
        router.sip_target,
        service=ECHO_NUMBER,
        local_port=free_port_range(1)[0],
        timeout=15,
        extra=list(extra),
        workdir=tmp_path / scenario,
    )
    return result.returncode


def test_unlisted_source_is_refused_then_listed_trunk_must_answer_digest(
    edge_router: tuple[RouterProcess, SeededStore], tmp_path: Path
) -> None:
    router, store = edge_router
    assert sipp(router, "uac_forbidden.xml", tmp_path) == 0

    add_trunk_for_loopback(store)
    assert (
        sipp(router, "uac_auth_call.xml", tmp_path, "-au", "acct77", "-ap", PASSWORD)
        == 0
    )
    wrong = sipp(
        router, "uac_auth_call.xml", tmp_path / "wrong", "-au", "acct77", "-ap", "x"
    )
    assert wrong != 0
    router.wait_until_idle()
