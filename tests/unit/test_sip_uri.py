"""sip:, sips: and tel: URIs, name-addresses and Via values.

RFC 3261 §19 (URIs), §20.10 (name-addr), §20.42 (Via); RFC 3966 (tel:).
"""

from __future__ import annotations

import pytest

from router.sip.errors import SipParseError
from router.sip.name_address import NameAddress, parse_name_address
from router.sip.uri import SipUri, TelUri, parse_uri
from router.sip.via import Via, parse_via

# -- sip: URIs -----------------------------------------------------------------


def test_sip_uri_with_every_part_is_split_into_fields() -> None:
    uri = parse_uri("sip:alice:secret@example.com:5070;transport=tcp;lr?subject=hi&x=1")

    assert uri == SipUri(
        scheme="sip",
        user="alice",
        password="secret",
        host="example.com",
        port=5070,
        params={"transport": "tcp", "lr": None},
        headers={"subject": "hi", "x": "1"},
    )


def test_sip_uri_without_user_has_none_user_and_number() -> None:
    uri = parse_uri("sip:192.0.2.10:5060")

    assert isinstance(uri, SipUri)
    assert (uri.user, uri.host, uri.port, uri.user_number) == (
        None,
        "192.0.2.10",
        5060,
        None,
    )


def test_scheme_is_case_insensitive_and_lower_cased() -> None:
    uri = parse_uri("SIP:+14155550100@Example.COM")

    assert isinstance(uri, SipUri)
    assert uri.scheme == "sip"
    assert uri.host == "Example.COM"


def test_uri_parameter_names_are_lower_cased_and_order_kept() -> None:
    uri = parse_uri("sip:a@b;User=phone;TRANSPORT=UDP;maddr=192.0.2.1")

    assert isinstance(uri, SipUri)
    assert list(uri.params.items()) == [
        ("user", "phone"),
        ("transport", "UDP"),
        ("maddr", "192.0.2.1"),
    ]
    assert uri.transport == "UDP"


def test_ipv6_host_is_kept_without_brackets_and_serialised_with_them() -> None:
    uri = parse_uri("sip:+14155550100@[2001:db8::1]:5080;transport=udp")

    assert isinstance(uri, SipUri)
    assert (uri.host, uri.port) == ("2001:db8::1", 5080)
    assert str(uri) == "sip:+14155550100@[2001:db8::1]:5080;transport=udp"


def test_ipv6_loopback_without_port() -> None:
    uri = parse_uri("sip:[::1]")

    assert isinstance(uri, SipUri)
    assert uri.host_port() == ("::1", 5060)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sip:a@example.com", ("example.com", 5060)),
        ("sips:a@example.com", ("example.com", 5061)),
        ("sip:a@example.com;transport=TLS", ("example.com", 5061)),
        ("sip:a@example.com:7000;transport=tls", ("example.com", 7000)),
    ],
)
def test_host_port_defaults_5060_and_5061_for_tls(
    text: str, expected: tuple[str, int]
) -> None:
    uri = parse_uri(text)

    assert isinstance(uri, SipUri)
    assert uri.host_port() == expected


def test_number_portability_params_stay_out_of_the_dialed_number() -> None:
    # Interop C03: the dialed number is the part before ";npdi", never the rn value.
    uri = parse_uri("sip:+14155550100;npdi;rn=+14155550199@192.0.2.10:5060;user=phone")

    assert isinstance(uri, SipUri)
    assert uri.user_number == "+14155550100"
    assert uri.user_params == {"npdi": None, "rn": "+14155550199"}
    assert uri.params == {"user": "phone"}
    assert uri.port == 5060


def test_cic_and_phone_context_user_params_are_exposed() -> None:
    uri = parse_uri(
        "sip:5550100;phone-context=+1415;CIC=+10288@carrier.example;user=phone"
    )

    assert isinstance(uri, SipUri)
    assert uri.user_number == "5550100"
    assert uri.user_params == {"phone-context": "+1415", "cic": "+10288"}


def test_percent_escapes_are_decoded_in_user_number_only() -> None:
    uri = parse_uri("sip:%2B14155550100@example.com")

    assert isinstance(uri, SipUri)
    assert uri.user == "%2B14155550100"
    assert uri.user_number == "+14155550100"
    assert str(uri) == "sip:%2B14155550100@example.com"


def test_escaped_user_param_value_is_decoded() -> None:
    uri = parse_uri("sip:+14155550100;rn=%2B14155550199@example.com")

    assert isinstance(uri, SipUri)
    assert uri.user_params == {"rn": "+14155550199"}


