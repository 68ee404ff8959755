"""SDP session descriptions and offer/answer (RFC 4566, RFC 3264).

:func:`parse_sdp` reads what carriers send (tolerating LF-only line ends and
lines it does not know) and :meth:`SessionDescription.serialise` writes it
back. :func:`negotiate_answer` answers an offer with the one audio stream we
handle, G.711 (PCMU or PCMA) plus RFC 4733 telephone-event; :func:`build_offer`
and :func:`negotiate_from_answer` cover the late-offer case, where our 200
carries the offer and the ACK the answer (RFC 3261 §13.2.1).

The result of either exchange is a :class:`NegotiatedAudio`, which is all the
media layer needs to know.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from router.sip.errors import SipParseError

__all__ = [
    "DEFAULT_PTIME",
    "DIRECTIONS",
    "STATIC_PAYLOAD_TYPES",
    "Connection",
    "MediaDescription",
    "NegotiatedAudio",
    "NoCommonCodec",
    "Origin",
    "SdpError",
    "SessionDescription",
    "build_offer",
    "negotiate_answer",
    "negotiate_from_answer",
    "parse_sdp",
]

Attribute = tuple[str, str | None]
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

# RFC 3264 §6.1: the answerer's direction mirrors the offerer's.
_MIRRORED = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}

# RFC 3551 §4.5: G.711 is sent in 20 ms packets unless ptime says otherwise.
DEFAULT_PTIME = 20

# RFC 4733 §2.4.1: events 0-15 are the DTMF digits 0-9, *, #, A-D.
DEFAULT_DTMF_EVENTS = "0-15"

# Our offer's telephone-event payload type: the de facto common dynamic value.
OFFER_DTMF_PAYLOAD_TYPE = 101

G711_CLOCK_RATE = 8000

# RFC 4566 §5.14: RTP payload types are 0-127 (7 bits in the RTP header).
MAX_PAYLOAD_TYPE = 127

# RFC 4566 §5: line types in the order a description writes them.
_SESSION_ORDER = "vosiuepcbtrzka"
_MEDIA_ORDER = "micbka"

_RTP_PROTOCOLS = ("RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF")


class SdpError(SipParseError):
    """A session description that cannot be parsed or used.

    Its ``reason`` starts with ``"Bad SDP: "`` and names the problem.
    """


class NoCommonCodec(SdpError):
    """The offer has no audio stream we can take: answer 488 (RFC 3264 §6)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("No common codec", detail, status=488)


@dataclass(frozen=True)
class NegotiatedAudio:
    """The audio stream agreed with the caller in one offer/answer exchange.

    Attributes:
        payload_type: RTP payload type of the voice codec: 0 for PCMU, 8 for PCMA,
            or a dynamic payload type mapped to one of them.
        codec: ``"PCMU"`` or ``"PCMA"``.
        dtmf_payload_type: payload type of telephone-event (RFC 4733) the caller
            offered, e.g. 101 or 96; ``None`` when it offered none.
        remote_address: the caller's ``c=`` address; ``"0.0.0.0"`` is the
            old-style hold of RFC 2543 (send nothing).
        remote_port: the caller's RTP port from the ``m=`` line.
        direction: OUR direction: ``sendrecv``, ``sendonly``, ``recvonly`` or
            ``inactive``.
        ptime: packetisation time in milliseconds (20).
    """

    payload_type: int
    codec: str
    dtmf_payload_type: int | None
    remote_address: str
    remote_port: int
    direction: str
    ptime: int


# -- the description ----------------------------------------------------------------


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
                entry = _parse_rtpmap(value)
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
                if _is_payload_type(payload):
                    params.setdefault(int(payload), rest.strip())
        return params

    def payload_types(self) -> list[int]:
        """The formats that are RTP payload types, in order."""
        return [int(fmt) for fmt in self.formats if _is_payload_type(fmt)]

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
        return int(whole) if _is_number(whole) else None

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


def _is_payload_type(text: str) -> bool:
    return (
        text.isascii()
        and text.isdigit()
        and len(text) <= 3
        and int(text) <= MAX_PAYLOAD_TYPE
    )


def _parse_rtpmap(value: str) -> tuple[int, RtpMap] | None:
    """Parse ``<pt> <name>/<clock>[/<channels>]``, or return None if malformed."""
    payload, _, encoding = value.strip().partition(" ")
    parts = encoding.strip().split("/")
    if not _is_payload_type(payload) or len(parts) not in (2, 3) or not parts[0]:
        return None
    numbers = parts[1:]
    if not all(
        number.isascii() and number.isdigit() and len(number) <= 9 for number in numbers
    ):
        return None
    channels = int(numbers[1]) if len(numbers) == 2 else 1
    return int(payload), (parts[0].upper(), int(numbers[0]), channels)


