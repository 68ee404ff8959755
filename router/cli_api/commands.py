"""The admin commands' handlers: each runs one client call from parsed arguments.

A handler takes the :class:`~router.client.AsyncClient` and the parsed arguments and
returns what the command prints: a model, a list of models, or a small dict for the
commands (delete, revoke) whose answer has no body.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from router.client import AsyncClient

__all__ = [
    "Op",
    "accounts_create",
    "accounts_delete",
    "accounts_get",
    "accounts_list",
    "calls_get",
    "calls_list",
    "keys_create",
    "keys_list",
    "keys_revoke",
    "numbers_attach",
    "numbers_create",
    "numbers_delete",
    "numbers_detach",
    "numbers_get",
    "numbers_import",
    "numbers_list",
    "numbers_update",
    "pipes_create",
    "pipes_delete",
    "pipes_get",
    "pipes_list",
    "pipes_update",
    "trunks_create",
    "trunks_delete",
    "trunks_get",
    "trunks_list",
]

Op = Callable[[AsyncClient, argparse.Namespace], Awaitable[Any]]


# -- numbers ----------------------------------------------------------------------------


async def numbers_list(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``numbers list``: every number matching the filters, all pages."""
    filters = {
        "status": args.status,
        "country": args.country,
        "trunk_type": args.trunk_type,
        "pipe_id": args.pipe_id,
        "account_id": args.account_id,
    }
    return [number async for number in client.numbers.iter(**filters)]


async def numbers_create(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``numbers create``: add a number."""
    return await client.numbers.create(
        number=args.number,
        country=args.country,
        status=args.status,
        trunk_type=args.trunk_type,
        trunk_id=args.trunk_id,
        account_id=args.account_id,
    )


async def numbers_get(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``numbers get``: show a number."""
    return await client.numbers.get(args.number)


async def numbers_update(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``numbers update``: change a number's status."""
    return await client.numbers.update(args.number, status=args.status)


async def numbers_delete(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``numbers delete``: remove a number."""
    await client.numbers.delete(args.number)
    return {"number": args.number, "deleted": True}


async def numbers_attach(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``numbers attach``: attach a number to a pipe."""
    return await client.numbers.attach(args.number, args.pipe_id)


async def numbers_detach(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``numbers detach``: detach a number from its pipe."""
    return await client.numbers.detach(args.number)


async def numbers_import(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``numbers import``: add numbers from a CSV file or a JSON list."""
    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    if data.lstrip().startswith(b"["):
        return await client.numbers.import_rows(json.loads(data))
    return await client.numbers.import_csv(data)


# -- pipes ------------------------------------------------------------------------------


async def pipes_create(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``pipes create``: add a pipe."""
    return await client.pipes.create(
        name=args.name,
        runner_url=args.runner_url,
        max_call_duration_s=args.max_call_duration,
        account_id=args.account_id,
    )


async def pipes_list(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``pipes list``: the pipes this key sees."""
    return await client.pipes.list(account_id=args.account_id)


async def pipes_get(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``pipes get``: show a pipe."""
    return await client.pipes.get(args.pipe_id)


async def pipes_update(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``pipes update``: change the options given, leave the rest."""
    changes = {
        "name": args.name,
        "runner_url": args.runner_url,
        "max_call_duration_s": args.max_call_duration,
    }
    given = {name: value for name, value in changes.items() if value is not None}
    return await client.pipes.update(args.pipe_id, **given)


async def pipes_delete(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``pipes delete``: remove a pipe, detaching its numbers."""
    return await client.pipes.delete(args.pipe_id)


# -- trunks -----------------------------------------------------------------------------


async def trunks_create(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``trunks create``: add a trunk, its password read from stdin."""
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


async def trunks_list(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``trunks list``: the trunks this key sees."""
    return await client.trunks.list(kind=args.kind, account_id=args.account_id)


async def trunks_get(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``trunks get``: show a trunk (never its password)."""
    return await client.trunks.get(args.trunk_id)


async def trunks_delete(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``trunks delete``: remove a trunk."""
    await client.trunks.delete(args.trunk_id)
    return {"trunk_id": args.trunk_id, "deleted": True}


# -- accounts ---------------------------------------------------------------------------


async def accounts_create(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``accounts create``: add an account and its first key."""
    return await client.accounts.create(name=args.name)


async def accounts_list(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``accounts list``: every account."""
    return await client.accounts.list()


async def accounts_get(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``accounts get``: show an account."""
    return await client.accounts.get(args.account_id)


async def accounts_delete(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``accounts delete``: remove an account that owns nothing."""
    await client.accounts.delete(args.account_id)
    return {"account_id": args.account_id, "deleted": True}


async def keys_list(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``accounts keys list``: an account's keys, without secrets."""
    return await client.accounts.keys.list(args.account_id)


async def keys_create(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``accounts keys create``: add a key; its secret is shown once."""
    return await client.accounts.keys.create(args.account_id)


async def keys_revoke(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``accounts keys revoke``: revoke a key."""
    await client.accounts.keys.revoke(args.account_id, args.key_id)
    return {"key_id": args.key_id, "revoked": True}


# -- calls ------------------------------------------------------------------------------


async def calls_list(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``calls list``: calls newest first, at most ``--limit`` of them."""
    active = True if args.active else False if args.ended else None
    calls = []
    async for call in client.calls.iter(active=active, account_id=args.account_id):
        calls.append(call)
        if len(calls) >= args.limit:
            break
    return calls


async def calls_get(client: AsyncClient, args: argparse.Namespace) -> Any:
    """``calls get``: show a call."""
    return await client.calls.get(args.call_id)
