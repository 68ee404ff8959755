"""The admin API client's exceptions: one :class:`APIError` family, typed by status."""

from __future__ import annotations

import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "ConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "ServiceUnavailableError",
    "ValidationError",
    "error_from",
]


class APIError(Exception):
    """An error answer from the admin API: HTTP ``status``, stable ``code``, message."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None
    ) -> None:
        super().__init__(f"{message} ({status} {code})")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class AuthenticationError(APIError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIError):
    """403: this key may not do that (operator-only routes, unpod trunks)."""


class NotFoundError(APIError):
    """404: no such resource, or one that belongs to another account."""


class ConflictError(APIError):
    """409: the number exists already, or the account still owns things."""


class ValidationError(APIError):
    """422: a field has a value the API refuses; ``field`` names it."""


class ServiceUnavailableError(APIError):
    """503: the router's store is unavailable; try again later."""


class APIConnectionError(APIError):
    """The router could not be reached, or did not answer in time (status 0)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "connection_error", message)


_ERRORS_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    503: ServiceUnavailableError,
}


def error_from(response: httpx.Response) -> APIError:
    """Return the typed error for an error answer, whatever its body."""
    code, message, field = "error", response.reason_phrase or "error", None
    try:
        detail = response.json()["error"]
        code, message = str(detail["code"]), str(detail["message"])
        field = detail.get("field")
    except (ValueError, KeyError, TypeError):
        pass  # not our JSON (a proxy's page, say): keep the HTTP reason
    error_type = _ERRORS_BY_STATUS.get(response.status_code, APIError)
    return error_type(response.status_code, code, message, field)
