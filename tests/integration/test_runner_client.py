"""RunnerSession against real WebSocket servers on 127.0.0.1: the echo runner and
small purpose-built runners."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import json
import signal
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from router.runner import client as client_module
from router.runner.client import RunnerSession, RunnerUnavailable, StreamStart
from router.runner.echo import EchoRunner, serve_echo_runner
from router.runner.protocol import runner_clear, runner_mark, runner_media

LOOPBACK = "127.0.0.1"
FRAME = bytes(range(160))  # 20 ms of mu-law
STREAM = StreamStart(
    call_sid="call-7",
    stream_sid="MZ0123456789abcdef0123456789abcdef",
    account_sid="pipe_A",
    custom_parameters={"to": "+14155550100", "from": "+14155550111"},
)


class FakeSink:
    """A media session stand-in that records what the runner asked for."""

    def __init__(self) -> None:
        self.played: list[bytes] = []
        self.marks: list[str] = []
        self.pending_marks: list[str] = []
        self.clears = 0

    def play(self, ulaw: bytes) -> None:
        self.played.append(ulaw)

    def mark(self, name: str) -> None:
        self.marks.append(name)
        self.pending_marks.append(name)

    def clear(self) -> list[str]:
        self.clears += 1
        dropped, self.pending_marks = self.pending_marks, []
        return dropped


class ExplodingSink(FakeSink):
    def play(self, ulaw: bytes) -> None:
        raise RuntimeError("media session bug")


Script = Callable[[ServerConnection], Awaitable[None]]


class ScriptedRunner:
    """A runner that records every message and runs a script once ``start`` arrives."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script
        self.received: list[dict[str, Any]] = []
        self.connections = 0
        self.url = ""

    def events(self) -> list[str]:
        return [message["event"] for message in self.received]

    async def handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            async for text in ws:
                message = json.loads(text)
                self.received.append(message)
                if message["event"] == "start" and self.script is not None:
                    await self.script(ws)
        except ConnectionClosed:
            pass


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll ``predicate`` until it holds; integration tests cross real sockets."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def free_port() -> int:
    """A loopback port with no listener (bound and released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


def other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


@pytest.fixture
async def exit_stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
async def echo() -> AsyncIterator[EchoRunner]:
    runner = await serve_echo_runner(LOOPBACK, 0)
    yield runner
    await runner.close()


@pytest.fixture
def scripted(exit_stack: AsyncExitStack) -> Callable[..., Awaitable[ScriptedRunner]]:
    async def start(script: Script | None = None) -> ScriptedRunner:
        runner = ScriptedRunner(script)
        server = await exit_stack.enter_async_context(
            serve(runner.handle, LOOPBACK, 0, close_timeout=0.2)
        )
        runner.url = f"ws://{LOOPBACK}:{server.sockets[0].getsockname()[1]}/stream"
        return runner

    return start


class Harness:
    """Builds sessions with a fake sink and records on_closed calls."""

    def __init__(self) -> None:
        self.sink = FakeSink()
        self.closed: list[str] = []
        self.sessions: list[RunnerSession] = []

    def session(self, url: str, **options: Any) -> RunnerSession:
        options.setdefault("sink", self.sink)
        session = RunnerSession(url, STREAM, on_closed=self.closed.append, **options)
        self.sessions.append(session)
        return session


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    for session in harness.sessions:
        await session.close()


def echo_url(echo: EchoRunner, query: str = "") -> str:
    return f"ws://{LOOPBACK}:{echo.port}/{query}"


# Opening.


async def test_open_sends_connected_then_start_with_the_call_details(
    scripted: Callable[..., Awaitable[ScriptedRunner]], harness: Harness
) -> None:
    runner = await scripted()

    await harness.session(runner.url).open()
    await wait_until(lambda: len(runner.received) == 2)

    connected, start = runner.received
    assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert start["event"] == "start"
    assert start["sequenceNumber"] == "1"
    assert start["streamSid"] == STREAM.stream_sid
    assert start["start"]["callSid"] == "call-7"
    assert start["start"]["accountSid"] == "pipe_A"
    assert start["start"]["customParameters"] == STREAM.custom_parameters
    assert start["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }


async def test_connect_refused_raises_runner_unavailable_quickly(
    harness: Harness,
) -> None:
    session = harness.session(f"ws://{LOOPBACK}:{free_port()}/", connect_timeout=5.0)
    began = time.monotonic()

    with pytest.raises(RunnerUnavailable) as caught:
        await session.open()

    assert caught.value.reason == "connect refused"
    assert time.monotonic() - began < 1.0


async def test_runner_slower_than_connect_timeout_raises_runner_unavailable_in_time(
    echo: EchoRunner, harness: Harness
) -> None:
    session = harness.session(echo_url(echo, "?ready_delay=1.0"), connect_timeout=0.3)
    began = time.monotonic()

    with pytest.raises(RunnerUnavailable) as caught:
        await session.open()

    assert "timed out" in caught.value.reason
    assert time.monotonic() - began < 1.0
    await wait_until(lambda: echo.sessions == 0)
    assert echo.starts == []


async def test_runner_ready_within_connect_timeout_is_accepted(
    echo: EchoRunner, harness: Harness
) -> None:
    session = harness.session(echo_url(echo, "?ready_delay=0.2"), connect_timeout=2.0)
    await session.open()
    assert session.is_open


async def test_rejected_handshake_raises_runner_unavailable_naming_the_status(
    echo: EchoRunner, harness: Harness
) -> None:
    with pytest.raises(RunnerUnavailable) as caught:
        await harness.session(echo_url(echo, "?reject=1")).open()
    assert caught.value.reason == "handshake rejected (HTTP 503)"


async def test_echo_runner_answers_an_unusable_test_hook_with_400(
    echo: EchoRunner, harness: Harness
) -> None:
    with pytest.raises(RunnerUnavailable) as caught:
        await harness.session(echo_url(echo, "?ready_delay=soon")).open()
    assert caught.value.reason == "handshake rejected (HTTP 400)"


async def test_runner_closing_before_start_raises_runner_unavailable(
    exit_stack: AsyncExitStack, harness: Harness
) -> None:
    async def close_at_once(ws: ServerConnection) -> None:
        await ws.close(1013, "try again later")

    server = await exit_stack.enter_async_context(serve(close_at_once, LOOPBACK, 0))
    port = server.sockets[0].getsockname()[1]
    session = harness.session(f"ws://{LOOPBACK}:{port}/")

    # Depending on timing, the close is seen while sending start or right after.
    try:
        await session.open()
    except RunnerUnavailable as exc:
        assert exc.reason == "closed early"
    else:
        await wait_until(lambda: harness.closed != [])
        assert harness.closed == ["runner closed (1013 try again later)"]


async def test_runner_is_reached_directly_even_when_the_environment_names_a_proxy(
    echo: EchoRunner, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Call audio must not be routed through a proxy picked up from the environment;
    # the proxy named here has no listener, so using it would fail the open.
    dead_proxy = f"http://{LOOPBACK}:{free_port()}"
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)

    session = harness.session(echo_url(echo))
    await session.open()

    assert session.is_open


async def test_an_invalid_url_raises_runner_unavailable(harness: Harness) -> None:
    with pytest.raises(RunnerUnavailable) as caught:
        await harness.session("http://127.0.0.1:1/").open()
    assert caught.value.reason == "invalid runner URL"


async def test_open_twice_is_a_programming_error(
    echo: EchoRunner, harness: Harness
) -> None:
    session = harness.session(echo_url(echo))
    await session.open()
    with pytest.raises(RuntimeError):
        await session.open()


async def test_close_while_opening_abandons_the_attempt_without_on_closed(
    echo: EchoRunner, harness: Harness
) -> None:
    session = harness.session(echo_url(echo, "?ready_delay=0.8"))
    opening = asyncio.create_task(session.open())
    await asyncio.sleep(0.1)
    began = time.monotonic()

    await session.close()

    with pytest.raises(RunnerUnavailable) as caught:
        await opening
    assert caught.value.reason == "closed while opening"
    assert time.monotonic() - began < 1.0
    assert harness.closed == []
    assert echo.starts == []


async def test_cancelling_open_closes_the_connection_and_leaves_no_task(
    echo: EchoRunner, harness: Harness
) -> None:
    before = other_tasks()
    session = harness.session(echo_url(echo, "?ready_delay=0.5"))
    opening = asyncio.create_task(session.open())
    await asyncio.sleep(0.1)

    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening

    # The echo runner's delayed handshake ends once its delay is over.
    await wait_until(lambda: other_tasks() - before == set())
    assert echo.sessions == 0
    assert harness.closed == []


# Media, marks, clear, DTMF.


async def test_caller_audio_is_echoed_back_to_the_sink(
    echo: EchoRunner, harness: Harness
) -> None:
    session = harness.session(echo_url(echo))
    await session.open()
    frames = [bytes([n]) * 160 for n in range(25)]

    for frame in frames:
        session.send_audio(frame)
    await wait_until(lambda: len(harness.sink.played) == len(frames))

    assert harness.sink.played == frames
    assert session.stats.frames_sent == 25
    assert session.stats.media_received_bytes == 25 * 160


async def test_echo_runner_mark_reaches_the_sink_and_its_playback_reaches_the_runner(
    echo: EchoRunner, harness: Harness
) -> None:
    session = harness.session(echo_url(echo))
    await session.open()

    for _ in range(50):  # one second of audio
        session.send_audio(FRAME)
    await wait_until(lambda: harness.sink.marks == ["echo-1"])
    session.mark_played("echo-1")

    await wait_until(lambda: echo.marks_played == ["echo-1"])


async def test_clear_reports_every_mark_the_sink_dropped_as_played(
    scripted: Callable[..., Awaitable[ScriptedRunner]], harness: Harness
) -> None:
    async def speak_then_clear(ws: ServerConnection) -> None:
        await ws.send(runner_media(STREAM.stream_sid, FRAME))
        await ws.send(runner_mark(STREAM.stream_sid, "first"))
        await ws.send(runner_media(STREAM.stream_sid, FRAME))
        await ws.send(runner_mark(STREAM.stream_sid, "second"))
        await ws.send(runner_clear(STREAM.stream_sid))

    runner = await scripted(speak_then_clear)
    session = harness.session(runner.url)
    await session.open()

    await wait_until(lambda: runner.events().count("mark") == 2)

    marks = [m for m in runner.received if m["event"] == "mark"]
    assert [m["mark"]["name"] for m in marks] == ["first", "second"]
    assert harness.sink.clears == 1
    assert harness.sink.played == [FRAME, FRAME]
    assert session.stats.clears_received == 1


async def test_dtmf_digits_reach_the_runner_in_order(
    echo: EchoRunner, harness: Harness
) -> None:
    session = harness.session(echo_url(echo))
    await session.open()

    for digit in "5*#":
        session.send_dtmf(digit)

    await wait_until(lambda: echo.digits == ["5", "*", "#"])


async def test_messages_reach_the_runner_with_contiguous_sequence_numbers(
    scripted: Callable[..., Awaitable[ScriptedRunner]], harness: Harness
) -> None:
    runner = await scripted()
    session = harness.session(runner.url)
    await session.open()

    session.send_audio(FRAME)
    session.send_dtmf("1")
    session.send_audio(FRAME)
    await session.close()

    after_connected = runner.received[1:]
    assert [m["event"] for m in after_connected] == [
        "start",
        "media",
        "dtmf",
        "media",
        "stop",
    ]
    assert [m["sequenceNumber"] for m in after_connected] == ["1", "2", "3", "4", "5"]
    assert [
        m["media"]["timestamp"] for m in after_connected if m["event"] == "media"
    ] == [
        "0",
        "20",
    ]


async def test_frames_beyond_the_send_queue_are_dropped_and_leave_a_timestamp_gap(
    scripted: Callable[..., Awaitable[ScriptedRunner]], harness: Harness
) -> None:
    paused: list[ServerConnection] = []

    async def stop_reading(ws: ServerConnection) -> None:
        ws.transport.pause_reading()
        paused.append(ws)

    runner = await scripted(stop_reading)
    session = harness.session(runner.url, max_send_queue=10)
    await session.open()
    await wait_until(lambda: runner.events() == ["connected", "start"])

    # The runner reads nothing: once the kernel's buffers are full, audio waits
    # in the transport, and past ten frames' worth it is dropped.
    offered = 0
    while session.stats.frames_dropped < 5 and offered < 200_000:
        session.send_audio(FRAME)
        offered += 1
    assert session.stats.frames_dropped == 5
    assert session.stats.frames_sent == offered - 5
    session.send_dtmf("1")  # control messages still have room

    paused[0].transport.resume_reading()
    await wait_until(lambda: "dtmf" in runner.events(), timeout=30.0)
    session.send_audio(FRAME)
    await wait_until(lambda: runner.events().count("media") == offered - 4)

    media = [m for m in runner.received if m["event"] == "media"]
    assert [m["media"]["chunk"] for m in media] == [
        str(n) for n in range(1, offered - 3)
    ]
    sent = offered - 5
    assert media[sent - 1]["media"]["timestamp"] == str((sent - 1) * 20)
    assert media[sent]["media"]["timestamp"] == str((offered) * 20)


async def test_invalid_runner_messages_are_ignored_and_counted(
    scripted: Callable[..., Awaitable[ScriptedRunner]], harness: Harness
) -> None:
    async def send_garbage_then_audio(ws: ServerConnection) -> None:
        await ws.send("not json")
        await ws.send('{"event":"media","media":{"payload":"@@@"}}')
        await ws.send('{"event":"mark","mark":{"name":5}}')
        await ws.send('{"event":"transcript","text":"hello"}')
        await ws.send(runner_media(STREAM.stream_sid, FRAME))

    runner = await scripted(send_garbage_then_audio)
    session = harness.session(runner.url)
    await session.open()

    await wait_until(lambda: harness.sink.played == [FRAME])
    assert session.stats.invalid_messages == 3
    assert session.stats.unknown_messages == 1
    assert session.is_open
    assert harness.closed == []


async def test_runner_audio_in_a_binary_frame_is_accepted(
    scripted: Callable[..., Awaitable[ScriptedRunner]], harness: Harness
) -> None:
    async def send_binary(ws: ServerConnection) -> None:
        await ws.send(runner_media(STREAM.stream_sid, FRAME).encode())

    runner = await scripted(send_binary)
    await harness.session(runner.url).open()
    await wait_until(lambda: harness.sink.played == [FRAME])


# Ending the stream.


async def test_runner_hangup_fires_on_closed_exactly_once(
    echo: EchoRunner, harness: Harness
) -> None:
    session = harness.session(echo_url(echo, "?hangup_after=0.2"))
    await session.open()

    await wait_until(lambda: harness.closed != [])
    session.send_audio(FRAME)  # ignored: the stream is over
    await session.close()

    assert harness.closed == ["runner closed (1000 runner hangup)"]
    assert not session.is_open


async def test_dropped_runner_connection_fires_on_closed_as_lost(
    scripted: Callable[..., Awaitable[ScriptedRunner]], harness: Harness
) -> None:
    async def vanish(ws: ServerConnection) -> None:
        ws.transport.abort()

    runner = await scripted(vanish)
    await harness.session(runner.url).open()

    await wait_until(lambda: harness.closed != [])
    assert harness.closed == ["runner connection lost"]


async def test_runner_that_stops_answering_pings_is_declared_dead(
    scripted: Callable[..., Awaitable[ScriptedRunner]],
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "PING_INTERVAL", 0.1)
    monkeypatch.setattr(client_module, "PING_TIMEOUT", 0.1)
    monkeypatch.setattr(client_module, "CLOSE_TIMEOUT", 0.1)

    async def freeze(ws: ServerConnection) -> None:
        ws.transport.pause_reading()

    runner = await scripted(freeze)
    await harness.session(runner.url).open()

    await wait_until(lambda: harness.closed != [], timeout=2.0)
    assert harness.closed == ["runner connection failed (1011 keepalive ping timeout)"]


async def test_oversized_runner_message_ends_the_stream_with_1009(
    scripted: Callable[..., Awaitable[ScriptedRunner]], harness: Harness
) -> None:
    async def send_too_much(ws: ServerConnection) -> None:
        await ws.send(runner_media(STREAM.stream_sid, bytes(1024 * 1024)))

    runner = await scripted(send_too_much)
    await harness.session(runner.url).open()

    await wait_until(lambda: harness.closed != [])
    assert harness.closed[0].startswith("runner connection failed (1009 ")
    assert harness.sink.played == []


async def test_failing_sink_ends_the_session_through_on_closed(
    scripted: Callable[..., Awaitable[ScriptedRunner]], harness: Harness
) -> None:
    async def send_audio(ws: ServerConnection) -> None:
        await ws.send(runner_media(STREAM.stream_sid, FRAME))

    runner = await scripted(send_audio)
    await harness.session(runner.url, sink=ExplodingSink()).open()

    await wait_until(lambda: harness.closed != [])
    assert harness.closed == ["runner session error"]


async def test_our_close_flushes_audio_sends_stop_and_never_fires_on_closed(
    scripted: Callable[..., Awaitable[ScriptedRunner]], harness: Harness
) -> None:
    runner = await scripted()
    session = harness.session(runner.url)
    await session.open()

    for _ in range(5):
        session.send_audio(FRAME)
    await session.close("caller hung up")
    await wait_until(lambda: runner.connections == 1 and "stop" in runner.events())

    assert runner.events() == ["connected", "start"] + ["media"] * 5 + ["stop"]
    assert runner.received[-1] == {
        "event": "stop",
        "sequenceNumber": "7",
        "streamSid": STREAM.stream_sid,
        "stop": {"accountSid": "pipe_A", "callSid": "call-7"},
    }
    assert harness.closed == []
    assert not session.is_open


async def test_close_is_idempotent_and_safe_to_call_concurrently(
    scripted: Callable[..., Awaitable[ScriptedRunner]], harness: Harness
) -> None:
    runner = await scripted()
    session = harness.session(runner.url)
    await session.open()

    await asyncio.gather(session.close(), session.close())
    await session.close()

    assert runner.events().count("stop") == 1
    assert harness.closed == []


async def test_close_before_open_sends_nothing_and_does_not_raise(
    harness: Harness,
) -> None:
    session = harness.session(f"ws://{LOOPBACK}:{free_port()}/")
    await session.close()
    with pytest.raises(RuntimeError):
        await session.open()


async def test_no_stop_is_sent_when_start_never_went_out(
    echo: EchoRunner, harness: Harness
) -> None:
    session = harness.session(echo_url(echo, "?reject=1"))
    with pytest.raises(RunnerUnavailable):
        await session.open()
    await session.close()
    assert harness.closed == []


async def test_echo_runner_ends_the_session_on_stop(
    echo: EchoRunner, harness: Harness
) -> None:
    session = harness.session(echo_url(echo))
    await session.open()
    await wait_until(lambda: echo.sessions == 1)

    await session.close()

    await wait_until(lambda: echo.sessions == 0)
    assert [start.call_sid for start in echo.starts] == ["call-7"]


async def read_until(stream: asyncio.StreamReader, needle: bytes) -> bytes:
    """Read lines until one contains ``needle``; return everything read."""
    seen = b""
    while needle not in seen:
        line = await asyncio.wait_for(stream.readline(), 10.0)
        if not line:
            raise AssertionError(f"{needle!r} never logged; got {seen!r}")
        seen += line
    return seen


async def test_echo_runner_entry_point_logs_sessions_and_digits_until_sigterm(
    harness: Harness,
) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from router.runner.echo import main_echo_runner as run; "
        f"run({LOOPBACK!r}, {port})",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert process.stdout is not None
    try:
        await read_until(process.stdout, b"echo runner listening")
        session = harness.session(f"ws://{LOOPBACK}:{port}/")
        await session.open()
        session.send_dtmf("7")
        await session.close()
        logged = await read_until(process.stdout, b"echo session ended")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(process.communicate(), 10.0)

    assert b"echo session started" in logged
    assert b"digit=7" in logged
    assert b"echo runner stopped" in rest
    assert process.returncode == 0


# Leaks.


async def test_no_tasks_are_left_after_close(
    echo: EchoRunner, harness: Harness
) -> None:
    before = other_tasks()
    session = harness.session(echo_url(echo))
    await session.open()
    for _ in range(10):
        session.send_audio(FRAME)
    await wait_until(lambda: len(harness.sink.played) == 10)

    await session.close()

    await wait_until(lambda: echo.sessions == 0)
    assert other_tasks() - before == set()


async def test_no_tasks_are_left_after_the_runner_hangs_up_and_we_close(
    echo: EchoRunner, harness: Harness
) -> None:
    before = other_tasks()
    session = harness.session(echo_url(echo, "?hangup_after=0.1"))
    await session.open()
    await wait_until(lambda: harness.closed != [])

    await session.close()

    await wait_until(lambda: echo.sessions == 0)
    assert other_tasks() - before == set()


async def test_no_tasks_are_left_after_a_failed_open(
    echo: EchoRunner, harness: Harness
) -> None:
    before = other_tasks()
    session = harness.session(echo_url(echo, "?ready_delay=0.5"), connect_timeout=0.2)
    with pytest.raises(RunnerUnavailable):
        await session.open()

    # The echo runner's delayed handshake ends once its delay is over.
    await wait_until(lambda: other_tasks() - before == set())
    assert echo.sessions == 0


# TLS.


def write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, and its key, as PEM files."""
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "runner.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "runner.pem", directory / "runner.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
async def tls_runner(
    tmp_path: Path,
    scripted: Callable[..., Awaitable[ScriptedRunner]],
    exit_stack: AsyncExitStack,
) -> tuple[str, Path]:
    cert_path, key_path = write_self_signed_certificate(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)

    async def echo_audio(ws: ServerConnection) -> None:
        await ws.send(runner_media(STREAM.stream_sid, FRAME))

    runner = ScriptedRunner(echo_audio)
    server = await exit_stack.enter_async_context(
        serve(runner.handle, LOOPBACK, 0, ssl=server_context)
    )
    return f"wss://{LOOPBACK}:{server.sockets[0].getsockname()[1]}/", cert_path


async def test_wss_refuses_a_runner_certificate_the_system_does_not_trust(
    tls_runner: tuple[str, Path], harness: Harness
) -> None:
    url, _ = tls_runner
    with pytest.raises(RunnerUnavailable) as caught:
        await harness.session(url).open()
    assert caught.value.reason.startswith("TLS failed")


async def test_wss_with_a_context_trusting_the_runner_streams_audio(
    tls_runner: tuple[str, Path], harness: Harness
) -> None:
    url, cert_path = tls_runner
    context = ssl.create_default_context(cafile=str(cert_path))

    await harness.session(url, ssl_context=context).open()

    await wait_until(lambda: harness.sink.played == [FRAME])


def test_payload_fixture_is_plain_base64() -> None:
    # Guards the tests above: runner_media must carry the frame as standard base64.
    assert json.loads(runner_media("MZ", FRAME))["media"]["payload"] == (
        base64.b64encode(FRAME).decode()
    )
