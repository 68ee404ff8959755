"""Attach the first free active number to a pipe.

Usage::

    ROUTER_API_URL=http://127.0.0.1:8080 ROUTER_API_KEY=sk_... \
        python attach_first_free_number.py PIPE_ID

Walks the account's active numbers in order and attaches the first one that is on
no pipe. Prints the number, or exits with status 1 when every active number is
taken. Two copies running at once may pick the same number: attach moves a number,
so the later one wins; give each script its own range (``country=``) if that matters.
"""

from __future__ import annotations

import asyncio
import os
import sys

from router.client import DEFAULT_BASE_URL, APIError, AsyncClient


async def attach_first_free_number(client: AsyncClient, pipe_id: str) -> str | None:
    """Attach the first active number without a pipe to ``pipe_id``; return it."""
    async for number in client.numbers.iter(status="active"):
        if number.pipe_id is None:
            attached = await client.numbers.attach(number.number_id, pipe_id)
            return attached.number
    return None


async def main(pipe_id: str) -> int:
    base_url = os.environ.get("ROUTER_API_URL", DEFAULT_BASE_URL)
    async with AsyncClient(
        api_key=os.environ["ROUTER_API_KEY"], base_url=base_url
    ) as client:
        await client.pipes.get(pipe_id)  # fail early, with a clear 404, on a typo
        number = await attach_first_free_number(client, pipe_id)
    if number is None:
        print("no free active number", file=sys.stderr)
        return 1
    print(f"{number} -> {pipe_id}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        sys.exit(asyncio.run(main(sys.argv[1])))
    except APIError as error:
        sys.exit(f"error: {error.message}")
