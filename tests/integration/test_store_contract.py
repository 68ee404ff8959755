"""The store contract: every test runs against the embedded store and Redis.

The numbers and addresses are those of the carrier interop cases: +14155550100 ->
pipe-A, +14155550199 -> pipe-B, +442079460123 -> pipe-C; carriers 198.51.100.20 (US)
and 198.51.100.30 (GB). They are only stored here; nothing is ever sent to them.
Around the map: trunk credentials, accounts, API keys and call records, whose secrets
and tokens must never be stored or returned. The last sections hold what only one
backend has (files, pub/sub, hash slots, expiry).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import math
import re
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
    CallEndedBy,
    CallRecord,
    Conflict,
    InvalidAccount,
    InvalidCall,
    InvalidInput,
    InvalidNumber,
    InvalidPipe,
    InvalidQuery,
    InvalidTrunk,
    NotFound,
    Number,
    NumberStatus,
    Page,
    Pipe,
    Store,
    StoreError,
    StoreUnavailable,
    Trunk,
    TrunkType,
    open_store,
)
from router.numbers import embedded as embedded_module
from router.numbers.embedded import EmbeddedStore
from router.numbers.embedded import schema as embedded_schema
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


async def test_a_closed_store_is_unavailable(backend: Backend) -> None:
    store = await backend.connect()
    await store.ping()
    await store.close()

    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.route(NUMBER_A),
        store.ping,
        store.list_pipes,
        lambda: store.get_trunk("trunk_x"),
        lambda: store.update_trunk("trunk_x", name="x"),
        lambda: store.trunk_credentials("trunk_x"),
        lambda: store.get_call(CALL_ID),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable):
            await call()


# -- trunk credentials -----------------------------------------------------------------

TRUNK_USER = "carrier-user"
TRUNK_PASSWORD = "Pa55-word-never-shown"


async def new_trunk_with_credentials(store: Store, **fields: Any) -> Trunk:
    return await store.create_trunk(
        name="carrier-us",
        allowed_addresses=["198.51.100.20"],
        termination_uri="sip:127.0.0.1:5080",
        username=TRUNK_USER,
        password=TRUNK_PASSWORD,
        **fields,
    )


def assert_no_password(trunk: Trunk, password: str = TRUNK_PASSWORD) -> None:
    assert password not in repr(trunk)
    assert password not in str(trunk)
    assert password not in repr(dataclasses.astuple(trunk))


async def test_trunk_credentials_are_readable_only_through_trunk_credentials(
    store: Store,
) -> None:
    created = await new_trunk_with_credentials(store, register=True)

    assert created.username == TRUNK_USER and created.register is True
    assert await store.trunk_credentials(created.trunk_id) == (
        TRUNK_USER,
        TRUNK_PASSWORD,
    )
    seen = [
        created,
        await store.get_trunk(created.trunk_id),
        *await store.list_trunks(),
        await store.find_trunk_for_address("198.51.100.20"),
        await store.update_trunk(created.trunk_id, name="renamed"),
    ]
    for trunk in seen:
        assert trunk is not None
        assert_no_password(trunk)
    assert not hasattr(created, "password")


async def test_a_trunk_without_credentials_has_none(store: Store) -> None:
    trunk = await store.create_trunk(name="ip-only")

    assert trunk.username is None and trunk.register is False
    assert await store.trunk_credentials(trunk.trunk_id) is None


@pytest.mark.parametrize(
    ("credentials", "field"),
    [
        ({"username": TRUNK_USER}, "password"),
        ({"password": TRUNK_PASSWORD}, "username"),
        ({"username": "", "password": TRUNK_PASSWORD}, "username"),
        ({"username": TRUNK_USER, "password": ""}, "password"),
        ({"username": TRUNK_USER, "password": TRUNK_PASSWORD + "\r\nX: y"}, "password"),
        ({"username": "user\n", "password": TRUNK_PASSWORD}, "username"),
        ({"username": TRUNK_USER, "password": TRUNK_PASSWORD * 20}, "password"),
    ],
)
async def test_create_trunk_with_bad_or_half_credentials_names_the_field(
    store: Store, credentials: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidTrunk) as caught:
        await store.create_trunk(name="carrier", **credentials)

    assert caught.value.field == field
    assert TRUNK_PASSWORD not in str(caught.value)
    assert await store.list_trunks() == []


async def test_register_needs_a_termination_uri(store: Store) -> None:
    with pytest.raises(InvalidTrunk) as caught:
        await store.create_trunk(name="carrier", register=True)

    assert caught.value.field == "register"
    assert await store.list_trunks() == []


async def test_update_trunk_changes_only_the_given_fields(store: Store) -> None:
    trunk = await new_trunk_with_credentials(store, account_id="acct_1")

    updated = await store.update_trunk(
        trunk.trunk_id,
        allowed_addresses=["198.51.100.0/24", "2001:DB8::/32"],
        default_country="gb",
    )

    assert updated == dataclasses.replace(
        trunk,
        allowed_addresses=("198.51.100.0/24", "2001:db8::/32"),
        default_country="GB",
    )
    assert await store.get_trunk(trunk.trunk_id) == updated
    assert await store.trunk_credentials(trunk.trunk_id) == (
        TRUNK_USER,
        TRUNK_PASSWORD,
    )
    assert await store.update_trunk(trunk.trunk_id) == updated


async def test_update_trunk_rotates_the_password_alone(store: Store) -> None:
    trunk = await new_trunk_with_credentials(store)

    updated = await store.update_trunk(trunk.trunk_id, password="rotated-secret")

    assert updated == trunk
    assert_no_password(updated, "rotated-secret")
    assert await store.trunk_credentials(trunk.trunk_id) == (
        TRUNK_USER,
        "rotated-secret",
    )


async def test_update_trunk_with_empty_strings_clears_credentials_and_fields(
    store: Store,
) -> None:
    trunk = await new_trunk_with_credentials(store, default_country="US")

    updated = await store.update_trunk(
        trunk.trunk_id, username="", password="", default_country=""
    )

    assert updated.username is None and updated.default_country is None
    assert updated.termination_uri == trunk.termination_uri
    assert await store.trunk_credentials(trunk.trunk_id) is None
    assert await store.get_trunk(trunk.trunk_id) == updated


async def test_update_trunk_adds_credentials_to_a_trunk_without_any(
    store: Store,
) -> None:
    trunk = await store.create_trunk(name="ip-only")

    updated = await store.update_trunk(
        trunk.trunk_id, username=TRUNK_USER, password=TRUNK_PASSWORD
    )

    assert updated.username == TRUNK_USER
    assert await store.trunk_credentials(trunk.trunk_id) == (
        TRUNK_USER,
        TRUNK_PASSWORD,
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"password": ""}, "password"),
        ({"username": ""}, "username"),
        ({"termination_uri": ""}, "register"),
        ({"name": " "}, "name"),
        ({"allowed_addresses": ["example.com"]}, "allowed_addresses"),
        ({"default_country": "Britain"}, "default_country"),
        ({"password": "new\nline"}, "password"),
    ],
)
async def test_update_trunk_that_would_be_invalid_changes_nothing(
    store: Store, changes: dict[str, Any], field: str
) -> None:
    trunk = await new_trunk_with_credentials(store, register=True)

    with pytest.raises(InvalidTrunk) as caught:
        await store.update_trunk(trunk.trunk_id, **{"name": "renamed", **changes})

    assert caught.value.field == field
    assert TRUNK_PASSWORD not in str(caught.value)
    assert await store.get_trunk(trunk.trunk_id) == trunk
    assert await store.trunk_credentials(trunk.trunk_id) == (
        TRUNK_USER,
        TRUNK_PASSWORD,
    )


async def test_update_trunk_keeps_its_numbers(store: Store) -> None:
    trunk = await new_trunk_with_credentials(store)
    await store.create_number(
        NUMBER_A, trunk_type=TrunkType.BYO, trunk_id=trunk.trunk_id
    )

    await store.update_trunk(trunk.trunk_id, name="renamed", password="rotated")

    assert (await store.get_number(NUMBER_A)).trunk_id == trunk.trunk_id


async def test_concurrent_updates_of_different_trunk_fields_all_take_effect(
    backend: Backend, store: Store
) -> None:
    trunk = await new_trunk_with_credentials(store)
    changes: list[dict[str, Any]] = [
        {"name": "renamed"},
        {"allowed_addresses": ["198.51.100.30"]},
        {"default_country": "GB"},
        {"termination_uri": "sip:127.0.0.1:5090"},
        {"password": "rotated"},
        {"register": True},
    ]

    def update_job(change: dict[str, Any]) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            handle = await backend.connect()
            try:
                await handle.update_trunk(trunk.trunk_id, **change)
            finally:
                await handle.close()

        return job

    await asyncio.to_thread(run_in_threads, [update_job(c) for c in changes])

    final = await store.get_trunk(trunk.trunk_id)
    assert final == Trunk(
        trunk.trunk_id,
        "renamed",
        trunk.kind,
        ("198.51.100.30",),
        "GB",
        "sip:127.0.0.1:5090",
        None,
        TRUNK_USER,
        True,
    )
    assert await store.trunk_credentials(trunk.trunk_id) == (TRUNK_USER, "rotated")


@pytest.mark.parametrize("trunk_id", ["trunk_missing", "trunk_x:secret", ""])
async def test_unknown_trunk_raises_not_found_for_update_and_credentials(
    store: Store, trunk_id: str
) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.update_trunk(trunk_id, name="x"),
        lambda: store.trunk_credentials(trunk_id),
        lambda: store.get_trunk(trunk_id),
    ]
    for call in calls:
        with pytest.raises(NotFound) as caught:
            await call()
        assert (caught.value.kind, caught.value.ref) == ("trunk", trunk_id)


async def test_deleted_trunk_takes_its_credentials_along(store: Store) -> None:
    trunk = await new_trunk_with_credentials(store)

    await store.delete_trunk(trunk.trunk_id)

    with pytest.raises(NotFound):
        await store.trunk_credentials(trunk.trunk_id)


async def test_list_trunks_filters_by_kind_and_account(store: Store) -> None:
    byo = await store.create_trunk(name="a", kind=TrunkType.BYO, account_id="acct_1")
    unpod = await store.create_trunk(name="b", kind=TrunkType.UNPOD)
    other = await store.create_trunk(name="c", kind="unpod", account_id="acct_1")

    assert await store.list_trunks(kind=TrunkType.UNPOD) == [unpod, other]
    assert await store.list_trunks(kind="byo") == [byo]  # type: ignore[arg-type]
    assert await store.list_trunks(account_id="acct_1", kind=TrunkType.UNPOD) == [other]
    with pytest.raises(InvalidQuery) as caught:
        await store.list_trunks(kind="carrier")  # type: ignore[arg-type]
    assert caught.value.field == "kind"


# -- scoping to an account -------------------------------------------------------------


async def test_getters_scoped_to_an_account_hide_other_accounts_objects(
    store: Store,
) -> None:
    number = await store.create_number(NUMBER_A, account_id="acct_1")
    pipe = await new_pipe(store, account_id="acct_1")
    trunk = await store.create_trunk(name="t", account_id="acct_1")
    await store.save_call(call_record(account_id="acct_1"))
    unowned = await store.create_number(NUMBER_B)
    getters: list[tuple[str, Callable[..., Awaitable[Any]], str]] = [
        ("number", store.get_number, number.number_id),
        ("number", store.get_number, NUMBER_A),
        ("pipe", store.get_pipe, pipe.pipe_id),
        ("trunk", store.get_trunk, trunk.trunk_id),
        ("call", store.get_call, CALL_ID),
    ]

    for kind, get, ref in getters:
        assert await get(ref, account_id="acct_1") == await get(ref)
        with pytest.raises(NotFound) as caught:
            await get(ref, account_id="acct_2")
        assert (caught.value.kind, caught.value.ref) == (kind, ref)
    with pytest.raises(NotFound):
        await store.get_number(unowned.number_id, account_id="acct_1")


# -- accounts --------------------------------------------------------------------------


async def test_create_get_and_list_accounts_ordered_by_name(store: Store) -> None:
    before = time.time()
    beta = await store.create_account("beta")
    alpha = await store.create_account("alpha")

    assert alpha.account_id.startswith("acct_") and len(alpha.account_id) == 27
    assert alpha.account_id != beta.account_id
    assert alpha.name == "alpha"
    assert before <= beta.created_at <= alpha.created_at <= time.time()
    assert await store.get_account(alpha.account_id) == alpha
    assert await store.list_accounts() == [alpha, beta]


@pytest.mark.parametrize("name", ["", "  "])
async def test_create_account_without_a_name_raises_invalid_account(
    store: Store, name: str
) -> None:
    with pytest.raises(InvalidAccount) as caught:
        await store.create_account(name)

    assert caught.value.field == "name"
    assert isinstance(caught.value, ValueError)
    assert await store.list_accounts() == []


@pytest.mark.parametrize("account_id", ["acct_missing", "acct_x:api_keys", ""])
async def test_unknown_account_raises_not_found_everywhere(
    store: Store, account_id: str
) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.get_account(account_id),
        lambda: store.delete_account(account_id),
        lambda: store.create_api_key(account_id),
        lambda: store.list_api_keys(account_id),
    ]
    for call in calls:
        with pytest.raises(NotFound) as caught:
            await call()
        assert (caught.value.kind, caught.value.ref) == ("account", account_id)


async def test_delete_account_removes_it_and_its_keys(store: Store) -> None:
    account = await store.create_account("acme")
    other = await store.create_account("other")
    _, secret = await store.create_api_key(account.account_id)
    revoked, _ = await store.create_api_key(account.account_id)
    await store.revoke_api_key(revoked.key_id)
    kept, kept_secret = await store.create_api_key(other.account_id)

    await store.delete_account(account.account_id)

    assert await store.list_accounts() == [other]
    assert await store.authenticate_api_key(secret) is None
    with pytest.raises(NotFound):
        await store.revoke_api_key(revoked.key_id)
    assert await store.authenticate_api_key(kept_secret) == kept


async def create_owned(
    store: Store, kind: str, account_id: str
) -> Callable[[], Awaitable[object]]:
    """Create a number, pipe or trunk of the account; return what deletes it."""
    if kind == "number":
        number = await store.create_number(NUMBER_A, account_id=account_id)
        return functools.partial(store.delete_number, number.number_id)
    if kind == "pipe":
        pipe = await new_pipe(store, account_id=account_id)
        return functools.partial(store.delete_pipe, pipe.pipe_id)
    trunk = await store.create_trunk(name="t", account_id=account_id)
    return functools.partial(store.delete_trunk, trunk.trunk_id)


@pytest.mark.parametrize("owned", ["number", "pipe", "trunk"])
async def test_delete_account_that_owns_something_raises_conflict(
    store: Store, owned: str
) -> None:
    account = await store.create_account("acme")
    account_id = account.account_id
    key, secret = await store.create_api_key(account_id)
    remove = await create_owned(store, owned, account_id)

    with pytest.raises(Conflict) as caught:
        await store.delete_account(account_id)

    assert (caught.value.kind, caught.value.ref) == ("account", account_id)
    assert f"1 {owned}(s)" in caught.value.reason
    assert await store.get_account(account_id) == account
    assert await store.authenticate_api_key(secret) == key
    await remove()
    await store.delete_account(account_id)
    assert await store.list_accounts() == []


# -- API keys --------------------------------------------------------------------------


async def test_create_api_key_returns_the_secret_once_and_it_authenticates(
    store: Store,
) -> None:
    account = await store.create_account("acme")

    key, secret = await store.create_api_key(account.account_id)

    assert secret.startswith("sk_") and len(secret) == 35
    assert re.fullmatch(r"sk_[A-Za-z0-9_-]{32}", secret)
    assert key.prefix == secret[:10]
    assert key.key_id.startswith("key_") and len(key.key_id) == 26
    assert key.account_id == account.account_id and key.revoked is False
    assert await store.authenticate_api_key(secret) == key
    assert await store.list_api_keys(account.account_id) == [key]


async def test_each_key_has_its_own_secret(store: Store) -> None:
    account = await store.create_account("acme")

    first, first_secret = await store.create_api_key(account.account_id)
    second, second_secret = await store.create_api_key(account.account_id)

    assert first_secret != second_secret and first.key_id != second.key_id
    assert await store.authenticate_api_key(first_secret) == first
    assert await store.authenticate_api_key(second_secret) == second


async def test_a_revoked_key_no_longer_authenticates(store: Store) -> None:
    account = await store.create_account("acme")
    key, secret = await store.create_api_key(account.account_id)
    other, other_secret = await store.create_api_key(account.account_id)

    revoked = await store.revoke_api_key(key.key_id)

    assert revoked == dataclasses.replace(key, revoked=True)
    assert await store.authenticate_api_key(secret) is None
    assert await store.authenticate_api_key(other_secret) == other
    assert await store.revoke_api_key(key.key_id) == revoked  # twice: no error
    assert revoked in await store.list_api_keys(account.account_id)


async def test_authenticating_an_unknown_or_malformed_secret_returns_none(
    store: Store,
) -> None:
    account = await store.create_account("acme")
    _, secret = await store.create_api_key(account.account_id)
    changed = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    candidates: list[Any] = [
        changed,
        secret + "x",
        secret[:-1],
        secret[3:],
        secret.upper() if secret != secret.upper() else secret.lower(),
        "sk_" + "a" * 32,
        "",
        "sk_",
        None,
        42,
    ]

    for candidate in candidates:
        assert await store.authenticate_api_key(candidate) is None, candidate


async def test_list_api_keys_is_per_account_and_oldest_first(
    backend: Backend,
) -> None:
    clock = FakeClock()
    store = await open_clocked(backend, clock)
    try:
        account = await store.create_account("acme")
        other = await store.create_account("other")
        keys = []
        for _ in range(3):
            keys.append((await store.create_api_key(account.account_id))[0])
            clock.advance(1.0)
        await store.create_api_key(other.account_id)

        assert await store.list_api_keys(account.account_id) == keys
        assert [key.created_at for key in keys] == [
            clock.start,
            clock.start + 1,
            clock.start + 2,
        ]
    finally:
        await store.close()


@pytest.mark.parametrize("key_id", ["key_missing", "key_x:y", ""])
async def test_revoking_an_unknown_key_raises_not_found(
    store: Store, key_id: str
) -> None:
    with pytest.raises(NotFound) as caught:
        await store.revoke_api_key(key_id)

    assert (caught.value.kind, caught.value.ref) == ("api_key", key_id)


async def test_the_api_key_secret_is_never_stored(
    backend: Backend, store: Store
) -> None:
    account = await store.create_account("acme")
    key, secret = await store.create_api_key(account.account_id)
    await store.revoke_api_key(
        (await store.create_api_key(account.account_id))[0].key_id
    )
    await store.authenticate_api_key(secret)

    stored = await stored_text(backend)

    assert key.key_id in stored  # the dump does hold the keys
    # Only the displayed prefix may appear; no longer piece of the secret does.
    assert secret not in stored
    assert secret[len(key.prefix) :] not in stored
    assert hashlib.sha256(secret.encode()).hexdigest() in stored


# -- call records ----------------------------------------------------------------------

CALL_ID = "CA" + "0" * 32
T0 = 1_700_000_000.0


def call_record(call_id: str = CALL_ID, **fields: Any) -> CallRecord:
    """A call to NUMBER_A from the US carrier, started at T0 unless told otherwise."""
    values: dict[str, Any] = {
        "call_id": call_id,
        "account_id": None,
        "number": NUMBER_A,
        "number_id": None,
        "pipe_id": None,
        "runner_url": RUNNER_URL,
        "caller": "+14155550123",
        "sip_call_id": f"{call_id}@198.51.100.20",
        "trunk_id": None,
        "started_at": T0,
        **fields,
    }
    return CallRecord(**values)


class FakeClock:
    """A wall clock that moves only when told.

    It starts at the real time, so that Redis, which expires keys by its own clock,
    agrees with it until the test moves it.
    """

    def __init__(self, start: float | None = None) -> None:
        self.start = time.time() if start is None else start
        self.now = self.start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def open_clocked(
    backend: Backend, clock: Callable[[], float], call_retention_s: float = 3600.0
) -> Store:
    """A new handle on the test's store with its own clock and retention."""
    if backend.kind == "embedded":
        assert backend.db_path is not None
        return await EmbeddedStore.open(
            backend.db_path, call_retention_s=call_retention_s, clock=clock
        )
    assert backend.redis_url is not None and backend.prefix is not None
    return RedisStore.from_url(
        backend.redis_url,
        key_prefix=backend.prefix,
        call_retention_s=call_retention_s,
        clock=clock,
    )


