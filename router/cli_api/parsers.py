"""The admin commands' arguments: one ``argparse`` sub-command per resource and action."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence

from router.cli_api import commands as handlers
from router.cli_api.commands import Op

__all__ = ["STATUSES", "TRUNK_KINDS", "add_admin_commands"]

STATUSES = ("active", "inactive", "pending")
TRUNK_KINDS = ("unpod", "byo")


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


def _leaves_taking(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    argument: str,
    specs: Sequence[tuple[str, Op, str]],
    help_text: str | None = None,
) -> list[argparse.ArgumentParser]:
    """Add one leaf per ``(name, handler, help)``, each taking the positional ``argument``."""
    leaves = []
    for name, op, text in specs:
        leaf = _leaf(actions, name, op, text)
        leaf.add_argument(argument, help=help_text)
        leaves.append(leaf)
    return leaves


def _account_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--account-id", help=f"operator only: {what}")


def _numbers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[argparse.ArgumentParser]:
    group = commands.add_parser("numbers", help="manage phone numbers")
    actions = group.add_subparsers(dest="action", required=True)

    listing = _leaf(actions, "list", handlers.numbers_list, "list numbers")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--country", help="ISO 3166-1 alpha-2")
    listing.add_argument("--trunk-type", choices=TRUNK_KINDS)
    listing.add_argument("--pipe-id")
    _account_option(listing, "one account's numbers")

    create = _leaf(actions, "create", handlers.numbers_create, "add a number")
    create.add_argument("number", help="E.164 number, e.g. +14155550100")
    create.add_argument("--country", help="ISO 3166-1 alpha-2 (derived when omitted)")
    create.add_argument("--status", default="active", choices=STATUSES)
    create.add_argument(
        "--trunk-type", choices=TRUNK_KINDS, help="default: the trunk's"
    )
    create.add_argument("--trunk-id")
    _account_option(create, "the account that owns the number")

    leaves = [listing, create]
    leaves += _leaves_taking(
        actions,
        "number",
        (
            ("get", handlers.numbers_get, "show a number"),
            ("delete", handlers.numbers_delete, "remove a number"),
            ("detach", handlers.numbers_detach, "detach a number from its pipe"),
        ),
        help_text="number_id or E.164 number",
    )

    update = _leaf(
        actions, "update", handlers.numbers_update, "change a number's status"
    )
    update.add_argument("number", help="number_id or E.164 number")
    update.add_argument("--status", required=True, choices=STATUSES)

    attach = _leaf(
        actions, "attach", handlers.numbers_attach, "attach a number to a pipe"
    )
    attach.add_argument("number", help="number_id or E.164 number")
    attach.add_argument("pipe_id")

    importing = _leaf(
        actions, "import", handlers.numbers_import, "add numbers from a file"
    )
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

    create = _leaf(actions, "create", handlers.pipes_create, "add a pipe")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--runner-url", required=True, help="ws:// or wss:// runner URL"
    )
    create.add_argument("--max-call-duration", type=int, default=3600, help="seconds")
    _account_option(create, "the account that owns the pipe")

    listing = _leaf(actions, "list", handlers.pipes_list, "list pipes")
    _account_option(listing, "one account's pipes")

    update = _leaf(actions, "update", handlers.pipes_update, "change a pipe")
    update.add_argument("pipe_id")
    update.add_argument("--name")
    update.add_argument("--runner-url")
    update.add_argument("--max-call-duration", type=int, help="seconds")

    leaves = [create, listing, update]
    leaves += _leaves_taking(
        actions,
        "pipe_id",
        (
            ("get", handlers.pipes_get, "show a pipe"),
            ("delete", handlers.pipes_delete, "remove a pipe, detaching its numbers"),
        ),
    )
    return leaves


def _trunks(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[argparse.ArgumentParser]:
    group = commands.add_parser("trunks", help="manage carrier trunks")
    actions = group.add_subparsers(dest="action", required=True)

    create = _leaf(actions, "create", handlers.trunks_create, "add a trunk")
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

    listing = _leaf(actions, "list", handlers.trunks_list, "list trunks")
    listing.add_argument("--kind", choices=TRUNK_KINDS)
    _account_option(listing, "one account's trunks")

    leaves = [create, listing]
    leaves += _leaves_taking(
        actions,
        "trunk_id",
        (
            ("get", handlers.trunks_get, "show a trunk (never its password)"),
            ("delete", handlers.trunks_delete, "remove a trunk"),
        ),
    )
    return leaves


def _accounts(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[argparse.ArgumentParser]:
    group = commands.add_parser("accounts", help="manage accounts (operator only)")
    actions = group.add_subparsers(dest="action", required=True)

    create = _leaf(
        actions, "create", handlers.accounts_create, "add an account and a key"
    )
    create.add_argument("name")
    listing = _leaf(actions, "list", handlers.accounts_list, "list accounts")
    leaves = [create, listing]
    leaves += _leaves_taking(
        actions,
        "account_id",
        (
            ("get", handlers.accounts_get, "show an account"),
            ("delete", handlers.accounts_delete, "remove an account that owns nothing"),
        ),
    )

    keys = actions.add_parser("keys", help="manage an account's API keys")
    key_actions = keys.add_subparsers(dest="key_action", required=True)
    leaves += _leaves_taking(
        key_actions,
        "account_id",
        (
            ("list", handlers.keys_list, "list an account's keys (no secrets)"),
            ("create", handlers.keys_create, "add a key; its secret is shown once"),
        ),
    )
    revoke = _leaf(key_actions, "revoke", handlers.keys_revoke, "revoke a key")
    revoke.add_argument("account_id")
    revoke.add_argument("key_id")
    return [*leaves, revoke]


def _calls(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[argparse.ArgumentParser]:
    group = commands.add_parser("calls", help="show live and recent calls")
    actions = group.add_subparsers(dest="action", required=True)

    listing = _leaf(actions, "list", handlers.calls_list, "list calls, newest first")
    which = listing.add_mutually_exclusive_group()
    which.add_argument("--active", action="store_true", help="live calls only")
    which.add_argument("--ended", action="store_true", help="ended calls only")
    listing.add_argument("--limit", type=int, default=100, help="at most this many")
    _account_option(listing, "one account's calls")

    get = _leaf(actions, "get", handlers.calls_get, "show a call")
    get.add_argument("call_id")
    return [listing, get]
