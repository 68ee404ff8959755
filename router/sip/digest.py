"""Digest authentication of carrier requests (RFC 3261 §22.4, RFC 8760, RFC 7616).

A trunk with credentials is challenged with 401 (``WWW-Authenticate``) or 407
(``Proxy-Authenticate``) offering SHA-256 and MD5. Nonces are self-validating
(an HMAC over their issue time and a random part, so any instance sharing the
secret can check them), expire after :data:`NONCE_LIFETIME`, and each
(nonce, nc) pair is accepted once, so a captured request cannot be replayed.
Sans-I/O: the caller passes the current time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "ALGORITHMS",
    "NONCE_LIFETIME",
    "Challenge",
    "DigestError",
    "DigestVerifier",
    "answer_challenge",
    "parse_authorization",
]

# RFC 8760 §2.1: SHA-256 preferred, MD5 kept for older carrier equipment.
ALGORITHMS = ("SHA-256", "MD5")

# Seconds a nonce stays valid; long enough for a carrier to answer the
# challenge, short enough that a captured nonce soon stops working.
NONCE_LIFETIME = 300.0

# Nonce/nc pairs remembered to refuse replays; oldest forgotten first.
MAX_SEEN_NONCES = 100_000

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


class DigestError(Exception):
    """The Authorization header cannot be used; ``stale`` means re-challenge."""

    def __init__(self, reason: str, *, stale: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stale = stale


@dataclass(frozen=True)
class Challenge:
    """A challenge header value for each algorithm we offer."""

    header_values: tuple[str, ...]


def parse_authorization(value: str) -> dict[str, str]:
    """Parse ``Digest k=v, k="v"`` into a dict with lower-case keys.

    Raises:
        DigestError: for a scheme other than Digest or unbalanced quotes.
    """
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError("Unsupported authorization scheme")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            end = i + 1
            chars: list[str] = []
            while end < n and rest[end] != '"':
                if rest[end] == "\\" and end + 1 < n:
                    end += 1
                chars.append(rest[end])
                end += 1
            if end >= n:
                raise DigestError("Unterminated quoted string in Authorization")
            params[key] = "".join(chars)
            i = end + 1
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            params[key] = rest[i:end].strip()
            i = end
    return params


class DigestVerifier:
    """Issues challenges and checks answers for one realm."""

    def __init__(
        self,
        realm: str,
        secret: bytes | None = None,
        algorithms: tuple[str, ...] = ALGORITHMS,
    ) -> None:
        unknown = [a for a in algorithms if a not in _HASHES]
        if unknown or not algorithms:
            raise ValueError(
                f"digest algorithms must be among {ALGORITHMS}, got {algorithms}"
            )
        self.realm = realm
        self.algorithms = algorithms
        self._secret = secret or secrets.token_bytes(32)
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def challenge(self, now: float, *, stale: bool = False) -> Challenge:
        """Build one challenge per algorithm (RFC 8760 §2.4: strongest first)."""
        nonce = self._new_nonce(now)
        opaque = secrets.token_hex(8)
        values = tuple(
            f'Digest realm="{self.realm}", nonce="{nonce}", opaque="{opaque}", '
            f'algorithm={algorithm}, qop="auth"' + (", stale=true" if stale else "")
            for algorithm in self.algorithms
        )
        return Challenge(values)

    def verify(
        self,
        authorization: str,
        *,
        method: str,
        username: str,
        password: str,
        now: float,
    ) -> None:
        """Check an Authorization header against the trunk's credentials.

        Raises:
            DigestError: wrong user, wrong response, expired or replayed nonce.
        """
        params = parse_authorization(authorization)
        algorithm = params.get("algorithm", "MD5").upper()
        hash_factory = _HASHES.get(algorithm)
        if hash_factory is None or algorithm not in self.algorithms:
            raise DigestError("Unsupported digest algorithm")
        for name in ("username", "realm", "nonce", "uri", "response"):
            if name not in params:
                raise DigestError(f"Authorization lacks {name}")
        if params["realm"] != self.realm or not hmac.compare_digest(
            params["username"], username
        ):
            raise DigestError("Wrong credentials")
        self._check_nonce(params["nonce"], now)
        expected = _response(hash_factory, params, method, username, password)
        if not hmac.compare_digest(expected, params["response"].lower()):
            raise DigestError("Wrong credentials")
        self._refuse_replay(params)

    def _new_nonce(self, now: float) -> str:
        issued = int(now * 1000).to_bytes(8, "big")
        salt = secrets.token_bytes(8)
        mac = hmac.new(self._secret, issued + salt, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(issued + salt + mac).decode().rstrip("=")

    def _check_nonce(self, nonce: str, now: float) -> None:
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            raise DigestError("Bad nonce") from None
        if len(raw) != 32:
            raise DigestError("Bad nonce")
        issued, salt, mac = raw[:8], raw[8:16], raw[16:]
        expected = hmac.new(self._secret, issued + salt, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, expected):
            raise DigestError("Bad nonce")
        age = now - int.from_bytes(issued, "big") / 1000
        if age > NONCE_LIFETIME or age < -5:
            raise DigestError("Nonce expired", stale=True)

    def _refuse_replay(self, params: dict[str, str]) -> None:
        # RFC 7616 §3.4: with qop the nonce count must grow; without it each
        # nonce is good for one request.
        key = (params["nonce"], params.get("nc", "") + params.get("cnonce", ""))
        if key in self._seen:
            raise DigestError("Nonce reused", stale=True)
        self._seen[key] = None
        if len(self._seen) > MAX_SEEN_NONCES:
            self._seen.popitem(last=False)


def _response(
    hash_factory: object,
    params: dict[str, str],
    method: str,
    username: str,
    password: str,
) -> str:
    def h(text: str) -> str:
        return hash_factory(text.encode()).hexdigest()  # type: ignore[operator, no-any-return]

    ha1 = h(f"{username}:{params['realm']}:{password}")
    ha2 = h(f"{method}:{params['uri']}")
    qop = params.get("qop")
    if qop is None:
        return h(f"{ha1}:{params['nonce']}:{ha2}")  # RFC 2069 compatibility (§22.4)
    if qop != "auth":
        raise DigestError("Unsupported qop")
    nc, cnonce = params.get("nc"), params.get("cnonce")
    if not nc or not cnonce:
        raise DigestError("Authorization lacks nc or cnonce")
    return h(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:{qop}:{ha2}")


def answer_challenge(
    challenge: str,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """Build the Authorization value that answers ``challenge`` (client side, §22.2).

    Raises:
        DigestError: the challenge is unreadable or asks for what we cannot do.
    """
    params = parse_authorization(challenge)
    if "realm" not in params or "nonce" not in params:
        raise DigestError("Challenge lacks realm or nonce")
    algorithm = params.get("algorithm", "MD5").upper()
    hash_factory = _HASHES.get(algorithm)
    if hash_factory is None:
        raise DigestError("Unsupported digest algorithm")
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    answer = {"realm": params["realm"], "nonce": params["nonce"], "uri": uri}
    if "auth" in qops:
        answer.update(qop="auth", nc=f"{nc:08x}", cnonce=cnonce or secrets.token_hex(8))
    elif qops:
        raise DigestError("Unsupported qop")
    response = _response(hash_factory, answer, method, username, password)
    fields = [
        f'username="{username}"',
        f'realm="{params["realm"]}"',
        f'nonce="{params["nonce"]}"',
        f'uri="{uri}"',
        f'response="{response}"',
        f"algorithm={algorithm}",
    ]
    if "qop" in answer:
        fields += ["qop=auth", f"nc={answer['nc']}", f'cnonce="{answer["cnonce"]}"']
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(fields)
