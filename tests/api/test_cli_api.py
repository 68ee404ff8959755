"""The admin commands as a user runs them: ``sip-router …`` in a subprocess.

Over the API (``ROUTER_API_URL`` / ``ROUTER_API_KEY``) against a live server, and
straight on a local embedded store. The local store of these runs is an empty file of
their own, so a command that went local instead of over the API would show.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from router.numbers.embedded import EmbeddedStore
from router.numbers.store import Store

from .conftest import OPERATOR_TOKEN, Api, Tenant

RUNNER = "wss://agents.example.com/stream"

# A subprocess imports the router and its dependencies first; on a loaded machine
# that takes a few seconds.
COMMAND_TIMEOUT_S = 30.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """The embedded store only: each command is a process start, so one backend."""
    handle = await EmbeddedStore.open(tmp_path / "store" / "router.db")
    yield handle
    await handle.close()


@dataclass
class Ran:
    """What one command did."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


async def sip_router(*args: str, env: dict[str, str], stdin: bytes = b"") -> Ran:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "router.cli",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), COMMAND_TIMEOUT_S)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env["ROUTER_DB_PATH"] = str(tmp_path / "local" / "router.db")
    env.update(extra)
    return env


@pytest.fixture
def as_acme(api: Api, acme: Tenant, tmp_path: Path) -> dict[str, str]:
    return environment(
        tmp_path, ROUTER_API_URL=api.base_url, ROUTER_API_KEY=acme.api_key
    )


@pytest.fixture
def as_operator(api: Api, tmp_path: Path) -> dict[str, str]:
    return environment(
        tmp_path, ROUTER_API_URL=api.base_url, ROUTER_API_KEY=OPERATOR_TOKEN
    )


async def test_numbers_list_filters_over_the_api_as_a_table_or_json(
    as_acme: dict[str, str], acme: Tenant
) -> None:
    trunk = await acme.client.trunks.create(name="pbx")
    await acme.client.numbers.create(number="+14155550100", trunk_id=trunk.trunk_id)
    await acme.client.numbers.create(number="+14155550101")
    await acme.client.numbers.create(number="+442079460123", trunk_id=trunk.trunk_id)
    filters = ["--status", "active", "--country", "US", "--trunk-type", "byo"]

    table = await sip_router("numbers", "list", *filters, env=as_acme)
    as_json = await sip_router("numbers", "list", *filters, "--json", env=as_acme)

    assert table.code == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:4] == ["number_id", "number", "status", "trunk_type"]
    assert [row.split()[1] for row in rows] == ["+14155550100"]
    assert [n["number"] for n in as_json.json()] == ["+14155550100"]


async def test_every_number_and_pipe_command_works_over_the_api(
    as_acme: dict[str, str], tmp_path: Path
) -> None:
    async def run(*args: str) -> Any:
        ran = await sip_router(*args, "--json", env=as_acme)
        assert ran.code == 0, (args, ran.stderr)
        return ran.json()

    pipe = await run("pipes", "create", "--name", "support", "--runner-url", RUNNER)
    assert [p["pipe_id"] for p in await run("pipes", "list")] == [pipe["pipe_id"]]
    assert (await run("pipes", "get", pipe["pipe_id"]))["name"] == "support"
    renamed = await run("pipes", "update", pipe["pipe_id"], "--name", "help")
    assert renamed["name"] == "help"

    number = await run("numbers", "create", "+14155550100", "--country", "US")
    attached = await run("numbers", "attach", number["number_id"], pipe["pipe_id"])
    assert attached["pipe_id"] == pipe["pipe_id"]
    assert (await run("numbers", "get", "+14155550100"))["pipe_id"] == pipe["pipe_id"]
    assert (await run("numbers", "detach", "+14155550100"))["pipe_id"] is None
    updated = await run("numbers", "update", "+14155550100", "--status", "inactive")
    assert updated["status"] == "inactive"

    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text(f"number,pipe_id\n+14155550101,{pipe['pipe_id']}\n")
    imported = await run("numbers", "import", str(csv_file))
    assert [n["number"] for n in imported["created"]] == ["+14155550101"]
    json_file = tmp_path / "numbers.json"
    json_file.write_text(json.dumps([{"number": "+14155550102"}]))
    assert (await run("numbers", "import", str(json_file)))["errors"] == []

    assert await run("numbers", "delete", number["number_id"]) == {
        "number": number["number_id"],
        "deleted": True,
    }
    deleted = await run("pipes", "delete", pipe["pipe_id"])
    assert (deleted["deleted"], deleted["detached_numbers"]) == (True, 1)


