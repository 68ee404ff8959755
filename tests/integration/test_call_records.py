"""Call records: what the admin API shows about each call, written off the call path."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

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
    save_call = store.save_call

    async def counting(saved: CallRecord) -> None:
        writes.append(saved)
        await save_call(saved)

    store.save_call = counting  # type: ignore[method-assign]
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
