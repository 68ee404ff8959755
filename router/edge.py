"""The SIP edge: which sources may send calls, and as which trunk.

Before any number lookup, an INVITE's source address must match a trunk's
allowed addresses (IPs or CIDRs). A trunk with credentials also has to answer
a digest challenge (RFC 3261 §22.2, RFC 8760). Sources that keep sending
INVITEs without matching any trunk (scanners) are blocked for a while and then
dropped silently, without costing a lookup. A trunk's default country drives
national-number normalisation, and a number is only served from a trunk of its
own kind (a ``byo`` number only from its own trunk).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import structlog

from router.numbers.cache import Lookup
from router.numbers.models import Trunk
from router.numbers.store import Store, StoreUnavailable
from router.sip.digest import ALGORITHMS, DigestError, DigestVerifier
from router.sip.message import Request

__all__ = ["Admission", "EdgePolicy", "EdgeRejected", "TrunkGate"]

log = structlog.get_logger("router.edge")

# Sources remembered for scanner blocking; the oldest is forgotten first so a
# spray from many addresses cannot grow memory without bound.
MAX_TRACKED_SOURCES = 50_000


@dataclass(frozen=True)
class EdgePolicy:
    """How strict the edge is."""

    allow_unlisted_sources: bool = False
    stealth: bool = False
    block_threshold: int = 10
    block_window_s: float = 60.0
    block_duration_s: float = 600.0
    challenge_status: int = 401
    realm: str = "sip-router"
    # RFC 8760 §2.4: strongest first; some older carrier equipment reads only
    # the first challenge, so operators can put MD5 first or offer it alone.
    digest_algorithms: tuple[str, ...] = ALGORITHMS


class EdgeRejected(Exception):
    """The INVITE is refused at the edge; ``status`` 0 means drop silently."""

    def __init__(
        self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers


@dataclass(frozen=True)
class Admission:
    """An admitted INVITE and the trunk it came in on (None when unlisted)."""

    trunk: Trunk | None


class _SourceRecord:
    __slots__ = ("blocked_until", "rejects", "window_start")

    def __init__(self, now: float) -> None:
        self.window_start = now
        self.rejects = 0
        self.blocked_until = 0.0


class TrunkGate:
    """Admits or refuses INVITEs by source address and credentials."""

    def __init__(self, store: Store, lookup: Lookup, policy: EdgePolicy) -> None:
        self.store = store
        self.lookup = lookup
        self.policy = policy
        self.verifier = DigestVerifier(
            policy.realm, algorithms=policy.digest_algorithms
        )
        self._sources: OrderedDict[str, _SourceRecord] = OrderedDict()
        self.rejected_sources = 0
        self.dropped_blocked = 0
        self.auth_failures = 0

    def is_blocked(self, source: str, now: float | None = None) -> bool:
        """True while ``source`` is blocked: drop its requests unanswered."""
        record = self._sources.get(source)
        if record is None:
            return False
        blocked = record.blocked_until > (now if now is not None else time.monotonic())
        if blocked:
            self.dropped_blocked += 1
        return blocked

    async def admit(self, request: Request, source: str) -> Admission:
        """Find the trunk for ``source`` and check its credentials.

        Raises:
            EdgeRejected: 403 for an unlisted source (or a silent drop in
                stealth mode), 401/407 with a challenge when credentials are
                missing or wrong, 503 when the store cannot be reached.
        """
        try:
            trunk = await self.lookup.trunk_for_address(source)
        except StoreUnavailable:
            raise EdgeRejected(
                503, "Service Unavailable", (("Retry-After", "5"),)
            ) from None
        if trunk is None:
            if self.policy.allow_unlisted_sources:
                return Admission(None)
            self._count_reject(source)
            status = 0 if self.policy.stealth else 403
            raise EdgeRejected(status, "Source Not Allowed")
        # A trunk's credentials are what the carrier must answer with, unless
        # the trunk registers with the carrier: then they are ours to give
        # (C13), and the carrier is trusted by its address alone.
        if trunk.username and not trunk.register:
            await self._authenticate(request, trunk)
        return Admission(trunk)

    async def _authenticate(self, request: Request, trunk: Trunk) -> None:
        header = (
            "Authorization"
            if self.policy.challenge_status == 401
            else "Proxy-Authorization"
        )
        answer = request.headers.get(header)
        now = time.time()
        if answer is None:
            raise self._challenge(now, stale=False)
        try:
            credentials = await self.store.trunk_credentials(trunk.trunk_id)
        except StoreUnavailable:
            raise EdgeRejected(
                503, "Service Unavailable", (("Retry-After", "5"),)
            ) from None
        if credentials is None:
            return
        username, password = credentials
        try:
            self.verifier.verify(
                answer,
                method=request.method,
                username=username,
                password=password,
                now=now,
            )
        except DigestError as error:
            self.auth_failures += 1
            log.info("digest_failed", trunk_id=trunk.trunk_id, reason=error.reason)
            raise self._challenge(now, stale=error.stale) from None

    def _challenge(self, now: float, *, stale: bool) -> EdgeRejected:
        status = self.policy.challenge_status
        name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        challenge = self.verifier.challenge(now, stale=stale)
        reason = "Unauthorized" if status == 401 else "Proxy Authentication Required"
        return EdgeRejected(
            status, reason, tuple((name, v) for v in challenge.header_values)
        )

    def _count_reject(self, source: str) -> None:
        self.rejected_sources += 1
        now = time.monotonic()
        record = self._sources.get(source)
        if record is None:
            record = self._sources[source] = _SourceRecord(now)
            if len(self._sources) > MAX_TRACKED_SOURCES:
                self._sources.popitem(last=False)
        if now - record.window_start > self.policy.block_window_s:
            record.window_start, record.rejects = now, 0
        record.rejects += 1
        if record.rejects >= self.policy.block_threshold:
            record.blocked_until = now + self.policy.block_duration_s
            log.warning(
                "source_blocked", source=source, seconds=self.policy.block_duration_s
            )