# -- parsing -------------------------------------------------------------------------


def parse_sdp(body: bytes) -> SessionDescription:
    """Parse an SDP body.

    Tolerates LF-only line ends, blank lines and line types it does not know.

    Raises:
        SdpError: reason ``"Bad SDP: ..."`` naming the problem: no ``v=0``
            first, a malformed ``o=``, ``c=``, ``t=``, ``m=`` or rtpmap line,
            or an active stream without a connection address.
    """
    text = body.decode("utf-8", "surrogateescape")
    lines = [line.strip(" \t\r") for line in text.split("\n")]
    parsed = [_split_line(line) for line in lines if line]
    if not parsed or parsed[0] != ("v", "0"):
        raise SdpError("Bad SDP: missing v=0 line")
    builder = _Builder()
    for kind, value in parsed[1:]:
        builder.add(kind, value)
    return builder.finish()


def _split_line(line: str) -> tuple[str, str]:
    # RFC 4566 §5: <type>=<value>, where <type> is exactly one letter.
    if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
        raise SdpError("Bad SDP: malformed line", repr(line[:40]))
    # RFC 4566 §5: values never hold CR, LF or NUL. A stray CR would travel
    # into our answer when an fmtp value is echoed.
    if "\r" in line or "\x00" in line:
        raise SdpError("Bad SDP: malformed line", "CR or NUL inside a line")
    return line[0], line[2:]


class _Builder:
    """Collects lines into a SessionDescription, session level then media level."""

    def __init__(self) -> None:
        self.origin: Origin | None = None
        self.session_name = ""
        self.connection: Connection | None = None
        self.times: list[tuple[int, int]] = []
        self.attributes: list[Attribute] = []
        self.other_lines: list[tuple[str, str]] = []
        self.media: list[MediaDescription] = []

    def add(self, kind: str, value: str) -> None:
        if kind == "m":
            self.media.append(_parse_media_line(value))
        elif self.media:
            self._add_media_line(self.media[-1], kind, value)
        else:
            self._add_session_line(kind, value)

    def _add_session_line(self, kind: str, value: str) -> None:
        if kind == "o":
            if self.origin is not None:
                raise SdpError("Bad SDP: more than one o= line")
            self.origin = _parse_origin(value)
        elif kind == "s":
            self.session_name = value
        elif kind == "c":
            self.connection = _parse_connection(value)
        elif kind == "t":
            self.times.append(_parse_time(value))
        elif kind == "a":
            self.attributes.append(_parse_attribute(value))
        elif kind in _SESSION_ORDER:
            self.other_lines.append((kind, value))
        # RFC 4566 §5: unknown line types are ignored.

    @staticmethod
    def _add_media_line(media: MediaDescription, kind: str, value: str) -> None:
        if kind == "c":
            media.connection = _parse_connection(value)
        elif kind == "a":
            media.attributes.append(_parse_attribute(value))
        elif kind in _MEDIA_ORDER:
            media.other_lines.append((kind, value))

    def finish(self) -> SessionDescription:
        if self.origin is None:
            raise SdpError("Bad SDP: missing o= line")
        for media in self.media:
            # RFC 4566 §5.7: every stream needs a c= at media or session level.
            if media.port != 0 and media.connection is None and self.connection is None:
                raise SdpError("Bad SDP: missing c= line")
        return SessionDescription(
            version=0,
            origin=self.origin,
            session_name=self.session_name,
            connection=self.connection,
            times=self.times,
            attributes=self.attributes,
            media=self.media,
            other_lines=self.other_lines,
        )


def _parse_origin(value: str) -> Origin:
    # RFC 4566 §5.2: o=<username> <sess-id> <sess-version> <nettype> <addrtype>
    #                  <unicast-address>
    parts = value.split()
    if len(parts) != 6 or not all(_is_number(part) for part in parts[1:3]):
        raise SdpError("Bad SDP: bad o= line", repr(value[:60]))
    return Origin(parts[0], int(parts[1]), int(parts[2]), parts[3], parts[4], parts[5])


def _parse_connection(value: str) -> Connection:
    # RFC 4566 §5.7: c=<nettype> <addrtype> <connection-address>
    parts = value.split()
    if len(parts) != 3:
        raise SdpError("Bad SDP: bad c= line", repr(value[:60]))
    return Connection(parts[0], parts[1].upper(), parts[2])


def _parse_time(value: str) -> tuple[int, int]:
    # RFC 4566 §5.9: t=<start-time> <stop-time>, NTP seconds or 0.
    parts = value.split()
    if len(parts) != 2 or not all(_is_number(part) for part in parts):
        raise SdpError("Bad SDP: bad t= line", repr(value[:60]))
    return int(parts[0]), int(parts[1])


