"""The runner WebSocket layer (router.runner.ws) against real peers on 127.0.0.1.

Its client is tested against websockets' own asyncio server and against raw TCP
peers that misbehave; its server against websockets' own client.
"""

from __future__ import annotations

import asyncio
import http
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection as PeerConnection
from websockets.asyncio.server import serve as peer_serve
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from router.runner.client import RunnerSession, RunnerUnavailable
from router.runner.ws import (
    ClientConnection,
    ServerConnection,
    WebSocketServer,
    open_connection,
    serve,
)
from tests.integration.test_runner_client import (
    STREAM,
    FakeSink,
    wait_until,
    write_self_signed_certificate,
)

LOOPBACK = "127.0.0.1"
MAX_MESSAGE = 64 * 1024

PeerHandler = Callable[[PeerConnection], Awaitable[None]]


class Inbox:
    """Collects what a connection delivers: messages, and whether it was lost."""

    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.lost = 0

    def on_lost(self) -> None:
        self.lost += 1


@pytest.fixture
async def exit_stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def peer(exit_stack: AsyncExitStack) -> Callable[..., Awaitable[str]]:
    """Start a websockets server running ``handler``; return its URL."""

    async def start(handler: PeerHandler, **options: Any) -> str:
        # Frozen peers would otherwise hold the teardown for websockets' 10 s.
        options.setdefault("close_timeout", 0.2)
        server = await exit_stack.enter_async_context(
            peer_serve(handler, LOOPBACK, 0, **options)
        )
        return f"ws://{LOOPBACK}:{server.sockets[0].getsockname()[1]}/"

    return start


async def dial(
    url: str, inbox: Inbox | None = None, **options: Any
) -> ClientConnection:
    inbox = inbox or Inbox()
    settings: dict[str, Any] = {
        "on_message": inbox.messages.append,
        "on_lost": inbox.on_lost,
        "ssl_context": None,
        "max_message": MAX_MESSAGE,
        "ping_interval": None,
        "ping_timeout": 1.0,
        "close_timeout": 1.0,
    }
    settings.update(options)
    return await open_connection(url, **settings)


async def idle(ws: PeerConnection) -> None:
    with pytest.raises(ConnectionClosed):
        await ws.recv()


# Receiving.


async def test_fragmented_text_and_binary_messages_are_delivered_whole(
    peer: Callable[..., Awaitable[str]],
) -> None:
    async def send_fragments(ws: PeerConnection) -> None:
        await ws.send(["one ", "two ", "three"])
        await ws.send([b"\x00\x01", b"\x02"])
        await ws.send("single")
        await idle(ws)

    inbox = Inbox()
    conn = await dial(await peer(send_fragments), inbox)

    await wait_until(lambda: len(inbox.messages) == 3)
    assert inbox.messages == ["one two three", b"\x00\x01\x02", "single"]
    conn.close()
    await conn.wait_lost()


