"""Start-up failures end with one line naming the setting, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def run_router(
    tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "router.cli",
            "run",
            "--http-port",
            "0",
            *args,
        ],
        env={
            **os.environ,
            "ROUTER_BIND": "127.0.0.1",
            "ROUTER_DB_PATH": str(tmp_path / "r.db"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"ROUTER_SIP_PORT": "abc"}, "ROUTER_SIP_PORT"),
        ({"ROUTER_RTP_PORTS": "20000-10000"}, "ROUTER_RTP_PORTS"),
        ({"ROUTER_DEFAULT_COUNTRY": "XX"}, "ROUTER_DEFAULT_COUNTRY"),
        ({"ROUTER_BIND": "not-an-ip"}, "ROUTER_BIND"),
    ],
)
def test_bad_setting_stops_startup_naming_it(
    tmp_path: Path, env: dict[str, str], setting: str
) -> None:
    result = run_router(tmp_path, **env)
    assert result.returncode == 2
    assert setting in result.stderr
    assert "Traceback" not in result.stderr


def test_taken_sip_port_names_the_setting(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run_router(tmp_path, "--sip-port", str(port))
    assert result.returncode == 1
    assert "ROUTER_SIP_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_store_names_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("this is not a database")
    result = run_router(tmp_path, ROUTER_DB_PATH=str(bad))
    assert result.returncode == 1
    assert "ROUTER_DB_PATH" in result.stderr
    assert "Traceback" not in result.stderr
