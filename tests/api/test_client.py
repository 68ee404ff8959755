"""AsyncClient against a live admin API: every method, and every typed error."""

from __future__ import annotations

import time

import httpx
import pytest

from router.api.models import Number
from router.client import (
    APIConnectionError,
    APIError,
    AsyncClient,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
    ValidationError,
)
from router.numbers.models import CallRecord

from .conftest import LOOPBACK, Api, Tenant

RUNNER = "wss://agents.example.com/stream"


async def test_accounts_and_their_keys_round_trip(
    api: Api, operator: AsyncClient
) -> None:
    account = await operator.accounts.create(name="acme")
    key = await operator.accounts.keys.create(account.account_id)

    listed = await operator.accounts.list()
    fetched = await operator.accounts.get(account.account_id)
    keys = await operator.accounts.keys.list(account.account_id)
    await operator.accounts.keys.revoke(account.account_id, key.key_id)
    after = await operator.accounts.keys.list(account.account_id)

    assert account.api_key.startswith("sk_") and key.api_key.startswith("sk_")
    assert [a.account_id for a in listed] == [account.account_id]
    assert (fetched.name, fetched.created_at) == ("acme", account.created_at)
    assert [k.revoked for k in keys] == [False, False]
    assert key.api_key.startswith(keys[1].prefix)
    assert [k.revoked for k in after] == [False, True]
    async with api.client(key.api_key) as revoked:
        with pytest.raises(AuthenticationError):
            await revoked.pipes.list()

    await operator.accounts.delete(account.account_id)
    with pytest.raises(NotFoundError):
        await operator.accounts.get(account.account_id)


async def test_pipes_round_trip(acme: Tenant) -> None:
    pipes = acme.client.pipes
    pipe = await pipes.create(name="support", runner_url=RUNNER)

    renamed = await pipes.update(
        pipe.pipe_id, name="help desk", max_call_duration_s=600
    )
    listed = await pipes.list()
    fetched = await pipes.get(pipe.pipe_id)
    deleted = await pipes.delete(pipe.pipe_id)

    assert (pipe.max_call_duration_s, pipe.account_id) == (3600, acme.account_id)
    assert (renamed.name, renamed.max_call_duration_s, renamed.runner_url) == (
        "help desk",
        600,
        RUNNER,
    )
    assert listed == [fetched] == [renamed]
    assert (deleted.pipe_id, deleted.deleted, deleted.detached_numbers) == (
        pipe.pipe_id,
        True,
        0,
    )
    assert await pipes.list() == []


async def test_trunks_round_trip(acme: Tenant) -> None:
    trunks = acme.client.trunks
    trunk = await trunks.create(
        name="carrier-a", allowed_addresses=["198.51.100.0/24"], default_country="US"
    )

    updated = await trunks.update(
        trunk.trunk_id,
        allowed_addresses=["198.51.100.0/24", "2001:db8::/32"],
        termination_uri="sip:pbx.example.com",
        username="acme",
        password="p4ss",
        register=True,
    )
    listed = await trunks.list(kind="byo")
    fetched = await trunks.get(trunk.trunk_id)
    cleared = await trunks.update(trunk.trunk_id, default_country=None)
    await trunks.delete(trunk.trunk_id)

    assert (trunk.kind, trunk.has_credentials, trunk.default_country) == (
        "byo",
        False,
        "US",
    )
    assert updated.allowed_addresses == ["198.51.100.0/24", "2001:db8::/32"]
    assert (updated.has_credentials, updated.username, updated.register) == (
        True,
        "acme",
        True,
    )
    assert listed == [fetched] == [updated]
    assert await trunks.list(kind="unpod") == []
    assert cleared.default_country is None
    assert await trunks.list() == []


async def test_numbers_round_trip(acme: Tenant) -> None:
    numbers, pipes = acme.client.numbers, acme.client.pipes
    pipe = await pipes.create(name="support", runner_url=RUNNER)
    trunk = await acme.client.trunks.create(
        name="carrier-a", allowed_addresses=["198.51.100.0/24"], default_country="GB"
    )

    number = await numbers.create(
        number="+14155550100", country="US", trunk_type="unpod"
    )
    byo = await numbers.create(
        number="+442079460123", country="GB", trunk_type="byo", trunk_id=trunk.trunk_id
    )
    attached = await numbers.attach(number.number_id, pipe.pipe_id)
    on_pipe = await numbers.list(pipe_id=pipe.pipe_id)
    byo_only = await numbers.list(status="active", country="GB", trunk_type="byo")
    inactive = await numbers.update(number.number_id, status="inactive")
    by_e164 = await numbers.get("+14155550100")
    detached = await numbers.detach(number.number_id)
    await numbers.delete(byo.number_id)

    assert (number.country, number.pipe_id, number.account_id) == (
        "US",
        None,
        acme.account_id,
    )
    assert (byo.trunk_type, byo.trunk_id) == ("byo", trunk.trunk_id)
    assert attached.pipe_id == pipe.pipe_id
    assert [n.number_id for n in on_pipe] == [number.number_id]
    assert [n.number_id for n in byo_only] == [byo.number_id]
    assert inactive.status == "inactive" and by_e164 == inactive
    assert detached.pipe_id is None
    assert [n.number for n in await numbers.list()] == ["+14155550100"]


