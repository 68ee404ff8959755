"""The store interface: the routing map of numbers, pipes and trunks, and around it
accounts, API keys and call records.

Two implementations share this contract and one test suite:

* :class:`~router.numbers.redis_store.RedisStore` for fleets: every router instance
  reads the same map, and changes are announced on a pub/sub channel;
* :class:`~router.numbers.embedded.EmbeddedStore` for one box, demos and tests without
  Redis: a SQLite file shared by the router and the command line.

Every failure a caller should handle is a :class:`StoreError`. The router maps
:class:`StoreUnavailable` to ``503 Service Unavailable`` and an unknown number to
``404 Not Found``.

:class:`Store` gathers four parts, each in its own module with the input checks both
stores apply before writing, so the two behave the same on bad input:
:class:`~router.numbers.number_store.NumberStore` (numbers, pipes, the routing
lookup), :class:`~router.numbers.trunk_store.TrunkStore` (with
:mod:`~router.numbers.trunk_matching`),
:class:`~router.numbers.account_store.AccountStore` (accounts and API keys) and
:class:`~router.numbers.call_store.CallStore`. Listings share
:mod:`router.numbers.listing`; the errors are in :mod:`router.numbers.errors`. This
module re-exports all of them, and :func:`open_store`.

Where both backends would do the same, the part does it: it checks the arguments and
makes the new object, then hands them to a protected method each backend implements
(``_insert_number``, ``_list_numbers``, ``_update_trunk`` ...).

Secrets: an API key's secret is stored only as its SHA-256, and a trunk's password is
kept apart from the trunk and read only by :meth:`Store.trunk_credentials`, so neither
can leave the store by accident in a listing, a log line or an error message.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable

from .account_store import (
    API_KEY_PREFIX,
    AccountStore,
    api_key_lookup_hash,
    check_account_name,
    check_account_owns_nothing,
    new_api_key_secret,
)
from .call_store import (
    DEFAULT_CALL_RETENTION_S,
    CallStore,
    check_call_record,
    check_call_retention,
    strip_runner_url,
)
from .checks import check_owner, parse_number_ref
from .e164 import InvalidNumber
from .errors import (
    AlreadyExists,
    Conflict,
    InvalidAccount,
    InvalidCall,
    InvalidInput,
    InvalidPipe,
    InvalidQuery,
    InvalidTrunk,
    NotFound,
    ObjectKind,
    StoreError,
    StoreUnavailable,
)
from .factory import DEFAULT_KEY_PREFIX, default_db_path, open_store
from .listing import (
    MAX_PAGE_SIZE,
    CallFilters,
    NumberFilters,
    call_sort_key,
    check_call_query,
    check_list_query,
    decode_call_cursor,
    decode_cursor,
    encode_call_cursor,
    encode_cursor,
)
from .number_store import (
    MAX_CALL_DURATION_S,
    NumberStore,
    check_number_fields,
    check_pipe_fields,
    check_status,
)
from .trunk_matching import match_trunk
from .trunk_store import (
    TrunkStore,
    TrunkUpdate,
    check_trunk_credentials,
    check_trunk_fields,
    check_trunk_kind,
)

__all__ = [
    "API_KEY_PREFIX",
    "DEFAULT_CALL_RETENTION_S",
    "DEFAULT_KEY_PREFIX",
    "MAX_CALL_DURATION_S",
    "MAX_PAGE_SIZE",
    "AlreadyExists",
    "CallFilters",
    "Conflict",
    "InvalidAccount",
    "InvalidCall",
    "InvalidInput",
    "InvalidNumber",
    "InvalidPipe",
    "InvalidQuery",
    "InvalidTrunk",
    "NotFound",
    "NumberFilters",
    "ObjectKind",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TrunkUpdate",
    "api_key_lookup_hash",
    "call_sort_key",
    "check_account_name",
    "check_account_owns_nothing",
    "check_call_query",
    "check_call_record",
    "check_call_retention",
    "check_list_query",
    "check_number_fields",
    "check_owner",
    "check_pipe_fields",
    "check_status",
    "check_trunk_credentials",
    "check_trunk_fields",
    "check_trunk_kind",
    "decode_call_cursor",
    "decode_cursor",
    "default_db_path",
    "encode_call_cursor",
    "encode_cursor",
    "match_trunk",
    "new_api_key_secret",
    "open_store",
    "parse_number_ref",
    "strip_runner_url",
]


class Store(NumberStore, TrunkStore, AccountStore, CallStore):
    """The routing map, accounts, API keys and call records; nothing is cached.

    Every method is a coroutine. Numbers are referred to by id (``num_...``) or by
    E.164 number, with or without the ``+``. Methods raise :class:`StoreUnavailable`
    when the backend cannot be reached, and the other :class:`StoreError` subclasses as
    documented.

    Ended call records are kept for ``call_retention_s`` seconds after they end, then
    disappear; ``clock`` gives the current Unix time (tests replace it).
    """

    def __init__(
        self,
        *,
        call_retention_s: float = DEFAULT_CALL_RETENTION_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Set the retention of ended calls. Raises :class:`InvalidInput`."""
        self.call_retention_s = check_call_retention(call_retention_s)
        self._clock = clock

    # -- lifecycle -------------------------------------------------------------------

    @abc.abstractmethod
    async def ping(self) -> None:
        """Check that the backend answers. Raises :class:`StoreUnavailable`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""