@pytest.mark.parametrize(
    "text",
    [
        "sip:+14155550100;npdi;rn=+14155550199@192.0.2.10:5060;user=phone",
        "sips:bob@[2001:db8::5]:5061;transport=tls",
        "sip:alice:pw@example.com;lr?subject=x",
        "sip:example.com",
    ],
)
def test_sip_uri_round_trips_through_str(text: str) -> None:
    assert str(parse_uri(text)) == text


# -- tel: URIs -----------------------------------------------------------------


def test_tel_uri_global_number_with_npdi() -> None:
    uri = parse_uri("tel:+14155550100;npdi")

    assert uri == TelUri(number="+14155550100", params={"npdi": None})
    assert uri.user_number == "+14155550100"
    assert uri.user_params == {"npdi": None}
    assert uri.is_global


def test_tel_uri_local_number_with_phone_context() -> None:
    uri = parse_uri("tel:5550100;phone-context=+1-415")

    assert isinstance(uri, TelUri)
    assert not uri.is_global
    assert uri.params == {"phone-context": "+1-415"}
    assert str(uri) == "tel:5550100;phone-context=+1-415"


def test_tel_uri_keeps_visual_separators_for_the_numbers_layer() -> None:
    uri = parse_uri("tel:+1-415-555-0100")

    assert uri.user_number == "+1-415-555-0100"


@pytest.mark.parametrize("text", ["tel:", "tel:+", "tel:+1x5", "tel:abc!", "tel:--"])
def test_malformed_tel_uri_is_a_bad_uri(text: str) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_uri(text)

    assert caught.value.reason == "Bad URI"


# -- bad URIs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "sip:@example.com",
        "sip:a@",
        "sip:a@exa mple.com",
        "sip:a@[2001:db8::1",
        "sip:a@[not-v6]:5060",
        "sip:a@[::1]5060",
        "sip:a@example.com:99999",
        "sip:a@example.com:50x0",
        "sip:a@host;bad name=1",
        "sip:a@host?=x",
        "sip:a<b@host",
        "no-scheme",
    ],
)
def test_malformed_sip_uri_is_a_bad_uri(text: str) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_uri(text)

    assert caught.value.reason == "Bad URI"
    assert caught.value.status == 400


def test_unknown_scheme_asks_for_416() -> None:
    with pytest.raises(SipParseError) as caught:
        parse_uri("mailto:a@example.com")

    assert caught.value.reason == "Unsupported URI scheme"
    assert caught.value.status == 416


# -- name-addresses ------------------------------------------------------------


def test_quoted_display_name_with_escapes_is_unescaped() -> None:
    address = parse_name_address(
        r'"Alice \"Al\" O\\Neil" <sip:alice@example.com>;tag=a1'
    )

    assert address.display_name == 'Alice "Al" O\\Neil'
    assert address.uri == "sip:alice@example.com"
    assert address.tag == "a1"


def test_quoted_display_name_may_contain_angle_brackets_and_commas() -> None:
    address = parse_name_address('"Doe, John <CEO>" <sip:j@example.com>')

    assert address.display_name == "Doe, John <CEO>"
    assert address.uri == "sip:j@example.com"


def test_token_display_name_without_quotes() -> None:
    address = parse_name_address("Alice Smith <sip:alice@example.com>")

    assert address.display_name == "Alice Smith"


def test_angle_brackets_without_display_name() -> None:
    address = parse_name_address("<sip:+14155550111@198.51.100.20>;tag=c1")

    assert address == NameAddress(None, "sip:+14155550111@198.51.100.20", {"tag": "c1"})


def test_params_inside_brackets_belong_to_the_uri() -> None:
    address = parse_name_address("<sip:198.51.100.5;lr>")

    assert address.params == {}
    uri = address.parsed_uri()
    assert isinstance(uri, SipUri)
    assert uri.params == {"lr": None}


def test_bare_uri_params_belong_to_the_header() -> None:
    # RFC 3261 §20.10: without <>, ;params after the URI are header parameters.
    address = parse_name_address("sip:bob@example.com;tag=xyz;expires=60")

    assert address.uri == "sip:bob@example.com"
    assert address.params == {"tag": "xyz", "expires": "60"}


def test_bare_tel_uri_to_header() -> None:
    address = parse_name_address("tel:+14155550100")

    assert address.parsed_uri() == TelUri("+14155550100", {})


