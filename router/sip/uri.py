"""SIP and tel URIs (RFC 3261 §19, §25; RFC 3966), and the pieces other values share.

Name-addresses are :mod:`router.sip.name_address`, Via values :mod:`router.sip.via`;
both read host, port and parameters with the functions here.

Carriers put routing data in odd places: number-portability parameters inside
the user part (``sip:+14155550100;npdi;rn=+14155550199@host;user=phone``),
``tel:`` Request-URIs, IPv6 literals. The parsers here accept all of that and
reject what cannot be a URI with :class:`~router.sip.errors.SipParseError`,
without regular expressions on the hot path.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import unquote

from router.sip.errors import SipParseError
from router.sip.header_names import is_token

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "Params",
    "SipUri",
    "TelUri",
    "check_uri_chars",
    "format_host",
    "format_hostport",
    "format_params",
    "parse_hostport",
    "parse_params",
    "parse_port",
    "parse_uri",
]

# RFC 3261 §19.1.2: 5060 for sip:, 5061 for sips: (and SIP over TLS).
DEFAULT_PORT = 5060
DEFAULT_TLS_PORT = 5061

# RFC 3261 §25.1: hostname = *( domainlabel "." ) toplabel, IPv4 in dotted form.
# The underscore is not in the grammar but real carrier host names carry it.
_HOST_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"

_DIGITS = "0123456789"

# RFC 3966 §3: visual separators may appear anywhere in a telephone number.
_TEL_GLOBAL_CHARS = _DIGITS + "-.()"
_TEL_LOCAL_CHARS = _DIGITS + "abcdefABCDEF*#-.()"

# Characters that never appear unescaped in a URI (RFC 3261 §25.1, RFC 3986 §2).
_URI_FORBIDDEN = frozenset(' \t\r\n"<>\\^`{|}\x00')

Params = dict[str, str | None]


# -- shared pieces ------------------------------------------------------------


def format_host(host: str) -> str:
    """Return `host` as written in a URI or Via: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host else host


def format_hostport(host: str, port: int | None) -> str:
    text = format_host(host)
    return text if port is None else f"{text}:{port}"


def format_params(params: Params) -> str:
    return "".join(
        f";{name}" if value is None else f";{name}={value}"
        for name, value in params.items()
    )


