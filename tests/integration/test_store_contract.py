"""The store contract: every test runs against the embedded store and Redis.

The numbers and addresses are those of the carrier interop cases: +14155550100 ->
pipe-A, +14155550199 -> pipe-B, +442079460123 -> pipe-C; carriers 198.51.100.20 (US)
and 198.51.100.30 (GB). They are only stored here; nothing is ever sent to them.
The last sections hold what only one backend has (files, pub/sub, hash slots).
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from router.numbers import (
    AlreadyExists,
    InvalidNumber,
    InvalidPipe,
    InvalidQuery,
    InvalidTrunk,
    NotFound,
    Number,
    NumberStatus,
    Pipe,
    Store,
    StoreError,
    StoreUnavailable,
    TrunkType,
    open_store,
)
from router.numbers.embedded import EmbeddedStore
from router.numbers.redis_store import RedisStore, key_base

if TYPE_CHECKING:  # the fixture's type; conftest modules are not imported by tests
    from conftest import Backend

NUMBER_A = "+14155550100"
NUMBER_B = "+14155550199"
NUMBER_C = "+442079460123"
RUNNER_URL = "ws://127.0.0.1:9/runner"

# Enough racing clients that a non-atomic attach would leave two pipes holding the
# number in practically every run.
RACING_CLIENTS = 20


async def new_pipe(store: Store, name: str = "pipe-A", **fields: Any) -> Pipe:
    return await store.create_pipe(name=name, runner_url=RUNNER_URL, **fields)


async def holders(store: Store, number: str, pipes: list[Pipe]) -> list[str]:
    """The ids of the pipes whose number set contains ``number``."""
    return [
        pipe.pipe_id
        for pipe in pipes
        if number in await store.pipe_numbers(pipe.pipe_id)
    ]


def run_in_threads(jobs: list[Callable[[], Awaitable[None]]]) -> None:
    """Run each job in a thread of its own with its own event loop, all at once."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], Awaitable[None]]) -> None:
        async def main() -> None:
            barrier.wait()
            await job()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


# -- numbers ---------------------------------------------------------------------------


async def test_create_number_stores_e164_and_derived_country(store: Store) -> None:
    number = await store.create_number("14155550100")

    assert number.number == NUMBER_A
    assert number.country == "US"
    assert number.number_id.startswith("num_") and len(number.number_id) >= 20
    assert number.status is NumberStatus.ACTIVE
    assert number.trunk_type is TrunkType.UNPOD
    assert number.pipe_id is None
    assert await store.get_number(number.number_id) == number


async def test_create_number_keeps_every_given_field(store: Store) -> None:
    trunk = await store.create_trunk(name="carrier-gb", default_country="GB")

    number = await store.create_number(
        "02079460123",
        country="GB",
        status=NumberStatus.PENDING,
        trunk_type=TrunkType.BYO,
        trunk_id=trunk.trunk_id,
        account_id="acct_1",
    )

    assert number == Number(
        number.number_id,
        NUMBER_C,
        NumberStatus.PENDING,
        TrunkType.BYO,
        None,
        "GB",
        trunk.trunk_id,
        "acct_1",
    )
    assert await store.get_number(NUMBER_C) == number


async def test_numbers_get_distinct_ids(store: Store) -> None:
    first = await store.create_number(NUMBER_A)
    second = await store.create_number(NUMBER_B)

    assert first.number_id != second.number_id


@pytest.mark.parametrize(
    "ref", [NUMBER_A, "14155550100", "+1 (415) 555-0100", "1-415-555-0100"]
)
async def test_get_number_by_e164_with_or_without_plus(store: Store, ref: str) -> None:
    created = await store.create_number(NUMBER_A)

    assert await store.get_number(ref) == created


@pytest.mark.parametrize(
    "ref", ["+14155550199", "num_doesnotexist", "alice", "", "num_a:b"]
)
async def test_get_unknown_number_raises_not_found_naming_kind_and_ref(
    store: Store, ref: str
) -> None:
    await store.create_number(NUMBER_A)

    with pytest.raises(NotFound) as caught:
        await store.get_number(ref)

    assert caught.value.kind == "number"
    assert caught.value.ref == ref


@pytest.mark.parametrize("again", [NUMBER_A, "14155550100", "+1 415 555 0100"])
async def test_create_duplicate_number_raises_already_exists(
    store: Store, again: str
) -> None:
    original = await store.create_number(NUMBER_A)

    with pytest.raises(AlreadyExists):
        await store.create_number(again)

    assert await store.get_number(NUMBER_A) == original
    assert len((await store.list_numbers()).items) == 1


