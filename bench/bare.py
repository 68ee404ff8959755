"""The bare-bones call path in Python: a second reference for calls per second.

SIPp's UAS says what the machine can do in C. This says what Python on uvloop
can do for the same calls with the router's per-call work and none of its
generality: every call gets a new RTP socket and a new WebSocket to a runner,
with the runner's ``connected``, ``start`` and ``stop`` messages and a closing
handshake, as the router does. Left out is all the rest: transactions and
retransmissions, dialogs, trunk checks, the number lookup, SDP negotiation,
records, logs, metrics, overload control, session timers, limits and checks of
what peers send.

It is a yardstick and must never serve a real call: it parses only what the
benchmark's own SIPp scenario sends, trusts every header, and answers every
INVITE.

``python -m bench.bare runner PORT`` serves the runner side;
``python -m bench.bare router SIP_PORT RUNNER_PORT RTP_LOW RTP_HIGH`` the SIP
side. Both run until SIGTERM.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import socket
import sys
from typing import cast

__all__ = ["main", "masked_frame", "unmasked_frames"]

LOOPBACK = "127.0.0.1"
# RFC 6455 §1.3: appended to the client's key for Sec-WebSocket-Accept.
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B65"
_OP_TEXT, _OP_CLOSE = 0x1, 0x8
_NORMAL_CLOSURE = b"\x03\xe8"
_SOCKET_BUFFER = 4 << 20
# How long a call waits for its runner's handshake before it is given up.
_RUNNER_TIMEOUT = 5.0
# Calls dropped at once when every RTP port is held (see _SipSide._bind_rtp).
_EVICTED_AT_ONCE = 64
# Twilio-style messages of the same size as the router's.
_CONNECTED = b'{"event":"connected","protocol":"Call","version":"1.0.0"}'
_START = (
    b'{"event":"start","sequenceNumber":"1","start":{"accountSid":"pipe_bench",'
    b'"streamSid":"MZ00000000000000000000000000000000","callSid":"CA0000000000000000'
    b'0000000000000000","tracks":["inbound"],"customParameters":{"to":"+14155550100",'
    b'"from":"+14155550111"},"mediaFormat":{"encoding":"audio/x-mulaw",'
    b'"sampleRate":8000,"channels":1}},"streamSid":"MZ0000000000000000000000000000'
    b'0000"}'
)
_STOP = (
    b'{"event":"stop","sequenceNumber":"2","stop":{"accountSid":"pipe_bench",'
    b'"callSid":"CA00000000000000000000000000000000"},"streamSid":"MZ00000000000000'
    b'000000000000000000"}'
)


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (RFC 6455 §5.2), masked as a client must."""
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    else:
        head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    mask = os.urandom(4)
    key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")
    return head + mask + masked


def unmasked_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take the complete frames (opcode, payload) off the front of ``buffer``."""
    frames = []
    while len(buffer) >= 2:
        length, at = buffer[1] & 0x7F, 2
        if length == 126:
            length, at = int.from_bytes(buffer[2:4], "big"), 4
        masked = buffer[1] & 0x80
        end = at + (4 if masked else 0) + length
        if len(buffer) < end:
            break
        payload = bytes(buffer[end - length : end])
        if masked:
            mask = buffer[at : at + 4]
            key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
            payload = (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")
        frames.append((buffer[0] & 0x0F, payload))
        del buffer[:end]
    return frames


def _take_http_head(buffer: bytearray) -> str | None:
    """Take an HTTP request's or response's head off the front of ``buffer``."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode("latin-1")
    del buffer[: end + 4]
    return head


# -- the runner side ---------------------------------------------------------------


