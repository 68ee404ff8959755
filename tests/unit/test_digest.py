"""Digest authentication (RFC 3261 §22.4, RFC 8760): challenges and verification."""

from __future__ import annotations

import hashlib

import pytest

from router.sip.digest import (
    NONCE_LIFETIME,
    DigestError,
    DigestVerifier,
    answer_challenge,
    parse_authorization,
)


def challenge_params(
    verifier: DigestVerifier, now: float, algorithm: str
) -> dict[str, str]:
    for value in verifier.challenge(now).header_values:
        params = parse_authorization(value)
        if params["algorithm"] == algorithm:
            return params
    raise AssertionError(f"no {algorithm} challenge")


def answer(
    params: dict[str, str],
    *,
    username: str = "acct77",
    password: str = "s3cret",
    method: str = "INVITE",
    uri: str = "sip:+14155550100@127.0.0.1",
    nc: str = "00000001",
    cnonce: str = "abc",
    qop: str | None = "auth",
) -> str:
    algorithm = params["algorithm"]
    digest = hashlib.sha256 if algorithm == "SHA-256" else hashlib.md5

    def h(text: str) -> str:
        return digest(text.encode()).hexdigest()

    ha1 = h(f"{username}:{params['realm']}:{password}")
    ha2 = h(f"{method}:{uri}")
    if qop is None:
        response = h(f"{ha1}:{params['nonce']}:{ha2}")
        extra = ""
    else:
        response = h(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:{qop}:{ha2}")
        extra = f', qop={qop}, nc={nc}, cnonce="{cnonce}"'
    return (
        f'Digest username="{username}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
        f'uri="{uri}", response="{response}", algorithm={algorithm}{extra}'
    )


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_correct_answer_is_accepted(algorithm: str) -> None:
    verifier = DigestVerifier("sip-router")
    params = challenge_params(verifier, 100.0, algorithm)
    verifier.verify(
        answer(params), method="INVITE", username="acct77", password="s3cret", now=101.0
    )


def test_challenge_offers_sha256_before_md5() -> None:
    values = DigestVerifier("r").challenge(0.0).header_values
    assert [parse_authorization(v)["algorithm"] for v in values] == ["SHA-256", "MD5"]


def test_wrong_password_is_refused() -> None:
    verifier = DigestVerifier("sip-router")
    params = challenge_params(verifier, 0.0, "MD5")
    with pytest.raises(DigestError, match="Wrong credentials"):
        verifier.verify(
            answer(params, password="guess"),
            method="INVITE",
            username="acct77",
            password="s3cret",
            now=1.0,
        )


def test_replayed_answer_is_refused() -> None:
    verifier = DigestVerifier("sip-router")
    params = challenge_params(verifier, 0.0, "SHA-256")
    header = answer(params)
    verifier.verify(
        header, method="INVITE", username="acct77", password="s3cret", now=1.0
    )
    with pytest.raises(DigestError) as error:
        verifier.verify(
            header, method="INVITE", username="acct77", password="s3cret", now=2.0
        )
    assert error.value.stale


def test_expired_nonce_asks_for_a_fresh_challenge() -> None:
    verifier = DigestVerifier("sip-router")
    params = challenge_params(verifier, 0.0, "SHA-256")
    with pytest.raises(DigestError) as error:
        verifier.verify(
            answer(params),
            method="INVITE",
            username="acct77",
            password="s3cret",
            now=NONCE_LIFETIME + 1,
        )
    assert error.value.stale


def test_nonce_from_another_secret_is_refused() -> None:
    params = challenge_params(DigestVerifier("sip-router"), 0.0, "MD5")
    with pytest.raises(DigestError, match="Bad nonce"):
        DigestVerifier("sip-router").verify(
            answer(params),
            method="INVITE",
            username="acct77",
            password="s3cret",
            now=1.0,
        )


def test_answer_without_qop_is_accepted_once() -> None:
    verifier = DigestVerifier("sip-router")
    params = challenge_params(verifier, 0.0, "MD5")
    header = answer(params, qop=None)
    verifier.verify(
        header, method="INVITE", username="acct77", password="s3cret", now=1.0
    )
    with pytest.raises(DigestError):
        verifier.verify(
            header, method="INVITE", username="acct77", password="s3cret", now=1.0
        )


@pytest.mark.parametrize(
    "header",
    [
        "Basic Zm9vOmJhcg==",
        'Digest username="x',
        "Digest",
        'Digest username="a", realm="b"',
    ],
)
def test_malformed_authorization_raises_digest_error(header: str) -> None:
    verifier = DigestVerifier("b")
    with pytest.raises(DigestError):
        verifier.verify(header, method="INVITE", username="a", password="p", now=0.0)


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_our_client_answer_passes_our_own_verifier(algorithm: str) -> None:
    verifier = DigestVerifier("carrier", algorithms=(algorithm,))
    (challenge,) = verifier.challenge(10.0).header_values
    header = answer_challenge(
        challenge,
        method="REGISTER",
        uri="sip:127.0.0.1",
        username="acct77",
        password="pw",
    )
    verifier.verify(
        header, method="REGISTER", username="acct77", password="pw", now=11.0
    )


def test_answer_to_a_challenge_without_qop_uses_rfc2069_form() -> None:
    challenge = 'Digest realm="r", nonce="abc"'
    header = answer_challenge(
        challenge, method="INVITE", uri="sip:x@y", username="u", password="p"
    )
    params = parse_authorization(header)
    assert "qop" not in params and params["algorithm"] == "MD5"