@pytest.mark.parametrize(
    ("number", "country"),
    [
        ("alice", None),
        ("+15555550100", None),
        ("0999", "GB"),
        (NUMBER_A, "GB"),
        ("", None),
    ],
)
async def test_create_invalid_number_raises_invalid_number_and_stores_nothing(
    store: Store, number: str, country: str | None
) -> None:
    with pytest.raises(InvalidNumber):
        await store.create_number(number, country=country)

    assert (await store.list_numbers()).items == []


async def test_create_number_with_bad_status_raises_invalid_number(
    store: Store,
) -> None:
    with pytest.raises(InvalidNumber):
        await store.create_number(NUMBER_A, status="retired")  # type: ignore[arg-type]

    assert (await store.list_numbers()).items == []


async def test_create_number_on_unknown_trunk_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound) as caught:
        await store.create_number(NUMBER_A, trunk_id="trunk_missing")

    assert caught.value.kind == "trunk"
    assert (await store.list_numbers()).items == []


async def test_update_number_status_is_seen_by_get_route_and_filters(
    store: Store,
) -> None:
    number = await store.create_number(NUMBER_A)

    updated = await store.update_number(number.number_id, status=NumberStatus.INACTIVE)

    assert updated.status is NumberStatus.INACTIVE
    assert (await store.get_number(NUMBER_A)).status is NumberStatus.INACTIVE
    route = await store.route(NUMBER_A)
    assert route is not None and route.number.status is NumberStatus.INACTIVE
    assert (await store.list_numbers(status=NumberStatus.ACTIVE)).items == []
    assert (await store.list_numbers(status=NumberStatus.INACTIVE)).items == [updated]


async def test_update_number_without_changes_returns_it_unchanged(store: Store) -> None:
    number = await store.create_number(NUMBER_A)

    assert await store.update_number(NUMBER_A) == number


async def test_update_unknown_number_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.update_number(NUMBER_A, status=NumberStatus.INACTIVE)


async def test_delete_number_removes_it_everywhere(store: Store) -> None:
    pipe = await new_pipe(store)
    number = await store.create_number(NUMBER_A, account_id="acct_1")
    await store.attach(NUMBER_A, pipe.pipe_id)

    await store.delete_number(number.number_id)

    assert await store.route(NUMBER_A) is None
    assert await store.pipe_numbers(pipe.pipe_id) == []
    assert (await store.list_numbers(account_id="acct_1")).items == []
    for ref in (NUMBER_A, number.number_id):
        with pytest.raises(NotFound):
            await store.get_number(ref)
    with pytest.raises(NotFound):
        await store.delete_number(NUMBER_A)


async def test_deleted_number_can_be_created_again(store: Store) -> None:
    await store.create_number(NUMBER_A)
    await store.delete_number(NUMBER_A)

    again = await store.create_number(NUMBER_A)

    assert await store.get_number(NUMBER_A) == again


# -- listing ---------------------------------------------------------------------------


async def test_list_numbers_is_ordered_by_e164(store: Store) -> None:
    for number in (NUMBER_C, NUMBER_B, NUMBER_A):
        await store.create_number(number)

    page = await store.list_numbers()

    assert [n.number for n in page.items] == sorted([NUMBER_A, NUMBER_B, NUMBER_C])
    assert page.next_cursor is None


async def test_list_numbers_filters_by_each_field_and_by_combinations(
    store: Store,
) -> None:
    pipe_a = await new_pipe(store, "pipe-A")
    trunk = await store.create_trunk(name="byo")
    a = await store.create_number(NUMBER_A, account_id="acct_1")
    b = await store.create_number(
        NUMBER_B,
        status=NumberStatus.PENDING,
        trunk_type=TrunkType.BYO,
        trunk_id=trunk.trunk_id,
    )
    c = await store.create_number(NUMBER_C, account_id="acct_1")
    a = await store.attach(NUMBER_A, pipe_a.pipe_id)

    async def listed(**filters: Any) -> list[str]:
        page = await store.list_numbers(**filters)
        return [number.number for number in page.items]

    assert await listed(status=NumberStatus.ACTIVE) == [a.number, c.number]
    assert await listed(status="pending") == [b.number]
    assert await listed(country="GB") == [c.number]
    assert await listed(country="us") == [a.number, b.number]
    assert await listed(trunk_type=TrunkType.BYO) == [b.number]
    assert await listed(pipe_id=pipe_a.pipe_id) == [a.number]
    assert await listed(account_id="acct_1") == [a.number, c.number]
    assert await listed(account_id="acct_1", country="US") == [a.number]
    assert await listed(
        status=NumberStatus.ACTIVE, trunk_type=TrunkType.UNPOD, country="GB"
    ) == [c.number]
    assert await listed(pipe_id=pipe_a.pipe_id, status=NumberStatus.PENDING) == []
    assert await listed(pipe_id="pipe_missing") == []
    assert await listed(account_id="acct_other") == []


