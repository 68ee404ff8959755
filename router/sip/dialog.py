"""UAS dialog state (RFC 3261 §12) and in-dialog requests we send.

A :class:`Dialog` is created when we answer an INVITE with a 2xx. It records
what §12.1.1 says a UAS must remember: Call-ID, both tags, the remote target
(the caller's Contact), the route set (the INVITE's Record-Route, in order) and
both CSeq spaces. It builds our in-dialog requests (BYE) and checks the CSeq of
the caller's in-dialog requests (§12.2.2). Session timers (RFC 4028) are
negotiated here too. Sans-I/O: no sockets, no clock reads.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field

from router.sip.errors import SipParseError
from router.sip.message import Headers, Request
from router.sip.name_address import parse_name_address
from router.sip.transaction import new_branch
from router.sip.uri import SipUri, TelUri, parse_uri

__all__ = [
    "MIN_SESSION_EXPIRES",
    "Dialog",
    "DialogError",
    "SessionTimer",
    "new_tag",
    "next_hop",
]

# RFC 4028 §4: Min-SE may not be below 90 s; we use it as our own minimum.
MIN_SESSION_EXPIRES = 90


def new_tag() -> str:
    """Return a fresh From/To tag (RFC 3261 §19.3: at least 32 random bits)."""
    return secrets.token_hex(8)


class DialogError(Exception):
    """An in-dialog request that the dialog rejects; ``status`` is the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class Refresher(enum.Enum):
    """Who refreshes the session (RFC 4028 §7)."""

    UAC = "uac"
    UAS = "uas"


@dataclass
class SessionTimer:
    """RFC 4028 session timer negotiated on an INVITE or re-INVITE."""

    interval: int
    refresher: Refresher

    @classmethod
    def from_request(cls, request: Request) -> SessionTimer | None:
        """Read ``Session-Expires`` from a request; None when it has none.

        Raises:
            DialogError: 422 when the interval is below our minimum (§6).
        """
        value = request.headers.get("Session-Expires")
        if value is None:
            return None
        parts = [p.strip() for p in value.split(";")]
        try:
            interval = int(parts[0])
        except ValueError:
            raise DialogError(400, "Bad Session-Expires header") from None
        if interval < MIN_SESSION_EXPIRES:
            raise DialogError(422, "Session Interval Too Small")
        refresher = Refresher.UAC
        for param in parts[1:]:
            if param.lower() == "refresher=uas":
                refresher = Refresher.UAS
        # RFC 4028 §9: the UAC may leave the choice to us; we let it refresh,
        # since a router that sends re-INVITEs would need its own offer.
        return cls(interval, refresher)

    def header_value(self) -> str:
        """The ``Session-Expires`` value for our 2xx (§9)."""
        return f"{self.interval};refresher={self.refresher.value}"


