"""Bulk import of numbers: ``POST /v1/numbers/import`` with CSV or a JSON list.

A CSV body (``text/csv``) has a header row naming its columns: ``number`` and any
of ``country``, ``status``, ``trunk_type``, ``trunk_id``, ``pipe_id`` (and, for the
operator, ``account_id``); an empty cell means "not given". A JSON body is a list of
the objects ``POST /v1/numbers`` takes, each with an optional ``pipe_id``.

Rows are independent: each is created, then attached when it names a pipe, and a
row that fails at any step leaves nothing behind (a number whose attach fails is
deleted again). The answer lists the numbers created and, for every other row, its
number (data rows counted from 1), the field at fault and why.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pydantic
from fastapi import APIRouter, FastAPI, Request

from router.numbers.e164 import InvalidNumber
from router.numbers.models import Number as StoredNumber
from router.numbers.store import Store, StoreError, StoreUnavailable

from . import models as schemas
from .auth import CurrentPrincipal, Principal
from .errors import (
    ApiError,
    InvalidRequest,
    ResourceNotFound,
    api_error_for_store_error,
)
from .routes import StoreDep, attach_for, create_number_for

__all__ = [
    "IMPORT_COLUMNS",
    "IMPORT_PATH",
    "MAX_IMPORT_ROWS",
    "import_router",
    "import_rows",
    "parse_import_body",
    "register_import_schema",
]

IMPORT_PATH = "/v1/numbers/import"

# 10,000 rows take a few seconds on Redis (two round trips per row) and fit well in
# the import's body limit; larger sets are split by the caller.
MAX_IMPORT_ROWS = 10_000

IMPORT_COLUMNS = frozenset(
    {"number", "country", "status", "trunk_type", "trunk_id", "pipe_id", "account_id"}
)

# Which request field a missing object was named by.
_FIELD_OF_KIND = {"pipe": "pipe_id", "trunk": "trunk_id", "account": "account_id"}

_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "maxItems": MAX_IMPORT_ROWS,
                    "items": {"$ref": "#/components/schemas/NumberImportRow"},
                }
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "number,country,status,trunk_type,trunk_id,pipe_id\n"
                "+14155550100,US,active,unpod,,\n",
            },
        },
    }
}

RowOutcome = schemas.Number | schemas.ImportRowError

import_router = APIRouter(prefix="/numbers", tags=["numbers"])


@import_router.post("/import", openapi_extra=_REQUEST_BODY)
async def import_numbers(
    request: Request, store: StoreDep, principal: CurrentPrincipal
) -> schemas.ImportResult:
    """Create many numbers from CSV (text/csv) or a JSON list; report rows that fail.

    Each row is created, then attached when it names a pipe. A row that fails at any
    step leaves nothing behind; the other rows are unaffected.
    """
    content_type = request.headers.get("content-type", "")
    rows = parse_import_body(content_type, await request.body())
    return await import_rows(store, principal, rows)


def parse_import_body(content_type: str, body: bytes) -> list[Any]:
    """Return the rows of an import body, not yet validated.

    Raises:
        ApiError: 415 for another media type; 422 (field ``body``) for a body that
            is not UTF-8 CSV with a known header, not a JSON list, or too long.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    try:
        # Spreadsheet programs start their CSV files with a byte-order mark.
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("body", "the body is not UTF-8") from None
    if media_type == "text/csv":
        rows = _csv_rows(text)
    elif media_type in ("application/json", ""):
        rows = _json_rows(text)
    else:
        raise ApiError(
            415, "unsupported_media_type", "send text/csv or application/json"
        )
    if len(rows) > MAX_IMPORT_ROWS:
        raise InvalidRequest("body", f"at most {MAX_IMPORT_ROWS} rows per import")
    return rows