async def _create_numbers(store: Store, count: int, start: int = 1000) -> list[str]:
    numbers = [f"+1415555{start + i:04d}" for i in range(count)]
    for number in numbers:
        await store.create_number(
            number, account_id="acct_1" if int(number) % 2 else None
        )
    return numbers


async def _all_pages(store: Store, limit: int, **filters: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await store.list_numbers(limit=limit, cursor=cursor, **filters)
        pages.append([number.number for number in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages


async def test_list_numbers_pages_through_many_pages_without_gaps_or_repeats(
    store: Store,
) -> None:
    numbers = await _create_numbers(store, 53)

    pages = await _all_pages(store, limit=7)

    assert len(pages) == 8
    assert all(len(page) == 7 for page in pages[:-1]) and len(pages[-1]) == 4
    assert [number for page in pages for number in page] == sorted(numbers)


async def test_last_full_page_has_no_next_cursor(store: Store) -> None:
    await _create_numbers(store, 10)

    pages = await _all_pages(store, limit=5)

    assert [len(page) for page in pages] == [5, 5]


async def test_filtered_listing_pages_through_matching_numbers_only(
    store: Store,
) -> None:
    numbers = await _create_numbers(store, 40)
    odd = [number for number in numbers if int(number) % 2]

    pages = await _all_pages(store, limit=3, account_id="acct_1", country="US")

    assert [number for page in pages for number in page] == sorted(odd)


async def test_cursor_is_stable_under_concurrent_inserts(store: Store) -> None:
    numbers = await _create_numbers(store, 30, start=2000)
    seen: list[str] = []
    inserted_before: list[str] = []
    cursor: str | None = None
    step = 0
    while True:
        page = await store.list_numbers(limit=4, cursor=cursor)
        seen += [number.number for number in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        # Another client inserts numbers behind and ahead of the cursor meanwhile.
        step += 1
        inserted_before.append(f"+1415555{1000 + step:04d}")
        await store.create_number(inserted_before[-1])
        await store.create_number(f"+1415555{3000 + step:04d}")

    assert len(seen) == len(set(seen)), "a number was listed twice"
    assert [n for n in seen if n in numbers] == sorted(numbers), "a number was skipped"
    assert not set(inserted_before) & set(seen), "a number behind the cursor appeared"
    assert seen == sorted(seen)


@pytest.mark.parametrize("limit", [0, -1, 1001, True])
async def test_list_numbers_rejects_a_bad_limit(store: Store, limit: int) -> None:
    with pytest.raises(InvalidQuery) as caught:
        await store.list_numbers(limit=limit)

    assert caught.value.field == "limit"


@pytest.mark.parametrize("cursor", ["garbage!", "bjE6YWxpY2U", "%%%", "eA"])
async def test_list_numbers_rejects_a_cursor_it_did_not_make(
    store: Store, cursor: str
) -> None:
    with pytest.raises(InvalidQuery) as caught:
        await store.list_numbers(cursor=cursor)

    assert caught.value.field == "cursor"
    assert isinstance(caught.value, ValueError)


async def test_list_numbers_rejects_an_unknown_status_filter(store: Store) -> None:
    with pytest.raises(InvalidQuery):
        await store.list_numbers(status="retired")  # type: ignore[arg-type]


# -- attach and detach -----------------------------------------------------------------


async def test_attach_sets_pipe_and_route_returns_it(store: Store) -> None:
    pipe = await new_pipe(store, max_call_duration_s=600)
    number = await store.create_number(NUMBER_A)

    attached = await store.attach(number.number_id, pipe.pipe_id)

    assert attached.pipe_id == pipe.pipe_id
    assert await store.get_number(NUMBER_A) == attached
    assert await store.pipe_numbers(pipe.pipe_id) == [NUMBER_A]
    route = await store.route(NUMBER_A)
    assert route is not None
    assert route.number == attached
    assert route.pipe == pipe


async def test_attach_moves_a_number_off_its_old_pipe(store: Store) -> None:
    pipe_a = await new_pipe(store, "pipe-A")
    pipe_b = await new_pipe(store, "pipe-B")
    await store.create_number(NUMBER_A)
    await store.attach(NUMBER_A, pipe_a.pipe_id)

    moved = await store.attach("14155550100", pipe_b.pipe_id)

    assert moved.pipe_id == pipe_b.pipe_id
    assert await store.pipe_numbers(pipe_a.pipe_id) == []
    assert await store.pipe_numbers(pipe_b.pipe_id) == [NUMBER_A]
    assert (await store.list_numbers(pipe_id=pipe_a.pipe_id)).items == []
    route = await store.route(NUMBER_A)
    assert route is not None and route.pipe == pipe_b


async def test_attach_to_the_same_pipe_twice_changes_nothing(store: Store) -> None:
    pipe = await new_pipe(store)
    await store.create_number(NUMBER_A)
    first = await store.attach(NUMBER_A, pipe.pipe_id)

    second = await store.attach(NUMBER_A, pipe.pipe_id)

    assert second == first
    assert await store.pipe_numbers(pipe.pipe_id) == [NUMBER_A]


@pytest.mark.parametrize(
    "missing_pipe", ["pipe_missing", "pipe_x:numbers", "", "../pipe"]
)
async def test_attach_to_missing_pipe_raises_not_found_and_changes_nothing(
    store: Store, missing_pipe: str
) -> None:
    pipe_a = await new_pipe(store)
    await store.create_number(NUMBER_A)
    before = await store.attach(NUMBER_A, pipe_a.pipe_id)

    with pytest.raises(NotFound) as caught:
        await store.attach(NUMBER_A, missing_pipe)

    assert (caught.value.kind, caught.value.ref) == ("pipe", missing_pipe)
    assert await store.get_number(NUMBER_A) == before
    assert await store.pipe_numbers(pipe_a.pipe_id) == [NUMBER_A]


async def test_attach_missing_number_raises_not_found_for_the_number(
    store: Store,
) -> None:
    pipe = await new_pipe(store)

    with pytest.raises(NotFound) as caught:
        await store.attach(NUMBER_A, pipe.pipe_id)

    assert caught.value.kind == "number"
    assert await store.pipe_numbers(pipe.pipe_id) == []


async def test_detach_clears_the_pipe_and_is_idempotent(store: Store) -> None:
    pipe = await new_pipe(store)
    await store.create_number(NUMBER_A)
    await store.attach(NUMBER_A, pipe.pipe_id)

    first = await store.detach(NUMBER_A)
    second = await store.detach(first.number_id)

    assert first.pipe_id is None and second == first
    assert await store.pipe_numbers(pipe.pipe_id) == []
    route = await store.route(NUMBER_A)
    assert route is not None and route.pipe is None


async def test_detach_missing_number_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.detach(NUMBER_A)


async def test_concurrent_attaches_leave_the_number_on_exactly_one_pipe(
    backend: Backend, store: Store
) -> None:
    number = await store.create_number(NUMBER_A)
    pipes = [await new_pipe(store, f"pipe-{i}") for i in range(RACING_CLIENTS)]

    def attach_job(pipe_id: str) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            handle = await backend.connect()
            try:
                await handle.attach(number.number, pipe_id)
            finally:
                await handle.close()

        return job

    await asyncio.to_thread(
        run_in_threads, [attach_job(pipe.pipe_id) for pipe in pipes]
    )

    final = await store.get_number(number.number_id)
    assert final.pipe_id in {pipe.pipe_id for pipe in pipes}
    assert await holders(store, NUMBER_A, pipes) == [final.pipe_id]
    listed = [(await store.list_numbers(pipe_id=pipe.pipe_id)).items for pipe in pipes]
    assert [items for items in listed if items] == [[final]]


async def test_attach_racing_delete_pipe_never_leaves_a_dangling_pipe(
    backend: Backend, store: Store
) -> None:
    await store.create_number(NUMBER_A)
    pipes = [await new_pipe(store, f"pipe-{i}") for i in range(RACING_CLIENTS // 2)]

    def job(action: str, pipe_id: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            handle = await backend.connect()
            try:
                if action == "attach":
                    await handle.attach(NUMBER_A, pipe_id)
                else:
                    await handle.delete_pipe(pipe_id)
            except NotFound:
                pass  # the pipe was deleted first: the attach must change nothing
            finally:
                await handle.close()

        return run

    jobs = [
        job(action, pipe.pipe_id) for pipe in pipes for action in ("attach", "delete")
    ]
    await asyncio.to_thread(run_in_threads, jobs)

    final = await store.get_number(NUMBER_A)
    assert final.pipe_id is None
    route = await store.route(NUMBER_A)
    assert route is not None and route.pipe is None
    assert await store.list_pipes() == []


# -- pipes -----------------------------------------------------------------------------


async def test_create_get_and_list_pipes_ordered_by_name(store: Store) -> None:
    beta = await store.create_pipe(
        name="beta", runner_url="wss://127.0.0.1:8443/agent", account_id="acct_1"
    )
    alpha = await store.create_pipe(
        name="alpha",
        runner_url=RUNNER_URL,
        max_call_duration_s=120,
        account_id="acct_2",
    )

    assert alpha.pipe_id.startswith("pipe_") and alpha.pipe_id != beta.pipe_id
    assert alpha.max_call_duration_s == 120 and beta.max_call_duration_s == 3600
    assert await store.get_pipe(alpha.pipe_id) == alpha
    assert await store.list_pipes() == [alpha, beta]
    assert await store.list_pipes(account_id="acct_1") == [beta]
    assert await store.list_pipes(account_id="acct_3") == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": " "}, "name"),
        ({"runner_url": "http://127.0.0.1/agent"}, "runner_url"),
        ({"runner_url": "ws://"}, "runner_url"),
        ({"runner_url": "not a url"}, "runner_url"),
        ({"max_call_duration_s": 0}, "max_call_duration_s"),
        ({"max_call_duration_s": 86_401}, "max_call_duration_s"),
        ({"max_call_duration_s": True}, "max_call_duration_s"),
        ({"max_call_duration_s": "60"}, "max_call_duration_s"),
    ],
)
async def test_create_pipe_rejects_bad_fields_naming_the_field(
    store: Store, fields: dict[str, object], field: str
) -> None:
    arguments: dict[str, object] = {
        "name": "pipe-A",
        "runner_url": RUNNER_URL,
        **fields,
    }

    with pytest.raises(InvalidPipe) as caught:
        await store.create_pipe(**arguments)  # type: ignore[arg-type]

    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)
    assert await store.list_pipes() == []


async def test_update_pipe_changes_what_route_returns(store: Store) -> None:
    pipe = await new_pipe(store)
    await store.create_number(NUMBER_A)
    await store.attach(NUMBER_A, pipe.pipe_id)

    updated = await store.update_pipe(
        pipe.pipe_id, runner_url="wss://127.0.0.1:9443/v2", max_call_duration_s=60
    )

    assert updated == Pipe(pipe.pipe_id, "pipe-A", "wss://127.0.0.1:9443/v2", 60, None)
    route = await store.route(NUMBER_A)
    assert route is not None and route.pipe == updated
    assert await store.update_pipe(pipe.pipe_id) == updated


async def test_update_pipe_with_a_bad_field_changes_nothing(store: Store) -> None:
    pipe = await new_pipe(store)

    with pytest.raises(InvalidPipe):
        await store.update_pipe(pipe.pipe_id, name="renamed", runner_url="ftp://x")

    assert await store.get_pipe(pipe.pipe_id) == pipe


async def test_delete_pipe_detaches_its_numbers_and_counts_them(store: Store) -> None:
    pipe_a = await new_pipe(store, "pipe-A")
    pipe_b = await new_pipe(store, "pipe-B")
    for number in (NUMBER_A, NUMBER_B, NUMBER_C):
        await store.create_number(number)
    await store.attach(NUMBER_A, pipe_a.pipe_id)
    await store.attach(NUMBER_B, pipe_a.pipe_id)
    await store.attach(NUMBER_C, pipe_b.pipe_id)

    detached = await store.delete_pipe(pipe_a.pipe_id)

    assert detached == 2
    for number in (NUMBER_A, NUMBER_B):
        route = await store.route(number)
        assert route is not None and route.pipe is None
        assert (await store.get_number(number)).pipe_id is None
    assert (await store.get_number(NUMBER_C)).pipe_id == pipe_b.pipe_id
    assert await store.list_pipes() == [pipe_b]
    assert (await store.list_numbers(pipe_id=pipe_a.pipe_id)).items == []


async def test_delete_empty_pipe_returns_zero(store: Store) -> None:
    pipe = await new_pipe(store)

    assert await store.delete_pipe(pipe.pipe_id) == 0


@pytest.mark.parametrize("pipe_id", ["pipe_missing", "pipe_x:numbers", ""])
async def test_unknown_pipe_raises_not_found_everywhere(
    store: Store, pipe_id: str
) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.get_pipe(pipe_id),
        lambda: store.update_pipe(pipe_id, name="x"),
        lambda: store.delete_pipe(pipe_id),
        lambda: store.pipe_numbers(pipe_id),
    ]
    for call in calls:
        with pytest.raises(NotFound) as caught:
            await call()
        assert (caught.value.kind, caught.value.ref) == ("pipe", pipe_id)


# -- trunks ----------------------------------------------------------------------------


async def test_create_trunk_stores_canonical_addresses(store: Store) -> None:
    trunk = await store.create_trunk(
        name="carrier-us",
        kind=TrunkType.UNPOD,
        allowed_addresses=[
            "198.51.100.20",
            "198.51.100.0/24",
            "2001:DB8::/32",
            "2001:db8::1/128",
        ],
        default_country="us",
        termination_uri="sip:127.0.0.1:5080",
        account_id="acct_1",
    )

    assert trunk.trunk_id.startswith("trunk_")
    assert trunk.kind is TrunkType.UNPOD
    assert trunk.allowed_addresses == (
        "198.51.100.20",
        "198.51.100.0/24",
        "2001:db8::/32",
        "2001:db8::1",
    )
    assert trunk.default_country == "US"
    assert await store.get_trunk(trunk.trunk_id) == trunk


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"kind": "carrier"}, "kind"),
        ({"allowed_addresses": ["198.51.100.300"]}, "allowed_addresses"),
        ({"allowed_addresses": ["198.51.100.20/24"]}, "allowed_addresses"),
        ({"allowed_addresses": ["example.com"]}, "allowed_addresses"),
        ({"default_country": "Britain"}, "default_country"),
        ({"termination_uri": "http://127.0.0.1"}, "termination_uri"),
    ],
)
async def test_create_trunk_rejects_bad_fields_naming_the_field(
    store: Store, fields: dict[str, object], field: str
) -> None:
    arguments: dict[str, object] = {"name": "carrier", **fields}

    with pytest.raises(InvalidTrunk) as caught:
        await store.create_trunk(**arguments)  # type: ignore[arg-type]

    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)
    assert await store.list_trunks() == []


