"""E.164 normalisation of dialed numbers and validation of numbers we store.

Carriers write the same number in many ways: ``+14155550100``, ``14155550100`` (no
``+``), ``4155550100`` (US national), ``02079460123`` (GB national, trunk prefix 0),
``+1-415-555-0100`` (RFC 3966 visual separators), ``+14155550100;npdi;rn=...``
(number-portability parameters in the user part). The store keys numbers by E.164, so
every dialed number goes through :func:`normalise_dialed_number` before a lookup.

:func:`validate_e164` is the strict counterpart for numbers being created.
"""

from __future__ import annotations

import functools

import phonenumbers

__all__ = ["InvalidNumber", "normalise_dialed_number", "validate_e164"]

# ITU-T E.164 §6: an international number has at most 15 digits after the "+".
MAX_E164_DIGITS = 15

# A dialed number may carry an international call prefix before the country code
# (011 from North America, 00 or 0011 elsewhere): E.164's 15 digits plus 4 more.
MAX_DIALED_DIGITS = MAX_E164_DIGITS + 4

# RFC 3966 §5.1.1: visual-separator = "-" / "." / "(" / ")". Spaces are not in the
# grammar, but people and some PBXs put them there anyway.
_VISUAL_SEPARATORS = str.maketrans("", "", "-.() \t")

# Lookups repeat the same few numbers (most calls go to a handful of DIDs), and
# phonenumbers costs about 20 µs per parse. The bound caps memory when scanners dial
# random numbers.
_NORMALISE_CACHE_SIZE = 4096

# phonenumbers' region for country codes that belong to no country.
_NON_GEOGRAPHIC = "001"


class InvalidNumber(ValueError):
    """A number given for storage is not a valid E.164 number."""


def normalise_dialed_number(
    user: str, default_country: str | None = None
) -> str | None:
    """Turn the user part of a Request-URI or ``tel:`` URI into E.164.

    Args:
        user: the user part, already percent-decoded. URI parameters (``;npdi``,
            ``;rn=...``) and visual separators are removed here.
        default_country: ISO 3166-1 alpha-2 region of the trunk the call came from; it
            gives national-format numbers their country code.

    Returns:
        The number as ``+`` and digits, or ``None`` when the input cannot be a
        telephone number (letters, nothing left, too short or too long). Never raises.
    """
    digits = _strip_dialed_number(user)
    if digits is None:
        return None
    if digits.startswith("+"):
        return _normalise_digits(digits[1:], international=True, country=None)
    country = default_country.upper() if default_country else None
    return _normalise_digits(digits, international=False, country=country)


def _strip_dialed_number(user: str) -> str | None:
    """Return ``user`` without parameters and separators; None unless ``[+]digits``."""
    # RFC 3966 §3 / RFC 3261 §19.1.6: parameters follow the number after ";". The
    # number-portability routing number (;rn=) is not the dialed number (RFC 4694 §4).
    number = user.split(";", 1)[0].strip().translate(_VISUAL_SEPARATORS)
    body = number[1:] if number.startswith("+") else number
    if not body or not body.isascii() or not body.isdigit():
        return None
    if len(body) > MAX_DIALED_DIGITS:
        return None
    return number


@functools.lru_cache(maxsize=_NORMALISE_CACHE_SIZE)
def _normalise_digits(
    digits: str, *, international: bool, country: str | None
) -> str | None:
    """Pick the best E.164 reading of ``digits``: valid first, then merely possible.

    Without a "+" the national reading (with ``country``) is tried first, then the
    digits as an international number whose "+" was left off: ``14155550100`` from a
    GB trunk is not a GB number but is a valid US one.
    """
    readings = []
    if not international and country:
        readings.append(_parse(digits, country))
    readings.append(_parse("+" + digits, None))
    candidates = [(n, _format_e164(n)) for n in readings if n is not None]
    # phonenumbers accepts some national numbers that are longer than E.164 allows
    # (ITU-T E.164 §6: at most 15 digits); no such number can be in the store.
    candidates = [
        (n, e164) for n, e164 in candidates if len(e164) <= MAX_E164_DIGITS + 1
    ]

    # A number the metadata does not (yet) know as assigned can still be in our store
    # (test ranges, newly opened ranges): after valid readings, a plausible length is
    # enough to look it up.
    for acceptable in (phonenumbers.is_valid_number, phonenumbers.is_possible_number):
        for number, e164 in candidates:
            if acceptable(number):
                return e164
    return None


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def _format_e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def validate_e164(number: str, country: str | None = None) -> tuple[str, str]:
    """Check a number before it is stored and return it with its country.

    Args:
        number: ``+`` and digits, with or without visual separators. Without ``+`` the
            digits are read as a national number of ``country`` when one is given,
            else as an international number whose ``+`` was left off.
        country: ISO 3166-1 alpha-2 code; derived from the number when omitted.

    Returns:
        ``(e164, country)``, e.g. ``("+442079460123", "GB")``.

    Raises:
        InvalidNumber: the number is not a valid, assigned-range telephone number, or it
            does not belong to ``country``.
    """
    region = _check_country(country)
    digits = _strip_dialed_number(number)
    if digits is None:
        raise InvalidNumber(f"{number!r} is not a telephone number: use + and digits")

    parsed = _parse_for_storage(digits, region)
    e164 = _format_e164(parsed) if parsed else ""
    too_long = len(e164) > MAX_E164_DIGITS + 1
    if parsed is None or too_long or not phonenumbers.is_valid_number(parsed):
        raise InvalidNumber(f"{number!r} is not a valid telephone number")

    if region is None:
        return e164, _derive_country(parsed, e164)
    _check_number_of_country(parsed, region, e164)
    return e164, region


def _check_country(country: str | None) -> str | None:
    if country is None:
        return None
    region = country.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidNumber(f"{country!r} is not an ISO 3166-1 alpha-2 country code")
    return region


def _check_number_of_country(
    parsed: phonenumbers.PhoneNumber, region: str, e164: str
) -> None:
    # Non-geographic numbers (+800 freephone, +882 networks) belong to no country, so
    # any given country is accepted for them (E.164 "global services" numbers).
    if phonenumbers.region_code_for_number(parsed) == _NON_GEOGRAPHIC:
        return
    if phonenumbers.country_code_for_region(region) != parsed.country_code:
        raise InvalidNumber(f"{e164} is not a number of country {region}")


def _parse_for_storage(
    digits: str, region: str | None
) -> phonenumbers.PhoneNumber | None:
    if digits.startswith("+"):
        return _parse(digits, None)
    if region is not None:
        return _parse(digits, region)
    return _parse("+" + digits, None)


def _derive_country(parsed: phonenumbers.PhoneNumber, e164: str) -> str:
    region = phonenumbers.region_code_for_number(parsed)
    # Non-geographic numbers have the pseudo-region "001", not an ISO 3166-1 code.
    if region is None or region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidNumber(f"{e164} belongs to no single country: give the country")
    return str(region)
