"""Header field names: their spelling, compact forms and lookup keys (RFC 3261 §7.3).

Names are matched case-insensitively and compact forms stand for their long
names (``i`` is ``Call-ID``). What we send spells the names we know the way the
RFCs write them; :data:`NAME_TABLE` maps every lower-case spelling to that
canonical name and to the key :class:`~router.sip.headers.Headers` indexes by.
"""

from __future__ import annotations

__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "NAME_TABLE",
    "TOKEN_CHARS",
    "canonical_name",
    "header_key",
    "is_token",
]

# RFC 3261 §7.3.3 and the extensions that define a compact form.
COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "f": "From",
    "t": "To",
    "v": "Via",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",  # RFC 6665 §8.2.1
    "r": "Refer-To",  # RFC 3515 §2.1
    "b": "Referred-By",  # RFC 3892 §3
    "x": "Session-Expires",  # RFC 4028 §4
    "u": "Allow-Events",  # RFC 6665 §8.2.2
    "a": "Accept-Contact",  # RFC 3841 §9.2
    "j": "Reject-Contact",  # RFC 3841 §9.2
    "d": "Request-Disposition",  # RFC 3841 §9.1
    "y": "Identity",  # RFC 8224 §4
}

# The spelling we emit for the header fields we know.
_KNOWN_NAMES = (
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Diversion",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "History-Info",
    "Identity",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Charging-Vector",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Remote-Party-ID",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Service-Route",
    "Session-Expires",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
)

# lower-case name (long or compact) -> (canonical name, lookup key)
NAME_TABLE: dict[str, tuple[str, str]] = {
    name.lower(): (name, name.lower()) for name in _KNOWN_NAMES
}
NAME_TABLE.update(
    {short: (long, long.lower()) for short, long in COMPACT_FORMS.items()}
)

# Header fields whose value is a comma-separated list that may equally be sent
# as several header lines (RFC 3261 §7.3.1). Others (Date, WWW-Authenticate,
# Authorization ...) contain commas that do not separate values.
LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Allow",
        "Allow-Events",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "History-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Proxy-Require",
        "Record-Route",
        "Require",
        "Route",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
    )
)

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_"
#                           / "+" / "`" / "'" / "~")
TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"


def is_token(text: str) -> bool:
    """Return True if `text` is a non-empty RFC 3261 token."""
    # str.strip with a character set runs in C: whatever survives is not a token char.
    return bool(text) and not text.strip(TOKEN_CHARS)


def canonical_name(name: str) -> str:
    """Return the spelling we use for header `name` (compact forms expanded)."""
    known = NAME_TABLE.get(name.lower())
    return known[0] if known else name


def header_key(name: str) -> str:
    """Return the case-folded lookup key of header `name` (compact forms expanded)."""
    lowered = name.lower()
    known = NAME_TABLE.get(lowered)
    return known[1] if known else lowered
