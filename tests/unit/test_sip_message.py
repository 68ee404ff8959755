"""SIP messages: parsing, header access, stream framing, responses.

RFC 3261 §7 (messages), §8 (what requests carry), §18.3 (framing), §20 (headers).
"""

from __future__ import annotations

import pytest

from router.sip.errors import SipParseError
from router.sip.message import (
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    Headers,
    Request,
    Response,
    StreamFramer,
    is_keepalive,
    make_response,
    parse_message,
    reason_phrase,
)
from router.sip.uri import SipUri, TelUri

BASE_SDP = (
    "v=0\r\n"
    "o=- 1001 1 IN IP4 198.51.100.20\r\n"
    "s=-\r\n"
    "c=IN IP4 198.51.100.20\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
)

BASE_HEADERS = [
    ("Via", "SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-base1"),
    ("Max-Forwards", "69"),
    ("From", "<sip:+14155550111@198.51.100.20>;tag=c1"),
    ("To", "<sip:+14155550100@192.0.2.10>"),
    ("Call-ID", "base1@198.51.100.20"),
    ("CSeq", "1 INVITE"),
    ("Contact", "<sip:+14155550111@198.51.100.20:5060>"),
    ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE"),
    ("Content-Type", "application/sdp"),
]


def build(
    start_line: str = "INVITE sip:+14155550100@192.0.2.10:5060 SIP/2.0",
    headers: list[tuple[str, str]] | None = None,
    *,
    body: str = BASE_SDP,
    replace: dict[str, str | None] | None = None,
    extra: list[tuple[str, str]] = (),  # type: ignore[assignment]
    content_length: int | str | None = "auto",
    line_end: str = "\r\n",
) -> bytes:
    """Return the interop base INVITE with headers replaced, dropped or added."""
    fields = list(BASE_HEADERS if headers is None else headers)
    for name, value in (replace or {}).items():
        index = next(i for i, (n, _) in enumerate(fields) if n == name)
        if value is None:
            del fields[index]
        else:
            fields[index] = (name, value)
    fields += list(extra)
    encoded_body = body.encode()
    if content_length == "auto":
        fields.append(("Content-Length", str(len(encoded_body))))
    elif content_length is not None:
        fields.append(("Content-Length", str(content_length)))
    lines = [start_line, *(f"{name}: {value}" for name, value in fields), "", ""]
    return line_end.join(lines).encode() + encoded_body


def parse_request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def parse_error(data: bytes) -> SipParseError:
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    return caught.value


# -- Headers -------------------------------------------------------------------


def test_header_names_are_case_insensitive() -> None:
    headers = Headers([("call-id", "x@y")])

    assert headers.get("Call-ID") == headers.get("CALL-ID") == headers.get("i") == "x@y"
    assert "CaLL-iD" in headers
    assert list(headers) == [("Call-ID", "x@y")]


