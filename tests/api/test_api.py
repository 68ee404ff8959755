"""The admin API over HTTP: auth, account isolation, attach, import, errors, limits.

Every test talks to a live server on loopback (uvicorn in the test's event loop) over
the embedded store and over Redis.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import structlog.testing

from router.api.app import MAX_BODY_BYTES, create_app
from router.api.server import ApiServer
from router.numbers.models import CallEndedBy, CallRecord
from router.numbers.store import Store

from .conftest import LOOPBACK, OPERATOR_TOKEN, Api, Tenant, start_api

RUNNER = "ws://127.0.0.1:9/agent"
US_NUMBER = "+14155550100"
US_NUMBER_2 = "+14155550101"
GB_NUMBER = "+442079460123"


@pytest.fixture
async def http(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """A bare HTTP client on the API, for status codes and bodies as sent."""
    async with httpx.AsyncClient(base_url=api.base_url) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


OPERATOR = bearer(OPERATOR_TOKEN)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    detail: dict[str, Any] = body["error"]
    return detail


async def make_number_on_pipe(
    tenant: Tenant, number: str = US_NUMBER
) -> tuple[str, str]:
    pipe = await tenant.client.pipes.create(name="support", runner_url=RUNNER)
    created = await tenant.client.numbers.create(number=number)
    await tenant.client.numbers.attach(created.number_id, pipe.pipe_id)
    return created.number_id, pipe.pipe_id


# -- auth -----------------------------------------------------------------------------


async def test_a_request_without_a_key_gets_401_with_a_bearer_challenge(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/v1/numbers")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert error_of(response)["code"] == "unauthorized"


async def test_wrong_malformed_and_revoked_keys_get_the_same_401_body(
    http: httpx.AsyncClient, operator: Any, acme: Tenant
) -> None:
    key = await operator.accounts.keys.create(acme.account_id)
    await operator.accounts.keys.revoke(acme.account_id, key.key_id)
    attempts = [
        {"Authorization": "Bearer sk_" + "x" * 32},
        {"Authorization": "Bearer " + OPERATOR_TOKEN + "x"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        bearer(key.api_key),
    ]

    bodies = [(await http.get("/v1/pipes", headers=headers)) for headers in attempts]

    assert {response.status_code for response in bodies} == {401}
    assert len({response.content for response in bodies}) == 1


async def test_an_account_key_gets_403_on_operator_only_routes(
    http: httpx.AsyncClient, acme: Tenant
) -> None:
    headers = bearer(acme.api_key)
    for method, path in [
        ("GET", "/v1/accounts"),
        ("POST", "/v1/accounts"),
        ("GET", f"/v1/accounts/{acme.account_id}"),
        ("GET", f"/v1/accounts/{acme.account_id}/keys"),
        ("DELETE", f"/v1/accounts/{acme.account_id}"),
    ]:
        response = await http.request(method, path, headers=headers, json={"name": "x"})
        assert response.status_code == 403, (method, path)
        assert error_of(response)["code"] == "forbidden"


async def test_without_an_operator_token_only_account_keys_work(store: Store) -> None:
    live = await start_api(store, operator_token=None)
    _key, secret = await store.create_api_key(
        (await store.create_account("a")).account_id
    )
    try:
        async with httpx.AsyncClient(base_url=live.base_url) as http:
            assert (await http.get("/v1/pipes", headers=OPERATOR)).status_code == 401
            assert (
                await http.get("/v1/pipes", headers=bearer(secret))
            ).status_code == 200
    finally:
        await live.server.stop()


async def test_health_probes_need_no_key(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).text == "ok\n"
    assert (await http.get("/readyz")).text == "ready\n"
    assert (await http.get("/metrics")).status_code == 200
    assert (await http.get("/v1/status")).json() == {}


# -- account isolation ----------------------------------------------------------------


async def test_an_account_cannot_see_or_change_another_accounts_number(
    http: httpx.AsyncClient, acme: Tenant, globex: Tenant
) -> None:
    number_id, pipe_id = await make_number_on_pipe(acme)
    own_pipe = await globex.client.pipes.create(name="mine", runner_url=RUNNER)
    headers = bearer(globex.api_key)

    for ref in (number_id, US_NUMBER):
        for method, path, body in [
            ("GET", f"/v1/numbers/{ref}", None),
            ("PATCH", f"/v1/numbers/{ref}", {"status": "inactive"}),
            ("DELETE", f"/v1/numbers/{ref}", None),
            ("POST", f"/v1/numbers/{ref}/attach", {"pipe_id": own_pipe.pipe_id}),
            ("POST", f"/v1/numbers/{ref}/detach", None),
        ]:
            response = await http.request(method, path, headers=headers, json=body)
            assert response.status_code == 404, (method, path)

    assert (await http.get("/v1/numbers", headers=headers)).json()["data"] == []
    unchanged = await acme.client.numbers.get(number_id)
    assert (unchanged.status, unchanged.pipe_id) == ("active", pipe_id)


async def test_another_accounts_number_looks_exactly_like_a_missing_one(
    http: httpx.AsyncClient, acme: Tenant, globex: Tenant
) -> None:
    await acme.client.numbers.create(number=US_NUMBER)

    theirs = await http.get(f"/v1/numbers/{US_NUMBER}", headers=bearer(globex.api_key))
    missing = await http.get(
        f"/v1/numbers/{US_NUMBER_2}", headers=bearer(globex.api_key)
    )

    assert theirs.status_code == missing.status_code == 404
    assert error_of(theirs)["message"].replace(US_NUMBER, "N") == error_of(missing)[
        "message"
    ].replace(US_NUMBER_2, "N")


async def test_an_account_cannot_see_or_delete_another_accounts_pipe_trunk_or_call(
    http: httpx.AsyncClient, api: Api, acme: Tenant, globex: Tenant
) -> None:
    pipe = await acme.client.pipes.create(name="p", runner_url=RUNNER)
    trunk = await acme.client.trunks.create(
        name="t", allowed_addresses=["198.51.100.7"]
    )
    await api.store.save_call(call_record("call-a", acme.account_id))
    headers = bearer(globex.api_key)

    for method, path in [
        ("GET", f"/v1/pipes/{pipe.pipe_id}"),
        ("PATCH", f"/v1/pipes/{pipe.pipe_id}"),
        ("DELETE", f"/v1/pipes/{pipe.pipe_id}"),
        ("GET", f"/v1/trunks/{trunk.trunk_id}"),
        ("PATCH", f"/v1/trunks/{trunk.trunk_id}"),
        ("DELETE", f"/v1/trunks/{trunk.trunk_id}"),
        ("GET", "/v1/calls/call-a"),
    ]:
        response = await http.request(method, path, headers=headers, json={"name": "x"})
        assert response.status_code == 404, (method, path)

    for path in ("/v1/pipes", "/v1/trunks", "/v1/calls"):
        assert (await http.get(path, headers=headers)).json()["data"] == []
    assert (await acme.client.pipes.get(pipe.pipe_id)).name == "p"


async def test_an_account_cannot_attach_its_number_to_another_accounts_pipe(
    acme: Tenant, globex: Tenant, http: httpx.AsyncClient
) -> None:
    number = await acme.client.numbers.create(number=US_NUMBER)
    their_pipe = await globex.client.pipes.create(name="p", runner_url=RUNNER)

    response = await http.post(
        f"/v1/numbers/{number.number_id}/attach",
        headers=bearer(acme.api_key),
        json={"pipe_id": their_pipe.pipe_id},
    )

    assert response.status_code == 404
    assert (await acme.client.numbers.get(number.number_id)).pipe_id is None


async def test_not_even_the_operator_attaches_one_accounts_number_to_anothers_pipe(
    operator: Any, acme: Tenant, globex: Tenant
) -> None:
    from router.client import NotFoundError

    number = await acme.client.numbers.create(number=US_NUMBER)
    their_pipe = await globex.client.pipes.create(name="p", runner_url=RUNNER)

    with pytest.raises(NotFoundError):
        await operator.numbers.attach(number.number_id, their_pipe.pipe_id)


async def test_an_account_may_not_create_for_another_account_or_on_its_trunk(
    http: httpx.AsyncClient, acme: Tenant, globex: Tenant
) -> None:
    their_trunk = await globex.client.trunks.create(name="t")
    headers = bearer(acme.api_key)

    other_account = await http.post(
        "/v1/numbers",
        headers=headers,
        json={"number": US_NUMBER, "account_id": globex.account_id},
    )
    other_trunk = await http.post(
        "/v1/numbers",
        headers=headers,
        json={"number": US_NUMBER, "trunk_id": their_trunk.trunk_id},
    )

    assert other_account.status_code == 403
    assert other_trunk.status_code == 404
    assert await acme.client.numbers.list() == []


async def test_the_operator_sees_every_account_and_can_filter_by_one(
    operator: Any, acme: Tenant, globex: Tenant
) -> None:
    await acme.client.numbers.create(number=US_NUMBER)
    await globex.client.numbers.create(number=GB_NUMBER)

    everyone = await operator.numbers.list()
    only_acme = await operator.numbers.list(account_id=acme.account_id)

    assert [n.number for n in everyone] == [US_NUMBER, GB_NUMBER]
    assert [n.number for n in only_acme] == [US_NUMBER]


# -- attach ---------------------------------------------------------------------------


async def test_attach_moves_a_number_from_one_pipe_to_another(
    api: Api, acme: Tenant
) -> None:
    _number_id, first = await make_number_on_pipe(acme)
    second = await acme.client.pipes.create(name="sales", runner_url=RUNNER)

    moved = await acme.client.numbers.attach(US_NUMBER, second.pipe_id)

    assert moved.pipe_id == second.pipe_id
    assert await api.store.pipe_numbers(first) == []
    assert await api.store.pipe_numbers(second.pipe_id) == [US_NUMBER]


async def test_attach_to_a_missing_pipe_is_404_and_changes_nothing(
    http: httpx.AsyncClient, acme: Tenant
) -> None:
    number_id, pipe_id = await make_number_on_pipe(acme)

    response = await http.post(
        f"/v1/numbers/{number_id}/attach",
        headers=bearer(acme.api_key),
        json={"pipe_id": "pipe_missing"},
    )

    assert response.status_code == 404
    assert error_of(response)["message"] == "pipe 'pipe_missing' not found"
    assert (await acme.client.numbers.get(number_id)).pipe_id == pipe_id


async def test_racing_attaches_leave_the_number_on_exactly_one_pipe(
    api: Api, acme: Tenant
) -> None:
    number = await acme.client.numbers.create(number=US_NUMBER)
    pipes = [
        await acme.client.pipes.create(name=f"p{i}", runner_url=RUNNER)
        for i in range(3)
    ]
    second = api.client(acme.api_key)

    try:
        await asyncio.gather(
            *(
                client.numbers.attach(number.number_id, pipe.pipe_id)
                for _ in range(5)
                for client in (acme.client, second)
                for pipe in pipes
            )
        )
    finally:
        await second.aclose()

    final = (await acme.client.numbers.get(number.number_id)).pipe_id
    holders = [p.pipe_id for p in pipes if await api.store.pipe_numbers(p.pipe_id)]
    assert holders == [final]


async def test_detach_twice_is_not_an_error(acme: Tenant) -> None:
    number_id, _pipe = await make_number_on_pipe(acme)

    await acme.client.numbers.detach(number_id)
    again = await acme.client.numbers.detach(number_id)

    assert again.pipe_id is None


# -- import ---------------------------------------------------------------------------


async def test_csv_import_creates_good_rows_and_names_the_field_of_bad_ones(
    http: httpx.AsyncClient, acme: Tenant
) -> None:
    pipe = await acme.client.pipes.create(name="p", runner_url=RUNNER)
    csv_body = (
        "number,country,status,trunk_type,trunk_id,pipe_id\n"
        f"{US_NUMBER},US,active,unpod,,{pipe.pipe_id}\n"
        "not-a-number,US,,,,\n"
        f"{US_NUMBER_2},US,bogus,,,\n"
        f"{GB_NUMBER},US,,,,\n"
        f"{US_NUMBER},,,,,\n"
    )

    response = await http.post(
        "/v1/numbers/import",
        headers={**bearer(acme.api_key), "Content-Type": "text/csv"},
        content=csv_body,
    )

    assert response.status_code == 200
    result = response.json()
    assert [n["number"] for n in result["created"]] == [US_NUMBER]
    assert result["created"][0]["pipe_id"] == pipe.pipe_id
    assert [(e["row"], e["field"]) for e in result["errors"]] == [
        (2, "number"),
        (3, "status"),
        (4, "number"),
        (5, "number"),
    ]
    assert [n.number for n in await acme.client.numbers.list()] == [US_NUMBER]


async def test_an_import_row_whose_attach_fails_leaves_no_number(
    acme: Tenant, globex: Tenant, api: Api
) -> None:
    their_pipe = await globex.client.pipes.create(name="p", runner_url=RUNNER)

    result = await acme.client.numbers.import_rows(
        [
            {"number": US_NUMBER, "pipe_id": "pipe_missing"},
            {"number": US_NUMBER_2, "pipe_id": their_pipe.pipe_id},
            {"number": GB_NUMBER},
        ]
    )

    assert [n.number for n in result.created] == [GB_NUMBER]
    assert [(e.row, e.field) for e in result.errors] == [(1, "pipe_id"), (2, "pipe_id")]
    assert await api.store.route(US_NUMBER) is None
    assert await api.store.route(US_NUMBER_2) is None


async def test_a_json_import_row_with_an_unknown_field_is_refused_alone(
    acme: Tenant,
) -> None:
    result = await acme.client.numbers.import_rows(
        [{"number": US_NUMBER, "colour": "red"}, {"number": US_NUMBER_2}, "text"]
    )

    assert [n.number for n in result.created] == [US_NUMBER_2]
    assert [(e.row, e.field) for e in result.errors] == [(1, "colour"), (3, None)]


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/csv", "phone,country\n+14155550100,US\n", 422),
        ("application/json", '{"number": "+14155550100"}', 422),
        ("application/json", "[", 422),
        ("application/xml", "<numbers/>", 415),
        ("text/csv", b"number\n\xff\xfe\n", 422),
    ],
)
async def test_an_import_body_that_is_not_rows_is_refused_whole(
    http: httpx.AsyncClient,
    acme: Tenant,
    content_type: str,
    body: str | bytes,
    status: int,
) -> None:
    response = await http.post(
        "/v1/numbers/import",
        headers={**bearer(acme.api_key), "Content-Type": content_type},
        content=body,
    )

    assert response.status_code == status
    if status == 422:
        assert error_of(response)["field"] == "body"
    assert await acme.client.numbers.list() == []


# -- trunks and credentials -----------------------------------------------------------


async def test_a_trunk_password_is_never_returned_in_any_answer(
    http: httpx.AsyncClient, acme: Tenant
) -> None:
    secret = "hunter2-" + "s3cr3t"
    headers = bearer(acme.api_key)
    created = await http.post(
        "/v1/trunks",
        headers=headers,
        json={"name": "carrier", "username": "acme", "password": secret},
    )
    trunk_id = created.json()["trunk_id"]
    answers = [
        created,
        await http.get(f"/v1/trunks/{trunk_id}", headers=headers),
        await http.get("/v1/trunks", headers=headers),
        await http.patch(
            f"/v1/trunks/{trunk_id}", headers=headers, json={"password": secret + "2"}
        ),
        await http.patch(
            f"/v1/trunks/{trunk_id}", headers=headers, json={"password": secret * 40}
        ),
        await http.post(
            "/v1/trunks", headers=headers, json={"name": "x", "password": secret}
        ),
    ]

    assert created.status_code == 201
    assert created.json()["has_credentials"] is True
    assert created.json()["username"] == "acme"
    for answer in answers:
        assert "hunter2" not in answer.text
        assert "password" not in answer.json().get("data", [answer.json()])[0]


async def test_clearing_username_and_password_removes_the_credentials(
    acme: Tenant,
) -> None:
    trunk = await acme.client.trunks.create(name="t", username="u", password="p")

    cleared = await acme.client.trunks.update(
        trunk.trunk_id, username=None, password=None
    )

    assert (cleared.has_credentials, cleared.username) == (False, None)


async def test_an_account_may_not_create_an_unpod_trunk_but_the_operator_may(
    http: httpx.AsyncClient, acme: Tenant, operator: Any
) -> None:
    response = await http.post(
        "/v1/trunks", headers=bearer(acme.api_key), json={"name": "t", "kind": "unpod"}
    )
    ours = await operator.trunks.create(name="carrier", kind="unpod")

    assert response.status_code == 403
    assert (ours.kind, ours.account_id) == ("unpod", None)


async def test_a_number_takes_its_trunk_type_from_its_trunk(
    acme: Tenant, http: httpx.AsyncClient
) -> None:
    trunk = await acme.client.trunks.create(name="pbx", default_country="GB")

    number = await acme.client.numbers.create(number=GB_NUMBER, trunk_id=trunk.trunk_id)
    mismatch = await http.post(
        "/v1/numbers",
        headers=bearer(acme.api_key),
        json={"number": US_NUMBER, "trunk_id": trunk.trunk_id, "trunk_type": "unpod"},
    )

    assert (number.trunk_type, number.trunk_id) == ("byo", trunk.trunk_id)
    assert mismatch.status_code == 422
    assert error_of(mismatch)["field"] == "trunk_type"


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/pipes", {"name": "p", "runner_url": "http://x/"}, "runner_url"),
        ("POST", "/v1/pipes", {"name": "", "runner_url": RUNNER}, "name"),
        (
            "POST",
            "/v1/pipes",
            {"name": "p", "runner_url": RUNNER, "max_call_duration_s": 5},
            "max_call_duration_s",
        ),
        (
            "POST",
            "/v1/pipes",
            {"name": "p", "runner_url": RUNNER, "max_call_duration_s": 86_401},
            "max_call_duration_s",
        ),
        (
            "POST",
            "/v1/pipes",
            {"name": "p", "runner_url": RUNNER, "colour": 1},
            "colour",
        ),
        ("POST", "/v1/numbers", {"number": "call me"}, "number"),
        ("POST", "/v1/numbers", {"number": "+999"}, "number"),
        ("POST", "/v1/numbers", {"number": US_NUMBER, "country": "GB"}, "number"),
        ("POST", "/v1/numbers", {"number": US_NUMBER, "country": "USA"}, "country"),
        ("POST", "/v1/numbers", {"number": US_NUMBER, "status": "on"}, "status"),
        ("POST", "/v1/numbers", {}, "number"),
        (
            "POST",
            "/v1/trunks",
            {"name": "t", "allowed_addresses": ["x"]},
            "allowed_addresses",
        ),
        (
            "POST",
            "/v1/trunks",
            {"name": "t", "termination_uri": "http://x"},
            "termination_uri",
        ),
        ("POST", "/v1/trunks", {"name": "t", "username": "u"}, "password"),
        ("POST", "/v1/trunks", {"name": "t", "register": True}, "register"),
        ("GET", "/v1/numbers?limit=0", None, "limit"),
        ("GET", "/v1/numbers?limit=1001", None, "limit"),
        ("GET", "/v1/numbers?status=gone", None, "status"),
        ("GET", "/v1/numbers?cursor=not-ours", None, "cursor"),
        ("GET", "/v1/calls?active=maybe", None, "active"),
    ],
)
async def test_invalid_input_is_422_naming_the_field(
    http: httpx.AsyncClient,
    acme: Tenant,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    field: str,
) -> None:
    response = await http.request(method, path, headers=bearer(acme.api_key), json=body)

    assert response.status_code == 422, response.text
    error = error_of(response)
    assert (error["code"], error["field"]) == ("validation_error", field)
    assert error["message"]


async def test_a_body_that_is_not_json_is_422_naming_the_body(
    http: httpx.AsyncClient, acme: Tenant
) -> None:
    response = await http.post(
        "/v1/pipes",
        headers={**bearer(acme.api_key), "Content-Type": "application/json"},
        content=b"{not json",
    )

    assert response.status_code == 422
    assert error_of(response)["field"] == "body"


async def test_a_body_sent_as_a_form_or_text_is_415_saying_to_send_json(
    http: httpx.AsyncClient, acme: Tenant
) -> None:
    for content_type, body in (
        ("text/plain", b'{"name": "support"}'),
        ("application/x-www-form-urlencoded", b"name=support"),
    ):
        response = await http.post(
            "/v1/pipes",
            headers={**bearer(acme.api_key), "Content-Type": content_type},
            content=body,
        )

        assert response.status_code == 415, response.text
        assert error_of(response)["code"] == "unsupported_media_type"
        assert "application/json" in error_of(response)["message"]


async def test_a_body_over_the_limit_is_413_before_it_is_parsed(
    http: httpx.AsyncClient, acme: Tenant
) -> None:
    response = await http.post(
        "/v1/pipes",
        headers={**bearer(acme.api_key), "Content-Type": "application/json"},
        content=b" " * (MAX_BODY_BYTES + 1),
    )

    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"


# -- errors ---------------------------------------------------------------------------


async def test_an_unknown_route_is_a_json_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/nothing-here", headers=OPERATOR)

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


async def test_a_creation_that_exists_already_is_409(
    http: httpx.AsyncClient, acme: Tenant
) -> None:
    await acme.client.numbers.create(number=US_NUMBER)

    response = await http.post(
        "/v1/numbers", headers=bearer(acme.api_key), json={"number": "+1 415 555 0100"}
    )

    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"


async def test_deleting_an_account_that_still_owns_things_is_409(
    http: httpx.AsyncClient, acme: Tenant
) -> None:
    await acme.client.pipes.create(name="p", runner_url=RUNNER)

    response = await http.delete(f"/v1/accounts/{acme.account_id}", headers=OPERATOR)

    assert response.status_code == 409
    assert (
        await http.get(f"/v1/accounts/{acme.account_id}", headers=OPERATOR)
    ).is_success


async def test_a_store_that_is_down_answers_503(
    http: httpx.AsyncClient, api: Api
) -> None:
    await api.store.close()

    response = await http.get("/v1/pipes", headers=OPERATOR)

    assert response.status_code == 503
    assert error_of(response)["code"] == "store_unavailable"
    assert (await http.get("/readyz")).status_code == 503


async def test_an_unexpected_failure_is_a_json_500_without_details(
    http: httpx.AsyncClient, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(**kwargs: Any) -> None:
        raise RuntimeError("internal detail 42")

    monkeypatch.setattr(api.store, "list_pipes", broken)

    response = await http.get("/v1/pipes", headers=OPERATOR)

    assert response.status_code == 500
    assert error_of(response)["code"] == "internal_error"
    assert "42" not in response.text and "Traceback" not in response.text


# -- resources ------------------------------------------------------------------------


async def test_deleting_a_pipe_reports_how_many_numbers_it_detached(
    http: httpx.AsyncClient, acme: Tenant
) -> None:
    number_id, pipe_id = await make_number_on_pipe(acme)

    response = await http.delete(f"/v1/pipes/{pipe_id}", headers=bearer(acme.api_key))

    assert response.json() == {
        "pipe_id": pipe_id,
        "deleted": True,
        "detached_numbers": 1,
    }
    assert (await acme.client.numbers.get(number_id)).pipe_id is None


async def test_numbers_are_listed_by_filter_a_page_at_a_time(acme: Tenant) -> None:
    pipe = await acme.client.pipes.create(name="p", runner_url=RUNNER)
    for i in range(5):
        await acme.client.numbers.create(number=f"+1415555010{i}")
    await acme.client.numbers.create(number=GB_NUMBER, status="inactive")
    await acme.client.numbers.attach(US_NUMBER, pipe.pipe_id)

    first = await acme.client.numbers.page(limit=2, country="US")
    rest = await acme.client.numbers.page(
        limit=10, country="us", cursor=first.next_cursor
    )

    assert len(first.data) == 2 and first.next_cursor is not None
    assert len(rest.data) == 3 and rest.next_cursor is None
    assert [n.number for n in await acme.client.numbers.list(status="inactive")] == [
        GB_NUMBER
    ]
    assert [n.number for n in await acme.client.numbers.list(pipe_id=pipe.pipe_id)] == [
        US_NUMBER
    ]


def call_record(call_id: str, account_id: str, *, ended: bool = False) -> CallRecord:
    started = time.time() - 60
    return CallRecord(
        call_id=call_id,
        account_id=account_id,
        number=US_NUMBER,
        number_id=None,
        pipe_id=None,
        runner_url="wss://runner.example.com/agent?token=x",
        caller="+14155559999",
        sip_call_id=f"{call_id}@carrier",
        trunk_id=None,
        started_at=started,
        answered_at=started + 1,
        ended_at=started + 30 if ended else None,
        final_status=200,
        ended_by=CallEndedBy.CALLER if ended else None,
        end_reason="bye" if ended else None,
    )


async def test_calls_are_listed_per_account_and_by_activity(
    api: Api, acme: Tenant, globex: Tenant, http: httpx.AsyncClient
) -> None:
    await api.store.save_call(call_record("live", acme.account_id))
    await api.store.save_call(call_record("done", acme.account_id, ended=True))
    await api.store.save_call(call_record("other", globex.account_id))
    headers = bearer(acme.api_key)

    everything = (await http.get("/v1/calls", headers=headers)).json()["data"]
    live = (await http.get("/v1/calls?active=true", headers=headers)).json()["data"]
    done = (await http.get("/v1/calls?active=false", headers=headers)).json()["data"]
    one = (await http.get("/v1/calls/done", headers=headers)).json()

    assert sorted(call["call_id"] for call in everything) == ["done", "live"]
    assert [call["call_id"] for call in live] == ["live"]
    assert [call["call_id"] for call in done] == ["done"]
    assert (one["active"], one["ended_by"], one["final_status"]) == (
        False,
        "caller",
        200,
    )
    assert "token" not in one["runner_url"]


# -- the server -----------------------------------------------------------------------


async def test_the_server_leaves_sigint_and_sigterm_to_the_router(store: Store) -> None:
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    server = ApiServer(create_app(store))
    await server.start(LOOPBACK, 0)
    try:
        during = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    finally:
        await server.stop()

    assert during == before


async def test_an_address_in_use_is_an_oserror_at_start(api: Api, store: Store) -> None:
    second = ApiServer(create_app(store))

    with pytest.raises(OSError):
        await second.start(LOOPBACK, api.server.port)


async def test_stop_closes_the_listener(store: Store) -> None:
    server = ApiServer(create_app(store))
    await server.start(LOOPBACK, 0)
    port = server.port

    await server.stop()

    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://{LOOPBACK}:{port}/healthz")


async def test_a_password_in_a_failing_request_does_not_reach_the_log(
    http: httpx.AsyncClient, api: Api, acme: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    trunk = await acme.client.trunks.create(name="t", username="u", password="first")

    async def broken(trunk_id: str, **changes: Any) -> None:
        raise RuntimeError("update failed")

    monkeypatch.setattr(api.store, "update_trunk", broken)
    with structlog.testing.capture_logs() as logged:
        response = await http.patch(
            f"/v1/trunks/{trunk.trunk_id}",
            headers=bearer(acme.api_key),
            json={"password": "hunter2-in-flight"},
        )

    assert response.status_code == 500
    assert [entry["event"] for entry in logged] == ["api_internal_error"]
    assert "update failed" in logged[0]["traceback"]
    assert "hunter2" not in repr(logged)