async def stored_text(backend: Backend, *, raw: bool = True) -> str:
    """Everything the test's store holds, key names included, as one string.

    With ``raw``, the SQLite files' bytes are added: data never written is then
    nowhere, not even in free pages or the write-ahead log. Deleted rows may linger
    there, so a test of deletion asks for the rows alone.
    """
    if backend.kind == "embedded":
        path = backend.db_path
        assert path is not None
        with contextlib.closing(sqlite3.connect(path)) as db:
            dump = "\n".join(db.iterdump())
        if not raw:
            return dump
        files = [path, path.with_name(path.name + "-wal")]
        data = b"".join(file.read_bytes() for file in files if file.exists())
        return dump + data.decode("latin-1")
    assert backend.redis_url is not None and backend.prefix is not None
    client = redis.Redis.from_url(backend.redis_url, decode_responses=True)
    try:
        parts: list[str] = []
        for key in client.scan_iter(match=backend.prefix + "*", count=1000):
            parts += [key, repr(redis_value(client, key))]
        return "\n".join(parts)
    finally:
        client.close()


def redis_value(client: redis.Redis, key: str) -> object:
    kind = client.type(key)
    if kind == "string":
        return client.get(key)
    if kind == "hash":
        return client.hgetall(key)
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    raise AssertionError(f"unexpected {kind} at {key}")