@pytest.mark.parametrize(
    ("compact", "canonical"),
    [
        ("i", "Call-ID"),
        ("f", "From"),
        ("t", "To"),
        ("v", "Via"),
        ("m", "Contact"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("e", "Content-Encoding"),
        ("o", "Event"),
        ("r", "Refer-To"),
        ("b", "Referred-By"),
        ("x", "Session-Expires"),
        ("u", "Allow-Events"),
    ],
)
def test_compact_form_is_expanded_to_the_canonical_name(
    compact: str, canonical: str
) -> None:
    data = build(extra=[("X-Probe", "value")])
    marker = f"\r\n{canonical}: ".encode()
    if marker in data:
        data = data.replace(marker, f"\r\n{compact}: ".encode())
    else:
        data = data.replace(b"\r\nX-Probe: ", f"\r\n{compact.upper()}: ".encode())

    request = parse_request(data)

    assert request.headers.count(canonical) == 1
    assert canonical in [name for name, _ in request.headers]
    assert compact not in [name for name, _ in request.headers]


def test_message_written_entirely_in_compact_form_parses() -> None:
    data = (
        "INVITE sip:+14155550100@192.0.2.10 SIP/2.0\r\n"
        "v: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-c\r\n"
        "f: <sip:+14155550111@198.51.100.20>;tag=c1\r\n"
        "t: <sip:+14155550100@192.0.2.10>\r\n"
        "i: compact@198.51.100.20\r\n"
        "CSeq: 1 INVITE\r\n"
        "m: <sip:+14155550111@198.51.100.20>\r\n"
        "k: timer, 100rel\r\n"
        "c: application/sdp\r\n"
        f"l: {len(BASE_SDP)}\r\n\r\n{BASE_SDP}"
    ).encode()

    request = parse_request(data)

    assert request.call_id == "compact@198.51.100.20"
    assert request.from_tag == "c1"
    assert request.content_type == "application/sdp"
    assert request.supported == ["timer", "100rel"]
    assert request.body == BASE_SDP.encode()


def test_unknown_header_keeps_its_spelling() -> None:
    request = parse_request(build(extra=[("X-Carrier-ID", "abc")]))

    assert ("X-Carrier-ID", "abc") in request.headers.items()
    assert request.headers.get("x-carrier-id") == "abc"


def test_folded_header_lines_are_unfolded_to_one_space() -> None:
    data = build(extra=[("Subject", "first part")]).replace(
        b"Subject: first part\r\n", b"Subject: first part\r\n   second\r\n\tthird\r\n"
    )

    request = parse_request(data)

    assert request.headers.get("Subject") == "first part second third"


def test_folded_via_still_parses() -> None:
    data = build().replace(b"Via: SIP/2.0/UDP", b"Via:\r\n SIP/2.0/UDP")

    assert parse_request(data).top_via.branch == "z9hG4bK-base1"


def test_repeated_and_comma_separated_vias_read_as_one_ordered_list() -> None:
    vias = [
        (
            "Via",
            "SIP/2.0/UDP 198.51.100.5;branch=z9hG4bK-p2, SIP/2.0/UDP [2001:db8::9]",
        ),
        ("Via", "SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-base1"),
    ]
    headers = vias + [field for field in BASE_HEADERS if field[0] != "Via"]

    request = parse_request(build(headers=headers))

    assert [via.host for via in request.vias] == [
        "198.51.100.5",
        "2001:db8::9",
        "198.51.100.20",
    ]
    assert request.top_via.branch == "z9hG4bK-p2"
    assert len(request.headers.get_all("v")) == 3


def test_comma_inside_quotes_or_angle_brackets_does_not_split() -> None:
    headers = Headers(
        [("Contact", '"Doe, John" <sip:j@a;x=1,2>;q=0.5, <sip:k@b>'), ("m", "sip:l@c")]
    )

    assert headers.get_all("Contact") == [
        '"Doe, John" <sip:j@a;x=1,2>;q=0.5',
        "<sip:k@b>",
        "sip:l@c",
    ]


def test_non_list_headers_are_not_split_on_commas() -> None:
    headers = Headers(
        [
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
            ("WWW-Authenticate", 'Digest realm="r", nonce="n"'),
        ]
    )

    assert headers.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert headers.get_all("www-authenticate") == ['Digest realm="r", nonce="n"']


@pytest.mark.parametrize(
    "name",
    [
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Route",
        "Record-Route",
    ],
)
def test_list_headers_split_on_commas(name: str) -> None:
    headers = Headers([(name, "a, b"), (name, "c")])

    assert headers.get_all(name) == ["a", "b", "c"]
    assert headers.get(name) == "a, b"


def test_set_replaces_every_value_in_place_of_the_first() -> None:
    headers = Headers([("Via", "a"), ("To", "t"), ("via", "b")])

    headers.set("VIA", "c")

    assert headers.items() == [("Via", "c"), ("To", "t")]


def test_set_appends_when_absent_and_remove_drops_all() -> None:
    headers = Headers([("Allow", "INVITE"), ("allow", "BYE")])

    headers.set("Server", "sip-router")
    headers.remove("ALLOW")

    assert headers.items() == [("Server", "sip-router")]
    assert "Allow" not in headers
    assert headers.get("Allow") is None
    assert headers.get_all("Allow") == []


def test_copy_is_independent() -> None:
    headers = Headers([("To", "<sip:a@b>")])

    clone = headers.copy()
    clone.add("Via", "x")

    assert "Via" not in headers
    assert clone.items() == [("To", "<sip:a@b>"), ("Via", "x")]
    assert clone.get("to") == "<sip:a@b>"


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-A", "a\r\nInjected: yes"), ("X-A", "a\nb"), ("Bad Name", "v")],
)
def test_adding_a_line_break_or_bad_name_is_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        Headers().add(name, value)


def test_decoded_values_follow_header_changes() -> None:
    request = parse_request(build())
    assert request.top_via.branch == "z9hG4bK-base1"

    request.headers.set("Via", "SIP/2.0/UDP 198.51.100.20;branch=z9hG4bK-new")

    assert request.top_via.branch == "z9hG4bK-new"


# -- parse_message: a valid request --------------------------------------------


def test_base_invite_parses_into_typed_fields() -> None:
    request = parse_request(build())

    assert (request.method, request.uri, request.version) == (
        "INVITE",
        "sip:+14155550100@192.0.2.10:5060",
        "SIP/2.0",
    )
    assert request.call_id == "base1@198.51.100.20"
    assert request.cseq == (1, "INVITE")
    assert request.max_forwards == 69
    assert (request.top_via.transport, request.top_via.sent_by) == (
        "UDP",
        ("198.51.100.20", 5060),
    )
    assert request.from_.uri == "sip:+14155550111@198.51.100.20"
    assert (request.from_tag, request.to_tag) == ("c1", None)
    assert request.contact is not None
    assert request.contact.uri == "sip:+14155550111@198.51.100.20:5060"
    assert request.content_type == "application/sdp"
    assert request.content_length == len(BASE_SDP)
    assert request.body == BASE_SDP.encode()
    assert request.headers.get_all("Allow") == [
        "INVITE",
        "ACK",
        "CANCEL",
        "BYE",
        "OPTIONS",
        "UPDATE",
    ]
    assert request.request_uri == SipUri(
        "sip", "+14155550100", None, "192.0.2.10", 5060
    )


