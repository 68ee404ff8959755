"""``sip-router numbers|pipes|trunks|accounts|calls …``: the admin commands.

Each command runs through :class:`~router.client.AsyncClient`. With ``--api URL`` (or
``ROUTER_API_URL``) the client talks to a running router with ``--api-key`` (or
``ROUTER_API_KEY``). Without it the command works straight on the local store (the
embedded file, or Redis with ``--redis-url``): the same API application is run in
this process over the store, with operator rights, so both ways check input, answer
and fail exactly alike.

Output is a table for people, or JSON with ``--json``. Exit status: 0 on success,
1 when the API or the store refuses (one line on stderr, or rows of an import that
failed), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from router.client import APIError, AsyncClient

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_admin_commands",
    "run_admin_command",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

STATUSES = ("active", "inactive", "pending")
TRUNK_KINDS = ("unpod", "byo")

Op = Callable[[AsyncClient, argparse.Namespace], Awaitable[Any]]
StoreOpener = Callable[[], Awaitable[Any]]


# -- parsers ----------------------------------------------------------------------------


def add_admin_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    store_options: Callable[[argparse.ArgumentParser], None],
    handler: Callable[[argparse.Namespace], int],
) -> None:
    """Add the numbers, pipes, trunks, accounts and calls commands to ``commands``.

    ``store_options`` adds the local store's options to each command; ``handler``
    runs a parsed command (it calls :func:`run_admin_command`).
    """
    leaves: list[argparse.ArgumentParser] = []
    for add in (_numbers, _pipes, _trunks, _accounts, _calls):
        leaves.extend(add(commands))
    for leaf in leaves:
        _connection_options(leaf)
        store_options(leaf)
        leaf.set_defaults(handler=handler)


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        default=os.environ.get("ROUTER_API_URL"),
        metavar="URL",
        help="use the admin API at URL (ROUTER_API_URL) instead of the local store",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("ROUTER_API_KEY"),
        help="API key or operator token for --api (ROUTER_API_KEY)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _leaf(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    op: Op,
    help_text: str,
) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(op=op)
    return parser


def _account_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--account-id", help=f"operator only: {what}")


def _numbers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[argparse.ArgumentParser]:
    group = commands.add_parser("numbers", help="manage phone numbers")
    actions = group.add_subparsers(dest="action", required=True)

    listing = _leaf(actions, "list", _numbers_list, "list numbers")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--country", help="ISO 3166-1 alpha-2")
    listing.add_argument("--trunk-type", choices=TRUNK_KINDS)
    listing.add_argument("--pipe-id")
    _account_option(listing, "one account's numbers")

    create = _leaf(actions, "create", _numbers_create, "add a number")
    create.add_argument("number", help="E.164 number, e.g. +14155550100")
    create.add_argument("--country", help="ISO 3166-1 alpha-2 (derived when omitted)")
    create.add_argument("--status", default="active", choices=STATUSES)
    create.add_argument(
        "--trunk-type", choices=TRUNK_KINDS, help="default: the trunk's"
    )
    create.add_argument("--trunk-id")
    _account_option(create, "the account that owns the number")

    leaves = [listing, create]
    for name, op, text in (
        ("get", _numbers_get, "show a number"),
        ("delete", _numbers_delete, "remove a number"),
        ("detach", _numbers_detach, "detach a number from its pipe"),
    ):
        leaf = _leaf(actions, name, op, text)
        leaf.add_argument("number", help="number_id or E.164 number")
        leaves.append(leaf)

    update = _leaf(actions, "update", _numbers_update, "change a number's status")
    update.add_argument("number", help="number_id or E.164 number")
    update.add_argument("--status", required=True, choices=STATUSES)

    attach = _leaf(actions, "attach", _numbers_attach, "attach a number to a pipe")
    attach.add_argument("number", help="number_id or E.164 number")
    attach.add_argument("pipe_id")

    importing = _leaf(actions, "import", _numbers_import, "add numbers from a file")
    importing.add_argument(
        "file",
        help="CSV with a header row (number,country,…) or a JSON list; - is stdin",
    )
    return [*leaves, update, attach, importing]


def _pipes(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[argparse.ArgumentParser]:
    group = commands.add_parser("pipes", help="manage Speech Pipes")
    actions = group.add_subparsers(dest="action", required=True)

    create = _leaf(actions, "create", _pipes_create, "add a pipe")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--runner-url", required=True, help="ws:// or wss:// runner URL"
    )
    create.add_argument("--max-call-duration", type=int, default=3600, help="seconds")
    _account_option(create, "the account that owns the pipe")

    listing = _leaf(actions, "list", _pipes_list, "list pipes")
    _account_option(listing, "one account's pipes")

    update = _leaf(actions, "update", _pipes_update, "change a pipe")
    update.add_argument("pipe_id")
    update.add_argument("--name")
    update.add_argument("--runner-url")
    update.add_argument("--max-call-duration", type=int, help="seconds")

    leaves = [create, listing, update]
    for name, op, text in (
        ("get", _pipes_get, "show a pipe"),
        ("delete", _pipes_delete, "remove a pipe, detaching its numbers"),
    ):
        leaf = _leaf(actions, name, op, text)
        leaf.add_argument("pipe_id")
        leaves.append(leaf)
    return leaves


def _trunks(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[argparse.ArgumentParser]:
    group = commands.add_parser("trunks", help="manage carrier trunks")
    actions = group.add_subparsers(dest="action", required=True)

    create = _leaf(actions, "create", _trunks_create, "add a trunk")
    create.add_argument("--name", required=True)
    create.add_argument("--kind", default="byo", choices=TRUNK_KINDS)
    create.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="IP address or CIDR prefix allowed to send calls (repeatable)",
    )
    create.add_argument("--default-country", help="for national-format numbers")
    create.add_argument("--termination-uri", help="the trunk's sip: URI")
    create.add_argument("--username", help="digest user name")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the digest password from the first line of stdin",
    )
    create.add_argument("--register", action="store_true", help="register at the URI")
    _account_option(create, "the account that owns the trunk")

    listing = _leaf(actions, "list", _trunks_list, "list trunks")
    listing.add_argument("--kind", choices=TRUNK_KINDS)
    _account_option(listing, "one account's trunks")

    leaves = [create, listing]
    for name, op, text in (
        ("get", _trunks_get, "show a trunk (never its password)"),
        ("delete", _trunks_delete, "remove a trunk"),
    ):
        leaf = _leaf(actions, name, op, text)
        leaf.add_argument("trunk_id")
        leaves.append(leaf)
    return leaves


def _accounts(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[argparse.ArgumentParser]:
    group = commands.add_parser("accounts", help="manage accounts (operator only)")
    actions = group.add_subparsers(dest="action", required=True)

    create = _leaf(actions, "create", _accounts_create, "add an account and a key")
    create.add_argument("name")
    listing = _leaf(actions, "list", _accounts_list, "list accounts")
    leaves = [create, listing]
    for name, op, text in (
        ("get", _accounts_get, "show an account"),
        ("delete", _accounts_delete, "remove an account that owns nothing"),
    ):
        leaf = _leaf(actions, name, op, text)
        leaf.add_argument("account_id")
        leaves.append(leaf)

    keys = actions.add_parser("keys", help="manage an account's API keys")
    key_actions = keys.add_subparsers(dest="key_action", required=True)
    for name, op, text in (
        ("list", _keys_list, "list an account's keys (no secrets)"),
        ("create", _keys_create, "add a key; its secret is shown once"),
    ):
        leaf = _leaf(key_actions, name, op, text)
        leaf.add_argument("account_id")
        leaves.append(leaf)
    revoke = _leaf(key_actions, "revoke", _keys_revoke, "revoke a key")
    revoke.add_argument("account_id")
    revoke.add_argument("key_id")
    return [*leaves, revoke]


def _calls(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[argparse.ArgumentParser]:
    group = commands.add_parser("calls", help="show live and recent calls")
    actions = group.add_subparsers(dest="action", required=True)

    listing = _leaf(actions, "list", _calls_list, "list calls, newest first")
    which = listing.add_mutually_exclusive_group()
    which.add_argument("--active", action="store_true", help="live calls only")
    which.add_argument("--ended", action="store_true", help="ended calls only")
    listing.add_argument("--limit", type=int, default=100, help="at most this many")
    _account_option(listing, "one account's calls")

    get = _leaf(actions, "get", _calls_get, "show a call")
    get.add_argument("call_id")
    return [listing, get]


# -- running ----------------------------------------------------------------------------


def run_admin_command(args: argparse.Namespace, open_store: StoreOpener) -> int:
    """Run a parsed admin command; return the exit status.

    Over the API when ``args.api`` is set, else on the store ``open_store`` opens.
    """
    if args.api and not args.api_key:
        print("sip-router: --api needs --api-key or ROUTER_API_KEY", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = asyncio.run(_run(args, open_store))
    except (APIError, OSError, ValueError) as error:
        print(f"sip-router: {_one_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    return _print_result(result, as_json=args.json)


async def _run(args: argparse.Namespace, open_store: StoreOpener) -> Any:
    op: Op = args.op
    if args.api:
        async with AsyncClient(api_key=args.api_key, base_url=args.api) as client:
            return await op(client, args)
    return await _run_locally(op, args, open_store)


async def _run_locally(
    op: Op, args: argparse.Namespace, open_store: StoreOpener
) -> Any:
    """Run ``op`` through the API application in this process, as the operator."""
    import httpx

    from router.api.app import create_app
    from router.numbers.store import StoreError

    try:
        store = await open_store()
    except StoreError as error:
        raise ValueError(str(error)) from None
    token = secrets.token_urlsafe(32)
    transport = httpx.ASGITransport(app=create_app(store, operator_token=token))
    try:
        async with AsyncClient(
            api_key=token, base_url="http://local", transport=transport
        ) as client:
            return await op(client, args)
    finally:
        await store.close()


def _one_line(error: Exception) -> str:
    if isinstance(error, APIError):
        field = (
            f" ({error.field})"
            if error.field and error.field not in error.message
            else ""
        )
        return f"{error.message}{field}"
    return " ".join(str(error).split())


# -- numbers ----------------------------------------------------------------------------


async def _numbers_list(client: AsyncClient, args: argparse.Namespace) -> Any:
    filters = {
        "status": args.status,
        "country": args.country,
        "trunk_type": args.trunk_type,
        "pipe_id": args.pipe_id,
        "account_id": args.account_id,
    }
    return [number async for number in client.numbers.iter(**filters)]


async def _numbers_create(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.numbers.create(
        number=args.number,
        country=args.country,
        status=args.status,
        trunk_type=args.trunk_type,
        trunk_id=args.trunk_id,
        account_id=args.account_id,
    )


async def _numbers_get(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.numbers.get(args.number)


async def _numbers_update(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.numbers.update(args.number, status=args.status)


async def _numbers_delete(client: AsyncClient, args: argparse.Namespace) -> Any:
    await client.numbers.delete(args.number)
    return {"number": args.number, "deleted": True}


async def _numbers_attach(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.numbers.attach(args.number, args.pipe_id)


async def _numbers_detach(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.numbers.detach(args.number)


async def _numbers_import(client: AsyncClient, args: argparse.Namespace) -> Any:
    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    if data.lstrip().startswith(b"["):
        return await client.numbers.import_rows(json.loads(data))
    return await client.numbers.import_csv(data)


# -- pipes ------------------------------------------------------------------------------


async def _pipes_create(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.pipes.create(
        name=args.name,
        runner_url=args.runner_url,
        max_call_duration_s=args.max_call_duration,
        account_id=args.account_id,
    )


async def _pipes_list(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.pipes.list(account_id=args.account_id)


async def _pipes_get(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.pipes.get(args.pipe_id)


async def _pipes_update(client: AsyncClient, args: argparse.Namespace) -> Any:
    changes = {
        "name": args.name,
        "runner_url": args.runner_url,
        "max_call_duration_s": args.max_call_duration,
    }
    given = {name: value for name, value in changes.items() if value is not None}
    return await client.pipes.update(args.pipe_id, **given)


async def _pipes_delete(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.pipes.delete(args.pipe_id)


# -- trunks -----------------------------------------------------------------------------


async def _trunks_create(client: AsyncClient, args: argparse.Namespace) -> Any:
    # A password on the command line would show in the process list and the shell's
    # history, so it is read from stdin.
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
    return await client.trunks.create(
        name=args.name,
        kind=args.kind,
        allowed_addresses=args.allow,
        default_country=args.default_country,
        termination_uri=args.termination_uri,
        username=args.username,
        password=password,
        register=args.register,
        account_id=args.account_id,
    )


async def _trunks_list(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.trunks.list(kind=args.kind, account_id=args.account_id)


async def _trunks_get(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.trunks.get(args.trunk_id)


async def _trunks_delete(client: AsyncClient, args: argparse.Namespace) -> Any:
    await client.trunks.delete(args.trunk_id)
    return {"trunk_id": args.trunk_id, "deleted": True}


# -- accounts ---------------------------------------------------------------------------


async def _accounts_create(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.accounts.create(name=args.name)


async def _accounts_list(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.accounts.list()


async def _accounts_get(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.accounts.get(args.account_id)


async def _accounts_delete(client: AsyncClient, args: argparse.Namespace) -> Any:
    await client.accounts.delete(args.account_id)
    return {"account_id": args.account_id, "deleted": True}


async def _keys_list(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.accounts.keys.list(args.account_id)


async def _keys_create(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.accounts.keys.create(args.account_id)


async def _keys_revoke(client: AsyncClient, args: argparse.Namespace) -> Any:
    await client.accounts.keys.revoke(args.account_id, args.key_id)
    return {"key_id": args.key_id, "revoked": True}


# -- calls ------------------------------------------------------------------------------


async def _calls_list(client: AsyncClient, args: argparse.Namespace) -> Any:
    active = True if args.active else False if args.ended else None
    calls = []
    async for call in client.calls.iter(active=active, account_id=args.account_id):
        calls.append(call)
        if len(calls) >= args.limit:
            break
    return calls


async def _calls_get(client: AsyncClient, args: argparse.Namespace) -> Any:
    return await client.calls.get(args.call_id)


# -- output -----------------------------------------------------------------------------


def _print_result(result: Any, *, as_json: bool) -> int:
    """Print ``result``; return 1 when it is an import with refused rows."""
    data = _plain(result)
    if as_json:
        print(json.dumps(data, indent=2))
    elif isinstance(data, dict) and set(data) == {"created", "errors"}:
        _print_table(data["created"])
        if data["errors"]:
            print(file=sys.stderr)
            _print_table(data["errors"], file=sys.stderr)
    else:
        _print_table(data if isinstance(data, list) else [data])
    refused = isinstance(data, dict) and bool(data.get("errors"))
    return EXIT_ERROR if refused else EXIT_OK


def _plain(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, list):
        return [_plain(item) for item in result]
    return result


def _print_table(records: Sequence[dict[str, Any]], file: Any = None) -> None:
    if not records:
        print("(none)", file=file)
        return
    columns = list(records[0])
    cells = [[_cell(record.get(column)) for column in columns] for record in records]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)
    ]
    print(
        "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=file
    )
    for row in cells:
        line = "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))
        print(line.rstrip(), file=file)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(str(item) for item in value) or "-"
    return str(value)