async def test_save_and_get_call_keeps_every_field(store: Store) -> None:
    # Ended records expire after a week: this one must have ended recently.
    started = time.time() - 100
    record = call_record(
        account_id="acct_1",
        number_id="num_1",
        pipe_id="pipe_1",
        trunk_id="trunk_1",
        started_at=started,
        answered_at=started + 1.25,
        ended_at=started + 61.5,
        final_status=200,
        ended_by=CallEndedBy.CALLER,
        end_reason="BYE",
        instance="router-1",
    )

    await store.save_call(record)

    got = await store.get_call(CALL_ID)
    assert got == record
    assert got.active is False and got.ended_by is CallEndedBy.CALLER


async def test_save_call_replaces_the_record_with_the_same_call_id(
    store: Store,
) -> None:
    started = time.time()
    ringing = call_record(started_at=started, instance="router-1")
    answered = dataclasses.replace(ringing, answered_at=started + 2, final_status=200)
    ended = dataclasses.replace(
        answered, ended_at=started + 9, ended_by="runner", end_reason="runner closed"
    )

    await store.save_call(ringing)
    assert (await store.get_call(CALL_ID)).active is True
    await store.save_call(answered)
    await store.save_call(ended)

    got = await store.get_call(CALL_ID)
    assert got == dataclasses.replace(ended, ended_by=CallEndedBy.RUNNER)
    assert (await store.list_calls()).items == [got]
    assert (await store.list_calls(active=True)).items == []


