"""A small SIP user agent and RTP endpoint for call-flow tests.

It plays the carrier's side of a call against a running router: it sends
requests it builds itself (INVITE, ACK, CANCEL, BYE, re-INVITE, OPTIONS) and
collects everything the router sends, over UDP or TCP, so that tests can wait
for the message they expect and check that nothing else arrived.

It is deliberately independent of ``router.sip``: messages are built from
text and parsed by the tiny parser below, so a bug in the router's own parser
or serialiser cannot hide itself from the tests. Everything binds to loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = [
    "BIND_ATTEMPTS",
    "DEFAULT_TIMEOUT",
    "Channel",
    "Received",
    "RtpEndpoint",
    "RtpPacket",
    "SdpAnswer",
    "SipMessage",
    "SipUA",
    "TcpChannel",
    "UacCall",
    "build_message",
    "expect_rejection",
    "header_param",
    "is_voice",
    "parse_sdp_answer",
    "parse_sip",
    "place_call",
    "sdp_offer",
    "uri_of",
    "voice_frame",
    "voice_payloads",
    "wait_until",
]

# Seconds a test waits for something the router should send promptly. Generous,
# because a loaded two-core CI machine can stall the loop for a second.
DEFAULT_TIMEOUT = 5.0

# RFC 3261 §7.3.3: compact header names and the full names they stand for.
_COMPACT = {
    "i": "call-id",
    "v": "via",
    "f": "from",
    "t": "to",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
}

# Ports tried for a UA that listens on UDP and TCP with one port number.
BIND_ATTEMPTS = 5

_RTP_HEADER = struct.Struct("!BBHII")


# -- SIP messages ---------------------------------------------------------------


@dataclass
class SipMessage:
    """A received SIP request or response, parsed just enough for assertions."""

    start_line: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    @property
    def is_request(self) -> bool:
        """True for requests, False for responses."""
        return not self.start_line.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        """The request method, or the CSeq method of a response."""
        if self.is_request:
            return self.start_line.split(" ", 1)[0]
        return self.cseq[1]

    @property
    def uri(self) -> str:
        """The Request-URI of a request."""
        return self.start_line.split(" ")[1]

    @property
    def status(self) -> int:
        """The status code of a response (0 for a request)."""
        return 0 if self.is_request else int(self.start_line.split(" ")[1])

    @property
    def reason(self) -> str:
        """The reason phrase of a response."""
        return self.start_line.split(" ", 2)[2] if not self.is_request else ""

    def all(self, name: str) -> list[str]:
        """Every value of a header, split at top-level commas for list headers."""
        wanted = name.lower()
        values: list[str] = []
        for header, value in self.headers:
            if _COMPACT.get(header.lower(), header.lower()) == wanted:
                values.extend(_split_commas(value))
        return values

    def get(self, name: str) -> str | None:
        """The first value of a header, or None."""
        wanted = name.lower()
        for header, value in self.headers:
            if _COMPACT.get(header.lower(), header.lower()) == wanted:
                return value
        return None

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(f"no {name} header in {self.start_line!r}")
        return value

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        return self["Call-ID"]

    @property
    def cseq(self) -> tuple[int, str]:
        """The CSeq number and method."""
        number, method = self["CSeq"].split()
        return int(number), method

    @property
    def to_tag(self) -> str | None:
        """The tag parameter of To."""
        return header_param(self["To"], "tag")

    @property
    def from_tag(self) -> str | None:
        """The tag parameter of From."""
        return header_param(self["From"], "tag")

    @property
    def branch(self) -> str | None:
        """The branch of the top Via."""
        return header_param(self.all("Via")[0], "branch")

    def __str__(self) -> str:
        return self.raw.decode("utf-8", "replace")


def parse_sip(data: bytes) -> SipMessage:
    """Parse one complete SIP message (header block and body).

    Raises:
        ValueError: the bytes are not a SIP message.
    """
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no end of header block")
    lines = head.decode("utf-8").split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"bad header line {line!r}")
        headers.append((name.strip(), value.strip()))
    return SipMessage(lines[0], headers, body, data)


def header_param(value: str, name: str) -> str | None:
    """A parameter of a name-addr or Via header value (after the URI's ``>``)."""
    tail = value.rsplit(">", 1)[-1] if ">" in value else value
    for part in tail.split(";")[1:]:
        key, _, param = part.strip().partition("=")
        if key.lower() == name:
            return param
    return None


def uri_of(value: str) -> str:
    """The URI inside a name-addr (``<sip:…>``), or the value itself."""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def _split_commas(value: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    quoted = False
    current = ""
    for char in value:
        if char == '"':
            quoted = not quoted
        elif char == "<" and not quoted:
            depth += 1
        elif char == ">" and not quoted:
            depth -= 1
        if char == "," and depth == 0 and not quoted:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    parts.append(current.strip())
    return [part for part in parts if part]


def _content_length(head: bytes) -> int:
    for line in head.decode("utf-8", "replace").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in ("content-length", "l"):
            return int(value.strip())
    return 0


def build_message(
    start_line: str, headers: Iterable[tuple[str, str]], body: bytes = b""
) -> bytes:
    """Serialise a message, computing Content-Length from the body."""
    lines = [start_line]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# -- channels: where a message came from and how to answer on it ------------------


class Channel:
    """A way back to the router: a UDP address or one TCP connection."""

    transport = "UDP"

    def __init__(self, ua: SipUA, address: tuple[str, int]) -> None:
        self.ua = ua
        self.address = address

    def send(self, data: bytes) -> None:
        """Send one message on this channel."""
        self.ua.send_udp(data, self.address)

    def __repr__(self) -> str:
        return f"Channel({self.transport} {self.address[0]}:{self.address[1]})"


class TcpChannel(Channel, asyncio.Protocol):
    """One TCP connection, framed by Content-Length (RFC 3261 §18.3)."""

    transport = "TCP"

    def __init__(self, ua: SipUA, *, inbound: bool) -> None:
        Channel.__init__(self, ua, ("", 0))
        self.inbound = inbound
        self.tcp: asyncio.Transport | None = None
        self.buffer = b""
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.tcp = transport
        self.address = transport.get_extra_info("peername")[:2]
        self.ua.connections.append(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            self.buffer = self.buffer.lstrip(b"\r\n")
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            length = _content_length(head)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.ua.deliver(head + sep + rest[:length], self)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, data: bytes) -> None:
        """Write one message on this connection."""
        assert self.tcp is not None
        self.tcp.write(data)

    def close(self) -> None:
        """Close the connection."""
        if self.tcp is not None:
            self.tcp.close()


@dataclass
class Received:
    """A message the UA received and the channel it came on."""

    message: SipMessage
    channel: Channel
    at: float


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, ua: SipUA) -> None:
        self.ua = ua

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.ua.deliver(data, Channel(self.ua, (addr[0], addr[1])))


class SipUA:
    """The carrier's side: one UDP socket, optionally a TCP listener on its port.

    Create it with :meth:`start`. ``host`` is any loopback address, so one test
    can play a carrier, its edge proxy and its media gateway on 127.0.0.x.
    """

    def __init__(self, host: str) -> None:
        self.host = host
        self.port = 0
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp_server: asyncio.Server | None = None
        self.connections: list[TcpChannel] = []
        self.inbox: list[Received] = []
        self.history: list[Received] = []
        self.unparsable: list[bytes] = []
        self._arrived = asyncio.Event()

    @classmethod
    async def start(cls, host: str = "127.0.0.1", *, tcp: bool = False) -> SipUA:
        """Bind UDP (and a TCP listener on the same port when ``tcp``).

        The UDP port is the kernel's choice; a TCP socket elsewhere may hold
        the same number, so a few ports are tried.
        """
        for attempt in range(BIND_ATTEMPTS):
            ua = cls(host)
            try:
                await ua._bind(tcp=tcp)
            except OSError:
                await ua.close()
                if attempt == BIND_ATTEMPTS - 1:
                    raise
                continue
            return ua
        raise AssertionError("unreachable")

    async def _bind(self, *, tcp: bool) -> None:
        loop = asyncio.get_running_loop()
        self.udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(self.host, 0)
        )
        self.port = self.udp.get_extra_info("sockname")[1]
        if tcp:
            self.tcp_server = await loop.create_server(
                lambda: TcpChannel(self, inbound=True), self.host, self.port
            )

    async def close(self) -> None:
        """Close the socket, the listener and every connection."""
        if self.udp is not None:
            self.udp.close()
        for connection in self.connections:
            connection.close()
        if self.tcp_server is not None:
            self.tcp_server.close()
            await self.tcp_server.wait_closed()

    async def connect(self, address: tuple[str, int]) -> TcpChannel:
        """Open a TCP connection from an ephemeral port to ``address``."""
        loop = asyncio.get_running_loop()
        _, channel = await loop.create_connection(
            lambda: TcpChannel(self, inbound=False), *address, local_addr=(self.host, 0)
        )
        return channel

    # -- traffic ------------------------------------------------------------

    def send_udp(self, data: bytes, address: tuple[str, int]) -> None:
        """Send one datagram from our UDP socket."""
        assert self.udp is not None
        self.udp.sendto(data, address)

    def deliver(self, data: bytes, channel: Channel) -> None:
        """Record one message the router sent us."""
        try:
            message = parse_sip(data)
        except (ValueError, UnicodeDecodeError):
            self.unparsable.append(data)
            return
        received = Received(message, channel, time.monotonic())
        self.inbox.append(received)
        self.history.append(received)
        self._arrived.set()

    async def expect(
        self,
        match: Callable[[SipMessage], bool] = lambda message: True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Received:
        """Take the first message received so far or later that ``match``es.

        Raises:
            AssertionError: nothing matched within ``timeout`` seconds.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for index, received in enumerate(self.inbox):
                if match(received.message):
                    return self.inbox.pop(index)
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                seen = [r.message.start_line for r in self.inbox]
                raise AssertionError(
                    f"no matching SIP message in {timeout}s; inbox: {seen}"
                )
            await _wait_set(self._arrived, remaining)

    async def response(
        self, status: int, method: str = "INVITE", timeout: float = DEFAULT_TIMEOUT
    ) -> SipMessage:
        """Wait for a response with this status to a request of this method."""
        received = await self.expect(
            lambda m: not m.is_request and m.status == status and m.method == method,
            timeout,
        )
        return received.message

    async def request(self, method: str, timeout: float = DEFAULT_TIMEOUT) -> Received:
        """Wait for a request of this method from the router."""
        return await self.expect(lambda m: m.is_request and m.method == method, timeout)

    def pending(self, match: Callable[[SipMessage], bool]) -> list[SipMessage]:
        """Messages received and not yet taken that ``match``."""
        return [r.message for r in self.inbox if match(r.message)]

    def answer(self, received: Received, status: int = 200, reason: str = "OK") -> None:
        """Answer a request from the router on the channel it came on."""
        request = received.message
        names = ("Via", "From", "To", "Call-ID", "CSeq")
        headers = [(n, v) for n, v in request.headers if n in names]
        received.channel.send(build_message(f"SIP/2.0 {status} {reason}", headers))


# -- a call from the carrier's side ---------------------------------------------


@dataclass
class UacCall:
    """The caller's side of one call: builds the requests, remembers the dialog.

    ``via`` is the sent-by put in Via (``host:port``), ``contact`` the
    Contact URI; both default to the UA's own address.
    """

    ua: SipUA
    router: tuple[str, int]
    number: str = "+14155550100"
    sdp: bytes | None = None
    transport: str = "UDP"
    via: str | None = None
    contact: str | None = None
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    call_id: str = field(default_factory=lambda: f"{secrets.token_hex(8)}@127.0.0.1")
    from_tag: str = field(default_factory=lambda: secrets.token_hex(4))
    branch: str = field(default_factory=lambda: "z9hG4bK-" + secrets.token_hex(8))
    cseq: int = 1
    to_tag: str | None = None
    remote_target: str | None = None
    route_set: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.via is None:
            self.via = f"{self.ua.host}:{self.ua.port}"
        if self.contact is None:
            suffix = ";transport=tcp" if self.transport == "TCP" else ""
            self.contact = f"sip:+14155550111@{self.ua.host}:{self.ua.port}{suffix}"

    @property
    def request_uri(self) -> str:
        """The INVITE's Request-URI."""
        return f"sip:{self.number}@{self.router[0]}:{self.router[1]}"

    def _via(self, branch: str) -> tuple[str, str]:
        return ("Via", f"SIP/2.0/{self.transport} {self.via};branch={branch}")

    def _from(self) -> tuple[str, str]:
        return ("From", f"<sip:+14155550111@{self.ua.host}>;tag={self.from_tag}")

    def _to(self, tag: str | None = None) -> tuple[str, str]:
        value = f"<sip:{self.number}@{self.router[0]}>"
        return ("To", f"{value};tag={tag}" if tag else value)

    def invite(self) -> bytes:
        """The initial INVITE (the same bytes again are a retransmission)."""
        headers = [
            self._via(self.branch),
            ("Max-Forwards", "70"),
            self._from(),
            self._to(),
            ("Call-ID", self.call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<{self.contact}>"),
            ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"),
            *self.extra_headers,
        ]
        if self.sdp is not None:
            headers.append(("Content-Type", "application/sdp"))
        return build_message(
            f"INVITE {self.request_uri} SIP/2.0", headers, self.sdp or b""
        )

    def cancel(self) -> bytes:
        """CANCEL for the initial INVITE: same branch, CSeq number and URI (§9.1)."""
        headers = [
            self._via(self.branch),
            ("Max-Forwards", "70"),
            self._from(),
            self._to(),
            ("Call-ID", self.call_id),
            ("CSeq", "1 CANCEL"),
        ]
        return build_message(f"CANCEL {self.request_uri} SIP/2.0", headers)

    def ack_non_2xx(self, response: SipMessage) -> bytes:
        """ACK for a non-2xx final response: same branch, To from the response."""
        headers = [
            self._via(self.branch),
            ("Max-Forwards", "70"),
            self._from(),
            ("To", response["To"]),
            ("Call-ID", self.call_id),
            ("CSeq", f"{response.cseq[0]} ACK"),
        ]
        return build_message(f"ACK {self.request_uri} SIP/2.0", headers)

    def confirm(self, ok: SipMessage) -> None:
        """Learn the dialog from our INVITE's 2xx (RFC 3261 §12.1.2)."""
        self.to_tag = ok.to_tag
        contact = ok.get("Contact")
        assert contact is not None, "2xx without Contact"
        self.remote_target = uri_of(contact)
        # §12.1.2: the UAC's route set is the Record-Route in reverse order.
        self.route_set = list(reversed(ok.all("Record-Route")))

    def in_dialog(
        self,
        method: str,
        *,
        cseq: int | None = None,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        branch: str | None = None,
    ) -> bytes:
        """An in-dialog request (ACK, BYE, re-INVITE) to the remote target."""
        assert self.remote_target is not None, "call confirm() with the 2xx first"
        if cseq is None and method != "ACK":
            self.cseq += 1
        number = cseq if cseq is not None else self.cseq
        fields = [
            self._via(branch or "z9hG4bK-" + secrets.token_hex(8)),
            ("Max-Forwards", "70"),
            self._from(),
            self._to(self.to_tag),
            ("Call-ID", self.call_id),
            ("CSeq", f"{number} {method}"),
            *[("Route", route) for route in self.route_set],
        ]
        if method == "INVITE":
            fields.append(("Contact", f"<{self.contact}>"))
        fields += headers
        if body:
            fields.append(("Content-Type", "application/sdp"))
        return build_message(f"{method} {self.remote_target} SIP/2.0", fields, body)

    def ack(self, ok: SipMessage, body: bytes = b"") -> bytes:
        """ACK for a 2xx: a new branch and the 2xx's CSeq number (§13.2.2.4)."""
        return self.in_dialog("ACK", cseq=ok.cseq[0], body=body)


# -- SDP ------------------------------------------------------------------------


def sdp_offer(
    port: int,
    *,
    payload_types: str = "0 8 101",
    rtpmaps: Iterable[str] = (
        "0 PCMU/8000",
        "8 PCMA/8000",
        "101 telephone-event/8000",
    ),
    fmtps: Iterable[str] = ("101 0-15",),
    direction: str = "sendrecv",
    version: int = 1,
    host: str = "127.0.0.1",
) -> bytes:
    """An audio offer like a carrier's base INVITE, on ``host``:``port``."""
    lines = [
        "v=0",
        f"o=- 1001 {version} IN IP4 {host}",
        "s=-",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {payload_types}",
        *[f"a=rtpmap:{entry}" for entry in rtpmaps],
        *[f"a=fmtp:{entry}" for entry in fmtps],
        "a=ptime:20",
        f"a={direction}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass
class SdpAnswer:
    """What a test checks in the router's SDP."""

    address: str
    port: int
    payload_types: list[int]
    rtpmaps: dict[int, str]
    direction: str
    origin_version: int
    lines: list[str]


def parse_sdp_answer(body: bytes) -> SdpAnswer:
    """Read the first audio stream of an SDP body."""
    lines = body.decode().splitlines()
    address, port, payload_types, direction, version = "", 0, [], "sendrecv", -1
    rtpmaps: dict[int, str] = {}
    for line in lines:
        kind, _, value = line.partition("=")
        if kind == "c":
            address = value.split()[-1]
        elif kind == "o":
            version = int(value.split()[2])
        elif kind == "m" and value.startswith("audio"):
            parts = value.split()
            port, payload_types = int(parts[1]), [int(pt) for pt in parts[3:]]
        elif kind == "a" and value.startswith("rtpmap:"):
            pt, _, encoding = value[len("rtpmap:") :].partition(" ")
            rtpmaps[int(pt)] = encoding
        elif kind == "a" and value in ("sendrecv", "sendonly", "recvonly", "inactive"):
            direction = value
    return SdpAnswer(address, port, payload_types, rtpmaps, direction, version, lines)


# -- RTP ------------------------------------------------------------------------


@dataclass(frozen=True)
class RtpPacket:
    """One received RTP packet (RFC 3550 §5.1)."""

    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: RtpEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.endpoint.receive(data, (addr[0], addr[1]))


class RtpEndpoint:
    """The caller's media: sends RTP to the router and records what comes back."""

    def __init__(self) -> None:
        self.udp: asyncio.DatagramTransport | None = None
        self.port = 0
        self.target: tuple[str, int] | None = None
        self.received: list[RtpPacket] = []
        self.sources: set[tuple[str, int]] = set()
        self.ssrc = secrets.randbits(32)
        self.sequence = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self._arrived = asyncio.Event()

    @classmethod
    async def start(cls, host: str = "127.0.0.1") -> RtpEndpoint:
        """Bind a UDP port on ``host``."""
        endpoint = cls()
        loop = asyncio.get_running_loop()
        endpoint.udp, _ = await loop.create_datagram_endpoint(
            lambda: _RtpProtocol(endpoint), local_addr=(host, 0)
        )
        endpoint.port = endpoint.udp.get_extra_info("sockname")[1]
        return endpoint

    def close(self) -> None:
        """Close the socket."""
        if self.udp is not None:
            self.udp.close()

    def receive(self, data: bytes, source: tuple[str, int]) -> None:
        """Record one datagram from the router."""
        if len(data) < _RTP_HEADER.size:
            return
        first, second, sequence, timestamp, ssrc = _RTP_HEADER.unpack_from(data)
        header = _RTP_HEADER.size + 4 * (first & 0x0F)
        packet = RtpPacket(
            second & 0x7F, bool(second & 0x80), sequence, timestamp, ssrc, data[header:]
        )
        self.received.append(packet)
        self.sources.add(source)
        self._arrived.set()

    def send(
        self,
        payload: bytes,
        *,
        payload_type: int = 0,
        marker: bool = False,
        timestamp: int | None = None,
        advance: int = 160,
    ) -> None:
        """Send one RTP packet to :attr:`target`, then step sequence and timestamp."""
        assert self.udp is not None and self.target is not None
        self.sequence = (self.sequence + 1) & 0xFFFF
        stamp = self.timestamp if timestamp is None else timestamp
        header = _RTP_HEADER.pack(
            0x80,
            (0x80 if marker else 0) | payload_type,
            self.sequence,
            stamp,
            self.ssrc,
        )
        self.udp.sendto(header + payload, self.target)
        if timestamp is None:
            self.timestamp = (self.timestamp + advance) & 0xFFFFFFFF

    async def wait_for(
        self,
        condition: Callable[[list[RtpPacket]], bool],
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Wait until ``condition(self.received)`` holds.

        Raises:
            AssertionError: it did not hold within ``timeout`` seconds.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition(self.received):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(
                    f"RTP condition not met in {timeout}s ({len(self.received)} packets)"
                )
            await _wait_set(self._arrived, remaining)


async def _wait_set(event: asyncio.Event, timeout: float) -> None:
    """Clear ``event`` and wait up to ``timeout`` seconds for it to be set again."""
    event.clear()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


async def wait_until(
    condition: Callable[[], bool],
    timeout: float = DEFAULT_TIMEOUT,
    what: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition`` every 10 ms until it holds.

    Raises:
        AssertionError: it did not hold within ``timeout`` seconds; ``what()``
            describes the state then.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            state = what() if what is not None else repr(condition)
            raise AssertionError(f"not true within {timeout}s: {state}")
        await asyncio.sleep(0.01)


async def place_call(
    call: UacCall, rtp: RtpEndpoint | None = None, *, timeout: float = DEFAULT_TIMEOUT
) -> SipMessage:
    """Send the INVITE, wait for its 200, ACK it; point ``rtp`` at the answer.

    Returns the 200. The channel is the UA's UDP socket unless the call runs
    over TCP, where the caller sends the INVITE itself.
    """
    channel = Channel(call.ua, call.router)
    channel.send(call.invite())
    ok = await call.ua.response(200, timeout=timeout)
    call.confirm(ok)
    if rtp is not None and ok.body:
        answer = parse_sdp_answer(ok.body)
        rtp.target = (answer.address, answer.port)
    channel.send(call.ack(ok))
    return ok


async def expect_rejection(call: UacCall) -> SipMessage:
    """Send the INVITE, wait for a final non-2xx response and ACK it (§17.1.1.3)."""
    channel = Channel(call.ua, call.router)
    channel.send(call.invite())
    final = await call.ua.expect(lambda m: m.status >= 300 and m.method == "INVITE")
    channel.send(call.ack_non_2xx(final.message))
    return final.message


# -- a recognisable audio pattern ------------------------------------------------

# μ-law values 0x10-0x6F: loud enough to be speech, never 0xFF (silence), so
# echoed frames can be told apart from the router's filler and counted.
_PATTERN_FIRST = 0x10
_PATTERN_VALUES = 0x60


def voice_frame(index: int) -> bytes:
    """Frame ``index`` of the test pattern: 160 bytes (20 ms) of one μ-law value."""
    return bytes([_PATTERN_FIRST + index % _PATTERN_VALUES]) * 160


def is_voice(payload: bytes) -> bool:
    """True for a frame of the test pattern."""
    return (
        len(payload) == 160
        and len(set(payload)) == 1
        and _PATTERN_FIRST <= payload[0] < _PATTERN_FIRST + _PATTERN_VALUES
    )


def voice_payloads(packets: Iterable[RtpPacket]) -> list[bytes]:
    """The payloads of the test-pattern frames among ``packets``, in order."""
    return [packet.payload for packet in packets if is_voice(packet.payload)]