async def test_numbers_iter_follows_cursors_past_one_page(
    acme: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    import router.client

    monkeypatch.setattr(router.client, "ITER_PAGE_SIZE", 2)
    for i in range(5):
        await acme.client.numbers.create(number=f"+1415555010{i}")

    seen = [number.number async for number in acme.client.numbers.iter(country="US")]
    page = await acme.client.numbers.page(limit=3)

    assert seen == [f"+1415555010{i}" for i in range(5)]
    assert len(page.data) == 3 and page.next_cursor is not None
    assert all(isinstance(n, Number) for n in page.data)


async def test_numbers_import_from_csv_and_from_rows(acme: Tenant) -> None:
    pipe = await acme.client.pipes.create(name="support", runner_url=RUNNER)

    from_csv = await acme.client.numbers.import_csv(
        f"number,country,pipe_id\n+14155550100,US,{pipe.pipe_id}\n+1,US,\n"
    )
    from_rows = await acme.client.numbers.import_rows(
        [{"number": "+14155550101", "status": "pending"}]
    )

    assert [(n.number, n.pipe_id) for n in from_csv.created] == [
        ("+14155550100", pipe.pipe_id)
    ]
    assert [(e.row, e.field) for e in from_csv.errors] == [(2, "number")]
    assert [(n.number, n.status) for n in from_rows.created] == [
        ("+14155550101", "pending")
    ]


async def test_calls_list_get_page_and_iter(api: Api, acme: Tenant) -> None:
    now = time.time()
    for i in range(3):
        await api.store.save_call(
            CallRecord(
                call_id=f"call-{i}",
                account_id=acme.account_id,
                number="+14155550100",
                number_id=None,
                pipe_id=None,
                runner_url=RUNNER,
                caller="+14155559999",
                sip_call_id=f"{i}@carrier",
                trunk_id=None,
                started_at=now - 100 + i,
                ended_at=now - 50 if i == 0 else None,
            )
        )

    newest_first = await acme.client.calls.list()
    live = await acme.client.calls.list(active=True)
    ended = await acme.client.calls.list(active=False)
    page = await acme.client.calls.page(limit=2)
    every = [call.call_id async for call in acme.client.calls.iter()]
    one = await acme.client.calls.get("call-0")

    assert [c.call_id for c in newest_first] == ["call-2", "call-1", "call-0"]
    assert [c.call_id for c in live] == ["call-2", "call-1"]
    assert [c.call_id for c in ended] == ["call-0"]
    assert len(page.data) == 2 and page.next_cursor is not None
    assert every == ["call-2", "call-1", "call-0"]
    assert (one.active, one.caller) == (False, "+14155559999")


# -- errors ---------------------------------------------------------------------------


async def test_http_errors_become_typed_exceptions(
    api: Api, acme: Tenant, operator: AsyncClient
) -> None:
    await acme.client.numbers.create(number="+14155550100")

    with pytest.raises(AuthenticationError) as unauthorized:
        async with api.client("sk_wrong") as stranger:
            await stranger.numbers.list()
    with pytest.raises(PermissionDeniedError):
        await acme.client.accounts.list()
    with pytest.raises(NotFoundError) as missing:
        await acme.client.numbers.get("+14155550199")
    with pytest.raises(ConflictError):
        await acme.client.numbers.create(number="+14155550100")
    with pytest.raises(ValidationError) as invalid:
        await acme.client.pipes.create(name="p", runner_url="http://nope")
    with pytest.raises(PermissionDeniedError):
        await acme.client.trunks.create(name="t", kind="unpod")

    assert (unauthorized.value.status, unauthorized.value.code) == (401, "unauthorized")
    assert missing.value.message == "number '+14155550199' not found"
    assert (invalid.value.status, invalid.value.field) == (422, "runner_url")
    assert isinstance(invalid.value, APIError)


async def test_a_store_outage_is_service_unavailable(
    api: Api, operator: AsyncClient
) -> None:
    await api.store.close()

    with pytest.raises(ServiceUnavailableError) as caught:
        await operator.pipes.list()

    assert caught.value.code == "store_unavailable"


async def test_a_router_that_does_not_answer_is_a_connection_error() -> None:
    with socket_without_listener() as port:
        async with AsyncClient(
            api_key="k", base_url=f"http://{LOOPBACK}:{port}"
        ) as client:
            with pytest.raises(APIConnectionError) as caught:
                await client.pipes.list()

    assert caught.value.status == 0


async def test_an_error_page_that_is_not_ours_keeps_the_http_reason() -> None:
    def proxy_page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    transport = httpx.MockTransport(proxy_page)
    async with AsyncClient(api_key="k", transport=transport) as client:
        with pytest.raises(APIError) as caught:
            await client.numbers.list()

    assert (caught.value.status, caught.value.message) == (502, "Bad Gateway")


class socket_without_listener:
    """A loopback port that is bound but not listening: connections are refused."""

    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket()
        self._socket.bind((LOOPBACK, 0))
        port: int = self._socket.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self._socket.close()
