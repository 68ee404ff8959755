"""The SDP session description: its lines as data, and writing it back (RFC 4566).

A :class:`SessionDescription` keeps every line it was parsed from, in order, so that
what we do not use is written back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from router.sip.errors import SipParseError

__all__ = [
    "DIRECTIONS",
    "MAX_PAYLOAD_TYPE",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Connection",
    "MediaDescription",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "is_number",
    "is_payload_type",
    "parse_rtpmap",
]

# An a= line: its name, and its value (None for a flag such as a=sendrecv).
Attribute = tuple[str, str | None]
# An rtpmap entry: ENCODING NAME (upper case), clock rate, channels.
RtpMap = tuple[str, int, int]

# RFC 3551 §6, Table 4: audio payload types with a static meaning, used when an
# offer lists one without an a=rtpmap line.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1),
    7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    12: ("QCELP", 8000, 1),
    13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1),
    15: ("G728", 8000, 1),
    16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
}

# RFC 4566 §6: the four direction attributes; sendrecv when none is given.
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

# RFC 4566 §5.14: RTP payload types are 0-127 (7 bits in the RTP header).
MAX_PAYLOAD_TYPE = 127


class SdpError(SipParseError):
    """A session description that cannot be parsed or used.

    Its ``reason`` starts with ``"Bad SDP: "`` and names the problem.
    """


@dataclass
class Origin:
    """The ``o=`` line (RFC 4566 §5.2)."""

    username: str
    session_id: int
    session_version: int
    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass
class Connection:
    """A ``c=`` line (RFC 4566 §5.7); `address` keeps any ``/ttl`` suffix."""

    nettype: str
    addrtype: str
    address: str

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """Return ``IN IP4 address`` or ``IN IP6 address`` as the address needs."""
        return cls("IN", "IP6" if ":" in address else "IP4", address)

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass
class MediaDescription:
    """One ``m=`` section (RFC 4566 §5.14) with its own lines.

    Attributes:
        media: ``"audio"``, ``"video"`` ...
        port: the transport port; 0 marks a rejected or disabled stream.
        proto: ``"RTP/AVP"`` ...
        formats: the formats (payload types for RTP) in preference order.
        connection: the media-level ``c=``, or None to use the session's.
        attributes: the ``a=`` lines as (name, value or None), in order.
        port_count: the ``/<number of ports>`` suffix, rarely used.
        other_lines: ``i=``, ``b=`` and ``k=`` lines as (type, value).
        session_direction: the session-level direction, filled in by
            :class:`SessionDescription`, used when this section has none.
    """

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: Connection | None = None
    attributes: list[Attribute] = field(default_factory=list)
    port_count: int | None = None
    other_lines: list[tuple[str, str]] = field(default_factory=list)
    session_direction: str = field(default="sendrecv", repr=False, compare=False)

    def attribute(self, name: str) -> str | None:
        """Return the value of the first ``a=name`` line ("" for a flag), or None."""
        for key, value in self.attributes:
            if key == name:
                return value or ""
        return None

    def rtpmap(self) -> dict[int, RtpMap]:
        """Map payload type to (ENCODING NAME upper-cased, clock rate, channels).

        Static payload types listed in the formats without an ``a=rtpmap`` line
        get their RFC 3551 meaning; malformed rtpmap lines are skipped.
        """
        mapping: dict[int, RtpMap] = {}
        for name, value in self.attributes:
            if name == "rtpmap" and value:
                entry = parse_rtpmap(value)
                if entry is not None:
                    mapping.setdefault(entry[0], entry[1])
        for payload_type in self.payload_types():
            if payload_type not in mapping and payload_type in STATIC_PAYLOAD_TYPES:
                mapping[payload_type] = STATIC_PAYLOAD_TYPES[payload_type]
        return mapping

    def fmtp(self) -> dict[int, str]:
        """Map payload type to its ``a=fmtp`` parameters."""
        params: dict[int, str] = {}
        for name, value in self.attributes:
            if name == "fmtp" and value:
                payload, _, rest = value.partition(" ")
                if is_payload_type(payload):
                    params.setdefault(int(payload), rest.strip())
        return params

    def payload_types(self) -> list[int]:
        """The formats that are RTP payload types, in order."""
        return [int(fmt) for fmt in self.formats if is_payload_type(fmt)]

    @property
    def direction(self) -> str:
        """sendrecv, sendonly, recvonly or inactive; media level overrides session."""
        for name, _ in self.attributes:
            if name in DIRECTIONS:
                return name
        return self.session_direction

    @property
    def ptime(self) -> int | None:
        """The ``a=ptime`` value in whole milliseconds, or None."""
        value = self.attribute("ptime")
        if not value:
            return None
        whole = value.strip().partition(".")[0]
        return int(whole) if is_number(whole) else None

    def lines(self) -> list[str]:
        """Return this section as SDP lines, without line ends."""
        port = (
            str(self.port)
            if self.port_count is None
            else f"{self.port}/{self.port_count}"
        )
        out = [f"m={' '.join([self.media, port, self.proto, *self.formats])}"]
        extras = {
            kind: [value for k, value in self.other_lines if k == kind]
            for kind in "ibk"
        }
        out += [f"i={value}" for value in extras["i"]]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"b={value}" for value in extras["b"]]
        out += [f"k={value}" for value in extras["k"]]
        out += [_attribute_line(name, value) for name, value in self.attributes]
        return out


@dataclass
class SessionDescription:
    """A whole SDP body (RFC 4566 §5).

    Attributes:
        version: the ``v=`` value (always 0).
        origin: the ``o=`` line.
        session_name: the ``s=`` value.
        connection: the session-level ``c=``, or None.
        times: the ``t=`` lines as (start, stop).
        attributes: the session-level ``a=`` lines as (name, value or None).
        media: the ``m=`` sections in order.
        other_lines: other session-level lines (``i= u= e= p= b= r= z= k=``).
    """

    version: int
    origin: Origin
    session_name: str
    connection: Connection | None
    times: list[tuple[int, int]]
    attributes: list[Attribute]
    media: list[MediaDescription]
    other_lines: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        direction = self.direction
        for media in self.media:
            media.session_direction = direction

    @property
    def direction(self) -> str:
        """The session-level direction attribute, sendrecv when there is none."""
        for name, _ in self.attributes:
            if name in DIRECTIONS:
                return name
        return "sendrecv"

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The ``c=`` that applies to `media`: its own, else the session's."""
        return media.connection or self.connection

    def serialise(self) -> bytes:
        """Return the description as bytes with CRLF line ends (RFC 4566 §5)."""
        lines = [
            f"v={self.version}",
            f"o={self.origin}",
            f"s={self.session_name or '-'}",
        ]
        extras = self._other_lines_by_type()
        lines += [
            f"{kind}={value}" for kind in "iuep" for value in extras.get(kind, [])
        ]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += [f"b={value}" for value in extras.get("b", [])]
        lines += [f"t={start} {stop}" for start, stop in self.times or [(0, 0)]]
        lines += [f"{kind}={value}" for kind in "rzk" for value in extras.get(kind, [])]
        lines += [_attribute_line(name, value) for name, value in self.attributes]
        for media in self.media:
            lines += media.lines()
        return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")

    def _other_lines_by_type(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for kind, value in self.other_lines:
            grouped.setdefault(kind, []).append(value)
        return grouped


def _attribute_line(name: str, value: str | None) -> str:
    return f"a={name}" if value is None else f"a={name}:{value}"


def is_payload_type(text: str) -> bool:
    """Return whether ``text`` is an RTP payload type number, 0 to 127."""
    return (
        text.isascii()
        and text.isdigit()
        and len(text) <= 3
        and int(text) <= MAX_PAYLOAD_TYPE
    )


def parse_rtpmap(value: str) -> tuple[int, RtpMap] | None:
    """Parse ``<pt> <name>/<clock>[/<channels>]``, or return None if malformed."""
    payload, _, encoding = value.strip().partition(" ")
    parts = encoding.strip().split("/")
    if not is_payload_type(payload) or len(parts) not in (2, 3) or not parts[0]:
        return None
    numbers = parts[1:]
    if not all(
        number.isascii() and number.isdigit() and len(number) <= 9 for number in numbers
    ):
        return None
    channels = int(numbers[1]) if len(numbers) == 2 else 1
    return int(payload), (parts[0].upper(), int(numbers[0]), channels)


def is_number(text: str) -> bool:
    """Return whether ``text`` is a number of at most 20 ASCII digits."""
    # Bounded so a hostile "o=" cannot make int() chew through thousands of digits.
    return text.isascii() and text.isdigit() and len(text) <= 20
