"""Call records: what the admin API shows about each call, written off the call path."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from router.numbers.embedded import EmbeddedStore
from router.numbers.models import CallEndedBy, CallRecord
from router.records import CallRecorder
from tests.integration.conftest import RouterEnv
from tests.integration.sipua import (
    Channel,
    RtpEndpoint,
    SipUA,
    UacCall,
    place_call,
    sdp_offer,
)

STARTED = time.time() - 10


def record(call_id: str, **fields: object) -> CallRecord:
    base: dict[str, object] = {
        "call_id": call_id,
        "account_id": None,
        "number": "+14155550100",
        "number_id": None,
        "pipe_id": None,
        "runner_url": None,
        "caller": "+14155550111",
        "sip_call_id": f"{call_id}@127.0.0.1",
        "trunk_id": None,
        "started_at": STARTED,
    }
    base.update(fields)
    return CallRecord(**base)  # type: ignore[arg-type]


async def test_states_still_waiting_are_written_once_with_the_newest(
    tmp_path: Path,
) -> None:
    store = await EmbeddedStore.open(tmp_path / "r.db")
    recorder = CallRecorder(store, "test-instance")
    writes: list[CallRecord] = []
    save_calls = store.save_calls

    async def counting(saved: Sequence[CallRecord]) -> list[Any]:
        writes.extend(saved)
        return await save_calls(saved)

    store.save_calls = counting  # type: ignore[method-assign]
    await recorder.start()
    recorder.save(record("CA1"))
    recorder.save(record("CA1", answered_at=time.time(), final_status=200))
    recorder.save(
        record("CA1", ended_at=time.time(), final_status=200, end_reason="caller-bye")
    )
    await recorder.close()

    assert [w.end_reason for w in writes] == ["caller-bye"]
    assert recorder.coalesced == 2
    stored = await store.get_call("CA1")
    assert stored.final_status == 200 and stored.ended_at is not None
    await store.close()


async def test_answered_call_leaves_a_record_of_who_hung_up(
    router_env: RouterEnv,
) -> None:
    ua, rtp = await SipUA.start(), await RtpEndpoint.start()
    call = UacCall(ua, router_env.address, sdp=sdp_offer(rtp.port))
    await place_call(call, rtp)
    Channel(ua, router_env.address).send(call.in_dialog("BYE"))
    await ua.response(200, "BYE")
    await router_env.wait_idle()

    async def ended() -> list[CallRecord]:
        page = await router_env.store.list_calls(active=False)
        return page.items

    for _ in range(100):
        records = await ended()
        if records:
            break
        await asyncio.sleep(0.02)
    (saved,) = records
    assert saved.sip_call_id == call.call_id
    assert saved.final_status == 200
    assert saved.answered_at is not None and saved.ended_at is not None
    assert saved.ended_by is CallEndedBy.CALLER
    assert saved.number == router_env.number


async def test_records_pending_together_are_written_in_one_transaction(
    tmp_path: Path,
) -> None:
    store = await EmbeddedStore.open(tmp_path / "r.db")
    recorder = CallRecorder(store, "test-instance", linger_s=0.2)
    batches: list[list[str]] = []
    save_calls = store.save_calls

    async def counting(saved: Sequence[CallRecord]) -> list[Any]:
        batches.append([r.call_id for r in saved])
        return await save_calls(saved)

    store.save_calls = counting  # type: ignore[method-assign]
    await recorder.start()
    for index in range(5):
        recorder.save(record(f"CA{index}"))
        await asyncio.sleep(0)
    await asyncio.sleep(0.3)

    assert batches == [[f"CA{index}" for index in range(5)]]
    page = await store.list_calls(active=True)
    assert sorted(r.call_id for r in page.items) == [f"CA{i}" for i in range(5)]
    await recorder.close()
    await store.close()


async def test_close_writes_what_is_pending_without_waiting_for_the_batch(
    tmp_path: Path,
) -> None:
    store = await EmbeddedStore.open(tmp_path / "r.db")
    recorder = CallRecorder(store, "test-instance", linger_s=30.0)
    await recorder.start()
    recorder.save(record("CA1"))
    await asyncio.sleep(0)

    started = time.monotonic()
    await recorder.close()

    assert time.monotonic() - started < 1.0
    assert (await store.get_call("CA1")).call_id == "CA1"
    await store.close()


async def test_an_invalid_record_in_a_batch_is_counted_and_the_rest_written(
    tmp_path: Path,
) -> None:
    store = await EmbeddedStore.open(tmp_path / "r.db")
    recorder = CallRecorder(store, "test-instance", linger_s=0.0)
    await recorder.start()
    recorder.save(record("CA1"))
    recorder.save(record("not valid!"))
    recorder.save(record("CA2"))
    await recorder.close()

    assert recorder.failed == 1
    assert (await store.get_call("CA1")).call_id == "CA1"
    assert (await store.get_call("CA2")).call_id == "CA2"
    await store.close()


async def test_batches_are_written_off_the_event_loop_by_a_thread_that_close_ends(
    tmp_path: Path,
) -> None:
    store = await EmbeddedStore.open(tmp_path / "r.db")

    await store.save_calls([record("CA1"), record("CA2")])

    writers = [t for t in threading.enumerate() if t.name.startswith("call-records")]
    assert len(writers) == 1 and writers[0] is not threading.current_thread()
    assert (await store.get_call("CA2")).call_id == "CA2"
    await store.close()
    writers[0].join(timeout=2)
    assert not writers[0].is_alive()