async def test_find_trunk_for_address_prefers_the_most_specific_prefix(
    store: Store,
) -> None:
    wide = await store.create_trunk(name="wide", allowed_addresses=["198.51.100.0/24"])
    us = await store.create_trunk(
        name="carrier-us", allowed_addresses=["198.51.100.20"], default_country="US"
    )
    gb = await store.create_trunk(
        name="carrier-gb", allowed_addresses=["198.51.100.30/32", "2001:db8:30::/48"]
    )
    v6 = await store.create_trunk(name="v6-wide", allowed_addresses=["2001:db8::/32"])

    assert await store.find_trunk_for_address("198.51.100.20") == us
    assert await store.find_trunk_for_address("198.51.100.30") == gb
    assert await store.find_trunk_for_address("198.51.100.99") == wide
    assert await store.find_trunk_for_address("::ffff:198.51.100.20") == us
    assert await store.find_trunk_for_address("2001:db8:30::5") == gb
    assert await store.find_trunk_for_address("[2001:db8:99::5]") == v6
    assert await store.find_trunk_for_address("203.0.113.66") is None
    assert await store.find_trunk_for_address("2001:db9::1") is None
    assert await store.find_trunk_for_address("not an address") is None


async def test_find_trunk_breaks_ties_by_trunk_id(store: Store) -> None:
    first = await store.create_trunk(name="one", allowed_addresses=["198.51.100.0/24"])
    second = await store.create_trunk(name="two", allowed_addresses=["198.51.100.0/24"])

    found = await store.find_trunk_for_address("198.51.100.1")

    assert found == min(first, second, key=lambda trunk: trunk.trunk_id)


