"""The admin API's error family and the one place that turns errors into responses.

Every error answer has the same JSON shape, whatever raised it::

    {"error": {"code": "not_found", "message": "number 'num_…' not found"}}

and a 422 also names the offending field (``"field": "runner_url"``). Store errors
are mapped here, so route handlers let them propagate: :class:`NotFound` is 404,
:class:`AlreadyExists` and :class:`Conflict` are 409, :class:`InvalidInput` is 422,
:class:`StoreUnavailable` is 503. Anything else is a bug: it is logged with its
traceback and answered with a bare 500, never with the traceback.
"""

from __future__ import annotations

import traceback
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.numbers import store as store_errors
from router.numbers.e164 import InvalidNumber

__all__ = [
    "ApiError",
    "CatchAllMiddleware",
    "Forbidden",
    "InvalidRequest",
    "RequestTooLarge",
    "ResourceNotFound",
    "Unauthorized",
    "error_body",
    "install_error_handlers",
]

log = structlog.get_logger("router.api")

# RFC 6750 §3: a 401 for a bearer-token resource carries this challenge.
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sip-router"'}

# The one body every 401 gets: a wrong, missing or revoked key must look the same.
UNAUTHORIZED_MESSAGE = "missing or invalid API key"

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal_error",
    503: "store_unavailable",
}


class ApiError(Exception):
    """An error the API answers on purpose, with its status, code and message."""

    def __init__(
        self, status: int, code: str, message: str, *, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class Unauthorized(ApiError):
    """No credentials, or credentials that match no operator token or live key."""

    def __init__(self) -> None:
        super().__init__(401, "unauthorized", UNAUTHORIZED_MESSAGE)


class Forbidden(ApiError):
    """The caller is known but may not do this (operator-only routes and fields)."""

    def __init__(self, message: str) -> None:
        super().__init__(403, "forbidden", message)


class ResourceNotFound(ApiError):
    """No such resource, or one the caller may not see: the two look the same."""

    def __init__(self, kind: str, ref: str) -> None:
        super().__init__(404, "not_found", f"{kind} {ref!r} not found")
        self.kind = kind
        self.ref = ref


class InvalidRequest(ApiError):
    """A request field has a value the API cannot accept; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(422, "validation_error", message, field=field)


class RequestTooLarge(ApiError):
    """The request body is larger than the route accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "request_too_large", f"request body over {limit} bytes")


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """Return the JSON error envelope; ``field`` is included only when given."""
    detail: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        detail["field"] = field
    return {"error": detail}


def error_response(error: ApiError) -> JSONResponse:
    """Return the response for an :class:`ApiError`."""
    headers = BEARER_CHALLENGE if error.status == 401 else None
    body = error_body(error.code, error.message, error.field)
    return JSONResponse(body, status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error family to the JSON error shape on ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(store_errors.StoreError, _store_error)
    app.add_exception_handler(InvalidNumber, _invalid_number)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    field, message = _first_validation_problem(exc.errors())
    if field == "body" and not _is_json(request.headers.get("content-type")):
        # A form or plain text where JSON was wanted: say what to send instead of
        # pydantic's "Input should be a valid dictionary".
        return error_response(
            ApiError(
                415,
                "unsupported_media_type",
                "send the body as JSON (Content-Type: application/json)",
            )
        )
    return error_response(InvalidRequest(field, message))


def _is_json(content_type: str | None) -> bool:
    """Whether a request's Content-Type is JSON, or absent (then read as JSON)."""
    if not content_type:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _first_validation_problem(errors: Any) -> tuple[str, str]:
    """Return (field, message) of pydantic's first complaint, without the input.

    The input value is left out on purpose: it may be a password.
    """
    if not errors:
        return "body", "invalid request"
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if not isinstance(part, int)]
    # ("body", "runner_url") -> "runner_url"; a bad body as a whole -> "body".
    field = location[-1] if location else "body"
    if len(location) > 1 and location[0] in ("body", "query", "path", "header"):
        field = ".".join(location[1:])
    # Our own validators raise ValueError, which pydantic prefixes with "Value error, ".
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return field, f"{field}: {message}"


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode (not UTF-8, say): that is bad
        # input like any other, so it gets the same 422 as a malformed JSON body.
        return error_response(InvalidRequest("body", "body: not valid JSON text"))
    code = _STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    error = ApiError(exc.status_code, code, message)
    response = error_response(error)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, store_errors.StoreError)
    return error_response(api_error_for_store_error(exc))


def api_error_for_store_error(exc: store_errors.StoreError) -> ApiError:
    """Return the API error a store error is answered with."""
    if isinstance(exc, store_errors.NotFound):
        return ResourceNotFound(exc.kind, exc.ref)
    if isinstance(exc, store_errors.InvalidInput):
        return InvalidRequest(exc.field, str(exc))
    if isinstance(exc, store_errors.StoreUnavailable):
        log.warning("store_unavailable", error=str(exc))
        return ApiError(503, "store_unavailable", "the store is unavailable; try again")
    if isinstance(exc, store_errors.AlreadyExists | store_errors.Conflict):
        return ApiError(409, "conflict", str(exc))
    log.error("store_error", error=str(exc), error_type=type(exc).__name__)
    return ApiError(500, "internal_error", "the store failed; see the router's log")


async def _invalid_number(request: Request, exc: Exception) -> JSONResponse:
    field = getattr(exc, "field", "number")
    return error_response(InvalidRequest(field, str(exc)))


class CatchAllMiddleware:
    """Answer any unhandled exception with a JSON 500 and log it with its traceback.

    Starlette's own last-resort handler re-raises after answering, which makes the
    server log the traceback a second time; this one stops the exception here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped app; answer 500 if it raises before responding."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            # A plain traceback, formatted here: renderers that show local variables
            # (rich's, in a terminal) could otherwise print a request's password.
            log.error(
                "api_internal_error",
                method=scope["method"],
                path=scope["path"],
                traceback=traceback.format_exc(),
            )
            if started:
                raise
            response = JSONResponse(
                error_body("internal_error", "internal error; see the router's log"),
                status_code=500,
            )
            await response(scope, receive, send)
