"""Parsing an SDP body as carriers send it (RFC 4566 §5).

Tolerant where carriers differ (LF-only line ends, blank lines, unknown line types),
strict where a mistake would travel into our answer (CR or NUL inside a line) or
leave a stream without an address.
"""

from __future__ import annotations

from .model import (
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
    is_number,
    is_payload_type,
    parse_rtpmap,
)

__all__ = ["parse_sdp"]

# RFC 4566 §5: line types in the order a description writes them.
_SESSION_ORDER = "vosiuepcbtrzka"
_MEDIA_ORDER = "micbka"

_RTP_PROTOCOLS = ("RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF")


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
    if len(parts) != 6 or not all(is_number(part) for part in parts[1:3]):
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
    if len(parts) != 2 or not all(is_number(part) for part in parts):
        raise SdpError("Bad SDP: bad t= line", repr(value[:60]))
    return int(parts[0]), int(parts[1])


def _parse_attribute(value: str) -> Attribute:
    # RFC 4566 §5.13: a=<attribute> or a=<attribute>:<value>
    name, colon, rest = value.partition(":")
    if not name:
        raise SdpError("Bad SDP: bad a= line", repr(value[:60]))
    if name == "rtpmap" and parse_rtpmap(rest) is None:
        raise SdpError("Bad SDP: bad rtpmap attribute", repr(value[:60]))
    return name, rest if colon else None


def _parse_media_line(value: str) -> MediaDescription:
    # RFC 4566 §5.14: m=<media> <port>[/<number of ports>] <proto> <fmt> ...
    parts = value.split()
    if len(parts) < 3:
        raise SdpError("Bad SDP: bad m= line", repr(value[:60]))
    port_text, slash, count_text = parts[1].partition("/")
    if not is_number(port_text) or int(port_text) > 65535:
        raise SdpError("Bad SDP: bad m= line", f"bad port {parts[1][:12]!r}")
    if slash and not is_number(count_text):
        raise SdpError("Bad SDP: bad m= line", f"bad port count {parts[1][:12]!r}")
    formats = parts[3:]
    # RFC 4566 §5.14: for RTP profiles the formats are payload type numbers.
    if parts[2].upper() in _RTP_PROTOCOLS and not all(
        is_payload_type(f) for f in formats
    ):
        raise SdpError("Bad SDP: bad m= line", "format is not a payload type")
    return MediaDescription(
        media=parts[0],
        port=int(port_text),
        proto=parts[2],
        formats=formats,
        port_count=int(count_text) if slash else None,
    )