def _parse_attribute(value: str) -> Attribute:
    # RFC 4566 §5.13: a=<attribute> or a=<attribute>:<value>
    name, colon, rest = value.partition(":")
    if not name:
        raise SdpError("Bad SDP: bad a= line", repr(value[:60]))
    if name == "rtpmap" and _parse_rtpmap(rest) is None:
        raise SdpError("Bad SDP: bad rtpmap attribute", repr(value[:60]))
    return name, rest if colon else None


def _parse_media_line(value: str) -> MediaDescription:
    # RFC 4566 §5.14: m=<media> <port>[/<number of ports>] <proto> <fmt> ...
    parts = value.split()
    if len(parts) < 3:
        raise SdpError("Bad SDP: bad m= line", repr(value[:60]))
    port_text, slash, count_text = parts[1].partition("/")
    if not _is_number(port_text) or int(port_text) > 65535:
        raise SdpError("Bad SDP: bad m= line", f"bad port {parts[1][:12]!r}")
    if slash and not _is_number(count_text):
        raise SdpError("Bad SDP: bad m= line", f"bad port count {parts[1][:12]!r}")
    formats = parts[3:]
    # RFC 4566 §5.14: for RTP profiles the formats are payload type numbers.
    if parts[2].upper() in _RTP_PROTOCOLS and not all(
        _is_payload_type(f) for f in formats
    ):
        raise SdpError("Bad SDP: bad m= line", "format is not a payload type")
    return MediaDescription(
        media=parts[0],
        port=int(port_text),
        proto=parts[2],
        formats=formats,
        port_count=int(count_text) if slash else None,
    )


def _is_number(text: str) -> bool:
    # Bounded so a hostile "o=" cannot make int() chew through thousands of digits.
    return text.isascii() and text.isdigit() and len(text) <= 20


# -- offer/answer ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Choice:
    """What we take from one offered audio stream."""

    payload_type: int
    codec: str
    dtmf_payload_type: int | None
    dtmf_events: str


def negotiate_answer(
    offer: SessionDescription,
    *,
    local_address: str,
    local_port: int,
    session_id: int,
    session_version: int,
    supported: Iterable[str] = ("PCMU", "PCMA"),
) -> tuple[SessionDescription, NegotiatedAudio]:
    """Answer `offer` with one G.711 audio stream (RFC 3264 §6).

    Takes the first audio stream with a non-zero port whose formats include
    one of `supported` at 8000 Hz, choosing the first such format in the
    offer's order (§6.1), plus telephone-event/8000 when offered. Every other
    stream is rejected with port 0, so the answer has as many ``m=`` lines as
    the offer (§6). Our direction mirrors the offer's (§6.1).

    Raises:
        NoCommonCodec: when no offered audio stream has a codec we support.
    """
    names = {name.upper() for name in supported}
    chosen = next(
        (
            (index, choice)
            for index, media in enumerate(offer.media)
            if (choice := _choose_audio(media, names)) is not None
        ),
        None,
    )
    if chosen is None:
        raise NoCommonCodec("no audio stream offers " + "/".join(sorted(names)))
    index, choice = chosen
    offered = offer.media[index]
    direction = _MIRRORED[offered.direction]
    answer = SessionDescription(
        version=0,
        origin=_our_origin(local_address, session_id, session_version),
        session_name="-",
        connection=Connection.for_address(local_address),
        # RFC 3264 §6: the t= line of the answer equals the offer's.
        times=list(offer.times) or [(0, 0)],
        attributes=[],
        media=[
            _answer_media(choice, local_port, direction)
            if i == index
            else _rejected(media)
            for i, media in enumerate(offer.media)
        ],
    )
    return answer, _negotiated(offer, offered, choice, direction)


def _choose_audio(media: MediaDescription, names: set[str]) -> _Choice | None:
    """Pick codec and telephone-event from one offered stream, or None."""
    if media.media != "audio" or media.port == 0 or media.proto.upper() != "RTP/AVP":
        return None
    rtpmap = media.rtpmap()
    voice = next(
        (pt for pt in media.payload_types() if _is_g711(rtpmap.get(pt), names)), None
    )
    if voice is None:
        return None
    dtmf = next(
        (pt for pt in media.payload_types() if _is_telephone_event(rtpmap.get(pt))),
        None,
    )
    events = media.fmtp().get(dtmf, DEFAULT_DTMF_EVENTS) if dtmf is not None else ""
    return _Choice(voice, rtpmap[voice][0], dtmf, events or DEFAULT_DTMF_EVENTS)