async def test_save_calls_writes_a_batch_and_returns_the_invalid_records(
    store: Store,
) -> None:
    started = time.time()
    first = call_record("CA_batch_1", started_at=started)
    bad = call_record("CA_batch_bad", started_at=-1.0)
    ended = call_record(
        "CA_batch_2", started_at=started, ended_at=started + 3, end_reason="BYE"
    )

    invalid = await store.save_calls(
        [first, bad, ended, dataclasses.replace(first, final_status=180)]
    )

    assert [(record.call_id, error.field) for record, error in invalid] == [
        ("CA_batch_bad", "started_at")
    ]
    assert (await store.get_call("CA_batch_1")).final_status == 180
    assert (await store.get_call("CA_batch_2")).active is False
    with pytest.raises(NotFound):
        await store.get_call("CA_batch_bad")
    assert await store.save_calls([]) == []


@pytest.mark.parametrize(
    ("runner_url", "stored"),
    [
        (
            "wss://user:tok3n@127.0.0.1:8443/agent/v1?token=s3cret&x=1#frag",
            "wss://127.0.0.1:8443/agent/v1",
        ),
        ("ws://[::1]:9/runner?key=s3cret", "ws://[::1]:9/runner"),
        ("ws://127.0.0.1/runner", "ws://127.0.0.1/runner"),
        (None, None),
    ],
)
async def test_a_call_record_keeps_no_query_string_or_user_info_of_the_runner_url(
    backend: Backend, store: Store, runner_url: str | None, stored: str | None
) -> None:
    await store.save_call(call_record(runner_url=runner_url))

    assert (await store.get_call(CALL_ID)).runner_url == stored
    dump = await stored_text(backend)
    assert "s3cret" not in dump and "tok3n" not in dump and "frag" not in dump


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"call_id": "CA:x"}, "call_id"),
        ({"call_id": ""}, "call_id"),
        ({"call_id": "C" * 65}, "call_id"),
        ({"started_at": -1.0}, "started_at"),
        ({"started_at": math.nan}, "started_at"),
        ({"started_at": math.inf}, "started_at"),
        ({"started_at": "now"}, "started_at"),
        ({"ended_at": T0 - 1}, "ended_at"),
        ({"answered_at": True}, "answered_at"),
        ({"final_status": 99}, "final_status"),
        ({"final_status": 700}, "final_status"),
        ({"final_status": True}, "final_status"),
        ({"ended_by": "nobody"}, "ended_by"),
        ({"account_id": ""}, "account_id"),
        ({"runner_url": "not a url"}, "runner_url"),
        ({"runner_url": "ws://127.0.0.1:99999/x?token=s3cret"}, "runner_url"),
        ({"caller": None}, "caller"),
    ],
)
async def test_save_call_rejects_a_bad_field_naming_it_and_stores_nothing(
    store: Store, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidCall) as caught:
        await store.save_call(call_record(**fields))

    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)
    assert "s3cret" not in str(caught.value)
    assert (await store.list_calls()).items == []