async def test_list_trunks_by_name_and_account(store: Store) -> None:
    b = await store.create_trunk(name="b", account_id="acct_1")
    a = await store.create_trunk(name="a")

    assert await store.list_trunks() == [a, b]
    assert await store.list_trunks(account_id="acct_1") == [b]


async def test_delete_trunk_keeps_its_numbers_without_a_trunk(store: Store) -> None:
    trunk = await store.create_trunk(name="byo", allowed_addresses=["198.51.100.20"])
    await store.create_number(
        NUMBER_A, trunk_type=TrunkType.BYO, trunk_id=trunk.trunk_id
    )

    await store.delete_trunk(trunk.trunk_id)

    assert (await store.get_number(NUMBER_A)).trunk_id is None
    assert await store.find_trunk_for_address("198.51.100.20") is None
    for call in (store.get_trunk, store.delete_trunk):
        with pytest.raises(NotFound) as caught:
            await call(trunk.trunk_id)
        assert caught.value.kind == "trunk"


# -- routing ---------------------------------------------------------------------------


@pytest.mark.parametrize("dialed", [NUMBER_B, "+0", "", "num_x", "alice"])
async def test_route_of_an_unknown_number_is_none(store: Store, dialed: str) -> None:
    await store.create_number(NUMBER_A)

    assert await store.route(dialed) is None


