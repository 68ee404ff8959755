"""The embedded store's lookup cache: answers kept until the file changes, whoever changes it."""

from __future__ import annotations

import time
from pathlib import Path

from router.numbers.cache import EmbeddedCachedLookup
from router.numbers.embedded import EmbeddedStore
from router.numbers.models import CallRecord, TrunkType

NUMBER = "+14155550100"


async def _seeded(path: Path) -> tuple[EmbeddedStore, str]:
    store = await EmbeddedStore.open(path)
    pipe = await store.create_pipe(name="a", runner_url="ws://127.0.0.1:9/a")
    number = await store.create_number(NUMBER, country="US")
    await store.attach(number.number_id, pipe.pipe_id)
    return store, number.number_id


async def test_repeated_lookups_are_answered_from_the_cache(tmp_path: Path) -> None:
    store, _ = await _seeded(tmp_path / "r.db")
    lookup = EmbeddedCachedLookup(store)

    first = await lookup.route(NUMBER)
    again = await lookup.route(NUMBER)

    assert first is not None and again == first
    assert (lookup.hits, lookup.misses) == (1, 1)
    assert await lookup.route("+14155550199") is None
    await store.close()


async def test_a_change_through_the_same_store_is_seen_by_the_next_lookup(
    tmp_path: Path,
) -> None:
    store, number_id = await _seeded(tmp_path / "r.db")
    lookup = EmbeddedCachedLookup(store)
    assert await lookup.trunk_for_address("198.51.100.7") is None
    before = await lookup.route(NUMBER)
    assert before is not None and before.pipe is not None

    other = await store.create_pipe(name="b", runner_url="ws://127.0.0.1:9/b")
    await store.attach(number_id, other.pipe_id)
    trunk = await store.create_trunk(
        name="carrier", kind=TrunkType.UNPOD, allowed_addresses=["198.51.100.0/24"]
    )

    after = await lookup.route(NUMBER)
    assert after is not None and after.pipe is not None
    assert after.pipe.pipe_id == other.pipe_id
    found = await lookup.trunk_for_address("198.51.100.7")
    assert found is not None and found.trunk_id == trunk.trunk_id
    await store.close()


async def test_a_change_by_another_connection_is_seen_by_the_next_lookup(
    tmp_path: Path,
) -> None:
    store, number_id = await _seeded(tmp_path / "r.db")
    lookup = EmbeddedCachedLookup(store)
    assert await lookup.route(NUMBER) is not None

    # The command line, or another router, on the same file.
    command_line = await EmbeddedStore.open(tmp_path / "r.db")
    await command_line.detach(number_id)
    await command_line.close()

    route = await lookup.route(NUMBER)
    assert route is not None and route.pipe is None
    await store.close()


async def test_a_call_record_write_only_costs_a_refill(tmp_path: Path) -> None:
    store, _ = await _seeded(tmp_path / "r.db")
    lookup = EmbeddedCachedLookup(store)
    await lookup.route(NUMBER)
    record = CallRecord(
        call_id="CA1",
        account_id=None,
        number=NUMBER,
        number_id=None,
        pipe_id=None,
        runner_url=None,
        caller="+14155550111",
        sip_call_id="1@127.0.0.1",
        trunk_id=None,
        started_at=time.time(),
    )

    await store.save_calls([record])

    assert await lookup.route(NUMBER) is not None
    assert (lookup.hits, lookup.misses) == (0, 2)
    await store.close()