def test_header_param_quoted_value_may_hold_a_semicolon() -> None:
    address = parse_name_address('<sip:a@b>;tag=1;note="x;y"')

    assert address.params == {"tag": "1", "note": '"x;y"'}


def test_with_tag_adds_a_tag_to_a_copy() -> None:
    address = parse_name_address("<sip:a@b>")

    tagged = address.with_tag("r1")

    assert tagged.tag == "r1"
    assert address.tag is None


def test_name_address_serialises_with_quotes_and_brackets() -> None:
    address = NameAddress('Say "hi"', "sip:a@b", {"tag": "t"})

    assert str(address) == r'"Say \"hi\"" <sip:a@b>;tag=t'
    assert parse_name_address(str(address)) == address


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<sip:a@b",
        '"unterminated <sip:a@b>',
        '"name" sip:a@b',
        "<sip:a@b> junk",
        "Alice sip:a@b",
        "<>",
        "*",
        "<nocolon>",
    ],
)
def test_malformed_name_address_is_rejected(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_address(text)


# -- Via -----------------------------------------------------------------------


def test_via_fields_and_params() -> None:
    via = parse_via(
        "SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-base1;received=192.0.2.1"
    )

    assert via == Via(
        "UDP",
        "198.51.100.20",
        5060,
        {"branch": "z9hG4bK-base1", "received": "192.0.2.1"},
    )
    assert via.branch == "z9hG4bK-base1"
    assert via.received == "192.0.2.1"


def test_via_transport_is_upper_cased_and_whitespace_around_slashes_is_allowed() -> (
    None
):
    via = parse_via("sip / 2.0 / tcp host.example.com ;branch=z9hG4bK1")

    assert (via.transport, via.host, via.port) == ("TCP", "host.example.com", None)
    assert via.branch == "z9hG4bK1"


def test_via_ipv6_sent_by_is_unbracketed_and_serialised_bracketed() -> None:
    via = parse_via("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKv6")

    assert (via.host, via.port) == ("2001:db8::1", 5060)
    assert str(via) == "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKv6"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SIP/2.0/UDP h;branch=z9hG4bK1", None),
        ("SIP/2.0/UDP h;branch=z9hG4bK1;rport", ""),
        ("SIP/2.0/UDP h;branch=z9hG4bK1;rport=5070", "5070"),
    ],
)
def test_rport_is_none_absent_empty_requested_or_the_filled_port(
    text: str, expected: str | None
) -> None:
    assert parse_via(text).rport == expected


@pytest.mark.parametrize(
    ("text", "sent_by"),
    [
        ("SIP/2.0/UDP h", ("h", 5060)),
        ("SIP/2.0/TLS h", ("h", 5061)),
        ("SIP/2.0/WSS h", ("h", 5061)),
        ("SIP/2.0/TCP h:6000", ("h", 6000)),
    ],
)
def test_sent_by_port_defaults_by_transport(
    text: str, sent_by: tuple[str, int]
) -> None:
    assert parse_via(text).sent_by == sent_by


@pytest.mark.parametrize("transport", ["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"])
def test_every_standard_transport_is_accepted(transport: str) -> None:
    assert parse_via(f"SIP/2.0/{transport.lower()} [::1]:5060").transport == transport


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0 198.51.100.20",
        "SIP/3.0/UDP 198.51.100.20",
        "HTTP/2.0/UDP 198.51.100.20",
        "SIP/2.0/UDP 198.51.100.20:notaport",
        "SIP/2.0/UDP [2001:db8::1:5060",
        "SIP/2.0/U(P 198.51.100.20",
        "SIP/2.0/UDP host;bad param=1",
        "SIP/2.0/UDP host;received=evil.example.com",
        "SIP/2.0/UDP host;received=",
        "SIP/2.0/UDP host;rport=abc",
        "SIP/2.0/UDP host;rport=70000",
    ],
)
def test_malformed_via_names_the_via_header(text: str) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_via(text)

    assert caught.value.reason == "Bad Via header"


def test_received_ipv6_may_be_bracketed() -> None:
    via = parse_via("SIP/2.0/UDP h;received=[2001:db8::7];rport=5062")

    assert (via.received, via.rport) == ("2001:db8::7", "5062")


def test_via_round_trips_through_str() -> None:
    text = "SIP/2.0/TCP 198.51.100.20:5060;branch=z9hG4bK-x;rport;received=192.0.2.1"

    assert str(parse_via(text)) == text
