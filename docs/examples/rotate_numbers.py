"""Rotate numbers across pipes: every number moves on to the next pipe in the list.

Usage::

    ROUTER_API_URL=http://127.0.0.1:8080 ROUTER_API_KEY=sk_... \
        python rotate_numbers.py [--dry-run] PIPE_A PIPE_B [PIPE_C ...]

The numbers on PIPE_A move to PIPE_B, those on PIPE_B to PIPE_C, and those on the
last pipe back to PIPE_A: handy to shift callers between agent versions. Each move
is one atomic attach, so a number is always on exactly one pipe and calls keep
arriving throughout. Which numbers move is decided before the first move, so a
number moves once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from router.client import DEFAULT_BASE_URL, APIError, AsyncClient


async def plan_rotation(
    client: AsyncClient, pipe_ids: list[str]
) -> list[tuple[str, str]]:
    """Return (number, target pipe) for every number on the given pipes."""
    moves = []
    for index, pipe_id in enumerate(pipe_ids):
        target = pipe_ids[(index + 1) % len(pipe_ids)]
        async for number in client.numbers.iter(pipe_id=pipe_id):
            moves.append((number.number, target))
    return moves


async def main(pipe_ids: list[str], dry_run: bool) -> int:
    base_url = os.environ.get("ROUTER_API_URL", DEFAULT_BASE_URL)
    async with AsyncClient(
        api_key=os.environ["ROUTER_API_KEY"], base_url=base_url
    ) as client:
        for pipe_id in pipe_ids:
            await client.pipes.get(
                pipe_id
            )  # every pipe must exist before anything moves
        moves = await plan_rotation(client, pipe_ids)
        for number, target in moves:
            if not dry_run:
                await client.numbers.attach(number, target)
            print(f"{number} -> {target}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Rotate numbers across pipes.")
    parser.add_argument("--dry-run", action="store_true", help="print the moves only")
    parser.add_argument("pipe_ids", nargs="+", metavar="PIPE_ID")
    args = parser.parse_args()
    if len(set(args.pipe_ids)) < 2:
        parser.error("give at least two different pipes")
    try:
        sys.exit(asyncio.run(main(args.pipe_ids, args.dry_run)))
    except APIError as error:
        sys.exit(f"error: {error.message}")