async def test_route_of_an_unattached_number_has_no_pipe(store: Store) -> None:
    number = await store.create_number(NUMBER_A)

    route = await store.route(NUMBER_A)

    assert route is not None
    assert route.number == number and route.pipe is None


async def test_route_maps_each_interop_number_to_its_pipe(store: Store) -> None:
    pipes = {
        name: await new_pipe(store, name) for name in ("pipe-A", "pipe-B", "pipe-C")
    }
    for number, name in (
        (NUMBER_A, "pipe-A"),
        (NUMBER_B, "pipe-B"),
        (NUMBER_C, "pipe-C"),
    ):
        await store.create_number(number)
        await store.attach(number, pipes[name].pipe_id)

    for number, name in (
        (NUMBER_A, "pipe-A"),
        (NUMBER_B, "pipe-B"),
        (NUMBER_C, "pipe-C"),
    ):
        route = await store.route(number)
        assert route is not None and route.pipe == pipes[name]


# -- several handles and lifecycle -----------------------------------------------------


async def test_a_second_handle_sees_each_change_on_its_next_lookup(
    backend: Backend, store: Store
) -> None:
    reader = await backend.connect()  # the running router; `store` is the command line
    try:
        assert await reader.route(NUMBER_A) is None
        pipe = await new_pipe(store)
        await store.create_number(NUMBER_A)
        await store.attach(NUMBER_A, pipe.pipe_id)

        route = await reader.route(NUMBER_A)
        assert route is not None and route.pipe == pipe

        await store.detach(NUMBER_A)
        route = await reader.route(NUMBER_A)
        assert route is not None and route.pipe is None
    finally:
        await reader.close()