async def test_every_trunk_account_and_call_command_works_over_the_api(
    as_operator: dict[str, str], api: Api
) -> None:
    async def run(*args: str, stdin: bytes = b"") -> Any:
        ran = await sip_router(*args, "--json", env=as_operator, stdin=stdin)
        assert ran.code == 0, (args, ran.stderr)
        return ran.json()

    account = await run("accounts", "create", "acme")
    account_id = account["account_id"]
    assert account["api_key"].startswith("sk_")
    assert [a["name"] for a in await run("accounts", "list")] == ["acme"]
    assert (await run("accounts", "get", account_id))["name"] == "acme"
    key = await run("accounts", "keys", "create", account_id)
    assert len(await run("accounts", "keys", "list", account_id)) == 2
    revoked = await run("accounts", "keys", "revoke", account_id, key["key_id"])
    assert revoked == {"key_id": key["key_id"], "revoked": True}

    trunk = await run(
        *("trunks", "create", "--name", "carrier", "--allow", "198.51.100.0/24"),
        *("--username", "acme", "--password-stdin", "--account-id", account_id),
        stdin=b"s3cret-pw\n",
    )
    assert (trunk["has_credentials"], trunk["account_id"]) == (True, account_id)
    listed = await run("trunks", "list", "--account-id", account_id)
    assert [t["trunk_id"] for t in listed] == [trunk["trunk_id"]]
    assert "s3cret" not in json.dumps(await run("trunks", "get", trunk["trunk_id"]))
    await run("trunks", "delete", trunk["trunk_id"])

    assert await run("calls", "list", "--active") == []
    missing = await sip_router("calls", "get", "nope", env=as_operator)
    assert missing.code == 1

    await run("accounts", "delete", account_id)
    assert await run("accounts", "list") == []


async def test_an_api_refusal_exits_1_with_one_line_on_stderr(
    as_acme: dict[str, str],
) -> None:
    ran = await sip_router("numbers", "get", "+14155550199", env=as_acme)
    forbidden = await sip_router("accounts", "list", env=as_acme)

    assert (ran.code, ran.stdout) == (1, "")
    assert ran.stderr == "sip-router: number '+14155550199' not found\n"
    assert forbidden.code == 1 and forbidden.stderr.count("\n") == 1


async def test_a_wrong_key_and_an_unreachable_router_exit_1(
    api: Api, tmp_path: Path
) -> None:
    wrong = environment(tmp_path, ROUTER_API_URL=api.base_url, ROUTER_API_KEY="sk_no")
    dead = environment(
        tmp_path, ROUTER_API_URL="http://127.0.0.1:1", ROUTER_API_KEY="k"
    )

    unauthorized = await sip_router("pipes", "list", env=wrong)
    unreachable = await sip_router("pipes", "list", env=dead)

    assert (unauthorized.code, unreachable.code) == (1, 1)
    assert "invalid API key" in unauthorized.stderr


async def test_usage_errors_exit_2(as_acme: dict[str, str], tmp_path: Path) -> None:
    no_key = environment(tmp_path, ROUTER_API_URL="http://127.0.0.1:1")

    unknown = await sip_router("numbers", "bogus", env=as_acme)
    bad_choice = await sip_router("numbers", "list", "--status", "gone", env=as_acme)
    missing_key = await sip_router("numbers", "list", env=no_key)

    assert (unknown.code, bad_choice.code, missing_key.code) == (2, 2, 2)


async def test_an_import_with_refused_rows_exits_1_and_lists_them(
    as_acme: dict[str, str], tmp_path: Path
) -> None:
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text("number\n+14155550100\nnot-a-number\n")

    ran = await sip_router("numbers", "import", str(csv_file), env=as_acme)

    assert ran.code == 1
    assert "+14155550100" in ran.stdout
    assert ran.stderr.splitlines()[-1].split()[:2] == ["2", "number"]


async def test_without_an_api_the_commands_work_on_the_local_store(
    tmp_path: Path,
) -> None:
    local = environment(tmp_path)

    pipe = await sip_router(
        "pipes", "create", "--name", "p", "--runner-url", RUNNER, "--json", env=local
    )
    number = await sip_router("numbers", "create", "+14155550100", env=local)
    attach = await sip_router(
        "numbers", "attach", "+14155550100", pipe.json()["pipe_id"], "--json", env=local
    )
    account = await sip_router("accounts", "create", "acme", "--json", env=local)

    assert (pipe.code, number.code, account.code) == (0, 0, 0)
    assert attach.json()["pipe_id"] == pipe.json()["pipe_id"]
    assert account.json()["api_key"].startswith("sk_")
    assert (tmp_path / "local" / "router.db").exists()
