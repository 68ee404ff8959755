"""Micro-benchmark of the runner WebSocket path: CPU per echoed frame, sessions per second.

``python -m bench.runner_ws`` starts the built-in echo runner in a process of its
own, then in this process:

1. **frames**: opens ``--sessions`` runner sessions and sends ``--frames`` 20 ms
   frames on each, in bursts of ``--burst`` per session, waiting for every
   echo before the next burst. It reports the CPU time (``time.process_time``)
   each side spent per frame echoed: the router side sends a ``media`` message
   and receives one back; the echo side receives one and sends one.
2. **setup**: runs ``--setups`` sessions one after another through connect,
   ``start``, ``stop`` and close, and reports sessions per second (wall clock)
   and the CPU each side spent per session.

Both processes run on uvloop when it is installed, as the router and the
benchmark's echo runner do. The figures are only comparable with others taken on
the same machine under the same load; run it before and after a change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time

from router.logs import configure_logging
from router.runner import RunnerSession, StreamStart

__all__ = ["main"]

LOOPBACK = "127.0.0.1"
FRAME = bytes(range(160))  # 20 ms of mu-law


class _Sink:
    """Counts the runner's audio for all sessions; wakes the sender when a burst is back."""

    def __init__(self) -> None:
        self.awaited = 0
        self.back = asyncio.Event()

    def expect(self, frames: int) -> None:
        """Start waiting for ``frames`` more echoed frames."""
        self.awaited += frames
        self.back.clear()

    def play(self, ulaw: bytes) -> None:
        self.awaited -= 1
        if self.awaited <= 0:
            self.back.set()

    def mark(self, name: str) -> None:
        del name

    def clear(self) -> list[str]:
        return []


def _start(n: int) -> StreamStart:
    return StreamStart(
        call_sid=f"bench-{n}",
        stream_sid=f"MZ{n:032x}",
        account_sid="pipe_bench",
        custom_parameters={"to": "+14155550100"},
    )


class EchoProcess:
    """The echo runner in a child process that reports its CPU time on request."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.runner_ws", "--serve", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.cpu()  # waits until it listens

    def cpu(self) -> float:
        """Return the child's CPU seconds so far."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("\n")
        self._process.stdin.flush()
        return float(self._process.stdout.readline())

    def stop(self) -> None:
        """Terminate the child and wait for it."""
        self._process.send_signal(signal.SIGTERM)
        self._process.wait(10)


async def _frames(
    url: str, echo: EchoProcess, sessions: int, frames: int, burst: int
) -> dict[str, float]:
    sink = _Sink()
    runners = [
        RunnerSession(url, _start(n), sink=sink, on_closed=lambda reason: None)
        for n in range(sessions)
    ]
    for runner in runners:
        await runner.open()
    sent = 0
    echo_before, ours_before = echo.cpu(), time.process_time()
    while sent < frames:
        sink.expect(burst * sessions)
        for _ in range(burst):
            for runner in runners:
                runner.send_audio(FRAME)
        await asyncio.wait_for(sink.back.wait(), 30)
        sent += burst
    ours, echo_cpu = time.process_time() - ours_before, echo.cpu() - echo_before
    for runner in runners:
        await runner.close()
    total = sent * sessions
    return {
        "frames": total,
        "router_us_per_frame": round(ours / total * 1e6, 2),
        "echo_us_per_frame": round(echo_cpu / total * 1e6, 2),
    }


async def _setups(url: str, echo: EchoProcess, count: int) -> dict[str, float]:
    echo_before, ours_before = echo.cpu(), time.process_time()
    began = time.perf_counter()
    for n in range(count):
        runner = RunnerSession(
            url, _start(n), sink=_Sink(), on_closed=lambda reason: None
        )
        await runner.open()
        await runner.close()
    wall = time.perf_counter() - began
    ours, echo_cpu = time.process_time() - ours_before, echo.cpu() - echo_before
    return {
        "sessions": count,
        "sessions_per_s": round(count / wall, 1),
        "router_us_per_session": round(ours / count * 1e6, 1),
        "echo_us_per_session": round(echo_cpu / count * 1e6, 1),
    }


async def _measure(args: argparse.Namespace, echo: EchoProcess) -> dict[str, object]:
    url = f"ws://{LOOPBACK}:{echo.port}/"
    await _frames(url, echo, args.sessions, args.burst * 4, args.burst)  # warm-up
    frames = await _frames(url, echo, args.sessions, args.frames, args.burst)
    await _setups(url, echo, 20)  # warm-up
    setups = await _setups(url, echo, args.setups)
    return {"frames": frames, "setup": setups}


async def _serve(port: int) -> None:
    """Child side: serve the echo runner; answer each stdin line with CPU seconds."""
    from router.runner.echo import serve_echo_runner

    runner = await serve_echo_runner(LOOPBACK, port)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    while await reader.readline():
        print(time.process_time(), flush=True)
    await runner.close()


def _run(coroutine: object) -> object:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    return uvloop.run(coroutine)  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    """Run the benchmark (or, with ``--serve PORT``, the echo side of it)."""
    parser = argparse.ArgumentParser(prog="python -m bench.runner_ws")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--frames", type=int, default=20_000, help="per session")
    parser.add_argument("--burst", type=int, default=50, help="frames per burst")
    parser.add_argument("--setups", type=int, default=500)
    args = parser.parse_args(argv)
    configure_logging("warning", "json")
    if args.serve is not None:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        _run(_serve(args.serve))
        return 0
    echo = EchoProcess(args.port)
    try:
        result = _run(_measure(args, echo))
    finally:
        echo.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