def _csv_rows(text: str) -> list[Any]:
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = reader.fieldnames or []
        unknown = sorted(set(header) - IMPORT_COLUMNS)
        if "number" not in header or unknown:
            columns = ", ".join(sorted(IMPORT_COLUMNS))
            raise InvalidRequest(
                "body", f"the CSV header needs number and may name only {columns}"
            )
        # Empty cells mean "not given", so defaults apply as in JSON. Cells past the
        # header's end land under the key None and fail the row's validation.
        return [{k: v for k, v in row.items() if v != ""} for row in reader]
    except csv.Error as exc:
        raise InvalidRequest("body", f"not CSV: {exc}") from None


def _json_rows(text: str) -> list[Any]:
    try:
        rows = json.loads(text)
    except ValueError:
        raise InvalidRequest("body", "not JSON") from None
    if not isinstance(rows, list):
        raise InvalidRequest("body", "a JSON list of numbers is expected")
    return rows


async def import_rows(
    store: Store, principal: Principal, rows: list[Any]
) -> schemas.ImportResult:
    """Create (and attach) each row as ``principal``; collect numbers and row errors.

    Raises:
        StoreUnavailable: the store went away; rows before the failing one stay.
    """
    result = schemas.ImportResult(created=[], errors=[])
    for index, raw in enumerate(rows, start=1):
        outcome = await _import_row(store, principal, raw, index)
        if isinstance(outcome, schemas.Number):
            result.created.append(outcome)
        else:
            result.errors.append(outcome)
    return result


async def _import_row(
    store: Store, principal: Principal, raw: Any, index: int
) -> RowOutcome:
    try:
        row = schemas.NumberImportRow.model_validate(raw)
    except pydantic.ValidationError as exc:
        return _validation_problem(index, exc)
    try:
        number = await create_number_for(store, principal, row)
    except StoreUnavailable:
        raise
    except (ApiError, StoreError, InvalidNumber) as exc:
        return _row_problem(index, exc, default_field="number")
    if row.pipe_id is None:
        return schemas.Number.model_validate(number)
    return await _attach_imported(store, principal, number, row.pipe_id, index)


async def _attach_imported(
    store: Store,
    principal: Principal,
    number: StoredNumber,
    pipe_id: str,
    index: int,
) -> RowOutcome:
    try:
        attached = await attach_for(store, principal, number.number_id, pipe_id)
    except (ApiError, StoreError) as exc:
        # Limitation: if the store goes away between create and this delete, the
        # number stays, unattached; importing the row again reports it as existing.
        await store.delete_number(number.number_id)
        if isinstance(exc, StoreUnavailable):
            raise
        return _row_problem(index, exc, default_field="pipe_id")
    return schemas.Number.model_validate(attached)


def _validation_problem(index: int, exc: pydantic.ValidationError) -> RowOutcome:
    first = exc.errors()[0]
    location = [str(part) for part in first["loc"] if not isinstance(part, int)]
    field = location[0] if location else None
    # The row's value is left out of the message: it could be anything.
    reason = str(first["msg"]).removeprefix("Value error, ")
    message = f"{field}: {reason}" if field else reason
    return schemas.ImportRowError(row=index, field=field, message=message)


def _row_problem(index: int, exc: Exception, *, default_field: str) -> RowOutcome:
    if isinstance(exc, StoreError):
        exc = api_error_for_store_error(exc)
    if not isinstance(exc, ApiError):
        # InvalidNumber: the number itself (or its country) is not valid E.164.
        return schemas.ImportRowError(row=index, field=default_field, message=str(exc))
    field = exc.field
    if field is None and isinstance(exc, ResourceNotFound):
        field = _FIELD_OF_KIND.get(exc.kind)
    return schemas.ImportRowError(
        row=index, field=field or default_field, message=exc.message
    )


def register_import_schema(app: FastAPI) -> None:
    """Add NumberImportRow to the OpenAPI components the import body refers to.

    The import route reads its body itself (CSV or JSON), so FastAPI does not know
    the row schema; it is added once, when the document is first built.
    """
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        row_schema = schemas.NumberImportRow.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components.update(row_schema.pop("$defs", {}))
        components["NumberImportRow"] = row_schema
        return document

    app.openapi = openapi  # type: ignore[method-assign]
