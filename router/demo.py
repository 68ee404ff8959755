"""``sip-router demo``: a router, an echo runner and a demo store in one process.

The demo store is a file of its own (never the production store), seeded
idempotently with the demo number attached to a pipe whose runner is the
built-in echo runner, so a newcomer can place a call at once.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
import structlog

from router.app import Router, run_until_signalled
from router.numbers.embedded import EmbeddedStore
from router.numbers.models import Pipe
from router.numbers.store import NotFound, Store
from router.runner.echo import serve_echo_runner
from router.settings import Settings, StartupError

__all__ = ["DEMO_NUMBER", "DEMO_PIPE_NAME", "run_demo", "seed_demo_store"]

log = structlog.get_logger("router.demo")

DEMO_NUMBER = "+14155550100"
DEMO_PIPE_NAME = "demo"
SCENARIOS = Path(__file__).resolve().parent.parent / "sipp-scenarios"


async def seed_demo_store(store: Store, runner_url: str) -> Pipe:
    """Make sure the demo pipe exists, points at ``runner_url`` and has the number."""
    pipes = [p for p in await store.list_pipes() if p.name == DEMO_PIPE_NAME]
    if pipes:
        pipe = await store.update_pipe(pipes[0].pipe_id, runner_url=runner_url)
    else:
        pipe = await store.create_pipe(name=DEMO_PIPE_NAME, runner_url=runner_url)
    try:
        number = await store.get_number(DEMO_NUMBER)
    except NotFound:
        number = await store.create_number(DEMO_NUMBER, country="US")
    if number.pipe_id != pipe.pipe_id:
        await store.attach(number.number_id, pipe.pipe_id)
    return pipe


async def run_demo(
    settings: Settings, *, runner_port: int, db_path: str | None
) -> None:
    """Run the echo runner and a router on the demo store until signalled."""
    path = (
        Path(db_path)
        if db_path
        else Path(platformdirs.user_data_dir("sip-router")) / "demo.db"
    )
    store = await EmbeddedStore.open(path)
    try:
        runner = await serve_echo_runner(settings.bind, runner_port)
    except OSError as error:
        await store.close()
        raise StartupError(
            f"cannot listen for the echo runner on {settings.bind}:{runner_port} "
            f"(--runner-port): {error.strerror or error}"
        ) from None
    host = f"[{settings.bind}]" if ":" in settings.bind else settings.bind
    runner_url = f"ws://{host}:{runner.port}/"
    await seed_demo_store(store, runner_url)
    router = Router(settings, store=store)
    try:
        await run_until_signalled(router, lambda: _print_how_to_call(settings))
    finally:
        await runner.close()
        await store.close()


def _print_how_to_call(settings: Settings) -> str:
    scenario = SCENARIOS / "uac_call.xml"
    target = settings.advertised_address
    text = (
        "\n  sip-router demo is running.\n"
        f"  Number {DEMO_NUMBER} is attached to pipe '{DEMO_PIPE_NAME}' (an echo runner).\n"
        "  Call it with SIPp from another terminal (as root: SIPp plays the recorded\n"
        "  speech through a raw socket); the echo runner plays your audio back:\n\n"
        f"    sipp -sf {scenario} -s {DEMO_NUMBER} {target}:{settings.sip_port} -m 1 \\\n"
        f"         -i {target} -p 5070 -bind_local -mi {target} -mp 6000 -ci {target}\n\n"
        "  or point a softphone at "
        f"sip:{DEMO_NUMBER}@{target}:{settings.sip_port}. Ctrl-C stops the demo.\n"
    )
    print(text, flush=True)
    return text