def _is_g711(entry: RtpMap | None, names: set[str]) -> bool:
    return entry is not None and entry[0] in names and entry[1:] == (G711_CLOCK_RATE, 1)


def _is_telephone_event(entry: RtpMap | None) -> bool:
    return (
        entry is not None
        and entry[0] == "TELEPHONE-EVENT"
        and entry[1] == G711_CLOCK_RATE
    )


def _our_origin(local_address: str, session_id: int, session_version: int) -> Origin:
    connection = Connection.for_address(local_address)
    return Origin(
        "-", session_id, session_version, "IN", connection.addrtype, local_address
    )


def _answer_media(choice: _Choice, local_port: int, direction: str) -> MediaDescription:
    # CN (payload type 13) and every other format are left out on purpose:
    # the media layer handles G.711 and telephone-event only.
    formats = [str(choice.payload_type)]
    attributes: list[Attribute] = [
        ("rtpmap", f"{choice.payload_type} {choice.codec}/{G711_CLOCK_RATE}")
    ]
    if choice.dtmf_payload_type is not None:
        dtmf = choice.dtmf_payload_type
        formats.append(str(dtmf))
        attributes += [
            ("rtpmap", f"{dtmf} telephone-event/{G711_CLOCK_RATE}"),
            ("fmtp", f"{dtmf} {choice.dtmf_events}"),
        ]
    attributes += [("ptime", str(DEFAULT_PTIME)), (direction, None)]
    return MediaDescription("audio", local_port, "RTP/AVP", formats, None, attributes)


def _rejected(media: MediaDescription) -> MediaDescription:
    # RFC 3264 §6: a rejected stream keeps its m= line with port 0 and at
    # least one format.
    return MediaDescription(media.media, 0, media.proto, list(media.formats) or ["0"])


def _negotiated(
    session: SessionDescription,
    media: MediaDescription,
    choice: _Choice,
    direction: str,
) -> NegotiatedAudio:
    connection = session.connection_for(media)
    if connection is None:  # parse_sdp guarantees one for an active stream
        raise SdpError("Bad SDP: missing c= line")
    return NegotiatedAudio(
        payload_type=choice.payload_type,
        codec=choice.codec,
        dtmf_payload_type=choice.dtmf_payload_type,
        # RFC 3264 §8.4: "0.0.0.0" (old-style hold) is kept; the media layer
        # sends nothing to it.
        remote_address=connection.address.partition("/")[0],
        remote_port=media.port,
        direction=direction,
        ptime=media.ptime or DEFAULT_PTIME,
    )


def build_offer(
    *, local_address: str, local_port: int, session_id: int, session_version: int
) -> SessionDescription:
    """Return our offer for a late-offer INVITE: PCMU, PCMA, telephone-event 101."""
    dtmf = OFFER_DTMF_PAYLOAD_TYPE
    media = MediaDescription(
        media="audio",
        port=local_port,
        proto="RTP/AVP",
        formats=["0", "8", str(dtmf)],
        attributes=[
            ("rtpmap", f"0 PCMU/{G711_CLOCK_RATE}"),
            ("rtpmap", f"8 PCMA/{G711_CLOCK_RATE}"),
            ("rtpmap", f"{dtmf} telephone-event/{G711_CLOCK_RATE}"),
            ("fmtp", f"{dtmf} {DEFAULT_DTMF_EVENTS}"),
            ("ptime", str(DEFAULT_PTIME)),
            ("sendrecv", None),
        ],
    )
    return SessionDescription(
        version=0,
        origin=_our_origin(local_address, session_id, session_version),
        session_name="-",
        connection=Connection.for_address(local_address),
        times=[(0, 0)],
        attributes=[],
        media=[media],
    )


def negotiate_from_answer(
    offer: SessionDescription,
    answer: SessionDescription,
    *,
    supported: Iterable[str] = ("PCMU", "PCMA"),
) -> NegotiatedAudio:
    """Read the caller's answer to our `offer` (the ACK of a late-offer call).

    Raises:
        SdpError: when the answer does not have one ``m=`` line per offered one
            (RFC 3264 §6).
        NoCommonCodec: when the answer rejects our audio stream or picks a
            codec we did not offer.
    """
    if len(answer.media) != len(offer.media):
        raise SdpError("Bad SDP: answer does not match offer", "m= line count differs")
    names = {name.upper() for name in supported}
    for ours, theirs in zip(offer.media, answer.media, strict=True):
        if ours.media != "audio" or ours.port == 0 or theirs.port == 0:
            continue
        choice = _choose_audio(theirs, names)
        if choice is not None and str(choice.payload_type) in ours.formats:
            return _negotiated(answer, theirs, choice, _MIRRORED[theirs.direction])
    raise NoCommonCodec("the answer accepts none of our audio formats")
