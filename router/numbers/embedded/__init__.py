"""The embedded store: the routing map, accounts and call records in one SQLite file.

For a single box, the demo, and tests without Redis. Several processes share the file:
the command line writes while a running router reads, and the router sees each change
on its next lookup because nothing is cached here and every statement outside an
explicit transaction runs in autocommit mode.

Why the calls run inline on the event loop rather than in a thread: a lookup is one
indexed query of about ten microseconds on a local file, cheaper than the hop to a
worker thread and back. In WAL mode readers never wait for a writer, so the hot path
(:meth:`EmbeddedStore.route`) cannot block on the command line. Writes take the file's
write lock with ``BEGIN IMMEDIATE``; they wait only while another process holds it.

:class:`EmbeddedStore` is put together from one part per kind of object: numbers,
pipes, trunks, accounts with their API keys, and call records, each in its own module,
over the connection of :mod:`.core` and the schema of :mod:`.schema`.
"""

from __future__ import annotations

from .accounts import EmbeddedAccounts
from .calls import PRUNE_INTERVAL_S, EmbeddedCalls
from .numbers import EmbeddedNumbers
from .pipes import EmbeddedPipes
from .schema import BUSY_TIMEOUT_MS, SCHEMA_VERSION
from .trunks import EmbeddedTrunks

__all__ = ["BUSY_TIMEOUT_MS", "PRUNE_INTERVAL_S", "SCHEMA_VERSION", "EmbeddedStore"]


class EmbeddedStore(
    EmbeddedNumbers, EmbeddedPipes, EmbeddedTrunks, EmbeddedAccounts, EmbeddedCalls
):
    """The routing map in a SQLite file; see the module docstring for concurrency.

    Open one with :meth:`open`.
    """
