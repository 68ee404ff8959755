"""The runner side of the benchmark: the built-in echo runner on uvloop.

``python -m bench.echo PORT`` serves :mod:`router.runner.echo` on loopback
until SIGTERM. It runs on uvloop, like the router, so the runner (which shares
the router's core) takes as little of that core as it can, and it logs only
warnings: the runner's own log lines are not part of what is measured.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from router.logs import configure_logging
from router.runner.echo import serve_echo_runner

__all__ = ["main", "serve_until_terminated"]

LOOPBACK = "127.0.0.1"


async def serve_until_terminated(port: int) -> None:
    """Serve the echo runner on loopback ``port`` until SIGTERM or SIGINT."""
    runner = await serve_echo_runner(LOOPBACK, port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        await runner.close()


def main(argv: list[str]) -> int:
    """Run the echo runner on the port named by ``argv[0]``."""
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m bench.echo PORT", file=sys.stderr)
        return 2
    configure_logging("warning", "json")
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve_until_terminated(int(argv[0])))
    else:
        uvloop.run(serve_until_terminated(int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
