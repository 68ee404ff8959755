"""Running a parsed admin command, over the API or on the local store."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from router.cli_api.commands import Op
from router.cli_api.output import print_result
from router.client import APIError, AsyncClient

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "StoreOpener", "run_admin_command"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

StoreOpener = Callable[[], Awaitable[Any]]


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
    return EXIT_ERROR if print_result(result, as_json=args.json) else EXIT_OK


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