def test_lf_only_line_ends_are_accepted() -> None:
    request = parse_request(build(line_end="\n", body="v=0\n"))

    assert request.call_id == "base1@198.51.100.20"
    assert request.body == b"v=0\n"


def test_crlfs_before_the_start_line_are_ignored() -> None:
    # RFC 3261 §7.5.
    assert parse_request(b"\r\n\r\n" + build()).method == "INVITE"


def test_message_without_the_empty_line_is_taken_as_headers_only() -> None:
    data = build(body="", content_length=None).rstrip(b"\r\n")

    request = parse_request(data)

    assert (request.body, request.content_length) == (b"", None)


def test_missing_max_forwards_is_accepted() -> None:
    request = parse_request(build(replace={"Max-Forwards": None}))

    assert request.max_forwards is None


def test_content_type_parameters_and_case_are_dropped() -> None:
    request = parse_request(
        build(replace={"Content-Type": "Application/SDP; charset=utf-8"})
    )

    assert request.content_type == "application/sdp"


def test_utf8_display_name_is_decoded() -> None:
    request = parse_request(
        build(replace={"From": '"José Müller" <sip:j@198.51.100.20>;tag=c1'})
    )

    assert request.from_.display_name == "José Müller"


def test_non_utf8_bytes_survive_parse_and_serialise() -> None:
    data = build().replace(b"From: <sip", b'From: "Jos\xe9" <sip')

    request = parse_request(data)

    assert b'From: "Jos\xe9" <sip' in request.serialise()


def test_method_is_case_sensitive_and_extension_methods_parse() -> None:
    data = build("FOO sip:192.0.2.10 SIP/2.0", replace={"CSeq": "1 FOO"}, body="")

    assert parse_request(data).method == "FOO"


def test_version_is_case_insensitive() -> None:
    assert (
        parse_request(build("INVITE sip:+14155550100@192.0.2.10 sip/2.0")).version
        == "SIP/2.0"
    )


def test_require_and_supported_option_tags() -> None:
    request = parse_request(
        build(extra=[("Require", "100rel"), ("Supported", "timer, 100rel")])
    )

    assert request.require == ["100rel"]
    assert request.supported == ["timer", "100rel"]


def test_record_route_and_route_read_as_name_addresses() -> None:
    request = parse_request(
        build(
            extra=[
                ("Record-Route", "<sip:198.51.100.5;lr>, <sip:198.51.100.6;lr>"),
                ("Route", "<sip:192.0.2.10;lr>"),
            ]
        )
    )

    assert [address.uri for address in request.record_route] == [
        "sip:198.51.100.5;lr",
        "sip:198.51.100.6;lr",
    ]
    assert [address.uri for address in request.route] == ["sip:192.0.2.10;lr"]


# -- parse_message: bodies and Content-Length ----------------------------------


def test_body_past_content_length_is_discarded_on_udp() -> None:
    # RFC 3261 §18.3.
    data = build(body="v=0\r\n", content_length=3)

    request = parse_request(data)

    assert request.body == b"v=0"


def test_body_shorter_than_content_length_is_an_answerable_error() -> None:
    error = parse_error(build(body="v=0\r\n", content_length=50))

    assert error.reason == "Content-Length mismatch"
    assert isinstance(error.partial, Request)
    assert error.partial.call_id == "base1@198.51.100.20"


def test_without_content_length_the_datagram_bounds_the_body() -> None:
    request = parse_request(build(content_length=None))

    assert request.body == BASE_SDP.encode()


def test_content_length_zero_means_no_body() -> None:
    # Interop C05: a late-offer INVITE.
    request = parse_request(
        build(replace={"Content-Type": None}, body="", content_length=0)
    )

    assert (request.body, request.content_type) == (b"", None)


@pytest.mark.parametrize("value", ["abc", "-1", "1 2", "\uff11\uff12"])
def test_malformed_content_length_is_rejected(value: str) -> None:
    error = parse_error(build(content_length=value))

    assert error.reason == "Bad Content-Length header"
    assert error.partial is not None


def test_two_different_content_lengths_are_rejected() -> None:
    error = parse_error(build(extra=[("Content-Length", "0")]))

    assert error.reason == "Bad Content-Length header"


# -- parse_message: missing and malformed required headers ---------------------


@pytest.mark.parametrize("name", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_missing_required_header_is_named_in_the_reason(name: str) -> None:
    error = parse_error(build(replace={name: None}))

    assert error.reason == f"Missing {name} header"
    assert error.status == 400
    assert error.partial is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Via", "SIP/2.0/UDP"),
        ("Via", "SIP/2.0/UDP 198.51.100.20:port"),
        ("From", "<sip:a@b"),
        ("From", "no uri here"),
        ("To", '"open <sip:a@b>'),
        ("Call-ID", "two words"),
        ("CSeq", "1"),
        ("CSeq", "x INVITE"),
        ("CSeq", "2147483648 INVITE"),
        ("CSeq", "1 IN VITE"),
    ],
)
def test_malformed_required_header_is_named_in_the_reason(
    name: str, value: str
) -> None:
    error = parse_error(build(replace={name: value}))

    assert error.reason == f"Bad {name} header"
    assert error.partial is None


