"""Name-addresses: the values of From, To, Contact, Route and Record-Route.

``"Display" <uri>;params``, with the forms carriers send besides it (an
unquoted display name, a bare URI whose parameters belong to the header), per
RFC 3261 §20.10 and §25.1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from router.sip.errors import SipParseError
from router.sip.uri import (
    Params,
    SipUri,
    TelUri,
    check_uri_chars,
    format_params,
    parse_params,
    parse_uri,
)

__all__ = ["NameAddress", "parse_name_address"]


@dataclass
class NameAddress:
    """A name-address header value: ``"Display" <uri>;params`` (RFC 3261 §20.10).

    Attributes:
        display_name: the display name unquoted and unescaped, or None.
        uri: the URI text as written, without the angle brackets.
        params: header parameters (``tag``, ``expires``, ``lr`` on a bare
            Route ...), names lower-cased.
    """

    display_name: str | None
    uri: str
    params: Params = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 §19.3), or None."""
        return self.params.get("tag")

    def parsed_uri(self) -> SipUri | TelUri:
        """Parse :attr:`uri`.

        Raises:
            SipParseError: if it is not a sip:, sips: or tel: URI.
        """
        return parse_uri(self.uri)

    def with_tag(self, tag: str) -> NameAddress:
        """Return a copy carrying ``tag`` (replacing any other tag)."""
        return NameAddress(self.display_name, self.uri, {**self.params, "tag": tag})

    def __str__(self) -> str:
        # Always the name-addr form: with <> the URI's own ;params cannot be
        # mistaken for header parameters (RFC 3261 §20.10).
        display = ""
        if self.display_name is not None:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{escaped}" '
        return f"{display}<{self.uri}>{format_params(self.params)}"


def parse_name_address(value: str) -> NameAddress:
    """Parse a From, To, Contact, Route or Record-Route value.

    Accepts ``"Display" <uri>;params``, ``Display Name <uri>``, ``<uri>;params``
    and a bare ``uri;params``, where the parameters belong to the header, not
    the URI (RFC 3261 §20.10).

    Raises:
        SipParseError: reason ``"Bad URI"`` when the value cannot be read; the
            message layer re-raises with the header's name.
    """
    text = value.strip(" \t")
    display: str | None = None
    if text.startswith('"'):
        display, text = _quoted_display_name(text)
        if not text.startswith("<"):
            raise SipParseError("Bad URI", "display name without <uri>")
    elif "<" in text:
        less = text.index("<")
        display = text[:less].strip(" \t") or None
        text = text[less:]
    if text.startswith("<"):
        uri, params_text = _angle_uri(text)
    else:
        uri, _, rest = text.partition(";")
        params_text = ";" + rest if rest else ""
    check_uri_chars(uri)
    if ":" not in uri:
        raise SipParseError("Bad URI", f"no scheme in {uri[:60]!r}")
    return NameAddress(display, uri, parse_params(params_text))


def _quoted_display_name(text: str) -> tuple[str, str]:
    """Split ``"quoted name" rest`` into the unescaped name and the rest."""
    chars: list[str] = []
    index = 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            # RFC 3261 §25.1: quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
            chars.append(text[index + 1])
            index += 2
            continue
        if char == '"':
            return "".join(chars), text[index + 1 :].lstrip(" \t")
        chars.append(char)
        index += 1
    raise SipParseError("Bad URI", "unterminated display name")


def _angle_uri(text: str) -> tuple[str, str]:
    """Split ``<uri>;params`` into the URI and the parameter text."""
    greater = text.find(">")
    if greater < 0:
        raise SipParseError("Bad URI", "missing '>'")
    params_text = text[greater + 1 :].strip(" \t")
    if params_text and not params_text.startswith(";"):
        raise SipParseError("Bad URI", "junk after '>'")
    return text[1:greater].strip(" \t"), params_text
