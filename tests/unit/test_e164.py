"""E.164 normalisation of dialed numbers (interop cases C01-C03) and validation.

The map used in the interop cases: +14155550100 -> pipe-A, +14155550199 -> pipe-B,
+442079460123 -> pipe-C. The US trunk has default country US, the GB trunk GB.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.numbers.e164 import InvalidNumber, normalise_dialed_number, validate_e164

E164 = re.compile(r"\+[1-9][0-9]{1,14}")
MAPPED_NUMBERS = {"+14155550100", "+14155550199", "+442079460123"}


# -- C01: the carrier leaves out the "+" -----------------------------------------------


@pytest.mark.parametrize("country", [None, "US", "GB"])
def test_c01_number_without_plus_is_the_same_as_with_plus(country: str | None) -> None:
    assert normalise_dialed_number("14155550100", country) == "+14155550100"
    assert normalise_dialed_number("+14155550100", country) == "+14155550100"


def test_c01_international_digits_from_a_foreign_trunk_fall_back_to_plus_digits() -> (
    None
):
    # Read as GB national, 14155550100 is not a valid number; as +1... it is.
    assert normalise_dialed_number("14155550100", "GB") == "+14155550100"


# -- C02: national formats through the trunk's default country -------------------------


def test_c02_ten_digit_us_national_number_from_us_trunk() -> None:
    assert normalise_dialed_number("4155550100", "US") == "+14155550100"


def test_c02_gb_national_number_with_trunk_prefix_zero() -> None:
    assert normalise_dialed_number("02079460123", "GB") == "+442079460123"


def test_c02_default_country_is_case_insensitive() -> None:
    assert normalise_dialed_number("02079460123", "gb") == "+442079460123"


def test_c02_short_code_from_gb_trunk_never_becomes_a_mapped_number() -> None:
    result = normalise_dialed_number("0999", "GB")

    # Either no number at all or one the store does not know: the router answers 404.
    assert result is None or (result.startswith("+44") and result not in MAPPED_NUMBERS)


@pytest.mark.parametrize(
    ("dialed", "country"), [("011442079460123", "US"), ("00442079460123", "GB")]
)
def test_c02_international_call_prefix_is_understood(dialed: str, country: str) -> None:
    assert normalise_dialed_number(dialed, country) == "+442079460123"


def test_c02_plus_number_ignores_the_default_country() -> None:
    assert normalise_dialed_number("+442079460123", "US") == "+442079460123"


# -- C03: URI parameters and visual separators are not part of the number --------------


@pytest.mark.parametrize(
    "user",
    [
        "+14155550100;npdi;rn=+14155550199",
        "+14155550100;npdi",
        "+14155550100;rn=+14155550199;npdi",
        "+14155550100;phone-context=+1",
    ],
)
def test_c03_number_portability_params_are_dropped_not_routed(user: str) -> None:
    assert normalise_dialed_number(user) == "+14155550100"


@pytest.mark.parametrize(
    "user",
    ["+1-415-555-0100", "+1.415.555.0100", "+1 (415) 555-0100", " +14155550100 "],
)
def test_c03_rfc3966_visual_separators_are_removed(user: str) -> None:
    assert normalise_dialed_number(user) == "+14155550100"


def test_c03_national_number_with_separators_and_params() -> None:
    assert normalise_dialed_number("(415) 555-0100;npdi", "US") == "+14155550100"


# -- not a number ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "user",
    [
        "",
        "+",
        ";npdi",
        "alice",
        "1800FLOWERS",  # no vanity-letter conversion: letters are not a dialed number
        "+1415555010O",  # letter O, not zero
        "*67#",
        "+44 20 7946 0123 ext 5",
        "\uff11\uff14\uff11\uff15\uff15\uff15\uff10\uff11\uff10\uff10",  # full-width
        "+" + "1" * 25,
        "12345",
    ],
)
def test_inputs_that_are_not_numbers_give_none(user: str) -> None:
    assert normalise_dialed_number(user, "US") is None


def test_a_number_longer_than_e164_allows_is_not_a_number() -> None:
    # phonenumbers reads this as a 16-digit Japanese number; E.164 stops at 15 digits.
    assert normalise_dialed_number("8110000000000000", "GB") is None
    assert normalise_dialed_number("+8110000000000000") is None


def test_unknown_default_country_falls_back_to_international_reading() -> None:
    assert normalise_dialed_number("14155550100", "XX") == "+14155550100"
    assert normalise_dialed_number("4155550100", "XX") != "+14155550100"


def test_number_unknown_to_metadata_but_plausible_is_still_looked_up() -> None:
    # 555-55xx numbers are not assigned, yet a test or new range may be in the store.
    assert normalise_dialed_number("+15555550100") == "+15555550100"


@given(
    user=st.text(max_size=40),
    country=st.sampled_from([None, "US", "GB", "DE", "XX", ""]),
)
def test_normalise_never_raises_and_returns_e164_or_none(
    user: str, country: str | None
) -> None:
    result = normalise_dialed_number(user, country)

    assert result is None or E164.fullmatch(result)


@given(digits=st.from_regex(r"\+?[0-9]{0,20}", fullmatch=True))
def test_normalise_of_digit_strings_returns_e164_or_none(digits: str) -> None:
    result = normalise_dialed_number(digits, "GB")

    assert result is None or E164.fullmatch(result)


# -- validate_e164: strict, for numbers being created ----------------------------------


@pytest.mark.parametrize(
    ("number", "country", "expected"),
    [
        ("+14155550100", None, ("+14155550100", "US")),
        ("+442079460123", None, ("+442079460123", "GB")),
        ("14155550100", None, ("+14155550100", "US")),
        ("+1 (415) 555-0100", None, ("+14155550100", "US")),
        ("4155550100", "US", ("+14155550100", "US")),
        ("02079460123", "gb", ("+442079460123", "GB")),
        ("+14155550100", "US", ("+14155550100", "US")),
        ("+80012345678", "US", ("+80012345678", "US")),
    ],
)
def test_validate_e164_returns_number_and_country(
    number: str, country: str | None, expected: tuple[str, str]
) -> None:
    assert validate_e164(number, country) == expected


@pytest.mark.parametrize(
    ("number", "country", "message"),
    [
        ("", None, "not a telephone number"),
        ("alice", None, "not a telephone number"),
        ("+1415555010O", None, "not a telephone number"),
        ("+15555550100", None, "not a valid telephone number"),
        ("0999", "GB", "not a valid telephone number"),
        ("+14155550100", "GB", "not a number of country GB"),
        ("+14155550100", "ZZ", "not an ISO 3166-1"),
        ("+80012345678", None, "give the country"),
    ],
)
def test_validate_e164_rejects_with_a_human_message(
    number: str, country: str | None, message: str
) -> None:
    with pytest.raises(InvalidNumber, match=message):
        validate_e164(number, country)


def test_invalid_number_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        validate_e164("nonsense")