async def test_ping_succeeds_on_a_working_store(store: Store) -> None:
    await store.ping()


# -- embedded store only ---------------------------------------------------------------


async def test_embedded_store_keeps_everything_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "router.db"
    first = await EmbeddedStore.open(path)
    pipe = await new_pipe(first)
    trunk = await first.create_trunk(
        name="carrier-us", allowed_addresses=["198.51.100.20"]
    )
    number = await first.attach(
        (await first.create_number(NUMBER_A)).number_id, pipe.pipe_id
    )
    await first.close()

    second = await EmbeddedStore.open(path)
    try:
        assert await second.get_number(NUMBER_A) == number
        assert await second.get_pipe(pipe.pipe_id) == pipe
        assert await second.find_trunk_for_address("198.51.100.20") == trunk
        route = await second.route(NUMBER_A)
        assert route is not None and route.pipe == pipe
    finally:
        await second.close()


async def test_open_store_without_redis_creates_the_file_and_its_directories(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a" / "b" / "router.db"

    store = await open_store(redis_url=None, db_path=str(path))
    try:
        assert isinstance(store, EmbeddedStore)
        assert path.exists()
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await store.close()


async def test_embedded_store_refuses_a_schema_from_a_newer_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "router.db"
    await (await EmbeddedStore.open(path)).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = 99")

    with pytest.raises(StoreError, match="schema version 99"):
        await EmbeddedStore.open(path)


async def test_embedded_store_on_a_file_that_is_not_a_database_is_unavailable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "router.db"
    path.write_bytes(b"this is not SQLite" * 100)

    with pytest.raises(StoreUnavailable):
        await EmbeddedStore.open(path)


async def test_closed_embedded_store_is_unavailable(tmp_path: Path) -> None:
    store = await EmbeddedStore.open(tmp_path / "router.db")
    await store.close()

    with pytest.raises(StoreUnavailable):
        await store.route(NUMBER_A)
    with pytest.raises(StoreUnavailable):
        await store.ping()


# -- Redis store only ------------------------------------------------------------------


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_redis_store_on_a_closed_port_raises_store_unavailable_quickly() -> None:
    store = RedisStore.from_url(
        f"redis://127.0.0.1:{free_loopback_port()}/15", key_prefix="x:"
    )
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.route(NUMBER_A)
        with pytest.raises(StoreUnavailable):
            await store.create_number(NUMBER_A)
        with pytest.raises(StoreUnavailable):
            await store.list_pipes()
    finally:
        await store.close()
    # Connection refused must not be retried with backoff for seconds.
    assert time.monotonic() - started < 2.0


async def test_open_store_with_a_redis_url_returns_a_redis_store(
    redis_url: str, redis_prefix: str
) -> None:
    store = await open_store(redis_url=redis_url, db_path=None, key_prefix=redis_prefix)
    try:
        assert isinstance(store, RedisStore)
        await store.ping()
    finally:
        await store.close()


@pytest.fixture
async def redis_store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_url, key_prefix=redis_prefix)
    yield store
    await store.close()


