"""Building a response to a request, and the reason phrases (RFC 3261 §8.2.6, §21)."""

from __future__ import annotations

from collections.abc import Iterable

from router.sip.headers import Headers

from .model import Request, Response

__all__ = ["make_response", "reason_phrase"]


# RFC 3261 §21 (and RFC 3262, 3265, 3329, 4028, 6086 for the rest).
_REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_CLASS_PHRASES = {
    1: "Session Progress",
    2: "OK",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}


def reason_phrase(status: int) -> str:
    """Return the RFC reason phrase for `status`, or a generic one for its class."""
    return _REASON_PHRASES.get(status) or _CLASS_PHRASES.get(status // 100, "Unknown")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """Build a response to `request` (RFC 3261 §8.2.6).

    Copies every Via in order, From, To, Call-ID and CSeq (§8.2.6.2), adds
    `to_tag` to To unless To already has a tag, copies Record-Route into
    101-299 responses to INVITE (§12.1.1) and Timestamp into 100 (§8.2.6.1).
    `headers` follow, then Content-Type when `content_type` is given.
    Content-Length is written by :meth:`Response.serialise`.

    Raises:
        ValueError: for a status outside 100-699 or a header value with CR/LF.
        SipParseError: if the request's To header cannot be read.
    """
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} is outside 100-699")
    if reason is not None and ("\r" in reason or "\n" in reason):
        raise ValueError("reason phrase contains a line break")
    fields: list[tuple[str, str]] = []
    for name, value in request.headers.fields():
        if name in _ECHOED:
            fields.append((name, value))
        elif name == "To":
            fields.append((name, _to_with_tag(value, to_tag, request)))
        elif _copies_extra(name, status, request.method):
            fields.append((name, value))
    response_headers = Headers.copied(fields)
    for name, value in headers:
        response_headers.add(name, value)
    response = Response(status, reason or reason_phrase(status), response_headers, body)
    if content_type is not None:
        response.headers.set("Content-Type", content_type)
    # Every Via is copied as it is, so the request's decoded top Via holds (a
    # header added from here on drops it again).
    response_headers.adopt(request.headers, "top_via")
    return response


# §8.2.6.2: copied into every response as they are (To gets our tag).
_ECHOED = frozenset({"Via", "From", "Call-ID", "CSeq"})


def _copies_extra(name: str, status: int, method: str) -> bool:
    if name == "Record-Route":
        # §12.1.1: responses that set up a (possibly early) dialog echo Record-Route.
        return method == "INVITE" and 101 <= status <= 299
    # §8.2.6.1: a 100 Trying echoes the request's Timestamp.
    return name == "Timestamp" and status == 100


def _to_with_tag(value: str, to_tag: str | None, request: Request) -> str:
    # §8.2.6.2: the UAS adds a tag to To unless the request already had one.
    if to_tag is None or request.to.tag is not None:
        return value
    return f"{value};tag={to_tag}"
