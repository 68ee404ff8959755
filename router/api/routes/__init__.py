"""The admin API's resource routes: numbers, pipes, trunks, accounts and calls.

Each handler authenticates the caller (:mod:`router.api.auth`), scopes what it reads
to the caller's account, and leaves store errors to :mod:`router.api.errors`. An
account's view is enforced by the store itself: every ``get_*`` takes the caller's
``account_id`` and reports another account's object as not found.

:data:`RESOURCE_ROUTERS` are mounted under ``/v1`` by :func:`router.api.app.create_app`.
"""

from __future__ import annotations

from .accounts import router as _accounts
from .calls import router as _calls
from .common import AccountFilter, StoreDep
from .numbers import attach_for, create_number_for
from .numbers import router as _numbers
from .pipes import router as _pipes
from .trunks import TRUNK_CLEARABLE
from .trunks import router as _trunks

__all__ = [
    "RESOURCE_ROUTERS",
    "TRUNK_CLEARABLE",
    "AccountFilter",
    "StoreDep",
    "attach_for",
    "create_number_for",
]

RESOURCE_ROUTERS = (_numbers, _pipes, _trunks, _accounts, _calls)
