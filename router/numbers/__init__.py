"""The routing map (numbers, pipes, trunks), accounts and calls, and their stores.

``from router.numbers import open_store, normalise_dialed_number`` is all the router
needs: normalise the dialed number, then ``await store.route(e164)``.
The backends (``RedisStore``, ``EmbeddedStore``) live in their own modules so that
importing this package does not load the Redis client.
"""

from __future__ import annotations

from .e164 import InvalidNumber, normalise_dialed_number, validate_e164
from .models import (
    Account,
    ApiKey,
    CallEndedBy,
    CallRecord,
    Number,
    NumberStatus,
    Page,
    Pipe,
    Route,
    Trunk,
    TrunkType,
)
from .store import (
    AlreadyExists,
    Conflict,
    InvalidAccount,
    InvalidCall,
    InvalidInput,
    InvalidPipe,
    InvalidQuery,
    InvalidTrunk,
    NotFound,
    Store,
    StoreError,
    StoreUnavailable,
    open_store,
)

__all__ = [
    "Account",
    "AlreadyExists",
    "ApiKey",
    "CallEndedBy",
    "CallRecord",
    "Conflict",
    "InvalidAccount",
    "InvalidCall",
    "InvalidInput",
    "InvalidNumber",
    "InvalidPipe",
    "InvalidQuery",
    "InvalidTrunk",
    "NotFound",
    "Number",
    "NumberStatus",
    "Page",
    "Pipe",
    "Route",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Trunk",
    "TrunkType",
    "normalise_dialed_number",
    "open_store",
    "validate_e164",
]
