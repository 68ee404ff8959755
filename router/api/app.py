"""The admin HTTP API application: numbers, pipes, trunks, accounts and calls.

:func:`create_app` builds the FastAPI application around a store: the resource
routes under ``/v1`` (:mod:`router.api.routes`, :mod:`router.api.imports`), the
probes (:mod:`router.api.health`), one error shape for every failure
(:mod:`router.api.errors`) and a cap on request bodies. The OpenAPI document is at
``/openapi.json``. :class:`router.api.server.ApiServer` serves the application.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.numbers.store import Store

from . import models as schemas
from .auth import Authenticator
from .errors import (
    CatchAllMiddleware,
    RequestTooLarge,
    error_body,
    install_error_handlers,
)
from .health import health_router
from .imports import IMPORT_PATH, import_router, register_import_schema
from .routes import RESOURCE_ROUTERS

if TYPE_CHECKING:
    from router.server import SipRouter

__all__ = ["MAX_BODY_BYTES", "MAX_IMPORT_BYTES", "BodyLimitMiddleware", "create_app"]

# A create or update body is a few hundred bytes; 1 MiB leaves room for a trunk with
# hundreds of prefixes while keeping one request's memory small.
MAX_BODY_BYTES = 1 << 20

# An import of 10,000 numbers as CSV is about 600 KiB; 5 MiB leaves room for JSON,
# which is wordier, and for long trunk and pipe ids.
MAX_IMPORT_BYTES = 5 << 20

# Every /v1 route may answer these; documenting them lets clients and schema tests
# check error bodies against ErrorResponse.
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorResponse, "description": description}
    for status, description in (
        (401, "missing or invalid API key"),
        (403, "not allowed for this caller"),
        (404, "no such resource (or one of another account)"),
        (409, "conflicts with the current state"),
        (413, "request body too large"),
        (415, "unsupported media type"),
        (422, "invalid input; `field` names it"),
        (503, "the store is unavailable"),
    )
}


def create_app(
    store: Store,
    *,
    operator_token: str | None = None,
    sip: SipRouter | None = None,
) -> FastAPI:
    """Return the admin API application over ``store``.

    Args:
        store: the routing map the API manages.
        operator_token: the operator's bearer token; ``None`` leaves only account
            keys working.
        sip: the running SIP side, for readiness (draining) and metrics; ``None``
            when the API runs without one (tests, tools).
    """
    app = FastAPI(
        title="sip-router admin API",
        version="1",
        summary="Numbers, Speech Pipes, trunks, accounts and calls.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.store = store
    app.state.authenticator = Authenticator(store, operator_token)
    app.state.sip = sip
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(CatchAllMiddleware)
    app.include_router(health_router)
    for routes in (*RESOURCE_ROUTERS, import_router):
        app.include_router(routes, prefix="/v1", responses=_ERRORS)
    register_import_schema(app)
    return app


class BodyLimitMiddleware:
    """Refuse request bodies over the route's limit with 413, before any parsing.

    The body is read here (never more than the limit) and handed on in one piece, so
    the limit holds whether or not the client sent ``Content-Length``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Buffer and check the body, then run the wrapped app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = MAX_IMPORT_BYTES if scope["path"] == IMPORT_PATH else MAX_BODY_BYTES
        if _declared_length(scope) > limit:
            await _too_large(limit, scope, receive, send)
            return
        body = await _read_body(receive, limit)
        if body is None:
            await _too_large(limit, scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the HTTP parser refuses such requests before they get here
    return 0


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """Return the whole body, or None once it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""  # the client went away; the app sees the disconnect later
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    error = RequestTooLarge(limit)
    response = Response(
        json.dumps(error_body(error.code, error.message)),
        status_code=error.status,
        media_type="application/json",
        # The unread rest of the body would otherwise be parsed as the next request.
        headers={"Connection": "close"},
    )
    await response(scope, receive, send)
