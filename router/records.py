"""Call records: what the admin API shows about active and ended calls.

The call path never waits for the store to write a record: writes go through a
bounded queue drained by one task, so a slow or unreachable store delays
records, never calls. When the queue is full the oldest pending write is
dropped and counted (a later write of the same call carries its full state).

The task waits :data:`BATCH_LINGER_S` after the first record before it writes,
then writes everything pending in batches of up to :data:`MAX_BATCH` records,
one transaction each: under load a commit serves tens of records, and a short
call's routing, answer and end usually reach the store as one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import socket
from collections import OrderedDict
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import structlog

from router.numbers.models import CallEndedBy, CallRecord
from router.numbers.store import Store, StoreError
from router.routing import caller_number

if TYPE_CHECKING:
    from router.calls import Call

__all__ = [
    "CallRecorder",
    "call_record",
    "default_instance_id",
    "ended_by_for",
    "strip_url_secrets",
]

log = structlog.get_logger("router.records")

# Writes waiting for the store; a few seconds of set-up/answer/end writes at
# hundreds of calls per second.
MAX_PENDING_WRITES = 10_000
# How long the first pending record waits for company before the batch is
# written: records show in the API this much later, and the store commits
# tens of times a second at most, however many calls there are.
BATCH_LINGER_S = 0.05
# Records per store write; a batch of 500 is a few milliseconds of SQLite.
MAX_BATCH = 500


def default_instance_id() -> str:
    """A name for this router process, unique across restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


# A call's record is built at routing, answer and end, from a handful of pipe
# URLs: each is stripped once.
@functools.lru_cache(maxsize=256)
def strip_url_secrets(url: str) -> str:
    """Drop user info and query string from a runner URL before storing it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class CallRecorder:
    """Queues call records and writes them to the store, newest state of each call.

    A call saves its record at routing, at answer and at the end. When an
    earlier state of the same call is still waiting to be written, the newer
    one takes its place, so a short call under load costs one write, not three.
    """

    def __init__(
        self, store: Store, instance: str, *, linger_s: float = BATCH_LINGER_S
    ) -> None:
        self.store = store
        self.instance = instance
        self.linger_s = linger_s
        self.dropped = 0
        self.failed = 0
        self.coalesced = 0
        self._pending: OrderedDict[str, CallRecord] = OrderedDict()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flush_now = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """End the records this instance left active before a restart; start writing."""
        with contextlib.suppress(StoreError):
            ended = await self.store.end_stale_calls(self.instance, "router restarted")
            if ended:
                log.warning("stale_calls_ended", count=ended)
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def close(self, timeout: float = 2.0) -> None:
        """Write what is pending (for at most ``timeout`` seconds), then stop."""
        if self._task is None:
            return
        self.linger_s = 0.0  # what is pending now is the last batch: no waiting
        self._flush_now.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def save(self, record: CallRecord) -> None:
        """Queue a write of ``record`` without waiting."""
        if record.call_id in self._pending:
            self.coalesced += 1  # keeps its place in line, with the newer state
        elif len(self._pending) >= MAX_PENDING_WRITES:
            self._pending.popitem(last=False)
            self.dropped += 1
        self._pending[record.call_id] = record
        self._idle.clear()
        self._wake.set()

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            await self._linger()
            while self._pending:
                await self._write(self._take_batch())
            self._wake.clear()
            self._idle.set()

    async def _linger(self) -> None:
        """Wait for more records to join the batch, unless it is full or closing."""
        if self.linger_s <= 0 or len(self._pending) >= MAX_BATCH:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._flush_now.wait(), self.linger_s)

    def _take_batch(self) -> list[CallRecord]:
        count = min(len(self._pending), MAX_BATCH)
        return [self._pending.popitem(last=False)[1] for _ in range(count)]

    async def _write(self, batch: list[CallRecord]) -> None:
        try:
            invalid = await self.store.save_calls(batch)
        except StoreError as error:
            self.failed += len(batch)
            log.warning("call_records_failed", count=len(batch), error=str(error))
            return
        for record, problem in invalid:
            self.failed += 1
            log.warning(
                "call_record_failed", call_id=record.call_id, error=str(problem)
            )


def ended_by_for(reason: str) -> CallEndedBy:
    """Who ended a call, from the reason the call gives."""
    if reason in ("caller-bye", "caller-cancel"):
        return CallEndedBy.CALLER
    if reason == "runner-hangup":
        return CallEndedBy.RUNNER
    return CallEndedBy.ROUTER


def call_record(call: Call, instance: str) -> CallRecord:
    """The record of ``call`` as it stands now (the call must have been routed)."""
    assert call.route is not None and call.route.pipe is not None
    number, pipe = call.route.number, call.route.pipe
    reason = call.ended_reason if call.ended_at is not None else None
    request = call.invite.request
    return CallRecord(
        call_id=call.call_id,
        account_id=number.account_id,
        number=number.number,
        number_id=number.number_id,
        pipe_id=pipe.pipe_id,
        runner_url=strip_url_secrets(pipe.runner_url),
        caller=caller_number(request),
        sip_call_id=request.call_id,
        trunk_id=call.trunk.trunk_id if call.trunk else None,
        started_at=call.started_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        final_status=call.final_status,
        ended_by=ended_by_for(reason) if reason else None,
        end_reason=reason,
        instance=instance,
    )
