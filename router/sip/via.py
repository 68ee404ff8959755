"""Via values (RFC 3261 §20.42), with the parameters responses are routed by.

``received`` and ``rport`` (RFC 3581) decide where a response goes, so they
are checked when the value is read: a transport never sees a host name or a
port that is not a number there.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from router.sip.errors import SipParseError
from router.sip.header_names import is_token
from router.sip.uri import (
    DEFAULT_PORT,
    DEFAULT_TLS_PORT,
    Params,
    format_hostport,
    format_params,
    parse_hostport,
    parse_params,
    parse_port,
)

__all__ = ["Via", "parse_via"]


@dataclass
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...`` (RFC 3261 §20.42).

    Attributes:
        transport: upper-cased: ``"UDP"``, ``"TCP"``, ``"TLS"``, ``"SCTP"``,
            ``"WS"``, ``"WSS"`` or another token.
        host: the sent-by host; IPv6 without brackets.
        port: the sent-by port, or None when absent.
        params: Via parameters in order, names lower-cased.
    """

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter (RFC 3261 §8.1.1.7), or None."""
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` address (RFC 3261 §18.2.1) without brackets, or None."""
        received = self.params.get("received")
        return None if received is None else received.strip("[]")

    @property
    def rport(self) -> str | None:
        """The ``rport`` parameter (RFC 3581).

        None when absent; ``""`` when present without a value, i.e. the client
        asks for the response to go to the source port (§3); else the port
        digits a server filled in (§4).
        """
        if "rport" not in self.params:
            return None
        return self.params["rport"] or ""

    @property
    def sent_by(self) -> tuple[str, int]:
        """Host and port of sent-by, the port defaulted per RFC 3261 §18.2.2."""
        if self.port is not None:
            return self.host, self.port
        tls = self.transport in ("TLS", "WSS")
        return self.host, DEFAULT_TLS_PORT if tls else DEFAULT_PORT

    def __str__(self) -> str:
        sent_by = format_hostport(self.host, self.port)
        return f"SIP/2.0/{self.transport} {sent_by}{format_params(self.params)}"


def parse_via(value: str) -> Via:
    """Parse one Via value (not a comma-separated list).

    Raises:
        SipParseError: reason ``"Bad Via header"``.
    """
    head, _, params_text = value.partition(";")
    # RFC 3261 §25.1: sent-protocol = protocol-name SLASH protocol-version SLASH
    # transport, where SLASH allows whitespace around the "/".
    parts = head.split("/", 2)
    if len(parts) != 3:
        raise SipParseError("Bad Via header", f"no sent-protocol in {value[:60]!r}")
    if parts[0].strip(" \t").upper() != "SIP" or parts[1].strip(" \t") != "2.0":
        raise SipParseError("Bad Via header", "not SIP/2.0")
    transport_and_host = parts[2].split(None, 1)
    if len(transport_and_host) != 2 or not is_token(transport_and_host[0]):
        raise SipParseError("Bad Via header", "no transport or sent-by")
    host, port = parse_hostport(transport_and_host[1].strip(), "Via header")
    params = parse_params(params_text, "Via header")
    _check_response_routing(params)
    return Via(
        transport=transport_and_host[0].upper(), host=host, port=port, params=params
    )


def _check_response_routing(params: Params) -> None:
    """Validate the Via parameters a response is sent by (RFC 3261 §18.2.2).

    A transport reads ``received`` and ``rport`` to pick a destination, so a
    hostname or a non-numeric port here must not get that far.
    """
    received = params.get("received")
    # RFC 3261 §20.42: received = IPv4address / IPv6address (RFC 5118 §4.5
    # notes that some stacks bracket the IPv6 form).
    if received is not None:
        try:
            ipaddress.ip_address(received.strip("[]"))
        except ValueError:
            raise SipParseError(
                "Bad Via header", "received is not an IP address"
            ) from None
    # RFC 3581 §3: rport is empty in a request or the source port once filled in.
    rport = params.get("rport")
    if rport:
        parse_port(rport, "Via header")
