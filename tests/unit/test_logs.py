"""The JSON log lines: what they carry, and that the fast path renders as json would."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from router.logs import configure_logging, render_json, utc_timestamp

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("info", "json")
    yield stream
    configure_logging("info", "json")


def test_a_json_line_carries_bound_fields_level_and_utc_time(
    captured: io.StringIO,
) -> None:
    log = structlog.get_logger("router.call").bind(call_id="CA1")
    before = time.time()
    log.warning("call_state", state="ringing", count=3)
    log.debug("hidden")

    (line,) = captured.getvalue().splitlines()
    data = json.loads(line)
    assert data["call_id"] == "CA1"
    assert (data["event"], data["state"], data["count"]) == ("call_state", "ringing", 3)
    assert data["level"] == "warning"
    assert ISO_UTC.match(data["timestamp"])
    stamped = datetime.fromisoformat(data["timestamp"].replace("Z", "+00:00"))
    assert abs(stamped.timestamp() - before) < 5


def test_an_exception_is_rendered_as_text_at_level_error(captured: io.StringIO) -> None:
    log = structlog.get_logger("router")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("call_setup_failed", call_id="CA2")

    data = json.loads(captured.getvalue())
    assert data["level"] == "error"
    assert "ValueError: boom" in data["exception"]


def test_render_json_writes_odd_values_as_json_does_with_structlog_fallback() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    text = render_json({1: "one", "thing": Thing(), "n": None}, default=repr)

    assert json.loads(text) == {"1": "one", "thing": "<thing>", "n": None}


@pytest.mark.parametrize("now", [0.0, 1.5, 1_700_000_000.000001, 1_700_000_059.999999])
def test_utc_timestamp_matches_datetime(now: float) -> None:
    second = int(now)
    prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    expected = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    got = utc_timestamp(now, second, prefix)

    assert got[:20] == expected[:20]
    assert abs(int(got[20:26]) - int(expected[20:26])) <= 1


def test_a_value_orjson_refuses_is_still_rendered() -> None:
    text = render_json({"big": 2**70, "event": "x"}, default=repr)

    assert json.loads(text) == {"big": 2**70, "event": "x"}
