"""The ``sip-router`` command line.

``sip-router run`` is the production entry point; ``sip-router demo`` runs a
router, an echo runner and a demo store in one process; ``sip-router
echo-runner`` runs the echo runner alone; ``sip-router numbers …`` and
``sip-router pipes …`` manage the store the router reads (the embedded store
by default, Redis with ``--redis-url`` / ``ROUTER_REDIS_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from router.logs import configure_logging
from router.settings import ConfigError, Settings, load_settings

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
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sip-router", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", help="TOML config file (ROUTER_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the router (production)")
    _network_options(run)
    _store_options(run)
    run.add_argument(
        "--default-country",
        help="country for national numbers (ROUTER_DEFAULT_COUNTRY)",
    )
    run.add_argument(
        "--http-bind", help="admin/metrics HTTP address (ROUTER_HTTP_BIND)"
    )
    run.add_argument(
        "--http-port", type=int, help="admin/metrics HTTP port (ROUTER_HTTP_PORT)"
    )
    run.set_defaults(handler=_run)

    demo = commands.add_parser(
        "demo", help="router + echo runner + demo store in one process"
    )
    _network_options(demo)
    demo.add_argument("--runner-port", type=int, default=8765, help="echo runner port")
    demo.add_argument(
        "--db", help="demo store file (default: demo.db in the data directory)"
    )
    demo.add_argument(
        "--http-port", type=int, help="metrics HTTP port (ROUTER_HTTP_PORT)"
    )
    demo.set_defaults(handler=_demo)

    echo = commands.add_parser("echo-runner", help="run the echo runner alone")
    echo.add_argument("--bind", default="127.0.0.1")
    echo.add_argument("--port", type=int, default=8765)
    echo.set_defaults(handler=_echo_runner)

    _numbers_commands(commands)
    _pipes_commands(commands)
    return parser


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
    ]
    overrides = {name: getattr(args, name, None) for name in names}
    overrides.update(extra)
    return load_settings(overrides)


# -- run / demo / echo-runner ----------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from router.app import Router, run_until_signalled

    settings = _settings_from(args)
    configure_logging(settings.log_level, settings.log_format)
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
    _run_loop(run_demo(settings, runner_port=args.runner_port, db_path=args.db))
    return 0


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


# -- numbers / pipes ------------------------------------------------------


def _numbers_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    numbers = commands.add_parser("numbers", help="manage phone numbers")
    actions = numbers.add_subparsers(dest="action", required=True)

    create = actions.add_parser("create", help="add a number")
    create.add_argument("number", help="E.164 number, e.g. +14155550100")
    create.add_argument("--country", help="ISO 3166-1 alpha-2 (derived when omitted)")
    create.add_argument(
        "--status", default="active", choices=["active", "inactive", "pending"]
    )
    create.add_argument("--trunk-type", default="unpod", choices=["unpod", "byo"])
    create.add_argument("--trunk-id")
    create.set_defaults(op=_numbers_create)

    listing = actions.add_parser("list", help="list numbers")
    listing.add_argument("--status", choices=["active", "inactive", "pending"])
    listing.add_argument("--country")
    listing.add_argument("--trunk-type", choices=["unpod", "byo"])
    listing.add_argument("--pipe-id")
    listing.set_defaults(op=_numbers_list)

    attach = actions.add_parser("attach", help="attach a number to a pipe")
    attach.add_argument("number", help="number_id or E.164 number")
    attach.add_argument("pipe_id")
    attach.set_defaults(op=_numbers_attach)

    detach = actions.add_parser("detach", help="detach a number from its pipe")
    detach.add_argument("number", help="number_id or E.164 number")
    detach.set_defaults(op=_numbers_detach)

    for sub in (create, listing, attach, detach):
        _store_options(sub)
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        sub.set_defaults(handler=_store_command)


def _pipes_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    pipes = commands.add_parser("pipes", help="manage speech pipes")
    actions = pipes.add_subparsers(dest="action", required=True)

    create = actions.add_parser("create", help="add a pipe")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--runner-url", required=True, help="ws:// or wss:// runner URL"
    )
    create.add_argument("--max-call-duration", type=int, default=3600, help="seconds")
    create.set_defaults(op=_pipes_create)

    listing = actions.add_parser("list", help="list pipes")
    listing.set_defaults(op=_pipes_list)

    for sub in (create, listing):
        _store_options(sub)
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        sub.set_defaults(handler=_store_command)


def _store_command(args: argparse.Namespace) -> int:
    from router.numbers.store import StoreError

    settings = _settings_from(args)
    op: Callable[[Any, argparse.Namespace], Awaitable[Any]] = args.op

    async def run() -> Any:
        from router.numbers.store import open_store

        store = await open_store(
            redis_url=settings.redis_url,
            db_path=settings.db_path,
            key_prefix=settings.redis_prefix,
        )
        try:
            return await op(store, args)
        finally:
            await store.close()

    try:
        result = asyncio.run(run())
    except (StoreError, ValueError) as error:
        print(f"sip-router: {error}", file=sys.stderr)
        return 1
    _print_result(result, as_json=args.json)
    return 0


async def _numbers_create(store: Any, args: argparse.Namespace) -> Any:
    from router.numbers.models import NumberStatus, TrunkType

    return await store.create_number(
        args.number,
        country=args.country,
        status=NumberStatus(args.status),
        trunk_type=TrunkType(args.trunk_type),
        trunk_id=args.trunk_id,
    )


async def _numbers_list(store: Any, args: argparse.Namespace) -> Any:
    from router.numbers.models import NumberStatus, TrunkType

    items: list[Any] = []
    cursor = None
    while True:
        page = await store.list_numbers(
            status=NumberStatus(args.status) if args.status else None,
            country=args.country.upper() if args.country else None,
            trunk_type=TrunkType(args.trunk_type) if args.trunk_type else None,
            pipe_id=args.pipe_id,
            cursor=cursor,
        )
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return items


async def _numbers_attach(store: Any, args: argparse.Namespace) -> Any:
    return await store.attach(args.number, args.pipe_id)


async def _numbers_detach(store: Any, args: argparse.Namespace) -> Any:
    return await store.detach(args.number)


async def _pipes_create(store: Any, args: argparse.Namespace) -> Any:
    return await store.create_pipe(
        name=args.name,
        runner_url=args.runner_url,
        max_call_duration_s=args.max_call_duration,
    )


async def _pipes_list(store: Any, args: argparse.Namespace) -> Any:
    return await store.list_pipes()


def _print_result(result: Any, *, as_json: bool) -> None:
    rows = result if isinstance(result, list) else [result]
    records = [_record(row) for row in rows]
    if as_json:
        print(json.dumps(records if isinstance(result, list) else records[0], indent=2))
        return
    if not records:
        print("(none)")
        return
    columns = list(records[0])
    widths = {
        c: max(len(c), *(len(str(r[c] or "-")) for r in records)) for c in columns
    }
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for record in records:
        print("  ".join(str(record[c] or "-").ljust(widths[c]) for c in columns))


def _record(row: Any) -> dict[str, Any]:
    data = dataclasses.asdict(row)
    return {
        key: (str(value) if value is not None else None) for key, value in data.items()
    }


if __name__ == "__main__":
    sys.exit(main())
