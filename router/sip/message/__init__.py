"""SIP requests and responses: parsing, header access, serialising.

RFC 3261 §7 (messages), §18.3 (framing) and §20 (header fields).

Parsing is lazy where that is cheap: :func:`parse_message` splits the start
line and the header lines once, checks the fields every request needs
(RFC 3261 §8.1.1: Via, From, To, Call-ID, CSeq) and frames the body. Other
header values (Contact, Record-Route, the Request-URI ...) are decoded the
first time a property reads them and cached on the message's
:class:`~router.sip.headers.Headers`.

Datagrams go through :func:`parse_message`; byte streams (TCP, TLS) through a
:class:`StreamFramer` per connection. Both raise only
:class:`~router.sip.errors.SipParseError`.

One module per part: :mod:`.model` (:class:`Request`, :class:`Response`,
serialising), :mod:`.fields` (typed header access), :mod:`.parser`,
:mod:`.framing` and :mod:`.responses` (:func:`make_response`, reason phrases).
"""

from __future__ import annotations

from router.sip.headers import Headers

from .fields import MAX_CONTENT_LENGTH, MAX_CSEQ, MAX_MAX_FORWARDS
from .framing import StreamFramer
from .model import SIP_VERSION, Request, Response
from .parser import MAX_HEADERS, MAX_MESSAGE_SIZE, is_keepalive, parse_message
from .responses import make_response, reason_phrase

__all__ = [
    "MAX_CONTENT_LENGTH",
    "MAX_CSEQ",
    "MAX_HEADERS",
    "MAX_MAX_FORWARDS",
    "MAX_MESSAGE_SIZE",
    "SIP_VERSION",
    "Headers",
    "Request",
    "Response",
    "StreamFramer",
    "is_keepalive",
    "make_response",
    "parse_message",
    "reason_phrase",
]
