"""The ``sip-router`` command line.

``sip-router run`` is the production entry point; ``sip-router demo`` runs a
router, an echo runner and a demo store in one process; ``sip-router
echo-runner`` runs the echo runner alone; ``sip-router numbers|pipes|trunks|
accounts|calls …`` manage the store the router reads (the embedded store by
default, Redis with ``--redis-url`` / ``ROUTER_REDIS_URL``), or a running router
through its admin API with ``--api URL`` (see :mod:`router.cli_api`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Sequence
from typing import Any

import structlog

from router.cli_api import add_admin_commands, run_admin_command
from router.logs import configure_logging
from router.settings import (
    ConfigError,
    Settings,
    StartupError,
    load_settings,
    unknown_variables,
)

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.config:
        os.environ["ROUTER_CONFIG"] = args.config
    try:
        result: int = args.handler(args)
    except ConfigError as error:
        print(f"sip-router: {error}", file=sys.stderr)
        return 2
    except StartupError as error:
        print(f"sip-router: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sip-router", description="Inbound SIP call router for voice AI."
    )
    parser.add_argument("--config", help="TOML config file (ROUTER_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the router (production)")
    _config_option(run)
    _network_options(run)
    _store_options(run)
    run.add_argument(
        "--media-workers",
        type=int,
        help="processes carrying calls' media, one per core; 0 = in this process "
        "(ROUTER_MEDIA_WORKERS)",
    )
    run.add_argument(
        "--default-country",
        help="country for national numbers (ROUTER_DEFAULT_COUNTRY)",
    )
    run.add_argument(
        "--http-bind", help="admin/metrics HTTP address (ROUTER_HTTP_BIND)"
    )
    run.add_argument(
        "--http-port",
        type=int,
        help="admin API and metrics HTTP port (ROUTER_HTTP_PORT)",
    )
    run.set_defaults(handler=_run)

    demo = commands.add_parser(
        "demo", help="router + echo runner + demo store in one process"
    )
    _config_option(demo)
    _network_options(demo)
    demo.add_argument(
        "--runner-port", type=int, default=8765, help="echo runner port (default 8765)"
    )
    demo.add_argument(
        "--db", help="demo store file (default: demo.db in the data directory)"
    )
    demo.add_argument(
        "--http-port",
        type=int,
        help="admin API and metrics HTTP port (ROUTER_HTTP_PORT)",
    )
    demo.set_defaults(handler=_demo)

    echo = commands.add_parser("echo-runner", help="run the echo runner alone")
    echo.add_argument("--bind", default="127.0.0.1")
    echo.add_argument("--port", type=int, default=8765)
    echo.set_defaults(handler=_echo_runner)

    add_admin_commands(commands, store_options=_store_options, handler=_store_command)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    # Also after the command (`sip-router run --config F`), where people put it;
    # SUPPRESS keeps a value given before the command when none is given here.
    parser.add_argument(
        "--config", default=argparse.SUPPRESS, help="TOML config file (ROUTER_CONFIG)"
    )


def _network_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", help="SIP/RTP bind address (ROUTER_BIND)")
    parser.add_argument(
        "--advertise", help="address in Via/Contact/SDP (ROUTER_ADVERTISE)"
    )
    parser.add_argument(
        "--sip-port", type=int, help="SIP port, UDP and TCP (ROUTER_SIP_PORT)"
    )
    parser.add_argument("--rtp-ports", help="RTP port range LO-HI (ROUTER_RTP_PORTS)")
    parser.add_argument(
        "--log-level", help="debug|info|warning|error (ROUTER_LOG_LEVEL)"
    )
    parser.add_argument("--log-format", help="auto|json|console (ROUTER_LOG_FORMAT)")


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", dest="db_path", help="embedded store file (ROUTER_DB_PATH)"
    )
    parser.add_argument("--redis-url", help="use Redis at this URL (ROUTER_REDIS_URL)")


def _settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    names = [
        "bind",
        "advertise",
        "sip_port",
        "rtp_ports",
        "log_level",
        "log_format",
        "db_path",
        "redis_url",
        "default_country",
        "http_bind",
        "http_port",
        "media_workers",
    ]
    overrides = {name: getattr(args, name, None) for name in names}
    overrides.update(extra)
    return load_settings(overrides)


# -- run / demo / echo-runner ----------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from router.app import Router, run_until_signalled

    settings = _settings_from(args)
    configure_logging(settings.log_level, settings.log_format)
    _warn_unknown_variables()
    _run_loop(run_until_signalled(Router(settings)))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from router.demo import run_demo

    settings = _settings_from(
        args,
        bind=args.bind or os.environ.get("ROUTER_BIND", "127.0.0.1"),
        # The demo takes calls from any local softphone or SIPp: no trunk list.
        allow_unlisted_sources=True,
    )
    configure_logging(settings.log_level, settings.log_format)
    _warn_unknown_variables()
    _run_loop(run_demo(settings, runner_port=args.runner_port, db_path=args.db))
    return 0


def _warn_unknown_variables() -> None:
    """One warning for each ROUTER_* variable that names no setting."""
    log = structlog.get_logger("router.cli")
    for note in unknown_variables(os.environ):
        log.warning("unknown_variable_ignored", variable=note)


def _echo_runner(args: argparse.Namespace) -> int:
    from router.runner.echo import main_echo_runner

    configure_logging()
    main_echo_runner(args.bind, args.port)
    return 0


def _run_loop(coroutine: Awaitable[None]) -> None:
    try:
        import uvloop

        uvloop.run(coroutine)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coroutine)  # type: ignore[arg-type]


# -- numbers / pipes / trunks / accounts / calls ---------------------------


def _store_command(args: argparse.Namespace) -> int:
    """Run an admin command over the API (``--api``) or on the configured store."""

    async def open_configured_store() -> Any:
        from router.numbers.store import open_store

        settings = _settings_from(args)
        return await open_store(
            redis_url=settings.redis_url,
            db_path=settings.db_path,
            key_prefix=settings.redis_prefix,
            call_retention_s=settings.call_retention_s,
        )

    return run_admin_command(args, open_configured_store)


if __name__ == "__main__":
    sys.exit(main())