async def test_a_message_over_max_message_in_fragments_fails_with_1009(
    peer: Callable[..., Awaitable[str]],
) -> None:
    # Each fragment is small; together they pass the bound.
    chunk = "x" * (MAX_MESSAGE // 4)

    async def send_too_much(ws: PeerConnection) -> None:
        await ws.send([chunk] * 5)
        await idle(ws)

    inbox = Inbox()
    conn = await dial(await peer(send_too_much), inbox)

    await asyncio.wait_for(conn.wait_lost(), 3.0)
    assert inbox.messages == []
    assert inbox.lost == 1
    assert conn.protocol.close_sent is not None
    assert conn.protocol.close_sent.code == 1009


async def test_text_that_is_not_utf8_fails_with_1007(
    exit_stack: AsyncExitStack,
) -> None:
    received: list[str | bytes] = []

    def opened(conn: ServerConnection, request: Request) -> None:
        conn.on_message = received.append

    server = await serve(opened, LOOPBACK, 0, check_request=accept, max_message=1024)
    exit_stack.push_async_callback(server.close)

    async with connect(f"ws://{LOOPBACK}:{server.port}/") as ws:
        # A frame that claims to be text but carries Latin-1, sent raw.
        ws.protocol.send_frame(_text_frame(b"caf\xe9"))
        ws.send_data()
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1007
    assert received == []


def _text_frame(data: bytes) -> Any:
    from websockets.frames import Frame, Opcode

    return Frame(Opcode.TEXT, data)


# Keepalive and closing.


async def test_a_peer_that_answers_pings_keeps_the_connection(
    peer: Callable[..., Awaitable[str]],
) -> None:
    inbox = Inbox()
    conn = await dial(await peer(idle), inbox, ping_interval=0.05, ping_timeout=0.1)

    await asyncio.sleep(0.5)  # several pings and pongs

    assert conn.is_open and inbox.lost == 0
    conn.close()
    await conn.wait_lost()


async def test_a_peer_that_stops_reading_fails_the_ping_with_1011_in_time(
    peer: Callable[..., Awaitable[str]],
) -> None:
    async def freeze(ws: PeerConnection) -> None:
        ws.transport.pause_reading()
        await asyncio.sleep(2)

    inbox = Inbox()
    conn = await dial(
        await peer(freeze),
        inbox,
        ping_interval=0.05,
        ping_timeout=0.1,
        close_timeout=0.1,
    )
    began = time.monotonic()

    await asyncio.wait_for(conn.wait_lost(), 2.0)

    assert time.monotonic() - began < 1.0
    assert inbox.lost == 1
    assert conn.protocol.close_sent is not None
    assert conn.protocol.close_sent.code == 1011
    assert conn.protocol.close_sent.reason == "keepalive ping timeout"


async def test_closing_handshake_is_abandoned_after_close_timeout(
    peer: Callable[..., Awaitable[str]],
) -> None:
    async def freeze(ws: PeerConnection) -> None:
        ws.transport.pause_reading()
        await asyncio.sleep(2)

    conn = await dial(await peer(freeze), close_timeout=0.2)
    began = time.monotonic()

    conn.close()
    await asyncio.wait_for(conn.wait_lost(), 2.0)

    assert 0.15 < time.monotonic() - began < 1.0
    assert conn.protocol.close_rcvd is None


async def test_close_with_a_last_text_sends_it_then_the_close_frame_in_one_write(
    peer: Callable[..., Awaitable[str]],
) -> None:
    received: list[str | bytes] = []
    closed: list[int | None] = []

    async def record(ws: PeerConnection) -> None:
        with pytest.raises(ConnectionClosed):
            while True:
                received.append(await ws.recv())
        closed.append(ws.close_code)

    conn = await dial(await peer(record))
    writes: list[bytes] = []
    assert conn.transport is not None
    real_write = conn.transport.write

    def counting_write(data: bytes | bytearray | memoryview) -> None:
        writes.append(bytes(data))
        real_write(data)

    conn.transport.write = counting_write  # type: ignore[method-assign]

    conn.close(last_text='{"event":"stop"}')
    await asyncio.wait_for(conn.wait_lost(), 2.0)

    await wait_until(lambda: closed == [1000])
    assert received == ['{"event":"stop"}']
    assert len(writes) == 1
    assert conn.protocol.close_rcvd is not None


async def test_session_close_against_a_frozen_runner_is_bounded(
    peer: Callable[..., Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from router.runner import client as client_module

    monkeypatch.setattr(client_module, "STOP_FLUSH_TIMEOUT", 0.2)
    monkeypatch.setattr(client_module, "CLOSE_TIMEOUT", 0.2)

    async def freeze_after_start(ws: PeerConnection) -> None:
        await ws.recv()
        await ws.recv()
        ws.transport.pause_reading()
        await asyncio.sleep(2)

    session = RunnerSession(
        await peer(freeze_after_start), STREAM, sink=FakeSink(), on_closed=print
    )
    await session.open()
    # Fill the kernel's buffers so stop cannot drain.
    while session.stats.frames_dropped == 0:
        session.send_audio(bytes(160))
    began = time.monotonic()

    await session.close()

    assert time.monotonic() - began < 1.5
    assert not session.is_open


# Opening.


async def raw_peer(exit_stack: AsyncExitStack, answer: bytes | None) -> str:
    """A TCP peer that reads the request and answers ``answer`` (None: hangs up)."""

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if answer is not None:
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, LOOPBACK, 0)
    exit_stack.push_async_callback(server.wait_closed)
    exit_stack.callback(server.close)
    return f"ws://{LOOPBACK}:{server.sockets[0].getsockname()[1]}/"


async def test_garbage_instead_of_an_http_response_fails_the_handshake(
    exit_stack: AsyncExitStack,
) -> None:
    url = await raw_peer(exit_stack, b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    with pytest.raises(InvalidMessage):
        await asyncio.wait_for(dial(url), 3.0)

    session = RunnerSession(url, STREAM, sink=FakeSink(), on_closed=print)
    with pytest.raises(RunnerUnavailable) as caught:
        await session.open()
    assert (
        caught.value.reason == "handshake failed: did not receive a valid HTTP response"
    )


async def test_a_peer_hanging_up_before_answering_fails_the_handshake(
    exit_stack: AsyncExitStack,
) -> None:
    url = await raw_peer(exit_stack, None)
    with pytest.raises(InvalidMessage):
        await asyncio.wait_for(dial(url), 3.0)


async def test_the_client_offers_no_compression_and_ignores_proxies(
    peer: Callable[..., Awaitable[str]],
) -> None:
    requests: list[Request] = []

    def record(connection: PeerConnection, request: Request) -> None:
        requests.append(request)

    conn = await dial(await peer(idle, process_request=record))

    (request,) = requests
    assert "Sec-WebSocket-Extensions" not in request.headers
    assert request.headers["Host"].startswith(LOOPBACK)
    conn.close()
    await conn.wait_lost()


# TLS.


@pytest.fixture
async def tls_url(
    tmp_path: Path, peer: Callable[..., Awaitable[str]]
) -> tuple[str, Path]:
    cert_path, key_path = write_self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)

    async def greet(ws: PeerConnection) -> None:
        await ws.send("hello over TLS")
        await idle(ws)

    url = await peer(greet, ssl=context)
    return url.replace("ws://", "wss://"), cert_path


async def test_tls_with_a_context_trusting_the_certificate_works(
    tls_url: tuple[str, Path],
) -> None:
    url, cert_path = tls_url
    context = ssl.create_default_context(cafile=str(cert_path))

    inbox = Inbox()
    conn = await dial(url, inbox, ssl_context=context)

    await wait_until(lambda: inbox.messages == ["hello over TLS"])
    conn.close()
    await asyncio.wait_for(conn.wait_lost(), 3.0)


async def test_tls_checks_the_certificate_by_default(tls_url: tuple[str, Path]) -> None:
    url, _ = tls_url
    with pytest.raises(ssl.SSLCertVerificationError):
        await dial(url)


async def test_tls_checks_the_host_name_against_the_certificate(
    tls_url: tuple[str, Path],
) -> None:
    url, cert_path = tls_url
    context = ssl.create_default_context(cafile=str(cert_path))
    # The certificate names 127.0.0.1 only.
    with pytest.raises(ssl.SSLCertVerificationError):
        await dial(url.replace(LOOPBACK, "localhost"), ssl_context=context)


# The server side.


def accept(protocol: ServerProtocol, request: Request) -> Response | None:
    return None


async def start_server(
    exit_stack: AsyncExitStack,
    check: Callable[[ServerProtocol, Request], Any] = accept,
) -> tuple[WebSocketServer, list[ServerConnection], list[str | bytes]]:
    opened: list[ServerConnection] = []
    received: list[str | bytes] = []

    def on_open(conn: ServerConnection, request: Request) -> None:
        opened.append(conn)
        conn.on_message = received.append

    server = await serve(on_open, LOOPBACK, 0, check_request=check, max_message=1024)
    exit_stack.push_async_callback(server.close)
    return server, opened, received


async def test_server_delivers_fragmented_messages_and_enforces_max_message(
    exit_stack: AsyncExitStack,
) -> None:
    server, _, received = await start_server(exit_stack)

    async with connect(f"ws://{LOOPBACK}:{server.port}/", compression=None) as ws:
        await ws.send(["ab", "cd"])
        await wait_until(lambda: received == ["abcd"])
        await ws.send("y" * 2000)
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1009


async def test_server_never_negotiates_compression(exit_stack: AsyncExitStack) -> None:
    server, opened, _ = await start_server(exit_stack)

    async with connect(f"ws://{LOOPBACK}:{server.port}/") as ws:  # offers deflate
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await wait_until(lambda: len(opened) == 1)
        assert opened[0].send_text("plain")
        assert await ws.recv() == "plain"


async def test_server_answers_a_rejected_request_with_its_status(
    exit_stack: AsyncExitStack,
) -> None:
    def refuse(protocol: ServerProtocol, request: Request) -> Response:
        return protocol.reject(http.HTTPStatus.SERVICE_UNAVAILABLE, "not now\n")

    server, opened, _ = await start_server(exit_stack, refuse)

    with pytest.raises(InvalidStatus) as caught:
        await connect(f"ws://{LOOPBACK}:{server.port}/")
    assert caught.value.response.status_code == 503
    assert opened == []


async def test_server_drops_a_delayed_handshake_whose_client_left(
    exit_stack: AsyncExitStack,
) -> None:
    async def slowly(protocol: ServerProtocol, request: Request) -> None:
        await asyncio.sleep(30)

    before = asyncio.all_tasks()
    server, opened, _ = await start_server(exit_stack, lambda p, r: slowly(p, r))

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(connect(f"ws://{LOOPBACK}:{server.port}/"), 0.2)

    await wait_until(lambda: asyncio.all_tasks() - before <= {asyncio.current_task()})
    assert opened == [] and server.connections == set()
