"""The dialed number of an INVITE (interop cases C01-C03), sans-I/O."""

from __future__ import annotations

import pytest

from router.routing import dialed_number
from router.sip.message import Request, parse_message


def invite(request_uri: str, to: str) -> Request:
    raw = (
        f"INVITE {request_uri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.20:5060;branch=z9hG4bK-r1\r\n"
        "From: <sip:+14155550111@127.0.0.20>;tag=c1\r\n"
        f"To: {to}\r\n"
        "Call-ID: r1@127.0.0.20\r\n"
        "CSeq: 1 INVITE\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(raw)
    assert isinstance(message, Request)
    return message


@pytest.mark.parametrize(
    ("request_uri", "to", "country", "expected"),
    [
        # C01: the carrier leaves out the "+".
        (
            "sip:14155550100@127.0.0.1:5060",
            "<sip:14155550100@127.0.0.1>",
            None,
            "+14155550100",
        ),
        # C02: national forms through the trunk's default country.
        (
            "sip:4155550100@127.0.0.1:5060",
            "<sip:4155550100@127.0.0.1>",
            "US",
            "+14155550100",
        ),
        (
            "sip:02079460123@127.0.0.1",
            "<sip:02079460123@127.0.0.1>",
            "GB",
            "+442079460123",
        ),
        # C03: number portability parameters are not the number; tel: is accepted.
        (
            "sip:+14155550100;npdi;rn=+14155550199@127.0.0.1:5060;user=phone",
            "<sip:+14155550100@127.0.0.1;user=phone>",
            None,
            "+14155550100",
        ),
        ("tel:+14155550100;npdi", "<tel:+14155550100>", None, "+14155550100"),
        (
            "sip:+1-415-555-0100;cic=+1234@127.0.0.1",
            "<sip:x@127.0.0.1>",
            None,
            "+14155550100",
        ),
        # No user part in the Request-URI: the To header carries the number.
        ("sip:127.0.0.1:5060", "<sip:+14155550100@127.0.0.1>", None, "+14155550100"),
    ],
)
def test_dialed_number_is_e164_from_the_request_uri(
    request_uri: str, to: str, country: str | None, expected: str
) -> None:
    assert dialed_number(invite(request_uri, to), country).e164 == expected


def test_number_portability_parameters_are_kept_as_metadata() -> None:
    request = invite(
        "sip:+14155550100;npdi;rn=+14155550199@127.0.0.1;user=phone",
        "<sip:x@127.0.0.1>",
    )
    number = dialed_number(request, None)
    assert number.params == {"npdi": None, "rn": "+14155550199"}


def test_request_uri_wins_over_to() -> None:
    request = invite("sip:+14155550100@127.0.0.1", "<sip:+14155550199@127.0.0.1>")
    assert dialed_number(request, None).e164 == "+14155550100"


def test_letters_are_not_a_number() -> None:
    assert (
        dialed_number(
            invite("sip:support@127.0.0.1", "<sip:support@127.0.0.1>"), None
        ).e164
        is None
    )


def test_c13_registered_username_in_request_uri_routes_on_to() -> None:
    request = invite("sip:acct77@127.0.0.1", "<sip:+14155550100@carrier.example>")
    assert dialed_number(request, None, registered_user="acct77").e164 == "+14155550100"
    # Without a registration by that name, the Request-URI is what was dialed.
    assert dialed_number(request, None).e164 is None