@pytest.mark.parametrize("call_id", ["CA_missing", "CA:x", ""])
async def test_get_unknown_call_raises_not_found(store: Store, call_id: str) -> None:
    await store.save_call(call_record())

    with pytest.raises(NotFound) as caught:
        await store.get_call(call_id)

    assert (caught.value.kind, caught.value.ref) == ("call", call_id)


async def test_list_calls_is_newest_first_and_filters_by_account_and_activity(
    store: Store,
) -> None:
    now = time.time()
    records = {
        "CA1": call_record("CA1", started_at=now - 40, account_id="acct_1"),
        "CA2": call_record("CA2", started_at=now - 30, ended_at=now - 5),
        "CA3": call_record(
            "CA3", started_at=now - 20, ended_at=now - 1, account_id="acct_1"
        ),
        "CA4": call_record("CA4", started_at=now - 10, account_id="acct_2"),
    }
    for record in records.values():
        await store.save_call(record)

    async def listed(**filters: Any) -> list[str]:
        page = await store.list_calls(**filters)
        assert page.next_cursor is None
        return [record.call_id for record in page.items]

    assert await listed() == ["CA4", "CA3", "CA2", "CA1"]
    assert await listed(active=True) == ["CA4", "CA1"]
    assert await listed(active=False) == ["CA3", "CA2"]
    assert await listed(account_id="acct_1") == ["CA3", "CA1"]
    assert await listed(account_id="acct_1", active=True) == ["CA1"]
    assert await listed(account_id="acct_1", active=False) == ["CA3"]
    assert await listed(account_id="acct_3") == []
    assert (await store.list_calls()).items[0] == records["CA4"]