@dataclass
class Dialog:
    """A confirmed or early dialog in which we are the UAS."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    route_set: list[str]
    remote_cseq: int
    transport: str
    local_cseq: int = field(default_factory=lambda: secrets.randbelow(2**16) + 1)
    session_timer: SessionTimer | None = None

    @classmethod
    def from_invite(cls, invite: Request, local_tag: str, transport: str) -> Dialog:
        """Build the UAS side of a dialog from the INVITE we answer (§12.1.1).

        Raises:
            SipParseError: when the INVITE lacks a usable Contact.
        """
        contact = invite.contact
        if contact is None:
            raise SipParseError("Missing Contact header")
        cseq_number, _ = invite.cseq
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=invite.from_tag or "",
            local_uri=parse_name_address(invite.headers.get("To") or "").uri,
            remote_uri=invite.from_.uri,
            remote_target=contact.uri,
            route_set=invite.headers.get_all("Record-Route"),
            remote_cseq=cseq_number,
            transport=transport,
        )

    @property
    def key(self) -> tuple[str, str, str]:
        """Dialog ID (§12): Call-ID, local tag, remote tag."""
        return (self.call_id, self.local_tag, self.remote_tag)

    def check_remote_cseq(self, request: Request) -> None:
        """Accept an in-dialog request's CSeq or raise (§12.2.2).

        Raises:
            DialogError: 500 when the CSeq is lower than the last one seen.
        """
        cseq_number, _ = request.cseq
        if request.method in ("ACK", "CANCEL"):
            return
        if cseq_number < self.remote_cseq:
            raise DialogError(500, "CSeq out of order")
        self.remote_cseq = cseq_number

    def update_target(self, request: Request) -> None:
        """A target refresh request (re-INVITE) may change the remote target."""
        contact = request.contact
        if contact is not None:
            self.remote_target = contact.uri

    def build_request(
        self,
        method: str,
        *,
        via_host: str,
        via_port: int,
        contact: str | None = None,
        transport: str | None = None,
    ) -> Request:
        """Build an in-dialog request such as BYE (§12.2.1.1).

        ``transport`` is the one the request will go over, which Via must name
        (§18.1.1); it defaults to the transport the dialog was set up on.
        """
        self.local_cseq += 1
        headers = Headers()
        transport = transport or self.transport
        headers.add(
            "Via",
            f"SIP/2.0/{transport} {_host_port(via_host, via_port)};branch={new_branch()};rport",
        )
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{self.local_uri}>;tag={self.local_tag}")
        headers.add("To", f"<{self.remote_uri}>;tag={self.remote_tag}")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.local_cseq} {method}")
        request_uri, routes = self._request_uri_and_routes()
        for route in routes:
            headers.add("Route", route)
        if contact is not None:
            headers.add("Contact", contact)
        return Request(method=method, uri=request_uri, headers=headers, body=b"")

    def _request_uri_and_routes(self) -> tuple[str, list[str]]:
        # §12.2.1.1: with a loose-routing first hop the Request-URI is the
        # remote target and the route set goes in Route; with a strict router
        # the first route becomes the Request-URI and the target goes last.
        if not self.route_set:
            return self.remote_target, []
        first = parse_name_address(self.route_set[0])
        if "lr" in _uri_params(first.uri):
            return self.remote_target, list(self.route_set)
        return _strip_brackets(first.uri), [
            *self.route_set[1:],
            f"<{self.remote_target}>",
        ]

    def next_hop_uri(self) -> SipUri | TelUri:
        """The URI whose host and port our in-dialog requests go to (§8.1.2)."""
        if self.route_set:
            return parse_uri(parse_name_address(self.route_set[0]).uri)
        return parse_uri(self.remote_target)

    def next_hop(self) -> tuple[str, int, str]:
        """Host, port and transport our in-dialog requests go to.

        Raises:
            SipParseError: when the hop is not a SIP URI.
        """
        return _hop_of(self.next_hop_uri())


def next_hop(request: Request) -> tuple[str, int, str]:
    """Return host, port and transport for sending an in-dialog request.

    The first Route decides when present, otherwise the Request-URI
    (RFC 3261 §8.1.2, RFC 3263 without DNS: numeric hosts and default ports).

    Raises:
        SipParseError: when the hop is not a SIP URI.
    """
    routes = request.headers.get_all("Route")
    target = parse_name_address(routes[0]).uri if routes else request.uri
    return _hop_of(parse_uri(target))


def _hop_of(uri: SipUri | TelUri) -> tuple[str, int, str]:
    # RFC 3263 §4.1: the transport parameter decides; without one a sip: URI
    # means UDP (a numeric host has no NAPTR records) and sips: means TLS.
    if not isinstance(uri, SipUri):
        raise SipParseError("Next hop is not a SIP URI")
    host, port = uri.host_port()
    transport = (uri.params.get("transport") or "").upper()
    if uri.scheme == "sips":
        transport = "TLS"
    return host, port, transport or "UDP"


def _uri_params(uri: str) -> dict[str, str | None]:
    parsed = parse_uri(uri)
    return parsed.params if isinstance(parsed, SipUri) else {}


def _strip_brackets(uri: str) -> str:
    return uri[1:-1] if uri.startswith("<") and uri.endswith(">") else uri


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
