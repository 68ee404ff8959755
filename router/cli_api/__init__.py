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

from router.cli_api.parsers import add_admin_commands
from router.cli_api.running import EXIT_ERROR, EXIT_OK, EXIT_USAGE, run_admin_command

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_admin_commands",
    "run_admin_command",
]
