"""The admin commands' output: a table for people, or JSON with ``--json``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

__all__ = ["print_result"]


def print_result(result: Any, *, as_json: bool) -> bool:
    """Print ``result``; return whether it is an import with refused rows."""
    data = _plain(result)
    if as_json:
        print(json.dumps(data, indent=2))
    elif isinstance(data, dict) and set(data) == {"created", "errors"}:
        _print_table(data["created"])
        if data["errors"]:
            print(file=sys.stderr)
            _print_table(data["errors"], file=sys.stderr)
    else:
        _print_table(data if isinstance(data, list) else [data])
    return isinstance(data, dict) and bool(data.get("errors"))


def _plain(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, list):
        return [_plain(item) for item in result]
    return result


def _print_table(records: Sequence[dict[str, Any]], file: Any = None) -> None:
    if not records:
        print("(none)", file=file)
        return
    columns = list(records[0])
    cells = [[_cell(record.get(column)) for column in columns] for record in records]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)
    ]
    print(
        "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=file
    )
    for row in cells:
        line = "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))
        print(line.rstrip(), file=file)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(str(item) for item in value) or "-"
    return str(value)