@pytest.mark.parametrize("name", ["Call-ID", "CSeq", "From", "To"])
def test_single_valued_header_given_twice_is_rejected(name: str) -> None:
    value = dict(BASE_HEADERS)[name]

    error = parse_error(build(extra=[(name, value)]))

    assert error.reason == f"Bad {name} header"


def test_cseq_method_must_match_the_request_method() -> None:
    error = parse_error(build(replace={"CSeq": "1 BYE"}))

    assert error.reason == "CSeq method mismatch"
    assert isinstance(error.partial, Request)


@pytest.mark.parametrize("value", ["abc", "256", "-1", "7 0"])
def test_bad_max_forwards_is_answerable(value: str) -> None:
    error = parse_error(build(replace={"Max-Forwards": value}))

    assert error.reason == "Bad Max-Forwards header"
    assert isinstance(error.partial, Request)


def test_bad_contact_is_reported_when_read_and_keeps_the_request() -> None:
    request = parse_request(build(replace={"Contact": "<sip:a@b"}))

    with pytest.raises(SipParseError) as caught:
        _ = request.contact

    assert caught.value.reason == "Bad Contact header"
    assert caught.value.partial is request


def test_contact_star_is_not_a_usable_contact() -> None:
    request = parse_request(build(replace={"Contact": "*"}))

    with pytest.raises(SipParseError, match="Bad Contact header"):
        _ = request.contact


def test_request_without_contact_has_none() -> None:
    assert parse_request(build(replace={"Contact": None})).contact is None


# -- parse_message: start lines ------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "INVITE sip:+14155550100@192.0.2.10",
        "INVITE  SIP/2.0",
        "INVITE sip:a@b SIP/2.0 extra",
        "IN(VITE sip:a@b SIP/2.0",
        "",
    ],
)
def test_malformed_request_line_is_rejected(line: str) -> None:
    error = parse_error(build(line))

    assert error.reason == "Bad request line"


def test_request_uri_without_scheme_is_a_bad_request_uri() -> None:
    error = parse_error(build("INVITE +14155550100 SIP/2.0"))

    assert error.reason == "Bad Request-URI"
    assert isinstance(error.partial, Request)


def test_malformed_request_uri_is_reported_when_read() -> None:
    request = parse_request(build("INVITE sip:+14155550100@[::1 SIP/2.0"))

    with pytest.raises(SipParseError) as caught:
        _ = request.request_uri

    assert caught.value.reason == "Bad Request-URI"
    assert caught.value.partial is request


def test_unsupported_request_uri_scheme_asks_for_416() -> None:
    request = parse_request(build("INVITE http://example.com/ SIP/2.0"))

    with pytest.raises(SipParseError) as caught:
        _ = request.request_uri

    assert (caught.value.status, caught.value.reason) == (416, "Unsupported URI scheme")


def test_other_sip_version_asks_for_505() -> None:
    error = parse_error(build("INVITE sip:a@b SIP/3.0"))

    assert (error.status, error.reason) == (505, "Version Not Supported")