class _RunnerConnection(asyncio.Protocol):
    """Accepts the handshake, reads frames, answers a close frame and hangs up."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        if not self.open:
            head = _take_http_head(self.buffer)
            if head is None:
                return
            key = ""
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest())
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self.open = True
        for opcode, payload in unmasked_frames(self.buffer):
            if opcode == _OP_CLOSE:
                self.transport.write(bytes((0x80 | _OP_CLOSE, 2)) + payload[:2])
                self.transport.close()
                return


# -- the SIP side ------------------------------------------------------------------


class _RunnerLink(asyncio.Protocol):
    """The client end of one call's WebSocket."""

    def __init__(self, on_open: asyncio.Future[None]) -> None:
        self.transport: asyncio.Transport | None = None
        self.on_open = on_open
        self.buffer = bytearray()
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16))
        self.transport.write(
            b"GET / HTTP/1.1\r\nHost: " + LOOPBACK.encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        if not self.open:
            if _take_http_head(self.buffer) is None:
                return
            self.open = True
            self.transport.write(
                masked_frame(_OP_TEXT, _CONNECTED) + masked_frame(_OP_TEXT, _START)
            )
            if not self.on_open.done():
                self.on_open.set_result(None)
        for opcode, _ in unmasked_frames(self.buffer):
            if opcode == _OP_CLOSE:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.on_open.done():
            self.on_open.set_exception(exc or ConnectionResetError("runner hung up"))

    def hang_up(self) -> None:
        if self.transport is not None:
            self.transport.write(
                masked_frame(_OP_TEXT, _STOP) + masked_frame(_OP_CLOSE, _NORMAL_CLOSURE)
            )


class _Call:
    __slots__ = ("rtp", "runner")

    def __init__(self, rtp: asyncio.DatagramTransport, runner: _RunnerLink) -> None:
        self.rtp = rtp
        self.runner = runner


class _SipSide(asyncio.DatagramProtocol):
    """Answers INVITE (100, 180, 200 once the runner is ready), ACK and BYE."""

    def __init__(self, runner_port: int, rtp_ports: tuple[int, int]) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.runner_port = runner_port
        self.low, self.high = rtp_ports
        self.next_port = self.low
        self.calls: dict[str, _Call] = {}
        self.setting_up: set[str] = set()
        self.contact = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio's classes.
        self.transport = cast(asyncio.DatagramTransport, transport)
        host, port = transport.get_extra_info("sockname")[:2]
        self.contact = f"Contact: <sip:{host}:{port}>"

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method = head[0].split(" ", 1)[0]
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if method == "INVITE":
            call_id = fields.get("call-id", "")
            # A retransmission of an INVITE being answered, or answered: its
            # answer is on the way (or was sent) already.
            if call_id not in self.calls and call_id not in self.setting_up:
                self.setting_up.add(call_id)
                asyncio.get_running_loop().create_task(self._invite(fields, addr))
        elif method == "BYE":
            self._reply(fields, addr, "200 OK")
            call = self.calls.pop(fields.get("call-id", ""), None)
            if call is not None:
                call.runner.hang_up()
                call.rtp.close()

    async def _invite(self, fields: dict[str, str], addr: tuple[str, int]) -> None:
        try:
            await self._answer(fields, addr)
        except OSError:  # no RTP port, or the runner failed or timed out
            self._reply(fields, addr, "503 Service Unavailable", to_tag=True)
        finally:
            self.setting_up.discard(fields.get("call-id", ""))

    async def _answer(self, fields: dict[str, str], addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        self._reply(fields, addr, "100 Trying")
        rtp_socket, port = self._bind_rtp()
        rtp, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, sock=rtp_socket
        )
        self._reply(fields, addr, "180 Ringing", to_tag=True)
        opened: asyncio.Future[None] = loop.create_future()
        runner: _RunnerLink | None = None
        try:
            async with asyncio.timeout(_RUNNER_TIMEOUT):
                _, runner = await loop.create_connection(
                    lambda: _RunnerLink(opened), LOOPBACK, self.runner_port
                )
                await opened
        except BaseException:
            # No answer for this call: its port and runner connection go.
            rtp.close()
            if runner is not None and runner.transport is not None:
                runner.transport.abort()
            raise
        self.calls[fields.get("call-id", "")] = _Call(rtp, runner)
        sdp = (
            f"v=0\r\no=- {port} 1 IN IP4 {LOOPBACK}\r\ns=-\r\nc=IN IP4 {LOOPBACK}\r\n"
            f"t=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
            "a=sendrecv\r\n"
        )
        self._reply(fields, addr, "200 OK", to_tag=True, sdp=sdp)

    def _bind_rtp(self) -> tuple[socket.socket, int]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(self.low, self.high + 1, 2):
            port = self.next_port
            self.next_port = port + 2 if port + 2 <= self.high else self.low
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            sock.setblocking(False)
            return sock, port
        # Every port is held: by calls whose BYE never came (an overloaded
        # step's callers gave up). This INVITE is refused; the oldest calls
        # make room for the ones that come next.
        sock.close()
        for _ in range(min(_EVICTED_AT_ONCE, len(self.calls))):
            oldest = self.calls.pop(next(iter(self.calls)))
            oldest.runner.hang_up()
            oldest.rtp.close()
        raise OSError("no free RTP port")

    def _reply(
        self,
        fields: dict[str, str],
        addr: tuple[str, int],
        status: str,
        *,
        to_tag: bool = False,
        sdp: str = "",
    ) -> None:
        assert self.transport is not None
        to = fields.get("to", "")
        if to_tag and ";tag=" not in to:
            to += ";tag=bare"
        lines = [
            f"SIP/2.0 {status}",
            f"Via: {fields.get('via', '')}",
            f"From: {fields.get('from', '')}",
            f"To: {to}",
            f"Call-ID: {fields.get('call-id', '')}",
            f"CSeq: {fields.get('cseq', '')}",
            self.contact,
        ]
        if sdp:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(sdp)}\r\n\r\n{sdp}")
        self.transport.sendto("\r\n".join(lines).encode(), addr)


# -- running -----------------------------------------------------------------------


async def _serve(argv: list[str]) -> None:
    loop = asyncio.get_running_loop()
    if argv[0] == "runner":
        server = await loop.create_server(_RunnerConnection, LOOPBACK, int(argv[1]))
        closing: asyncio.BaseTransport | asyncio.Server = server
    else:
        sip_port, runner_port, low, high = (int(value) for value in argv[1:5])
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        sock.bind((LOOPBACK, sip_port))
        closing, _ = await loop.create_datagram_endpoint(
            lambda: _SipSide(runner_port, (low, high)), sock=sock
        )
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    closing.close()


def main(argv: list[str]) -> int:
    """Serve the side ``argv`` names until SIGTERM."""
    shapes = {"runner": 2, "router": 5}
    if (
        not argv
        or shapes.get(argv[0]) != len(argv)
        or not all(value.isdigit() for value in argv[1:])
    ):
        print(
            "usage: python -m bench.bare runner PORT\n"
            "       python -m bench.bare router SIP_PORT RUNNER_PORT RTP_LOW RTP_HIGH",
            file=sys.stderr,
        )
        return 2
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(argv))
    else:
        uvloop.run(_serve(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
