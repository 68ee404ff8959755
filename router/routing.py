"""From an INVITE to a pipe: the dialed number, its lookup, and the SIP answer.

The dialed number is the Request-URI user part; the To header is used only
when the Request-URI carries none (for example ``sip:router.example``).
User parameters (``;npdi;rn=…``, ``;cic=…``, ``;phone-context=…``) are
dropped and kept as call metadata, visual separators removed, and national
numbers made E.164 through the default country.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from router.numbers.cache import Lookup
from router.numbers.e164 import normalise_dialed_number
from router.numbers.models import Number, NumberStatus, Route, Trunk, TrunkType
from router.numbers.store import StoreUnavailable
from router.sip.errors import SipParseError
from router.sip.message import Request
from router.sip.name_address import parse_name_address
from router.sip.uri import SipUri, TelUri, parse_uri

__all__ = [
    "DialedNumber",
    "RouteRejected",
    "caller_number",
    "dialed_number",
    "find_route",
    "number_allowed_on_trunk",
]

# Seconds a caller should wait before retrying after a 480 or 503.
RETRY_AFTER_UNAVAILABLE = 30
RETRY_AFTER_OVERLOAD = 5


@dataclass(frozen=True)
class DialedNumber:
    """The number a caller dialed, as E.164, and the URI parameters it carried."""

    e164: str | None
    raw: str
    params: dict[str, str | None] = field(default_factory=dict)


class RouteRejected(Exception):
    """The call cannot be routed; ``status``/``reason`` are the SIP answer."""

    def __init__(
        self, status: int, reason: str, retry_after: int | None = None
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


def dialed_number(
    request: Request, default_country: str | None, registered_user: str | None = None
) -> DialedNumber:
    """Take the dialed number from the Request-URI, or from To as a fallback.

    ``registered_user`` is the username the calling trunk registered with
    (interop case C13): a carrier that delivers to a registered contact puts
    that username in the Request-URI, and only then the number is in To.

    Raises:
        SipParseError: when neither URI can be parsed.
    """
    uri = request.request_uri
    user = _user_of(uri)
    if not user or (registered_user is not None and user == registered_user):
        uri = parse_uri(request.to.uri)
        user = _user_of(uri)
    params = dict(uri.user_params) if user else {}
    if user is None:
        return DialedNumber(None, "", params)
    return DialedNumber(normalise_dialed_number(user, default_country), user, params)


def _user_of(uri: SipUri | TelUri) -> str | None:
    if isinstance(uri, TelUri):
        return uri.number
    return uri.user_number or None


async def find_route(
    lookup: Lookup, number: DialedNumber, trunk: Trunk | None = None
) -> Route:
    """Look the dialed number up and check that the call can go ahead.

    Raises:
        RouteRejected: 404 for an unknown number; 480 with Retry-After for a
            number that is not active or not attached (a fault of this number
            only); 403 for a number that the calling trunk does not serve;
            503 with Retry-After when the store is unreachable (a fault of the
            whole instance).
    """
    if number.e164 is None:
        raise RouteRejected(404, "Not Found")
    try:
        route = await lookup.route(number.e164)
    except StoreUnavailable:
        raise RouteRejected(503, "Service Unavailable", RETRY_AFTER_OVERLOAD) from None
    if route is None:
        raise RouteRejected(404, "Not Found")
    if not number_allowed_on_trunk(route.number, trunk):
        raise RouteRejected(403, "Number Not Served By This Trunk")
    if route.number.status is not NumberStatus.ACTIVE:
        raise RouteRejected(480, "Number Not Active", RETRY_AFTER_UNAVAILABLE)
    if route.pipe is None:
        raise RouteRejected(480, "Number Not Attached", RETRY_AFTER_UNAVAILABLE)
    return route


def number_allowed_on_trunk(number: Number, trunk: Trunk | None) -> bool:
    """A number is served only from a trunk of its kind; a byo one only from its own.

    ``trunk`` is None when unlisted sources are allowed (the demo): then any
    number may be called.
    """
    if trunk is None:
        return True
    if number.trunk_type is not trunk.kind:
        return False
    return trunk.kind is TrunkType.UNPOD or number.trunk_id == trunk.trunk_id


def caller_number(request: Request) -> str:
    """The caller's user part from P-Asserted-Identity, else From; "" if unreadable.

    Read once per request: the call's records and its runner's start ask again.
    """
    return request.headers.parsed("caller_number", lambda _: _read_caller(request))


def _read_caller(request: Request) -> str:
    try:
        value = request.headers.get("P-Asserted-Identity")
        address = parse_name_address(value) if value else request.from_
        uri = parse_uri(address.uri)
        return uri.user_number or ""
    except SipParseError:
        return ""