def test_http_request_is_not_sip() -> None:
    error = parse_error(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")

    assert error.reason == "Bad request line"


def test_header_line_without_colon_is_rejected() -> None:
    error = parse_error(
        build(extra=[("Garbage", "x")]).replace(b"Garbage: x", b"Garbage x")
    )

    assert error.reason == "Bad header line"


def test_continuation_line_right_after_the_start_line_is_rejected() -> None:
    data = build().replace(b"SIP/2.0\r\nVia", b"SIP/2.0\r\n Via")

    assert parse_error(data).reason == "Bad header line"


def test_bare_cr_inside_the_headers_is_rejected() -> None:
    data = build(extra=[("Subject", "a")]).replace(
        b"Subject: a", b"Subject: a\rInjected: b"
    )

    assert parse_error(data).reason == "Bad header line"


def test_empty_datagram_is_rejected() -> None:
    assert parse_error(b"").reason == "Bad request line"


# -- parse_message: limits -----------------------------------------------------


def test_message_over_the_size_limit_is_rejected_with_513() -> None:
    data = build(body="a=x\r\n" * (MAX_MESSAGE_SIZE // 5 + 1))

    error = parse_error(data)

    assert (error.status, error.reason) == (513, "Message too large")


def test_size_limit_is_configurable() -> None:
    with pytest.raises(SipParseError, match="Message too large"):
        parse_message(build(), max_size=100)


def test_too_many_header_lines_are_rejected() -> None:
    extra = [("X-Pad", str(i)) for i in range(MAX_HEADERS)]

    assert parse_error(build(extra=extra)).reason == "Too many headers"


def test_header_limit_is_configurable() -> None:
    with pytest.raises(SipParseError, match="Too many headers"):
        parse_message(build(), max_headers=5)


# -- responses -----------------------------------------------------------------


def test_response_parses_status_reason_and_shared_fields() -> None:
    data = build(
        "SIP/2.0 180 Ringing", replace={"To": "<sip:+14155550100@192.0.2.10>;tag=r1"}
    )

    response = parse_message(data)

    assert isinstance(response, Response)
    assert (response.status, response.reason) == (180, "Ringing")
    assert response.to_tag == "r1"
    assert response.cseq == (1, "INVITE")
    assert response.top_via.branch == "z9hG4bK-base1"


def test_response_reason_may_be_empty_or_hold_spaces() -> None:
    assert parse_message(build("SIP/2.0 200")).reason == ""  # type: ignore[union-attr]
    long = parse_message(build("SIP/2.0 503 Service  Unavailable Now"))
    assert isinstance(long, Response)
    assert long.reason == "Service  Unavailable Now"


@pytest.mark.parametrize(
    "line", ["SIP/2.0 99 Low", "SIP/2.0 700 High", "SIP/2.0 2x0 OK", "SIP/2.0"]
)
def test_bad_status_line_is_rejected(line: str) -> None:
    assert parse_error(build(line)).reason == "Bad status line"


def test_response_errors_carry_no_partial_request() -> None:
    error = parse_error(build("SIP/2.0 200 OK", body="x", content_length=9))

    assert error.reason == "Content-Length mismatch"
    assert error.partial is None


# -- serialising ---------------------------------------------------------------


def test_serialise_round_trips_and_sets_content_length() -> None:
    request = parse_request(build(content_length=None))

    data = request.serialise()

    assert data.endswith(f"Content-Length: {len(BASE_SDP)}\r\n\r\n{BASE_SDP}".encode())
    assert parse_message(data).serialise() == data
    assert parse_message(data).headers.items()[:-1] == request.headers.items()


def test_serialise_replaces_a_stale_content_length() -> None:
    request = parse_request(build())
    request.body = b"v=0\r\n"

    data = request.serialise()

    assert data.count(b"Content-Length") == 1
    assert b"Content-Length: 5\r\n\r\nv=0\r\n" in data


def test_built_request_serialises_with_canonical_names() -> None:
    headers = Headers(
        [
            ("v", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1"),
            ("f", "<sip:a@127.0.0.1>;tag=1"),
            ("t", "<sip:b@127.0.0.1>"),
            ("i", "c@127.0.0.1"),
            ("cseq", "2 BYE"),
        ]
    )

    data = Request("BYE", "sip:b@127.0.0.1", headers).serialise()

    assert data == (
        b"BYE sip:b@127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\n"
        b"From: <sip:a@127.0.0.1>;tag=1\r\n"
        b"To: <sip:b@127.0.0.1>\r\n"
        b"Call-ID: c@127.0.0.1\r\n"
        b"CSeq: 2 BYE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )


def test_is_keepalive_recognises_crlf_only_datagrams() -> None:
    assert is_keepalive(b"\r\n\r\n")
    assert is_keepalive(b"\r\n")
    assert not is_keepalive(b"")
    assert not is_keepalive(build())


# -- interop cases -------------------------------------------------------------


def test_c01_dialed_number_without_plus_parses() -> None:
    request = parse_request(
        build(
            "INVITE sip:14155550100@192.0.2.10:5060 SIP/2.0",
            replace={"To": "<sip:14155550100@192.0.2.10>"},
        )
    )

    assert request.request_uri.user_number == "14155550100"
    to_uri = request.to.parsed_uri()
    assert to_uri.user_number == "14155550100"


@pytest.mark.parametrize("user", ["4155550100", "02079460123", "0999"])
def test_c02_national_numbers_parse(user: str) -> None:
    request = parse_request(build(f"INVITE sip:{user}@192.0.2.10:5060 SIP/2.0"))

    assert request.request_uri.user_number == user


def test_c03_portability_params_do_not_enter_the_number() -> None:
    request = parse_request(
        build(
            "INVITE sip:+14155550100;npdi;rn=+14155550199@192.0.2.10:5060;user=phone"
            " SIP/2.0",
            replace={"To": "<sip:+14155550100@192.0.2.10;user=phone>"},
        )
    )

    uri = request.request_uri
    assert uri.user_number == "+14155550100"
    assert uri.user_params == {"npdi": None, "rn": "+14155550199"}


def test_c03_tel_request_uri_is_accepted() -> None:
    request = parse_request(
        build(
            "INVITE tel:+14155550100;npdi SIP/2.0", replace={"To": "<tel:+14155550100>"}
        )
    )

    assert request.request_uri == TelUri("+14155550100", {"npdi": None})
    assert request.to.parsed_uri() == TelUri("+14155550100", {})


def test_c04_g729_offer_parses_as_a_message() -> None:
    body = BASE_SDP.split("m=")[0] + (
        "m=audio 40000 RTP/AVP 18 101\r\n"
        "a=rtpmap:18 G729/8000\r\n"
        "a=fmtp:18 annexb=no\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
    )

    assert parse_request(build(body=body)).body == body.encode()


def test_c06_reinvite_with_session_timer_parses() -> None:
    request = parse_request(
        build(
            "INVITE sip:+14155550111@198.51.100.20:5060 SIP/2.0",
            replace={"To": "<sip:+14155550100@192.0.2.10>;tag=r1", "CSeq": "2 INVITE"},
            extra=[("Supported", "timer"), ("x", "1800;refresher=uac")],
            body=BASE_SDP.replace("1001 1", "1001 2").replace("sendrecv", "sendonly"),
        )
    )

    assert (request.to_tag, request.cseq) == ("r1", (2, "INVITE"))
    assert request.headers.get("Session-Expires") == "1800;refresher=uac"


def test_c07_cancel_parses_with_its_own_cseq_method() -> None:
    data = (
        b"CANCEL sip:+14155550100@192.0.2.10:5060 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-base1\r\n"
        b"From: <sip:+14155550111@198.51.100.20>;tag=c1\r\n"
        b"To: <sip:+14155550100@192.0.2.10>\r\n"
        b"Call-ID: base1@198.51.100.20\r\n"
        b"CSeq: 1 CANCEL\r\n"
        b"Max-Forwards: 70\r\n"
        b"Content-Length: 0\r\n\r\n"
    )

    request = parse_request(data)

    assert (request.method, request.cseq, request.top_via.branch) == (
        "CANCEL",
        (1, "CANCEL"),
        "z9hG4bK-base1",
    )


def test_c08_options_keepalive_parses() -> None:
    data = (
        b"OPTIONS sip:192.0.2.10:5060 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-opt1\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:ping@198.51.100.20>;tag=p1\r\n"
        b"To: <sip:192.0.2.10>\r\n"
        b"Call-ID: opt1@198.51.100.20\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n"
    )

    request = parse_request(data)

    assert request.request_uri.user_number is None
    assert request.to.parsed_uri().user_number is None


def test_c10_scanner_invite_parses_and_can_be_rejected() -> None:
    data = (
        b"INVITE sip:100@192.0.2.10:5060 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 203.0.113.66:5070;branch=z9hG4bK-scan1\r\n"
        b"From: <sip:100@203.0.113.66>;tag=s1\r\n"
        b"To: <sip:100@192.0.2.10>\r\n"
        b"Call-ID: scan1@203.0.113.66\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"User-Agent: friendly-scanner\r\n"
        b"Content-Length: 0\r\n\r\n"
    )

    request = parse_request(data)
    response = make_response(request, 403)

    assert request.headers.get("user-agent") == "friendly-scanner"
    assert response.serialise().startswith(b"SIP/2.0 403 Forbidden\r\n")


def test_c11_require_100rel_is_visible() -> None:
    request = parse_request(build(extra=[("Require", "100rel")]))

    assert "100rel" in request.require


def test_c13_account_in_request_uri_number_in_to() -> None:
    request = parse_request(
        build(
            "INVITE sip:acct77@192.0.2.10 SIP/2.0",
            replace={"To": "<sip:+14155550100@carrier.example>"},
        )
    )

    assert request.request_uri.user_number == "acct77"
    assert request.to.parsed_uri().user_number == "+14155550100"


def test_c14_record_route_and_unreachable_contact_are_kept() -> None:
    request = parse_request(
        build(
            replace={"Contact": "<sip:+14155550111@10.0.0.7:5060>"},
            extra=[("Record-Route", "<sip:198.51.100.5;lr>")],
        )
    )

    response = make_response(request, 200, to_tag="r1")

    assert request.contact is not None
    assert request.contact.uri == "sip:+14155550111@10.0.0.7:5060"
    assert response.headers.get_all("Record-Route") == ["<sip:198.51.100.5;lr>"]


def test_c15_tcp_via_sent_by_is_where_responses_go_once_closed() -> None:
    request = parse_request(
        build(replace={"Via": "SIP/2.0/TCP 198.51.100.20:5060;branch=z9hG4bK-tcp1"})
    )

    assert (request.top_via.transport, request.top_via.sent_by) == (
        "TCP",
        ("198.51.100.20", 5060),
    )


# -- StreamFramer --------------------------------------------------------------


def test_framer_returns_two_messages_from_one_feed() -> None:
    first = build()
    second = build(replace={"Call-ID": "second@198.51.100.20"})

    messages = StreamFramer().feed(first + second)

    assert [m.call_id for m in messages] == [
        "base1@198.51.100.20",
        "second@198.51.100.20",
    ]


def test_framer_assembles_a_message_fed_byte_by_byte() -> None:
    framer = StreamFramer()
    data = build()

    messages = [message for byte in data for message in framer.feed(bytes([byte]))]

    assert len(messages) == 1
    assert messages[0].body == BASE_SDP.encode()
    assert framer.buffered == 0


def test_framer_waits_for_the_body() -> None:
    framer = StreamFramer()
    data = build()
    split = data.index(b"\r\n\r\n") + 10

    assert framer.feed(data[:split]) == []
    assert framer.buffered > 0
    assert len(framer.feed(data[split:])) == 1


def test_framer_keeps_bytes_of_the_next_message() -> None:
    framer = StreamFramer()
    data = build()

    first = framer.feed(data + data[:30])
    second = framer.feed(data[30:])

    assert (len(first), len(second)) == (1, 1)


def test_framer_counts_double_crlf_pings_and_ignores_single_crlfs() -> None:
    # RFC 5626 §3.5.1: "\r\n\r\n" is a ping, answered by "\r\n".
    framer = StreamFramer()

    messages = framer.feed(b"\r\n\r\n" + b"\r\n\r\n" + build() + b"\r\n")
    messages += framer.feed(build())

    assert len(messages) == 2
    assert framer.take_pongs() == 2
    assert framer.pongs_due == 0
    assert framer.buffered == 0


def test_framer_counts_a_ping_split_across_feeds() -> None:
    framer = StreamFramer()

    framer.feed(b"\r\n")
    assert framer.pongs_due == 0
    framer.feed(b"\r")
    framer.feed(b"\n")

    assert framer.pongs_due == 1
    assert framer.buffered == 0


def test_framer_requires_content_length_and_offers_the_partial_request() -> None:
    framer = StreamFramer()

    with pytest.raises(SipParseError) as caught:
        framer.feed(build(content_length=None, body=""))

    assert caught.value.reason == "Missing Content-Length header"
    assert isinstance(caught.value.partial, Request)
    assert framer.failed


def test_framer_rejects_an_endless_header_block() -> None:
    framer = StreamFramer(max_size=1000)
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n")

    with pytest.raises(SipParseError) as caught:
        for _ in range(100):
            framer.feed(b"X-Pad: " + b"a" * 50 + b"\r\n")

    assert (caught.value.reason, caught.value.status) == ("Message too large", 513)


def test_framer_rejects_a_declared_body_past_the_limit() -> None:
    framer = StreamFramer()
    data = build(body="", content_length=MAX_MESSAGE_SIZE)

    with pytest.raises(SipParseError, match="Message too large"):
        framer.feed(data)


def test_framer_is_unusable_after_an_error() -> None:
    framer = StreamFramer()
    with pytest.raises(SipParseError):
        framer.feed(b"garbage\r\n\r\n")

    with pytest.raises(SipParseError):
        framer.feed(build())


def test_framer_returns_good_messages_before_a_bad_one_then_fails() -> None:
    framer = StreamFramer()

    messages = framer.feed(build() + b"garbage\r\n\r\n")

    assert len(messages) == 1
    assert framer.failed
    with pytest.raises(SipParseError, match="Bad request line"):
        framer.feed(b"")


def test_framer_does_not_truncate_stream_bodies() -> None:
    framer = StreamFramer()
    data = build(body="v=0\r\n", content_length=3)

    messages = framer.feed(data)
    # The two bytes past the body are a stray CRLF before the next message.
    messages += framer.feed(build())

    assert [message.body for message in messages] == [b"v=0", BASE_SDP.encode()]
    assert framer.pongs_due == 0


# -- make_response -------------------------------------------------------------


def invite_with_proxies() -> Request:
    return parse_request(
        build(
            headers=[
                ("Via", "SIP/2.0/UDP 198.51.100.5;branch=z9hG4bK-p1"),
                (
                    "Via",
                    "SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-base1;rport=5062",
                ),
                ("Record-Route", "<sip:198.51.100.5;lr>"),
                ("Record-Route", "<sip:198.51.100.6;lr;ftag=c1>"),
                *BASE_HEADERS[1:],
                ("Timestamp", "54"),
            ]
        )
    )


def test_response_copies_vias_in_order_from_to_call_id_cseq() -> None:
    request = invite_with_proxies()

    response = make_response(request, 180, to_tag="r1")

    assert response.headers.items()[:6] == [
        ("Via", "SIP/2.0/UDP 198.51.100.5;branch=z9hG4bK-p1"),
        ("Via", "SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-base1;rport=5062"),
        ("Record-Route", "<sip:198.51.100.5;lr>"),
        ("Record-Route", "<sip:198.51.100.6;lr;ftag=c1>"),
        ("From", "<sip:+14155550111@198.51.100.20>;tag=c1"),
        ("To", "<sip:+14155550100@192.0.2.10>;tag=r1"),
    ]
    assert response.call_id == request.call_id
    assert response.cseq == (1, "INVITE")
    assert (response.status, response.reason) == (180, "Ringing")


def test_response_keeps_an_existing_to_tag() -> None:
    request = parse_request(
        build(replace={"To": "<sip:+14155550100@192.0.2.10>;tag=r1"})
    )

    response = make_response(request, 200, to_tag="other")

    assert response.to_tag == "r1"


def test_response_without_to_tag_argument_adds_none() -> None:
    response = make_response(parse_request(build()), 100)

    assert response.to_tag is None


@pytest.mark.parametrize(
    ("status", "copied"), [(100, False), (180, True), (200, True), (486, False)]
)
def test_record_route_is_copied_into_dialog_creating_responses_only(
    status: int, copied: bool
) -> None:
    response = make_response(invite_with_proxies(), status, to_tag="r1")

    assert ("Record-Route" in response.headers) is copied


def test_record_route_is_not_copied_for_non_invite() -> None:
    request = parse_request(
        build(
            "OPTIONS sip:192.0.2.10 SIP/2.0",
            replace={"CSeq": "1 OPTIONS"},
            extra=[("Record-Route", "<sip:198.51.100.5;lr>")],
        )
    )

    assert "Record-Route" not in make_response(request, 200).headers


def test_timestamp_is_echoed_in_100_trying_only() -> None:
    request = invite_with_proxies()

    assert make_response(request, 100).headers.get("Timestamp") == "54"
    assert "Timestamp" not in make_response(request, 180).headers


def test_other_request_headers_are_not_copied() -> None:
    response = make_response(parse_request(build()), 200, to_tag="r1")

    for name in ("Contact", "Allow", "Max-Forwards", "Content-Type", "Content-Length"):
        assert name not in response.headers


def test_extra_headers_body_and_content_type_are_added() -> None:
    response = make_response(
        parse_request(build()),
        200,
        to_tag="r1",
        headers=[("Contact", "<sip:127.0.0.1:5060>"), ("Allow", "INVITE, ACK, BYE")],
        body=b"v=0\r\n",
        content_type="application/sdp",
    )

    data = response.serialise()

    assert data.endswith(
        b"Contact: <sip:127.0.0.1:5060>\r\n"
        b"Allow: INVITE, ACK, BYE\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 5\r\n\r\nv=0\r\n"
    )
    assert parse_message(data).serialise() == data


def test_custom_reason_phrase_is_used() -> None:
    response = make_response(parse_request(build()), 400, "Bad Via header")

    assert response.serialise().startswith(b"SIP/2.0 400 Bad Via header\r\n")


@pytest.mark.parametrize("status", [99, 700])
def test_status_outside_100_699_is_a_programming_error(status: int) -> None:
    with pytest.raises(ValueError):
        make_response(parse_request(build()), status)


@pytest.mark.parametrize(
    ("name", "value"), [("Contact", "<sip:a>\r\nX-Evil: 1"), ("Bad Name", "x")]
)
def test_extra_response_headers_are_still_checked(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        make_response(parse_request(build()), 200, headers=[(name, value)])


def test_extra_response_headers_are_read_like_parsed_ones() -> None:
    response = make_response(
        parse_request(build()), 200, headers=[("i", "ignored"), ("supported", "timer")]
    )

    assert response.headers.get("Supported") == "timer"
    assert response.headers.get_all("Call-ID")[-1] == "ignored"
    assert b"\r\nSupported: timer\r\n" in response.serialise()


def test_response_to_a_partial_request_after_a_parse_error() -> None:
    error = parse_error(build(replace={"CSeq": "1 BYE"}))
    assert error.partial is not None

    response = make_response(error.partial, 400, error.reason)

    assert response.serialise().startswith(b"SIP/2.0 400 CSeq method mismatch\r\n")
    assert response.headers.get("Via") == BASE_HEADERS[0][1]


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (100, "Trying"),
        (180, "Ringing"),
        (183, "Session Progress"),
        (200, "OK"),
        (400, "Bad Request"),
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (407, "Proxy Authentication Required"),
        (408, "Request Timeout"),
        (415, "Unsupported Media Type"),
        (420, "Bad Extension"),
        (423, "Interval Too Brief"),
        (480, "Temporarily Unavailable"),
        (481, "Call/Transaction Does Not Exist"),
        (486, "Busy Here"),
        (487, "Request Terminated"),
        (488, "Not Acceptable Here"),
        (491, "Request Pending"),
        (500, "Server Internal Error"),
        (501, "Not Implemented"),
        (503, "Service Unavailable"),
        (504, "Server Time-out"),
        (513, "Message Too Large"),
    ],
)
def test_default_reason_phrases(status: int, phrase: str) -> None:
    assert reason_phrase(status) == phrase
    assert make_response(parse_request(build()), status).reason == phrase


def test_unknown_status_gets_its_class_phrase() -> None:
    assert reason_phrase(499) == "Client Error"
    assert reason_phrase(299) == "OK"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CSeq", "9" * 5000 + " INVITE"),
        ("Max-Forwards", "9" * 5000),
    ],
)
def test_numbers_with_thousands_of_digits_are_bad_headers(
    name: str, value: str
) -> None:
    # int() refuses more than 4,300 digits with ValueError; we must answer 400.
    error = parse_error(build(replace={name: value}, content_length=None))

    assert error.reason == f"Bad {name} header"


def test_content_length_with_thousands_of_digits_is_a_bad_header() -> None:
    error = parse_error(build(content_length="9" * 5000))

    assert error.reason == "Bad Content-Length header"


def test_leading_zeros_are_accepted_in_numbers() -> None:
    request = parse_request(
        build(replace={"Max-Forwards": "0070", "CSeq": "007 INVITE"})
    )

    assert (request.max_forwards, request.cseq) == (70, (7, "INVITE"))


# -- responses reuse their request's decoded top Via ------------------------------


def test_a_response_reuses_its_requests_decoded_top_via() -> None:
    request = parse_request(build())
    via = request.top_via

    response = make_response(
        request, 200, to_tag="r1", headers=[("Contact", "<sip:127.0.0.1>")]
    )

    assert response.top_via is via


def test_a_header_added_to_the_response_drops_the_reused_via() -> None:
    request = parse_request(build())
    via = request.top_via
    response = make_response(request, 180, to_tag="r1")

    response.headers.set("Via", "SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK-other")

    assert response.top_via is not via
    assert response.top_via.sent_by == ("127.0.0.9", 5070)


def test_a_response_to_a_request_whose_via_was_not_read_decodes_its_own() -> None:
    request = parse_request(build())
    request.headers.compact()

    response = make_response(request, 100)

    assert response.top_via.branch == request.top_via.branch
