"""The runnable examples of docs/api.md, run as a reader would against a live API."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.numbers.embedded import EmbeddedStore
from router.numbers.store import Store

from .conftest import Api, Tenant

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
RUNNER = "wss://agents.example.com/stream"

# The script starts a Python process and imports the client: a few seconds at most.
SCRIPT_TIMEOUT_S = 30.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """The embedded store only: the examples exercise the API, not the backends."""
    handle = await EmbeddedStore.open(tmp_path / "store" / "router.db")
    yield handle
    await handle.close()


async def run_example(
    name: str, *args: str, api: Api, key: str
) -> tuple[int, str, str]:
    repo = str(EXAMPLES.parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env.update(
        ROUTER_API_URL=api.base_url,
        ROUTER_API_KEY=key,
        PYTHONPATH=os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")])),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / name),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), SCRIPT_TIMEOUT_S)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_attach_first_free_number_takes_the_first_active_unattached_one(
    api: Api, acme: Tenant
) -> None:
    numbers = acme.client.numbers
    busy = await acme.client.pipes.create(name="busy", runner_url=RUNNER)
    target = await acme.client.pipes.create(name="target", runner_url=RUNNER)
    await numbers.create(number="+14155550100")
    await numbers.attach("+14155550100", busy.pipe_id)
    await numbers.create(number="+14155550101", status="inactive")
    await numbers.create(number="+14155550102")
    await numbers.create(number="+14155550103")

    code, out, err = await run_example(
        "attach_first_free_number.py", target.pipe_id, api=api, key=acme.api_key
    )

    assert code == 0, err
    assert out == f"+14155550102 -> {target.pipe_id}\n"
    assert [n.number for n in await numbers.list(pipe_id=target.pipe_id)] == [
        "+14155550102"
    ]


async def test_attach_first_free_number_exits_1_when_none_is_free(
    api: Api, acme: Tenant
) -> None:
    pipe = await acme.client.pipes.create(name="target", runner_url=RUNNER)

    code, _out, err = await run_example(
        "attach_first_free_number.py", pipe.pipe_id, api=api, key=acme.api_key
    )

    assert (code, err) == (1, "no free active number\n")


async def test_rotate_numbers_moves_each_pipes_numbers_to_the_next_pipe(
    api: Api, acme: Tenant
) -> None:
    pipes = [
        await acme.client.pipes.create(name=name, runner_url=RUNNER)
        for name in ("a", "b", "c")
    ]
    layout = {
        "+14155550100": 0,
        "+14155550101": 0,
        "+14155550102": 1,
        "+14155550103": 2,
    }
    for number, pipe_index in layout.items():
        await acme.client.numbers.create(number=number)
        await acme.client.numbers.attach(number, pipes[pipe_index].pipe_id)
    ids = [pipe.pipe_id for pipe in pipes]

    dry = await run_example(
        "rotate_numbers.py", "--dry-run", *ids, api=api, key=acme.api_key
    )
    unchanged = {n.number: n.pipe_id for n in await acme.client.numbers.list()}
    code, out, err = await run_example(
        "rotate_numbers.py", *ids, api=api, key=acme.api_key
    )
    rotated = {n.number: n.pipe_id for n in await acme.client.numbers.list()}

    assert dry[0] == 0 and dry[1] == out
    assert unchanged == {number: ids[index] for number, index in layout.items()}
    assert code == 0, err
    assert rotated == {number: ids[(index + 1) % 3] for number, index in layout.items()}


async def test_rotate_numbers_moves_nothing_when_a_pipe_is_missing(
    api: Api, acme: Tenant
) -> None:
    pipe = await acme.client.pipes.create(name="a", runner_url=RUNNER)
    await acme.client.numbers.create(number="+14155550100")
    await acme.client.numbers.attach("+14155550100", pipe.pipe_id)

    code, _out, err = await run_example(
        "rotate_numbers.py", pipe.pipe_id, "pipe_missing", api=api, key=acme.api_key
    )

    assert code == 1 and "pipe 'pipe_missing' not found" in err
    assert (await acme.client.numbers.get("+14155550100")).pipe_id == pipe.pipe_id
