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
        ({"ROUTER_ADVERTISE": "not_an_ip"}, "ROUTER_ADVERTISE"),
        ({"ROUTER_ADVERTISE": "0.0.0.0"}, "ROUTER_ADVERTISE"),
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


def test_a_bad_value_in_the_config_file_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "router.toml"
    config.write_text('[router]\nsip_port = "abc"\n')
    # --config after the command, where people put it, and before it.
    for args in (("--config", str(config)), ()):
        env = {} if args else {"ROUTER_CONFIG": str(config)}
        result = run_router(tmp_path, *args, **env)
        assert result.returncode == 2, result.stderr
        assert f"sip_port in {config}" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_misspelled_variable_is_named_with_the_setting_it_resembles(
    tmp_path: Path,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        # The taken port stops start-up once logging is set up.
        result = run_router(tmp_path, "--sip-port", str(port), ROUTER_SIPPORT=str(port))
    assert result.returncode == 1
    assert "ROUTER_SIPPORT (did you mean ROUTER_SIP_PORT?)" in result.stderr


def test_a_taken_echo_runner_port_stops_the_demo_naming_the_option(
    tmp_path: Path,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The echo runner starts before SIP, so the SIP port is never bound.
        options = ["--runner-port", str(port), "--sip-port", "5060", "--http-port", "0"]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "router.cli",
                "demo",
                *options,
                "--db",
                str(tmp_path / "d.db"),
            ],
            env={**os.environ, "ROUTER_BIND": "127.0.0.1"},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port} (--runner-port)" in result.stderr
    assert "Traceback" not in result.stderr