def parse_hostport(text: str, what: str = "URI") -> tuple[str, int | None]:
    """Parse ``host[:port]`` where host is a name, IPv4 or ``[IPv6]``.

    Args:
        text: the hostport text.
        what: names the field in the error reason (``"Bad Via header"``).

    Returns:
        The host (IPv6 without brackets) and the port or None.

    Raises:
        SipParseError: on an empty or malformed host or a port outside 0-65535.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"Bad {what}", "unclosed IPv6 bracket")
        host = _check_ipv6(text[1:end], what)
        rest = text[end + 1 :]
        if not rest:
            return host, None
        if rest[0] != ":":
            raise SipParseError(f"Bad {what}", "junk after IPv6 address")
        return host, parse_port(rest[1:], what)
    if text.count(":") > 1:
        # An IPv6 literal without brackets: invalid, but unambiguous without a port.
        return _check_ipv6(text, what), None
    host, colon, port = text.partition(":")
    if not host or host.strip(_HOST_CHARS):
        raise SipParseError(f"Bad {what}", f"bad host {host[:40]!r}")
    return host, parse_port(port, what) if colon else None


def _check_ipv6(text: str, what: str) -> str:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        raise SipParseError(f"Bad {what}", f"bad IPv6 address {text[:50]!r}") from None
    return text


def parse_port(text: str, what: str) -> int:
    # RFC 3261 §25.1: port = 1*DIGIT; anything past 65535 cannot be a UDP/TCP port.
    if not text or text.strip(_DIGITS) or len(text) > 5 or int(text) > 65535:
        raise SipParseError(f"Bad {what}", f"bad port {text[:10]!r}")
    return int(text)


def parse_params(text: str, what: str = "URI") -> Params:
    """Parse ``;name=value;flag`` parameters into an ordered dict.

    Names are lower-cased; a parameter without ``=`` maps to None; a quoted
    value keeps its quotes. The first of two parameters with one name wins.

    Raises:
        SipParseError: on a parameter name that is not a token.
    """
    params: Params = {}
    if not text:
        return params
    parts = text.split(";") if '"' not in text else _split_quoted(text, ";")
    for part in parts:
        if not part.strip():
            continue  # tolerate ";;" and a trailing ";"
        name, equals, value = part.partition("=")
        name = name.strip(" \t").lower()
        if not is_token(name):
            raise SipParseError(f"Bad {what}", f"bad parameter name {name[:40]!r}")
        params.setdefault(name, value.strip(" \t") if equals else None)
    return params


def _split_quoted(text: str, separator: str) -> list[str]:
    """Split `text` on `separator` outside double-quoted strings."""
    parts: list[str] = []
    start = 0
    in_quotes = False
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and in_quotes:
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
        elif char == separator and not in_quotes:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _decode(text: str) -> str:
    return unquote(text) if "%" in text else text


def check_uri_chars(text: str) -> None:
    if not text or not _URI_FORBIDDEN.isdisjoint(text):
        raise SipParseError("Bad URI", f"forbidden character in {text[:60]!r}")


# -- URIs -----------------------------------------------------------------------


@dataclass
class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1).

    Attributes:
        scheme: ``"sip"`` or ``"sips"``.
        user: the user part as written (escapes kept), or None.
        password: the password, or None.
        host: host name or address; IPv6 without brackets (``"::1"``).
        port: the port, or None when absent.
        params: URI parameters in order, names lower-cased.
        headers: ``?name=value`` URI headers, as written.
    """

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def user_number(self) -> str | None:
        """The user part before its first ``;``, escapes decoded (the dialed number)."""
        if self.user is None:
            return None
        return _decode(self.user.partition(";")[0])

    @property
    def user_params(self) -> Params:
        """Parameters inside the user part (``;npdi;rn=...``), names lower-cased."""
        if self.user is None or ";" not in self.user:
            return {}
        params = parse_params(self.user.partition(";")[2], "URI")
        return {
            name: None if value is None else _decode(value)
            for name, value in params.items()
        }

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter upper-cased (``"TCP"``), or None."""
        value = self.params.get("transport")
        return value.upper() if value else None

    def host_port(self) -> tuple[str, int]:
        """Return host and port, the port defaulted per RFC 3261 §19.1.2.

        5061 for ``sips:`` or ``transport=tls``, otherwise 5060.
        """
        if self.port is not None:
            return self.host, self.port
        tls = self.scheme == "sips" or self.transport == "TLS"
        return self.host, DEFAULT_TLS_PORT if tls else DEFAULT_PORT

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            password = "" if self.password is None else f":{self.password}"
            userinfo = f"{self.user}{password}@"
        text = f"{self.scheme}:{userinfo}{format_hostport(self.host, self.port)}"
        text += format_params(self.params)
        if self.headers:
            text += "?" + "&".join(
                f"{name}={value}" for name, value in self.headers.items()
            )
        return text


@dataclass
class TelUri:
    """A ``tel:`` URI (RFC 3966).

    Attributes:
        number: the telephone number as written, escapes decoded: global
            (``"+14155550100"``) or local (``"5550100"``, normally with a
            ``phone-context`` parameter). Visual separators are kept; number
            normalisation belongs to the numbers layer.
        params: parameters in order (``npdi``, ``rn``, ``cic``,
            ``phone-context`` ...), names lower-cased.
    """

    number: str
    params: Params = field(default_factory=dict)

    @property
    def user_number(self) -> str:
        """The number, so routing code treats tel: and sip: URIs alike."""
        return self.number

    @property
    def user_params(self) -> Params:
        """The parameters, so routing code treats tel: and sip: URIs alike."""
        return self.params

    @property
    def is_global(self) -> bool:
        """True for a global number (``+`` and country code, RFC 3966 §5.1.4)."""
        return self.number.startswith("+")

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"


def parse_uri(text: str) -> SipUri | TelUri:
    """Parse a ``sip:``, ``sips:`` or ``tel:`` URI.

    Raises:
        SipParseError: reason ``"Bad URI"`` for malformed text, or
            ``"Unsupported URI scheme"`` (status 416, RFC 3261 §8.2.2.1) for any
            other scheme.
    """
    check_uri_chars(text)
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or not rest:
        raise SipParseError("Bad URI", f"no scheme in {text[:60]!r}")
    if scheme in ("sip", "sips"):
        return _parse_sip_uri(scheme, rest)
    if scheme == "tel":
        return _parse_tel_uri(rest)
    raise SipParseError("Unsupported URI scheme", scheme[:20], status=416)


def _parse_sip_uri(scheme: str, rest: str) -> SipUri:
    # RFC 3261 §19.1.1: sip:user:password@host:port;uri-parameters?headers.
    # The user part may contain ";" and "?" (user-unreserved) but never "@".
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        user, colon, secret = rest[:at].partition(":")
        password = secret if colon else None
        rest = rest[at + 1 :]
        if not user:
            raise SipParseError("Bad URI", "empty user part")
    question = rest.find("?")
    headers_text = ""
    if question >= 0:
        rest, headers_text = rest[:question], rest[question + 1 :]
    hostport, _, params_text = rest.partition(";")
    host, port = parse_hostport(hostport)
    return SipUri(
        scheme=scheme,
        user=user,
        password=password,
        host=host,
        port=port,
        params=parse_params(params_text),
        headers=_parse_uri_headers(headers_text),
    )


def _parse_uri_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for part in text.split("&") if text else ():
        name, _, value = part.partition("=")
        if not name:
            raise SipParseError("Bad URI", "empty URI header name")
        headers.setdefault(name, value)
    return headers


def _parse_tel_uri(rest: str) -> TelUri:
    number_text, _, params_text = rest.partition(";")
    number = _decode(number_text)
    # RFC 3966 §3: global-number-digits = "+" *phonedigit DIGIT *phonedigit;
    # local-number-digits = *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex.
    if number.startswith("+"):
        valid = not number[1:].strip(_TEL_GLOBAL_CHARS) and any(
            c in _DIGITS for c in number
        )
    else:
        valid = (
            bool(number)
            and not number.strip(_TEL_LOCAL_CHARS)
            and number.strip("-.()") != ""
        )
    if not valid:
        raise SipParseError("Bad URI", f"bad telephone number {number[:40]!r}")
    return TelUri(number=number, params=parse_params(params_text))