async def _all_call_pages(store: Store, limit: int, **filters: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await store.list_calls(limit=limit, cursor=cursor, **filters)
        pages.append([record.call_id for record in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages


async def test_list_calls_pages_without_gaps_or_repeats_even_on_equal_start_times(
    store: Store,
) -> None:
    now = time.time()
    expected: list[str] = []
    for second in range(8):
        # Four calls start in the same microsecond; they list by call id, descending.
        for n in range(4):
            call_id = f"CA{second}x{n}"
            started = now - 100 + second
            await store.save_call(
                call_record(call_id, started_at=started, account_id="acct_1")
            )
            expected.append(call_id)
    expected = sorted(expected, reverse=True)

    for limit in (1, 3, 4, 7, 32):
        pages = await _all_call_pages(store, limit)
        assert [call_id for page in pages for call_id in page] == expected
        assert all(len(page) == limit for page in pages[:-1])
    filtered = await _all_call_pages(store, 5, account_id="acct_1", active=True)
    assert [call_id for page in filtered for call_id in page] == expected


async def test_call_cursor_is_stable_while_new_calls_start(store: Store) -> None:
    now = time.time()
    for n in range(12):
        await store.save_call(call_record(f"CAold{n:02d}", started_at=now - 100 + n))
    seen: list[str] = []
    cursor: str | None = None
    step = 0
    while True:
        page = await store.list_calls(limit=5, cursor=cursor)
        seen += [record.call_id for record in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        step += 1
        await store.save_call(call_record(f"CAnew{step}", started_at=now + step))

    assert seen == [f"CAold{n:02d}" for n in reversed(range(12))]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": True}, "limit"),
        ({"active": "yes"}, "active"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"cursor": "bjE6KzE0MTU1NTUwMTAw"}, "cursor"),  # a cursor of list_numbers
        ({"cursor": "YzE6MTIzOkNB"}, "cursor"),  # 'c1:123:CA': too few digits
    ],
)
async def test_list_calls_rejects_bad_arguments(
    store: Store, arguments: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidQuery) as caught:
        await store.list_calls(**arguments)

    assert caught.value.field == field


async def test_ended_calls_disappear_after_the_retention_period(
    backend: Backend,
) -> None:
    clock = FakeClock()
    now = clock.start
    store = await open_clocked(backend, clock, call_retention_s=3600)
    try:
        long_ago = call_record("CAlongago", started_at=now - 9000, ended_at=now - 8000)
        recent = call_record("CArecent", started_at=now - 100, ended_at=now - 60)
        # Active calls never expire, however long ago they started.
        active = call_record("CAactive", started_at=now - 7200)
        for record in (long_ago, recent, active):
            await store.save_call(record)

        assert await call_ids(store) == ["CArecent", "CAactive"]
        with pytest.raises(NotFound):
            await store.get_call("CAlongago")

        clock.advance(3600 - 60 + 1)  # one second past the recent call's retention

        assert await call_ids(store) == ["CAactive"]
        assert await call_ids(store, active=False) == []
        with pytest.raises(NotFound):
            await store.get_call("CArecent")
        assert await store.get_call("CAactive") == active
    finally:
        await store.close()


async def test_retention_removes_expired_records_from_storage(
    backend: Backend,
) -> None:
    clock = FakeClock()
    now = clock.start
    store = await open_clocked(backend, clock, call_retention_s=100)
    try:
        await store.save_call(
            call_record("CAexpired", started_at=now - 2000, ended_at=now - 1000)
        )
        assert "CAexpired" not in await stored_text(backend, raw=False)

        await store.save_call(call_record("CAended", started_at=now - 20, ended_at=now))
        assert "CAended" in await stored_text(backend, raw=False)

        # More than a minute later (the embedded store prunes at most once a minute)
        # and past retention, the next write removes the record.
        clock.advance(101)
        await store.save_call(call_record("CAnext", started_at=clock.now))
        dump = await stored_text(backend, raw=False)
        assert "CAended" not in dump and "CAnext" in dump
    finally:
        await store.close()


async def call_ids(store: Store, **filters: Any) -> list[str]:
    return [record.call_id for record in (await store.list_calls(**filters)).items]


async def test_end_stale_calls_ends_the_active_calls_of_that_instance_only(
    backend: Backend,
) -> None:
    clock = FakeClock()
    now = clock.start
    store = await open_clocked(backend, clock)
    try:
        records = [
            call_record("CA1", started_at=now - 50, instance="router-1"),
            call_record(
                "CA2", started_at=now - 40, instance="router-1", account_id="acct_1"
            ),
            call_record(
                "CA3", started_at=now - 30, ended_at=now - 20, instance="router-1"
            ),
            call_record("CA4", started_at=now - 20, instance="router-2"),
            call_record("CA5", started_at=now - 10),
        ]
        for record in records:
            await store.save_call(record)
        clock.advance(5)

        assert await store.end_stale_calls("router-1", "instance restarted") == 2

        for call_id in ("CA1", "CA2"):
            ended = await store.get_call(call_id)
            assert ended.ended_at == clock.now
            assert ended.ended_by is CallEndedBy.ROUTER
            assert ended.end_reason == "instance restarted"
        assert await store.get_call("CA3") == records[2]
        assert await call_ids(store, active=True) == ["CA5", "CA4"]
        assert await call_ids(store, account_id="acct_1", active=False) == ["CA2"]
        assert await store.end_stale_calls("router-1", "again") == 0
        # Ended that way, they expire like any ended call.
        clock.advance(3601)
        assert await call_ids(store) == ["CA5", "CA4"]
    finally:
        await store.close()


@pytest.mark.parametrize("retention", [0, -1.0, math.nan, math.inf, True, "7d"])
async def test_a_bad_call_retention_is_refused(tmp_path: Path, retention: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        await open_store(
            redis_url=None,
            db_path=str(tmp_path / "router.db"),
            call_retention_s=retention,
        )

    assert caught.value.field == "call_retention_s"
    with pytest.raises(InvalidInput):
        RedisStore.from_url("redis://127.0.0.1:9/15", call_retention_s=retention)


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


async def test_embedded_store_upgrades_a_version_1_file_keeping_its_trunks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "router.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        for statement in embedded_schema.MIGRATIONS[0]:
            db.execute(statement)
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        db.execute(
            "INSERT INTO trunks VALUES"
            " ('trunk_old', 'carrier-us', 'byo', '[\"198.51.100.20\"]', 'US', NULL, NULL)"
        )

    store = await EmbeddedStore.open(path)
    try:
        trunk = await store.get_trunk("trunk_old")
        assert trunk == Trunk(
            "trunk_old", "carrier-us", TrunkType.BYO, ("198.51.100.20",), "US"
        )
        assert await store.trunk_credentials("trunk_old") is None
        updated = await store.update_trunk(
            "trunk_old", username=TRUNK_USER, password=TRUNK_PASSWORD
        )
        assert updated.username == TRUNK_USER
        account = await store.create_account("acme")
        assert await store.list_accounts() == [account]
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        version = db.execute("SELECT version FROM schema_version").fetchone()[0]
    assert version == embedded_module.SCHEMA_VERSION == 2


async def test_embedded_store_prunes_expired_calls_at_most_once_a_minute(
    tmp_path: Path,
) -> None:
    clock = FakeClock(start=T0)
    path = tmp_path / "router.db"
    store = await EmbeddedStore.open(path, call_retention_s=10, clock=clock)
    try:
        await store.save_call(call_record("CA1", ended_at=T0))  # prunes, keeps CA1
        clock.advance(30)  # CA1 has expired, but the last prune was 30 s ago

        await store.save_call(call_record("CA2", started_at=clock.now))

        assert "CA1" in await table_rows(path, "calls")
        assert await store.list_calls() == Page([await store.get_call("CA2")], None)
        clock.advance(30)
        await store.save_call(call_record("CA3", started_at=clock.now))
        assert "CA1" not in await table_rows(path, "calls")
    finally:
        await store.close()


async def table_rows(path: Path, table: str) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return repr(db.execute(f"SELECT * FROM {table}").fetchall())


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


async def test_redis_publishes_trunk_changes_naming_the_trunk(
    redis_url: str, redis_store: RedisStore
) -> None:
    store = redis_store
    created: list[Trunk] = []

    async def changes() -> None:
        trunk = await new_trunk_with_credentials(store)
        created.append(trunk)
        await store.create_number(NUMBER_A, trunk_id=trunk.trunk_id)
        await store.update_trunk(trunk.trunk_id, password="rotated")
        await store.delete_trunk(trunk.trunk_id)

    messages = await _invalidations(redis_url, store.channel, changes)

    trunk_message = "trunk:" + created[0].trunk_id
    assert messages == [
        trunk_message,  # created
        NUMBER_A,  # the number was created
        trunk_message,  # updated
        NUMBER_A,  # its trunk was deleted
        trunk_message,  # deleted
    ]


async def test_redis_account_and_call_keys_share_the_slot_and_expire_or_go(
    redis_url: str, redis_prefix: str
) -> None:
    clock = FakeClock()
    store = RedisStore.from_url(
        redis_url, key_prefix=redis_prefix, call_retention_s=60, clock=clock
    )
    client = redis.Redis.from_url(redis_url)
    try:
        account = await store.create_account("acme")
        key, _ = await store.create_api_key(account.account_id)
        await store.create_api_key(account.account_id)
        await store.revoke_api_key(key.key_id)
        trunk = await new_trunk_with_credentials(store, account_id=account.account_id)
        await store.save_call(call_record(account_id=account.account_id))
        keys = list(client.scan_iter(match=redis_prefix + "*", count=1000))
        assert len(keys) >= 10
        assert {key_slot(key) for key in keys} == {key_slot(keys[0])}

        await store.delete_trunk(trunk.trunk_id)
        await store.delete_account(account.account_id)
        await store.save_call(
            call_record(account_id=account.account_id, ended_at=clock.now)
        )
        clock.advance(61)
        await store.save_call(call_record("CAother", ended_at=clock.now - 61))
        assert list(client.scan_iter(match=redis_prefix + "*", count=1000)) == []
    finally:
        client.close()
        await store.close()


async def test_redis_ended_call_records_expire_by_themselves(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisStore.from_url(
        redis_url, key_prefix=redis_prefix, call_retention_s=600
    )
    client = redis.Redis.from_url(redis_url)
    try:
        now = time.time()
        await store.save_call(call_record("CAactive", started_at=now))
        await store.save_call(call_record("CAended", started_at=now, ended_at=now))
        base = store.base

        assert client.ttl(base + "call:CAactive") == -1  # active calls never expire
        assert 590 <= client.ttl(base + "call:CAended") <= 601
    finally:
        client.close()
        await store.close()
