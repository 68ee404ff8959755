"""Property tests of the OpenAPI document: generated requests never get a 500, and
every answer matches the schema (status codes, content types, bodies).

Schemathesis reads ``/openapi.json`` from a live server and sends requests built from
it, as the operator and as an account. The number of examples per operation is
small so the suite stays fast; the generated data varies from run to run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from router.api.app import create_app
from router.api.server import ApiServer
from router.numbers.embedded import EmbeddedStore

from .conftest import LOOPBACK, OPERATOR_TOKEN

# Enough to reach every operation with valid and invalid inputs a few times each
# (about 20 operations) while the module runs in well under a minute.
EXAMPLES_PER_OPERATION = 12

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Server start and stop in the thread, bounded so a broken start fails the test.
START_TIMEOUT_S = 10.0


@dataclass
class LiveApi:
    """The API served from a thread of its own (schemathesis calls are blocking)."""

    base_url: str
    account_key: str


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """Serve the API over an embedded store with a few objects in it, in a thread."""
    path = tmp_path_factory.mktemp("schema") / "router.db"
    loop = asyncio.new_event_loop()
    started: dict[str, object] = {}
    ready = threading.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        store = await EmbeddedStore.open(path)
        started["key"] = await _seed(store)
        server = ApiServer(create_app(store, operator_token=OPERATOR_TOKEN))
        await server.start(LOOPBACK, 0)
        started["port"] = server.port
        ready.set()
        await stop.wait()
        await server.stop()
        await store.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    assert ready.wait(START_TIMEOUT_S), "the API did not start"
    yield LiveApi(f"http://{LOOPBACK}:{started['port']}", str(started["key"]))
    loop.call_soon_threadsafe(stop.set)
    thread.join(START_TIMEOUT_S)
    loop.close()


async def _seed(store: EmbeddedStore) -> str:
    """Give generated requests something to find; return an account's API key."""
    account = await store.create_account("acme")
    _key, secret = await store.create_api_key(account.account_id)
    pipe = await store.create_pipe(
        name="support", runner_url="ws://127.0.0.1:9/", account_id=account.account_id
    )
    number = await store.create_number("+14155550100", account_id=account.account_id)
    await store.attach(number.number_id, pipe.pipe_id)
    return secret


@pytest.fixture(scope="module")
def api_schema(live_api: LiveApi) -> schemathesis.BaseSchema:
    """The OpenAPI document as the live server publishes it."""
    return schemathesis.openapi.from_url(f"{live_api.base_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")

_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@schema.parametrize()
@_SETTINGS
def test_the_operator_never_gets_a_500_and_answers_match_the_schema(
    case: schemathesis.Case, live_api: LiveApi
) -> None:
    case.call_and_validate(
        base_url=live_api.base_url,
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        checks=CHECKS,
    )


@schema.parametrize()
@_SETTINGS
def test_an_account_never_gets_a_500_and_answers_match_the_schema(
    case: schemathesis.Case, live_api: LiveApi
) -> None:
    case.call_and_validate(
        base_url=live_api.base_url,
        headers={"Authorization": f"Bearer {live_api.account_key}"},
        checks=CHECKS,
    )


def test_the_document_describes_every_route_and_the_error_shape(
    api_schema: schemathesis.BaseSchema,
) -> None:
    document = api_schema.raw_schema
    paths = set(document["paths"])

    assert {"/v1/numbers", "/v1/numbers/{ref}/attach", "/v1/numbers/import"} <= paths
    assert {
        "/v1/pipes/{pipe_id}",
        "/v1/trunks/{trunk_id}",
        "/v1/calls/{call_id}",
    } <= paths
    assert "/v1/accounts/{account_id}/keys/{key_id}" in paths
    assert "ErrorResponse" in document["components"]["schemas"]
    password = document["components"]["schemas"]["TrunkCreate"]["properties"][
        "password"
    ]
    assert any(option.get("writeOnly") for option in password["anyOf"])
    assert "password" not in document["components"]["schemas"]["Trunk"]["properties"]