async def _invalidations(
    redis_url: str, channel: str, actions: Callable[[], Awaitable[None]]
) -> list[str]:
    """Run ``actions`` and return the messages published on ``channel`` meanwhile."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    try:
        await actions()
        await client.publish(channel, "END")
        messages: list[str] = []
        while not messages or messages[-1] != "END":
            message = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=2.0
            )
            assert message is not None, f"no END message; got {messages}"
            messages.append(message["data"])
        return messages[:-1]
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_redis_publishes_the_number_on_every_routing_change(
    redis_url: str, redis_store: RedisStore
) -> None:
    store = redis_store
    pipe = await new_pipe(store)
    other = await new_pipe(store, "pipe-B")

    async def changes() -> None:
        await store.create_number(NUMBER_A)
        await store.create_number(NUMBER_B)
        await store.attach(NUMBER_A, pipe.pipe_id)
        await store.attach(NUMBER_A, pipe.pipe_id)  # no change: no message
        await store.attach(NUMBER_B, pipe.pipe_id)
        await store.update_pipe(pipe.pipe_id, runner_url="ws://127.0.0.1:10/v2")
        await store.update_number(NUMBER_A, status=NumberStatus.INACTIVE)
        await store.attach(NUMBER_A, other.pipe_id)
        await store.detach(NUMBER_A)
        await store.detach(NUMBER_A)  # already detached: no message
        await store.delete_pipe(pipe.pipe_id)
        await store.delete_number(NUMBER_A)

    messages = await _invalidations(redis_url, store.channel, changes)

    assert store.channel == store.key_prefix + "invalidate"
    assert messages == [
        NUMBER_A,  # created
        NUMBER_B,  # created
        NUMBER_A,  # attached
        NUMBER_B,  # attached
        NUMBER_A,  # its pipe changed (the pipe's numbers, in E.164 order)
        NUMBER_B,
        NUMBER_A,  # status
        NUMBER_A,  # moved
        NUMBER_A,  # detached
        NUMBER_B,  # its pipe was deleted
        NUMBER_A,  # deleted
    ]


async def test_redis_keys_start_with_the_prefix_and_share_one_hash_slot(
    redis_url: str, redis_prefix: str, redis_store: RedisStore
) -> None:
    store = redis_store
    trunk = await store.create_trunk(
        name="t", allowed_addresses=["198.51.100.20"], account_id="a"
    )
    pipe = await store.create_pipe(name="p", runner_url=RUNNER_URL, account_id="a")
    await store.create_number(NUMBER_A, account_id="a", trunk_id=trunk.trunk_id)
    await store.attach(NUMBER_A, pipe.pipe_id)
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=redis_prefix + "*", count=1000))
        assert len(keys) >= 10
        assert {key_slot(key) for key in keys} == {key_slot(keys[0])}

        # Deleting everything leaves no key behind.
        await store.delete_number(NUMBER_A)
        await store.delete_pipe(pipe.pipe_id)
        await store.delete_trunk(trunk.trunk_id)
        assert list(client.scan_iter(match=redis_prefix + "*", count=1000)) == []
    finally:
        client.close()


async def test_redis_prefixes_keep_maps_apart(
    redis_url: str, redis_prefix: str
) -> None:
    first = RedisStore.from_url(redis_url, key_prefix=redis_prefix + "one:")
    second = RedisStore.from_url(redis_url, key_prefix=redis_prefix + "two:")
    try:
        await first.create_number(NUMBER_A)

        assert await second.route(NUMBER_A) is None
        created = await second.create_number(NUMBER_A)
        assert (await first.get_number(NUMBER_A)).number_id != created.number_id
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize(
    ("prefix", "base"),
    [
        ("sip-router:", "sip-router:{sip-router}:"),
        ("acme:{acme}:", "acme:{acme}:"),
        ("", "{sip-router}:"),
    ],
)
def test_key_base_adds_a_hash_tag_unless_the_prefix_has_one(
    prefix: str, base: str
) -> None:
    assert key_base(prefix) == base


def test_a_prefix_whose_keys_would_spread_over_slots_is_refused() -> None:
    # "{}" is an empty hash tag: Redis would hash each whole key to its own slot.
    client = aioredis.Redis(host="127.0.0.1", port=free_loopback_port())  # never used

    with pytest.raises(ValueError, match="hash slots"):
        RedisStore(client, key_prefix="bad{}:")
